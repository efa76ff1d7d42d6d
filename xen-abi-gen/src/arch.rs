//! The architectures Xen's ABI is laid out for.

use std::fmt;
use std::str::FromStr;

/// An architecture of the Xen ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// 32-bit x86 (i386 ABI: 64-bit integers are 4-aligned inside structs).
    X86_32,
    /// x86-64 (LP64).
    X86_64,
    /// 32-bit Arm (AAPCS: 64-bit integers are 8-aligned).
    Arm32,
    /// 64-bit Arm (AAPCS64).
    Arm64,
}

impl Arch {
    /// All architectures, in the order the generator reports them.
    pub const ALL: [Arch; 4] = [Arch::X86_32, Arch::X86_64, Arch::Arm32, Arch::Arm64];

    /// The name used in the spec and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_32 => "x86_32",
            Arch::X86_64 => "x86_64",
            Arch::Arm32 => "arm32",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's `target_arch` value for this architecture.
    pub fn target_arch(self) -> &'static str {
        match self {
            Arch::X86_32 => "x86",
            Arch::X86_64 => "x86_64",
            Arch::Arm32 => "arm",
            Arch::Arm64 => "aarch64",
        }
    }

    /// Size of a pointer / `unsigned long` in bytes.
    pub fn word(self) -> u64 {
        match self {
            Arch::X86_32 | Arch::Arm32 => 4,
            Arch::X86_64 | Arch::Arm64 => 8,
        }
    }

    /// Alignment of a plain 64-bit integer inside a struct.
    pub fn u64_align(self) -> u64 {
        match self {
            Arch::X86_32 => 4,
            _ => 8,
        }
    }

    /// Whether this is an Arm architecture (guest handles are 8-byte unions there).
    pub fn is_arm(self) -> bool {
        matches!(self, Arch::Arm32 | Arch::Arm64)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown architecture name.
#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{0}` (expected one of x86_32, x86_64, arm32, arm64)")]
pub struct UnknownArch(pub String);

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownArch(s.to_owned()))
    }
}

/// Which compilation of the C headers a layout describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum View {
    /// No `__XEN_TOOLS__`: guests and the stable libraries. Rust follows this view.
    #[default]
    Guest,
    /// `-D__XEN_TOOLS__`: `uint64_aligned_t` is 8-aligned on x86_32 too.
    Tools,
}

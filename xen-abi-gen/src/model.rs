//! The validated spec: what the layout engine and the emitters work on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::arch::Arch;
use crate::diag::Loc;
use crate::ty::{Int, Ty};

/// A Xen release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
}

impl Version {
    /// Parse `"4.17"`: two plain decimal numbers, without leading zeros (`"4.020"` would be a
    /// second spelling of 4.20, or of 4.2).
    pub fn parse(s: &str) -> Option<Version> {
        let (a, b) = s.split_once('.')?;
        let digits = |t: &str| {
            !t.is_empty()
                && t.len() <= 3
                && t.bytes().all(|c| c.is_ascii_digit())
                && (t.len() == 1 || !t.starts_with('0'))
        };
        if !digits(a) || !digits(b) {
            return None;
        }
        Some(Version {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }

    /// For a message about a release string `Version::parse` refused: `; did you mean "4.20"?`
    /// when it only has leading zeros too many, else nothing.
    pub fn leading_zero_hint(s: &str) -> String {
        let canonical = s.split_once('.').and_then(|(a, b)| {
            let strip = |t: &str| {
                let t2 = t.trim_start_matches('0');
                let t2 = if t2.is_empty() && !t.is_empty() {
                    "0"
                } else {
                    t2
                };
                (!t.is_empty() && t.len() <= 8 && t.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| t2.to_owned())
            };
            Some(format!("{}.{}", strip(a)?, strip(b)?))
        });
        match canonical {
            Some(c) if c != s && Version::parse(&c).is_some() => format!("; did you mean \"{c}\"?"),
            _ => String::new(),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The whole validated spec.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The Xen release described.
    pub xen: Version,
    /// `__XEN_INTERFACE_VERSION__` the spec is valid for.
    pub interface_version: u32,
    /// The files, sorted by module name.
    pub files: Vec<SpecFile>,
}

/// One validated spec file.
#[derive(Clone, Debug)]
pub struct SpecFile {
    /// Path relative to the spec directory, with `/` separators.
    pub rel_path: String,
    /// Path as loaded (for messages).
    pub path: PathBuf,
    /// Rust module name.
    pub module: String,
    /// C header below `/usr/include`.
    pub header: String,
    /// File documentation.
    pub doc: String,
    /// The first release whose header shows its items to guests (not only to `__XEN__` /
    /// `__XEN_TOOLS__` builds); `None`: since each item's `since`.
    pub guest_since: Option<Version>,
    /// Items in file order.
    pub items: Vec<Item>,
}

/// One item with its common attributes.
#[derive(Clone, Debug)]
pub struct Item {
    /// C name.
    pub name: String,
    /// Rust name.
    pub rust_name: String,
    /// C spelling for the probe (`struct ioreq`, `xen_pfn_t`), `None` when anonymous.
    pub c_name: Option<String>,
    /// For a type of a Linux device ABI: its C spelling in Xen's `xen/sys` copy of the header
    /// when that differs from `c_name` (Linux's uapi spelling).
    pub xen_sys_c_name: Option<String>,
    /// Documentation.
    pub doc: String,
    /// The release that introduced it.
    pub since: Version,
    /// Where it is declared.
    pub loc: Loc,
    /// Whether the C header has it (false: a spec-only helper the probe skips).
    pub in_c: bool,
    /// Whether C only defines it in some builds.
    pub c_guard: Option<CGuard>,
    /// For a struct or union: the first release that shows it to guests, overriding its
    /// file's `guest_since`.
    pub guest_since: Option<Version>,
    /// For an item of a Linux device ABI (`linux/*`): the Linux release that introduced it,
    /// when the spec dates it (a later release's uapi headers must have it, an earlier one's
    /// must not).
    pub linux: Option<String>,
    /// What it is.
    pub kind: ItemKind,
}

/// A preprocessor condition under which the C header defines an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CGuard {
    /// Only with `__XEN__` or `__XEN_TOOLS__` (the tools view).
    Tools,
    /// Only on x86 (`__i386__` / `__x86_64__`).
    X86,
    /// Only on Arm (`__arm__` / `__aarch64__`).
    Arm,
    /// Only in Xen's copy of a Linux header (`xen/sys/*.h`), not in Linux's uapi header.
    XenSys,
    /// Only in Linux's uapi header, not (yet) in Xen's `xen/sys` copy of it, which lags.
    Uapi,
}

impl CGuard {
    /// Whether C defines the item when compiling for `arch` in `view` (`uapi`: against the
    /// Linux uapi headers rather than Xen's).
    pub fn defined(self, arch: crate::arch::Arch, view: crate::arch::View, uapi: bool) -> bool {
        match self {
            CGuard::XenSys => !uapi,
            CGuard::Uapi => uapi,
            CGuard::Tools => view == crate::arch::View::Tools,
            CGuard::X86 => !arch.is_arm(),
            CGuard::Arm => arch.is_arm(),
        }
    }
}

/// The kinds of item.
#[derive(Clone, Debug)]
pub enum ItemKind {
    /// `[[const]]`.
    Const(Const),
    /// `[[typedef]]`.
    Typedef(Typedef),
    /// `[[struct]]`.
    Struct(Compound),
    /// `[[union]]`.
    Union(Compound),
    /// `[[values]]`.
    Values(ValueSet),
    /// `[[flags]]`.
    Flags(ValueSet),
    /// `[[bitfield]]`.
    Bitfield(Bitfield),
    /// `[[hypercall]]`.
    Hypercall(Hypercall),
    /// `[[ioctl]]`.
    Ioctl(Ioctl),
}

impl ItemKind {
    /// The spec keyword of this kind.
    pub fn keyword(&self) -> &'static str {
        match self {
            ItemKind::Const(_) => "const",
            ItemKind::Typedef(_) => "typedef",
            ItemKind::Struct(_) => "struct",
            ItemKind::Union(_) => "union",
            ItemKind::Values(_) => "values",
            ItemKind::Flags(_) => "flags",
            ItemKind::Bitfield(_) => "bitfield",
            ItemKind::Hypercall(_) => "hypercall",
            ItemKind::Ioctl(_) => "ioctl",
        }
    }

    /// Whether this item is a type (can be used in a field).
    pub fn is_type(&self) -> bool {
        matches!(
            self,
            ItemKind::Typedef(_)
                | ItemKind::Struct(_)
                | ItemKind::Union(_)
                | ItemKind::Values(_)
                | ItemKind::Flags(_)
                | ItemKind::Bitfield(_)
        )
    }
}

/// A constant.
#[derive(Clone, Debug)]
pub struct Const {
    /// Its integer type.
    pub ty: Int,
    /// Its value (fits `ty`).
    pub value: i128,
    /// The flag set whose members it masks: in an older release it is the mask of the members
    /// that release has.
    pub mask_of: Option<String>,
}

/// A typedef: one type, or one per architecture.
#[derive(Clone, Debug)]
pub enum Typedef {
    /// The same type everywhere.
    Same(Ty),
    /// A type per architecture.
    PerArch(BTreeMap<Arch, Ty>),
}

impl Typedef {
    /// The type on `arch`.
    pub fn on(&self, arch: Arch) -> &Ty {
        match self {
            Typedef::Same(t) => t,
            Typedef::PerArch(m) => &m[&arch],
        }
    }
}

/// A struct or union.
#[derive(Clone, Debug)]
pub struct Compound {
    /// Fields in C order.
    pub fields: Vec<Field>,
    /// Declared sizes, checked against the layout.
    pub expect_size: BTreeMap<Arch, u64>,
    /// Declared alignments, checked against the layout.
    pub expect_align: BTreeMap<Arch, u64>,
    /// Where `size` is written (a wrong size is reported there).
    pub size_loc: Option<Loc>,
    /// Where `align` is written.
    pub align_loc: Option<Loc>,
}

/// A field of a struct or union.
#[derive(Clone, Debug)]
pub struct Field {
    /// C name.
    pub name: String,
    /// Type.
    pub ty: Ty,
    /// Documentation (may be empty).
    pub doc: String,
    /// Architectures on which the field exists; `None` = all.
    pub only: Option<Vec<Arch>>,
    /// The release that added the field (its struct's `since` unless the spec says later).
    pub since: Version,
    /// Whether C names this field (false: implicit padding in C).
    pub in_c: bool,
    /// Where it is declared.
    pub loc: Loc,
}

impl Field {
    /// Whether the field exists on `arch`.
    pub fn present_on(&self, arch: Arch) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&arch))
    }
}

/// A value set or a flag set.
#[derive(Clone, Debug)]
pub struct ValueSet {
    /// The integer type holding it.
    pub repr: Int,
    /// Prefix stripped for Rust associated constants.
    pub prefix: String,
    /// Members. For flags, `value` is the mask `1 << bit`.
    pub members: Vec<Member>,
    /// Value sets only: C declares the set as an array of the item's name with one entry per
    /// member, in member order (`xsd_errors`); the member names are macros of other headers
    /// (`<errno.h>`), so a release's array is checked by its entry count.
    pub c_array: bool,
}

/// A member of a value or flag set.
#[derive(Clone, Debug)]
pub struct Member {
    /// C name.
    pub name: String,
    /// Value (for flags: the mask).
    pub value: i128,
    /// For flags: the bit number.
    pub bit: Option<u32>,
    /// Documentation.
    pub doc: String,
    /// Release that introduced it.
    pub since: Version,
    /// Where it is declared.
    pub loc: Loc,
    /// Whether C only defines it in some builds.
    pub c_guard: Option<CGuard>,
}

/// A bitfield group packed into one integer.
#[derive(Clone, Debug)]
pub struct Bitfield {
    /// The integer holding the bits.
    pub repr: Int,
    /// Members.
    pub members: Vec<BitMember>,
}

/// A member of a bitfield.
#[derive(Clone, Debug)]
pub struct BitMember {
    /// Name.
    pub name: String,
    /// Least significant bit.
    pub lsb: u32,
    /// Width in bits.
    pub width: u32,
    /// Documentation.
    pub doc: String,
}

/// Type of a hypercall register argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgTy {
    /// An integer.
    Int(Int),
    /// Register-sized unsigned integer.
    Ulong,
    /// A named integer type (e.g. `domid_t`).
    Named(String),
    /// A guest pointer; `points_to` names the pointee if known.
    Ptr(Option<String>),
}

/// A register argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// Name.
    pub name: String,
    /// Type.
    pub ty: ArgTy,
    /// Documentation.
    pub doc: String,
}

/// Direction of the memory a sub-op's pointer refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Read by Xen.
    In,
    /// Written by Xen.
    Out,
    /// Read and written.
    InOut,
    /// No memory (NULL pointer).
    None,
}

/// A hypercall.
#[derive(Clone, Debug)]
pub struct Hypercall {
    /// `__HYPERVISOR_*` number.
    pub number: u32,
    /// Register arguments.
    pub args: Vec<Arg>,
    /// Index into `args` of the sub-op selector.
    pub subop_arg: Option<usize>,
    /// Sub-ops.
    pub subops: Vec<Subop>,
}

/// A sub-op of a hypercall.
#[derive(Clone, Debug)]
pub struct Subop {
    /// C name.
    pub name: String,
    /// Value.
    pub value: i128,
    /// Pointee type of the pointer argument; `None` for `arg = "none"`.
    pub arg: Option<Ty>,
    /// Direction.
    pub dir: Dir,
    /// Documentation.
    pub doc: String,
    /// Release that introduced it.
    pub since: Version,
    /// Where it is declared.
    pub loc: Loc,
}

/// `_IOC` direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IocDir {
    /// `_IOC_NONE`.
    None = 0,
    /// `_IOC_WRITE`.
    Write = 1,
    /// `_IOC_READ`.
    Read = 2,
    /// `_IOC_READ | _IOC_WRITE`.
    ReadWrite = 3,
}

/// `"2.6.38"` → `[2, 6, 38]`, for ordering kernel releases (a non-number part counts as 0).
pub fn kernel_version(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// A Linux ioctl.
#[derive(Clone, Debug)]
pub struct Ioctl {
    /// Direction.
    pub dir: IocDir,
    /// Type byte.
    pub ty: u8,
    /// Number.
    pub nr: u8,
    /// Argument type; `None` for no argument.
    pub arg: Option<Ty>,
}

impl Spec {
    /// Every item with its file.
    pub fn items(&self) -> impl Iterator<Item = (&SpecFile, &Item)> {
        self.files
            .iter()
            .flat_map(|f| f.items.iter().map(move |i| (f, i)))
    }

    /// Look up an item by C name or Rust name.
    pub fn find(&self, name: &str) -> Option<&Item> {
        self.items()
            .map(|(_, i)| i)
            .find(|i| i.name == name)
            .or_else(|| self.items().map(|(_, i)| i).find(|i| i.rust_name == name))
    }
}

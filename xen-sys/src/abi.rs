//! Hand-written support for the generated code: the call-backend trait, guest handles,
//! ABI metadata and the `_IOC` encoding.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::generated::XenErrno;

/// A Xen release, `major.minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct XenVersion {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
}

impl XenVersion {
    /// `XenVersion::new(4, 17)`.
    pub const fn new(major: u16, minor: u16) -> Self {
        XenVersion { major, minor }
    }

    /// Decode the value `XENVER_version` returns (`major << 16 | minor`).
    ///
    /// ```
    /// assert_eq!(xen_sys::XenVersion::from_xenver(0x0004_0011), xen_sys::XenVersion::new(4, 17));
    /// ```
    pub const fn from_xenver(v: u32) -> Self {
        XenVersion {
            major: (v >> 16) as u16,
            minor: v as u16,
        }
    }
}

/// What the spec says about an ABI type; implemented by every generated struct, union, value
/// set, flag set and bitfield.
pub trait XenAbi {
    /// The C spelling (`struct ioreq`), empty for types C declares anonymously.
    const C_NAME: &'static str;
    /// The Xen release that introduced the type.
    const SINCE: XenVersion;
}

/// Integer type backing a guest handle on this architecture.
#[cfg(target_arch = "x86")]
type HandleRepr = u32;
/// Integer type backing a guest handle on this architecture.
#[cfg(not(target_arch = "x86"))]
type HandleRepr = u64;

/// `XEN_GUEST_HANDLE(T)` inside a struct: a guest virtual address that Xen dereferences.
///
/// Pointer-sized on x86 (4 bytes on x86_32, 8 on x86_64); 8 bytes, 8-aligned on both Arm ABIs
/// (a union of the pointer and a `uint64_aligned_t` in C, so arm32 zero-extends).
#[repr(transparent)]
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct GuestHandle(HandleRepr);

impl GuestHandle {
    /// The NULL handle.
    pub const NULL: GuestHandle = GuestHandle(0);

    /// A handle to `p`.
    pub fn from_ptr<T>(p: *const T) -> Self {
        GuestHandle(p as usize as HandleRepr)
    }

    /// A handle from a raw address (e.g. one inside a hypercall buffer).
    pub const fn from_addr(addr: usize) -> Self {
        GuestHandle(addr as HandleRepr)
    }

    /// The address it holds.
    #[allow(clippy::unnecessary_cast)] // u32 on x86, u64 elsewhere
    pub const fn addr(self) -> u64 {
        self.0 as u64
    }

    /// Whether it is NULL.
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}

impl core::fmt::Debug for GuestHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "GuestHandle({:#x})", self.0)
    }
}

/// A way to issue hypercalls: privcmd ioctl, hypercall page, direct instruction, Arm HVC, or a
/// test double.
///
/// # Safety
///
/// Implementations must pass `op` and `args` to Xen unchanged in the registers of the platform's
/// hypercall convention (or, for an in-process model, behave as Xen would), and return Xen's
/// result unchanged.
pub unsafe trait Hypercall {
    /// Issue hypercall `op` with five register arguments (unused ones are 0) and return Xen's
    /// `long` result.
    ///
    /// # Safety
    ///
    /// Every pointer among `args` must be valid as Xen documents for `op`, in memory the backend
    /// can hand to Xen; the call may read and write that memory.
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64;
}

/// Turn Xen's `long` result into `Ok(value)` or `Err(errno)`.
///
/// ```
/// use xen_sys::{hypercall_result, XenErrno};
/// assert_eq!(hypercall_result(3), Ok(3));
/// assert_eq!(hypercall_result(-38), Err(XenErrno::ENOSYS));
/// ```
pub fn hypercall_result(ret: i64) -> Result<u64, XenErrno> {
    if ret < 0 {
        Err(XenErrno(ret.unsigned_abs().min(i32::MAX as u64) as i32))
    } else {
        Ok(ret as u64)
    }
}

/// `_IOC_NONE`.
pub const IOC_NONE: u32 = 0;
/// `_IOC_WRITE`.
pub const IOC_WRITE: u32 = 1;
/// `_IOC_READ`.
pub const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)` in the asm-generic encoding used by Linux on x86 and Arm.
///
/// ```
/// assert_eq!(xen_sys::abi::ioc(xen_sys::abi::IOC_NONE, b'P', 0, 48), 0x0030_5000);
/// ```
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | (((size as u32) & 0x3fff) << 16) | ((ty as u32) << 8) | nr as u32
}

/// Read a `T` from the start of `bytes` (a union member). `bytes` is at least `size_of::<T>()`
/// long by construction (checked by a const assertion per member); a shorter slice yields zeros.
#[doc(hidden)]
pub fn read_prefix<T: FromBytes>(bytes: &[u8]) -> T {
    match T::read_from_prefix(bytes) {
        Ok((v, _)) => v,
        Err(_) => T::new_zeroed(),
    }
}

/// Write `value` to the start of `bytes` (a union member); see [`read_prefix`].
#[doc(hidden)]
pub fn write_prefix<T: IntoBytes + Immutable>(bytes: &mut [u8], value: &T) {
    let src = value.as_bytes();
    if let Some(dst) = bytes.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
}

/// The errno's C name without Xen's `XEN_` prefix (`ESRCH`), or `errno N` for a value Xen's
/// `errno.h` does not name (Linux's and Xen's numbers agree where both name a value).
impl core::fmt::Display for XenErrno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n.strip_prefix("XEN_").unwrap_or(n)),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl core::error::Error for XenErrno {}

#[cfg(test)]
mod errno_tests {
    use super::XenErrno;

    #[test]
    fn errnos_display_by_name() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(XenErrno::ESRCH.to_string(), "ESRCH");
        assert_eq!(XenErrno(3).to_string(), "ESRCH");
        assert_eq!(XenErrno(25).to_string(), "errno 25");
        let e: &dyn core::error::Error = &XenErrno::EINVAL;
        assert_eq!(e.to_string(), "EINVAL");
    }
}

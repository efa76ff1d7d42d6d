//! The unsafe edge of the Linux backends: ioctls and mappings through rustix.

use core::ffi::c_void;
use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

/// An ioctl whose argument is a pointer to `T` (or none) and whose result is the raw return
/// value (`IOCTL_PRIVCMD_HYPERCALL` returns Xen's result, the evtchn binds return the port).
struct Raw<T> {
    opcode: u32,
    arg: *mut T,
    mutating: bool,
}

// SAFETY: `opcode` and the argument type come from the generated, C-checked spec (the callers in
// this module pair each IOCTL_* constant with its argument struct); the kernel writes to the
// argument only for ioctls declared mutating; the output is the integer return value.
unsafe impl<T> Ioctl for Raw<T> {
    type Output = IoctlOutput;
    // Conservative: rustix uses this only to choose between a shared and an exclusive borrow.
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        self.opcode as Opcode
    }

    fn as_ptr(&mut self) -> *mut c_void {
        let _ = self.mutating;
        self.arg.cast()
    }

    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Issue ioctl `opcode` on `fd` with `arg`.
///
/// # Safety
///
/// `opcode` must be an ioctl of the device behind `fd` whose argument is a `T` (or no argument,
/// with `arg` null), and the kernel may read and write `*arg` and anything it points to.
pub(crate) unsafe fn ioctl<T>(fd: impl AsFd, opcode: u32, arg: *mut T) -> Result<i32, Errno> {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        rustix::ioctl::ioctl(
            fd,
            Raw {
                opcode,
                arg,
                mutating: true,
            },
        )
    }
}

/// A mapping that is unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access goes through raw pointers.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
    pub(crate) fn shared(fd: impl AsFd, len: usize) -> Result<Self, Errno> {
        use rustix::mm::{MapFlags, ProtFlags};
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint) cannot alias Rust memory.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        Ok(Mapping { ptr, len })
    }

    /// Private anonymous memory locked in RAM and not inherited by children, every page touched:
    /// what libxencall falls back to when `/dev/xen/hypercall` is absent.
    pub(crate) fn locked_anonymous(len: usize) -> Result<Self, Errno> {
        use rustix::mm::{Advice, MapFlags, ProtFlags};
        // SAFETY: a fresh anonymous mapping cannot alias Rust memory.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::LOCKED,
            )?
        };
        let m = Mapping { ptr, len };
        // SAFETY: advice on our own fresh mapping.
        unsafe { rustix::mm::madvise(m.ptr, m.len, Advice::LinuxDontFork)? };
        for off in (0..len).step_by(4096) {
            // SAFETY: in bounds of our mapping; faults the page in now rather than mid-hypercall.
            unsafe { m.ptr.cast::<u8>().add(off).write_volatile(0) };
        }
        Ok(m)
    }

    /// Start address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.cast()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mappings have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; nothing refers to it after drop (borrows of `self` ended).
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

//! How a call reaches the Linux kernel: ioctls, device reads and writes, and mappings. The
//! privcmd backend uses them, and so do the safe layer's device handles (`xen::linux::Evtchn`,
//! `xen::grant::{Gntdev, Gntalloc}`), which own their descriptors and resources.
//!
//! On x86_64 and aarch64 `read`, `write` and `ioctl` are one inline system-call instruction each
//! (a device model makes three of them per guest request; rustix's generic wrappers spend ~10
//! more instructions per call decoding the result, and its ioctl is out of line). Elsewhere they
//! go through rustix.

use core::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};

/// Linux system calls with three register arguments and a `long` result.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod raw {
    use core::arch::asm;
    use std::os::fd::{AsRawFd, BorrowedFd};

    use rustix::io::Errno;

    // x86_64's own numbers, else the generic table (aarch64).
    const X86_64: bool = cfg!(target_arch = "x86_64");
    pub(super) const READ: usize = if X86_64 { 0 } else { 63 };
    pub(super) const WRITE: usize = if X86_64 { 1 } else { 64 };
    pub(super) const IOCTL: usize = if X86_64 { 16 } else { 29 };

    /// System call `nr` on `fd` with two more arguments; a result in -4095..=-1 is `-errno`.
    ///
    /// # Safety
    ///
    /// The call must be valid with these arguments: every pointer among them is valid for what
    /// the kernel does with it for this call, and nothing Rust owns is closed or unmapped by it.
    /// (`fd` itself stays open: it is borrowed for the call.)
    #[inline(always)]
    pub(super) unsafe fn on_fd(
        nr: usize,
        fd: BorrowedFd<'_>,
        a1: usize,
        a2: usize,
    ) -> Result<usize, Errno> {
        let a0 = fd.as_raw_fd() as usize;
        let ret: isize;
        // SAFETY: the caller vouches for the call; `syscall` clobbers only rcx and r11 (besides
        // the result in rax), and the kernel does not touch the user stack.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a0,
                in("rsi") a1,
                in("rdx") a2,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        // SAFETY: as above; `svc #0` returns in x0 and clobbers nothing else.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!(
                "svc #0",
                in("x8") nr,
                inlateout("x0") a0 as isize => ret,
                in("x1") a1,
                in("x2") a2,
                options(nostack),
            );
        }
        // The kernel's convention (glibc's too): only -4095..=-1 are errors; an ioctl may
        // return other values (privcmd passes on a hypercall's result).
        if (-4095..0).contains(&ret) {
            Err(Errno::from_raw_os_error(-ret as i32))
        } else {
            Ok(ret as usize)
        }
    }
}

/// `read(2)` into `buf`; returns the byte count.
#[inline]
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, exclusively borrowed.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return unsafe { raw::on_fd(raw::READ, fd, buf.as_mut_ptr() as usize, buf.len()) };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    rustix::io::read(fd, buf)
}

/// `write(2)` of `buf`; returns the byte count.
#[inline]
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return unsafe { raw::on_fd(raw::WRITE, fd, buf.as_ptr() as usize, buf.len()) };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    rustix::io::write(fd, buf)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
/// An ioctl whose argument is a pointer to `T` (or none) and whose result is the raw return
/// value (`IOCTL_PRIVCMD_HYPERCALL` returns Xen's result, the evtchn binds return the port).
struct Raw<T> {
    opcode: u32,
    arg: *mut T,
    mutating: bool,
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
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
#[inline]
pub unsafe fn ioctl<T>(fd: impl AsFd, opcode: u32, arg: *mut T) -> Result<i32, Errno> {
    // SAFETY: forwarded from this function's contract. The result is a C `int` (a port,
    // Xen's hypercall result).
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    return unsafe { raw::on_fd(raw::IOCTL, fd.as_fd(), opcode as usize, arg as usize) }
        .map(|r| r as i32);
    // SAFETY: forwarded from this function's contract.
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
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
    pub fn shared(fd: impl AsFd, len: usize) -> Result<Self, Errno> {
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

    /// `mmap(NULL, len, PROT_READ[|PROT_WRITE], MAP_SHARED, fd, offset)`: the pages a
    /// gntdev/gntalloc ioctl placed at `offset` of the device.
    pub fn shared_at(
        fd: impl AsFd,
        len: usize,
        offset: u64,
        writable: bool,
    ) -> Result<Self, Errno> {
        use rustix::mm::{MapFlags, ProtFlags};
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint) cannot alias Rust memory.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                fd,
                offset,
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

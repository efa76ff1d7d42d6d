//! Arm: `hvc #0xEA1` with the hypercall number in x16 (arm64) / r12 (arm32), arguments in
//! x0–x4 / r0–r4, result in x0 / r0.

use core::arch::asm;

use crate::abi::Hypercall;

/// The Arm HVC backend, for code running at EL1 in a Xen guest (kernels, stub domains).
///
/// ```no_run
/// # #[cfg(any(target_arch = "arm", target_arch = "aarch64"))] {
/// let xen = xen_sys::backend::Hvc::new();
/// // SAFETY: running as a Xen guest kernel.
/// let v = unsafe { xen_sys::xen_version_version(&xen) };
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Hvc(());

impl Hvc {
    /// The backend. Issuing a call is only meaningful at EL1 under Xen (EL0 gets UNDEF).
    pub const fn new() -> Self {
        Hvc(())
    }
}

// SAFETY: `hypercall` issues the call with Xen's Arm register convention and returns x0/r0.
unsafe impl Hypercall for Hvc {
    #[inline(always)]
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        #[cfg(target_arch = "aarch64")]
        {
            let ret: u64;
            // SAFETY: register contract of Xen's Arm ABI (arch-arm.h): number in x16, arguments
            // in x0..x4, result in x0. Xen may clobber x16 and the argument registers x1..x4
            // (debug builds poison them), so all are marked clobbered; no other register, flag or
            // memory beyond what the caller's pointers allow is touched. The caller guarantees
            // the pointer arguments (this function's contract).
            unsafe {
                asm!(
                    "hvc #0xea1",
                    inlateout("x0") args[0] => ret,
                    inlateout("x1") args[1] => _,
                    inlateout("x2") args[2] => _,
                    inlateout("x3") args[3] => _,
                    inlateout("x4") args[4] => _,
                    inlateout("x16") u64::from(op) => _,
                    options(nostack),
                );
            }
            ret as i64
        }
        #[cfg(target_arch = "arm")]
        {
            let ret: u32;
            // SAFETY: as above for arm32: number in r12, arguments in r0..r4 (32-bit; a 64-bit
            // argument is not split by this ABI), result in r0; r12 and r1..r4 clobbered. The
            // `virt` extension is required for the HVC mnemonic on ARMv7-A.
            unsafe {
                asm!(
                    ".arch_extension virt",
                    "hvc #0xea1",
                    inlateout("r0") args[0] as u32 => ret,
                    inlateout("r1") args[1] as u32 => _,
                    inlateout("r2") args[2] as u32 => _,
                    inlateout("r3") args[3] as u32 => _,
                    inlateout("r4") args[4] as u32 => _,
                    inlateout("r12") op => _,
                    options(nostack),
                );
            }
            // `long` is 32 bits on arm32: sign-extend.
            i64::from(ret as i32)
        }
    }
}

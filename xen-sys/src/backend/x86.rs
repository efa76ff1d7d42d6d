//! x86: the hypercall page and the direct instructions (`vmcall`, `vmmcall`, `syscall`,
//! `int $0x82`).
//!
//! Register convention (Xen's `arch-x86/xen-x86_{32,64}.h`): 64-bit: number in rax, arguments in
//! rdi, rsi, rdx, r10, r8, result in rax. 32-bit: number in eax, arguments in ebx, ecx, edx, esi,
//! edi, result in eax. Xen may clobber the argument registers it uses (debug builds poison them),
//! so every argument register is treated as clobbered.
//!
//! On x86-32 LLVM reserves `esi`, so the fourth argument is loaded into it inside the asm block
//! from a small on-stack block whose address travels in eax, with `esi` saved and restored.

use core::arch::asm;

use crate::abi::Hypercall;
use crate::generated::XenErrno;

/// Number of 32-byte stubs in the hypercall page.
const PAGE_SLOTS: u32 = 128;

/// The hypercall page: `call page + nr * 32`. Xen writes one stub per hypercall into it (through
/// the PV ELF note, or the HVM/PVH MSR, see [`install_hypercall_page`]).
///
/// XSA-466 made the page a speculation risk (bare `ret`s, no `endbr`); prefer [`Direct`].
#[derive(Clone, Copy, Debug)]
pub struct HypercallPage {
    base: *const u8,
}

impl HypercallPage {
    /// Use the page at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the 4 KiB-aligned, executable page Xen filled with hypercall stubs, and
    /// stay so for the life of the value; calls must be made in guest kernel mode.
    pub const unsafe fn new(base: *const u8) -> Self {
        HypercallPage { base }
    }

    /// Address of the stub for hypercall `op`.
    pub fn stub(&self, op: u32) -> usize {
        self.base as usize + op as usize * 32
    }
}

// SAFETY: `hypercall` calls Xen's stub with the register convention above and returns rax/eax.
unsafe impl Hypercall for HypercallPage {
    #[inline(always)]
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        if op >= PAGE_SLOTS {
            return -i64::from(XenErrno::ENOSYS.0);
        }
        let target = self.stub(op);
        #[cfg(target_arch = "x86_64")]
        {
            let ret: i64;
            // SAFETY: `target` is a stub of the page the caller vouched for (`new`). The stub
            // sets eax to `op`, transfers to Xen and returns; it reads rdi, rsi, rdx, r10, r8,
            // may clobber them, and (64-bit PV) saves and restores rcx/r11 around SYSCALL, which
            // are nevertheless declared clobbered. `call` uses the stack, so no `nostack`.
            unsafe {
                asm!(
                    "call {target}",
                    target = in(reg) target,
                    lateout("rax") ret,
                    inlateout("rdi") args[0] => _,
                    inlateout("rsi") args[1] => _,
                    inlateout("rdx") args[2] => _,
                    inlateout("r10") args[3] => _,
                    inlateout("r8") args[4] => _,
                    lateout("rcx") _,
                    lateout("r11") _,
                );
            }
            ret
        }
        #[cfg(target_arch = "x86")]
        {
            let block: [u32; 2] = [target as u32, args[3] as u32];
            let ret: u32;
            // SAFETY: as above, 32-bit: eax points to `block` (stub address, 4th argument);
            // esi, reserved by LLVM, is saved, loaded with the 4th argument and restored; ebx,
            // ecx, edx, edi carry the other arguments and are clobbered; eax returns the result.
            unsafe {
                asm!(
                    "push esi",
                    "mov esi, dword ptr [eax + 4]",
                    "call dword ptr [eax]",
                    "pop esi",
                    inlateout("eax") block.as_ptr() => ret,
                    inlateout("ebx") args[0] as u32 => _,
                    inlateout("ecx") args[1] as u32 => _,
                    inlateout("edx") args[2] as u32 => _,
                    inlateout("edi") args[4] as u32 => _,
                );
            }
            i64::from(ret as i32)
        }
    }
}

/// Which instruction [`Direct`] issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectKind {
    /// Intel HVM/PVH (`vmcall`, `0f 01 c1`).
    Vmcall,
    /// AMD/Hygon HVM/PVH (`vmmcall`, `0f 01 d9`).
    Vmmcall,
    /// 64-bit PV (`syscall`).
    Syscall,
    /// 32-bit PV (`int $0x82`).
    Int82,
}

/// Hypercalls by direct instruction, as Linux does since XSA-466 instead of the hypercall page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direct {
    kind: DirectKind,
}

impl Direct {
    /// A backend issuing `kind`.
    ///
    /// # Safety
    ///
    /// `kind` must be right for the running guest (vmcall on Intel HVM/PVH, vmmcall on AMD,
    /// syscall for 64-bit PV, int 0x82 for 32-bit PV) and calls must be made in guest kernel
    /// mode; the wrong instruction faults.
    pub const unsafe fn new(kind: DirectKind) -> Self {
        Direct { kind }
    }

    /// The HVM/PVH backend for this CPU: `vmmcall` on AMD and Hygon, else `vmcall`.
    ///
    /// # Safety
    ///
    /// The caller must be an HVM or PVH guest kernel.
    pub unsafe fn hvm() -> Self {
        Direct {
            kind: hvm_kind(cpu_vendor()),
        }
    }

    /// The HVM/PVH backend for this CPU if its vendor is one whose instruction is known (Intel,
    /// Centaur and Zhaoxin: `vmcall`; AMD and Hygon: `vmmcall`), else `None`: then use the
    /// hypercall page ([`install_hypercall_page`]), which Xen fills with the right one.
    ///
    /// ```no_run
    /// # use xen_sys::backend::Direct;
    /// // SAFETY: run in an HVM/PVH guest kernel.
    /// match unsafe { Direct::hvm_known_vendor() } {
    ///     Some(d) => { /* issue hypercalls through `d` */ }
    ///     None => { /* install the hypercall page and use `HypercallPage` */ }
    /// }
    /// ```
    ///
    /// # Safety
    ///
    /// The caller must be an HVM or PVH guest kernel.
    pub unsafe fn hvm_known_vendor() -> Option<Self> {
        known_hvm_kind(cpu_vendor()).map(|kind| Direct { kind })
    }

    /// The instruction this backend issues.
    pub const fn kind(&self) -> DirectKind {
        self.kind
    }
}

/// Choose the HVM instruction for a CPUID vendor string (`vmcall` unless known to be SVM, as
/// Linux does).
pub(crate) fn hvm_kind(vendor: [u8; 12]) -> DirectKind {
    known_hvm_kind(vendor).unwrap_or(DirectKind::Vmcall)
}

/// The HVM instruction of a vendor known to implement VMX or SVM, `None` for any other.
fn known_hvm_kind(vendor: [u8; 12]) -> Option<DirectKind> {
    match &vendor {
        b"AuthenticAMD" | b"HygonGenuine" => Some(DirectKind::Vmmcall),
        b"GenuineIntel" | b"CentaurHauls" | b"  Shanghai  " => Some(DirectKind::Vmcall),
        _ => None,
    }
}

#[cfg(target_arch = "x86")]
use core::arch::x86::{__cpuid, CpuidResult};
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{__cpuid, CpuidResult};

fn cpuid(leaf: u32) -> CpuidResult {
    // SAFETY: CPUID is available on every x86 CPU Xen runs on (it is `unsafe` only on older
    // Rust releases, where the intrinsic was not yet marked safe).
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid(leaf)
    }
}

fn cpu_vendor() -> [u8; 12] {
    // CPUID exists on every CPU Xen supports.
    let r = cpuid(0);
    let mut v = [0u8; 12];
    v[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..12].copy_from_slice(&r.ecx.to_le_bytes());
    v
}

/// The first CPUID leaf of Xen's range (`0x40000000` + n·0x100 with signature
/// "XenVMMXenVMM"), or `None` when not running on Xen.
pub fn xen_cpuid_base() -> Option<u32> {
    (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&leaf| {
        let r = cpuid(leaf);
        let mut s = [0u8; 12];
        s[0..4].copy_from_slice(&r.ebx.to_le_bytes());
        s[4..8].copy_from_slice(&r.ecx.to_le_bytes());
        s[8..12].copy_from_slice(&r.edx.to_le_bytes());
        &s == b"XenVMMXenVMM" && r.eax >= leaf + 2
    })
}

/// HVM/PVH: ask Xen to write the hypercall page at guest-physical address `gpa` (4 KiB aligned)
/// by writing it to the MSR that CPUID leaf base+2 names. Returns the MSR used, or `None` when
/// not running on Xen.
///
/// # Safety
///
/// Must run in guest kernel mode (ring 0) of an HVM/PVH guest; `gpa` must be a page of the
/// guest's RAM that it does not use for anything else.
pub unsafe fn install_hypercall_page(gpa: u64) -> Option<u32> {
    let base = xen_cpuid_base()?;
    let msr = cpuid(base + 2).ebx;
    // SAFETY: WRMSR of Xen's hypercall-page MSR with a page-aligned GPA; the caller guarantees
    // ring 0 and that the page is theirs. Only ecx/eax/edx are read; nothing else changes.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") (gpa & !0xfff) as u32,
            in("edx") (gpa >> 32) as u32,
            options(nostack, preserves_flags),
        );
    }
    Some(msr)
}

// SAFETY: each arm issues the instruction chosen at construction with Xen's x86 register
// convention and returns rax/eax.
unsafe impl Hypercall for Direct {
    #[inline(always)]
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        #[cfg(target_arch = "x86_64")]
        {
            let ret: i64;
            // SAFETY: (all arms) number in rax, arguments in rdi, rsi, rdx, r10, r8 (clobbered),
            // result in rax; the caller guaranteed the instruction fits the guest (`new`/`hvm`)
            // and the pointer arguments. SYSCALL also clobbers rcx and r11. No stack use.
            unsafe {
                // One register convention, three instructions (asm! needs literal templates).
                macro_rules! call64 {
                    ($insn:literal $(, $clobber:tt)*) => {
                        asm!(
                            $insn,
                            inlateout("rax") u64::from(op) => ret,
                            inlateout("rdi") args[0] => _,
                            inlateout("rsi") args[1] => _,
                            inlateout("rdx") args[2] => _,
                            inlateout("r10") args[3] => _,
                            inlateout("r8") args[4] => _,
                            $(lateout($clobber) _,)*
                            options(nostack),
                        )
                    };
                }
                match self.kind {
                    DirectKind::Vmcall => call64!("vmcall"),
                    DirectKind::Vmmcall => call64!("vmmcall"),
                    DirectKind::Syscall => call64!("syscall", "rcx", "r11"),
                    // int $0x82 is the 32-bit PV gate; a 64-bit guest has no use for it.
                    DirectKind::Int82 => return -i64::from(XenErrno::ENOSYS.0),
                }
            }
            ret
        }
        #[cfg(target_arch = "x86")]
        {
            let block: [u32; 2] = [op, args[3] as u32];
            let ret: u32;
            // SAFETY: (all arms) eax points to `block` (number, 4th argument); esi (reserved by
            // LLVM) is saved, loaded with the 4th argument and restored; eax is then loaded with
            // the number; ebx, ecx, edx, edi carry the other arguments and are clobbered; eax
            // returns the result. The caller guaranteed the instruction and the pointers.
            unsafe {
                // One register convention, three instructions (asm! needs literal templates).
                macro_rules! call32 {
                    ($insn:literal) => {
                        asm!(
                            "push esi", "mov esi, dword ptr [eax + 4]", "mov eax, dword ptr [eax]",
                            $insn, "pop esi",
                            inlateout("eax") block.as_ptr() => ret,
                            inlateout("ebx") args[0] as u32 => _,
                            inlateout("ecx") args[1] as u32 => _,
                            inlateout("edx") args[2] as u32 => _,
                            inlateout("edi") args[4] as u32 => _,
                        )
                    };
                }
                match self.kind {
                    DirectKind::Vmcall => call32!("vmcall"),
                    DirectKind::Vmmcall => call32!("vmmcall"),
                    DirectKind::Int82 => call32!("int 0x82"),
                    // SYSCALL is the 64-bit PV gate.
                    DirectKind::Syscall => return -i64::from(XenErrno::ENOSYS.0),
                }
            }
            i64::from(ret as i32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_selects_the_instruction() {
        assert_eq!(hvm_kind(*b"GenuineIntel"), DirectKind::Vmcall);
        assert_eq!(hvm_kind(*b"AuthenticAMD"), DirectKind::Vmmcall);
        assert_eq!(hvm_kind(*b"HygonGenuine"), DirectKind::Vmmcall);
        assert_eq!(hvm_kind(*b"CentaurHauls"), DirectKind::Vmcall);
        assert_eq!(known_hvm_kind(*b"  Shanghai  "), Some(DirectKind::Vmcall));
        assert_eq!(known_hvm_kind(*b"GenuineIntel"), Some(DirectKind::Vmcall));
        assert_eq!(known_hvm_kind(*b"HygonGenuine"), Some(DirectKind::Vmmcall));
        // Unknown vendors get no direct backend (the hypercall page instead), but `hvm()`
        // still picks vmcall for them.
        assert_eq!(known_hvm_kind(*b"VIA VIA VIA "), None);
        assert_eq!(hvm_kind(*b"VIA VIA VIA "), DirectKind::Vmcall);
    }

    #[test]
    fn stubs_are_32_bytes_apart_and_out_of_range_ops_never_jump() {
        // SAFETY: the page is never called: op 200 is rejected before any jump.
        let page = unsafe { HypercallPage::new(0x1000 as *const u8) };
        assert_eq!(page.stub(32), 0x1000 + 32 * 32);
        // SAFETY: returns before touching the (fake) page.
        let r = unsafe { page.hypercall(200, [0; 5]) };
        assert_eq!(r, -38);
    }

    #[test]
    fn not_running_on_xen_here_or_the_base_is_valid() {
        if let Some(b) = xen_cpuid_base() {
            assert_eq!(b & 0xff, 0);
        }
    }
}

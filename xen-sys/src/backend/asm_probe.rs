//! Probe functions for the disassembly check (`tests/disasm-check.sh`): for each backend, the
//! typed wrapper `event_channel_op_send` next to a hand-written inline-asm hypercall doing the
//! same, with the same result handling. The check compiles this module with `--emit asm` and
//! requires both functions to be the same instruction sequence. Not part of the API.
#![allow(missing_docs, clippy::missing_safety_doc)]

use core::arch::asm;

use crate::abi::hypercall_result;
use crate::generated::*;

fn fold(r: Result<u64, XenErrno>) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => -i64::from(e.0),
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    use super::*;
    use crate::backend::Hvc;

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_hvc_wrapper(arg: *const EvtchnSend) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&Hvc::new(), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_hvc_handwritten(arg: *const EvtchnSend) -> i64 {
        let ret: u64;
        // SAFETY: the probe is compiled, never run; Xen's Arm convention.
        unsafe {
            asm!("hvc #0xea1",
                inlateout("x0") 4u64 => ret, inlateout("x1") arg as u64 => _,
                inlateout("x2") 0u64 => _, inlateout("x3") 0u64 => _, inlateout("x4") 0u64 => _,
                inlateout("x16") 32u64 => _, options(nostack));
        }
        fold(hypercall_result(ret as i64))
    }
}

#[cfg(target_arch = "arm")]
mod imp {
    use super::*;
    use crate::backend::Hvc;

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_hvc_wrapper(arg: *const EvtchnSend) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&Hvc::new(), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_hvc_handwritten(arg: *const EvtchnSend) -> i64 {
        let ret: u32;
        // SAFETY: the probe is compiled, never run; Xen's Arm convention.
        unsafe {
            asm!(".arch_extension virt", "hvc #0xea1",
                inlateout("r0") 4u32 => ret, inlateout("r1") arg as u32 => _,
                inlateout("r2") 0u32 => _, inlateout("r3") 0u32 => _, inlateout("r4") 0u32 => _,
                inlateout("r12") 32u32 => _, options(nostack));
        }
        fold(hypercall_result(i64::from(ret as i32)))
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::*;
    use crate::backend::{Direct, DirectKind, HypercallPage};

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_vmcall_wrapper(arg: *const EvtchnSend) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&Direct::new(DirectKind::Vmcall), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_vmcall_handwritten(arg: *const EvtchnSend) -> i64 {
        let ret: i64;
        // SAFETY: the probe is compiled, never run; Xen's x86-64 convention.
        unsafe {
            asm!("vmcall",
                inlateout("rax") 32u64 => ret, inlateout("rdi") 4u64 => _,
                inlateout("rsi") arg as u64 => _, inlateout("rdx") 0u64 => _,
                inlateout("r10") 0u64 => _, inlateout("r8") 0u64 => _, options(nostack));
        }
        fold(hypercall_result(ret))
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_syscall_wrapper(arg: *const EvtchnSend) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&Direct::new(DirectKind::Syscall), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_syscall_handwritten(arg: *const EvtchnSend) -> i64 {
        let ret: i64;
        // SAFETY: the probe is compiled, never run; Xen's 64-bit PV convention.
        unsafe {
            asm!("syscall",
                inlateout("rax") 32u64 => ret, inlateout("rdi") 4u64 => _,
                inlateout("rsi") arg as u64 => _, inlateout("rdx") 0u64 => _,
                inlateout("r10") 0u64 => _, inlateout("r8") 0u64 => _,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        fold(hypercall_result(ret))
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_page_wrapper(
        page: *const u8,
        arg: *const EvtchnSend,
    ) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&HypercallPage::new(page), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_page_handwritten(
        page: *const u8,
        arg: *const EvtchnSend,
    ) -> i64 {
        let ret: i64;
        // SAFETY: the probe is compiled, never run; the stub of hypercall 32.
        unsafe {
            asm!("call {t}", t = in(reg) page as usize + 32 * 32,
                lateout("rax") ret, inlateout("rdi") 4u64 => _,
                inlateout("rsi") arg as u64 => _, inlateout("rdx") 0u64 => _,
                inlateout("r10") 0u64 => _, inlateout("r8") 0u64 => _,
                lateout("rcx") _, lateout("r11") _);
        }
        fold(hypercall_result(ret))
    }
}

#[cfg(target_arch = "x86")]
mod imp {
    use super::*;
    use crate::backend::HypercallPage;

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_page_wrapper(
        page: *const u8,
        arg: *const EvtchnSend,
    ) -> i64 {
        // SAFETY: the probe is compiled, never run.
        fold(unsafe { event_channel_op_send(&HypercallPage::new(page), arg) })
    }

    #[no_mangle]
    pub unsafe extern "C" fn xen_sys_probe_page_handwritten(
        page: *const u8,
        arg: *const EvtchnSend,
    ) -> i64 {
        let block: [u32; 2] = [page as u32 + 32 * 32, 0];
        let ret: u32;
        // SAFETY: the probe is compiled, never run; Xen's 32-bit convention.
        unsafe {
            asm!("push esi", "mov esi, dword ptr [eax + 4]", "call dword ptr [eax]", "pop esi",
                inlateout("eax") block.as_ptr() => ret, inlateout("ebx") 4u32 => _,
                inlateout("ecx") arg as u32 => _, inlateout("edx") 0u32 => _,
                inlateout("edi") 0u32 => _);
        }
        fold(hypercall_result(i64::from(ret as i32)))
    }
}

//! A freestanding x86_64 PVH stub domain: the device model of one guest. It serves xen's
//! regbank device (the very `device.rs` of the dom0 example) with `xen::ioreq::IoreqServer`
//! on the `xen::bare` platform: hypercalls by `vmcall`/`vmmcall` (chosen by CPU vendor; the
//! hypercall page where the vendor is unknown, or with `hypercall=page` on the command line),
//! the ioreq pages acquired into a window of its own frames, events waited for with
//! `SCHEDOP_poll` and read from the shared-info page. The target comes from the command line
//! (`target=DOMID`); the toolstack must have made this domain the target's device model.
//! Every step prints a `STUBDOM ...` line on the HVM debug port (Xen's console shows it as
//! `(dN) ...`); it powers off when the guest writes the device's stop register.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod console;
mod entry;
mod start_info;

use core::sync::atomic::AtomicBool;

use freestanding_mem::heap::Bump;
use xen::bare::{Bare, FrameWindow};
use xen::sys::backend::{install_hypercall_page, Direct, HypercallPage};
use xen::sys::*;
use xen::{DomId, Gfn, Xen};

/// The fixed heap (set-up allocates a few small vectors; serving nothing, which the counters
/// prove).
const HEAP_SIZE: usize = 64 * 1024;
#[global_allocator]
static HEAP: Bump<HEAP_SIZE> = Bump::new();

#[allow(dead_code)] // Constants and the `RegBank` fields the stub domain does not read.
#[path = "../../../xen/examples/regbank/device.rs"]
mod device;

/// The frame window: GFNs above the domain's RAM (the harness gives it far less than 256 MiB),
/// identity-mapped by `entry.rs`. The first frame holds the shared-info page, the rest is the
/// `xen::bare` window (ioreq pages, then the scratch frame for guest RAM).
const WINDOW_GFN: u64 = 0x1_0000;
const WINDOW_FRAMES: usize = 8;
static WINDOW_GFNS: [Gfn; WINDOW_FRAMES] = {
    let mut g = [Gfn(0); WINDOW_FRAMES];
    let mut i = 0;
    while i < WINDOW_FRAMES {
        g[i] = Gfn(WINDOW_GFN + 1 + i as u64);
        i += 1;
    }
    g
};

/// A page for the hypercall-page fallback (executable: `entry.rs` maps no page NX).
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut HYPERCALL_PAGE: Page = Page([0; 4096]);

#[no_mangle]
extern "C" fn kmain(start_info: u64) -> ! {
    say!(
        "STUBDOM started (x86_64 PVH, heap {} KiB)",
        HEAP_SIZE / 1024
    );
    let args = start_info::cmdline(start_info);
    let Some(target) = args.value(b"target").and_then(parse_domid) else {
        say!("STUBDOM FAIL: no target=DOMID on the command line");
        poweroff_any();
    };
    let force_page = args.value(b"hypercall") == Some(b"page");
    // SAFETY: PVH guest kernel mode.
    match unsafe { Direct::hvm_known_vendor() }.filter(|_| !force_page) {
        Some(d) => {
            say!("STUBDOM backend: direct {:?}", d.kind());
            run(d, target)
        }
        None => {
            // SAFETY: ring 0 of a PVH guest; the page is ours and unused otherwise.
            let gpa = core::ptr::addr_of!(HYPERCALL_PAGE) as u64;
            // SAFETY: as above.
            if unsafe { install_hypercall_page(gpa) }.is_none() {
                say!("STUBDOM FAIL: no Xen CPUID leaves");
                poweroff_any();
            }
            say!("STUBDOM backend: hypercall page at {gpa:#x}");
            // SAFETY: Xen has just filled the page with its stubs.
            run(unsafe { HypercallPage::new(gpa as *const u8) }, target)
        }
    }
}

fn run<H: Hypercall + Copy>(h: H, target: DomId) -> ! {
    // SAFETY: no memory.
    match unsafe { xen_version_version(&h) } {
        Ok(v) => say!("STUBDOM Xen {}.{}", (v >> 16) as u32, (v & 0xffff) as u32),
        Err(e) => say!("STUBDOM XENVER_version: {e:?}"),
    }
    let shared_gfn = WINDOW_GFN;
    if let Err(e) = map_shared_info(&h, shared_gfn) {
        say!("STUBDOM FAIL: XENMAPSPACE_shared_info: {e:?}");
        poweroff(&h);
    }
    let window = FrameWindow {
        va: ((WINDOW_GFN + 1) << 12) as *mut u8,
        gfns: &WINDOW_GFNS,
    };
    // SAFETY: the shared-info page is mapped at `shared_gfn`, identity-mapped, for the life of
    // the domain; we run in kernel mode; the window's frames are above our RAM, ours alone.
    let bare = unsafe { Bare::new(h, (shared_gfn << 12) as *mut u8, Some(window)) };
    let xen = match Xen::new(bare) {
        Ok(x) => x,
        Err(e) => {
            say!("STUBDOM FAIL: {e}");
            poweroff(&h);
        }
    };
    let stop = AtomicBool::new(false);
    say!("STUBDOM serving domain {target}");
    // The allocation count when serving starts (the first wait, after set-up) and before each
    // later request: their difference is what serving allocated.
    let (mut first, mut last) = (None, 0);
    let r = {
        let mut wait = || {
            let n = HEAP.allocations();
            first.get_or_insert(n);
            last = n;
            Ok(())
        };
        device::serve(&xen, target, None, &stop, &mut wait, &|a| {
            say!("STUBDOM {a}")
        })
    };
    match r {
        Ok(()) => say!("STUBDOM stopped cleanly"),
        Err(e) => say!("STUBDOM FAIL: {e}"),
    }
    let setup = first.unwrap_or(HEAP.allocations());
    say!(
        "STUBDOM heap: {} of {} bytes used; {} allocations in set-up, {} while serving, {} in all",
        HEAP.used(),
        HEAP_SIZE,
        setup,
        last.saturating_sub(setup),
        HEAP.allocations()
    );
    #[cfg(xen_fetch_audit)]
    {
        let a = xen::ioreq::slot::audit::snapshot();
        say!(
            "STUBDOM audit: read {} B = {} state words + {} x 24 copied + {} other; wrote {} INPROCESS, {} IORESP_READY, {} backward",
            a.bytes_read,
            a.state_reads,
            a.copies,
            a.other_bytes(),
            a.inprocess,
            a.responses,
            a.backward
        );
    }
    poweroff(&h)
}

/// `XENMEM_add_to_physmap` of the shared-info page at `gfn` of our physmap.
fn map_shared_info<H: Hypercall>(h: &H, gfn: u64) -> Result<(), XenErrno> {
    let idx: XenUlong = 0;
    let gpfns = [gfn as XenPfn];
    let mut errs = [0i32];
    let mut b = XenAddToPhysmapBatch {
        domid: DOMID_SELF,
        space: Xenmapspace::SHARED_INFO,
        size: 1,
        u: XenAddToPhysmapBatchExtra::default(),
        idxs: GuestHandle::from_ptr(&idx),
        gpfns: GuestHandle::from_ptr(gpfns.as_ptr()),
        errs: GuestHandle::from_ptr(errs.as_mut_ptr()),
    };
    // SAFETY: our struct and one-element arrays; Xen places the shared-info page at `gfn`.
    unsafe { memory_op_add_to_physmap_batch(h, &mut b) }?;
    if errs[0] != 0 {
        return Err(XenErrno(-errs[0]));
    }
    Ok(())
}

fn parse_domid(s: &[u8]) -> Option<DomId> {
    let mut v: u32 = 0;
    if s.is_empty() {
        return None;
    }
    for &c in s {
        v = v
            .checked_mul(10)?
            .checked_add(u32::from(c.checked_sub(b'0').filter(|d| *d < 10)?))?;
    }
    Domid::try_from(v)
        .ok()
        .filter(|d| *d < DOMID_FIRST_RESERVED)
        .map(DomId)
}

fn poweroff<H: Hypercall>(h: &H) -> ! {
    let sd = SchedShutdown {
        reason: SchedShutdownReason::POWEROFF,
    };
    loop {
        // SAFETY: our struct.
        let _ = unsafe { sched_op_shutdown(h, &sd) };
    }
}

/// Power off before a backend was chosen: the direct instruction for this vendor, as Linux
/// does (if it faults, the triple fault ends the domain all the same).
fn poweroff_any() -> ! {
    // SAFETY: PVH guest kernel mode.
    poweroff(&unsafe { Direct::hvm() })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("STUBDOM PANIC {info}");
    poweroff_any()
}

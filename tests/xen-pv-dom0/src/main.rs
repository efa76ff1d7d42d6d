//! A freestanding x86_64 PV dom0 kernel: Xen boots it directly and it checks xen-sys's
//! hypercall-page and direct-`syscall` backends against the running hypervisor, printing one
//! line per check on the Xen console and leaving QEMU through isa-debug-exit.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::{asm, global_asm};
use core::fmt::Write;

use freestanding_mem as _;
use xen_sys::backend::{Direct, DirectKind, HypercallPage};
use xen_sys::*;

// --- Entry, stack and the Xen ELF notes -------------------------------------------------------

global_asm!(
    ".section .text.entry, \"ax\"",
    ".globl _start",
    "_start:",
    "    lea rsp, [rip + {stack} + {size}]",
    "    mov rdi, rsi", // start_info
    "    call {main}",
    "    ud2",
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym kmain,
);

const STACK_SIZE: usize = 64 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

macro_rules! note_str {
    ($ty:expr, $s:expr) => {
        concat!(
            ".balign 4\n.long 4, 2f - 1f, ",
            $ty,
            "\n.asciz \"Xen\"\n.balign 4\n1: .asciz \"",
            $s,
            "\"\n2: .balign 4\n"
        )
    };
}
macro_rules! note_quad {
    ($ty:expr, $v:expr) => {
        concat!(
            ".balign 4\n.long 4, 8, ",
            $ty,
            "\n.asciz \"Xen\"\n.balign 4\n.quad ",
            $v,
            "\n"
        )
    };
}

global_asm!(
    ".section .note.Xen, \"a\", @note",
    note_str!("6", "xen-abi-test"),           // GUEST_OS
    note_str!("7", "0.1"),                    // GUEST_VERSION
    note_str!("5", "xen-3.0"),                // XEN_VERSION
    note_str!("8", "generic"),                // LOADER
    note_quad!("3", "0"),                     // VIRT_BASE
    note_quad!("4", "0"),                     // PADDR_OFFSET
    note_quad!("1", "_start"),                // ENTRY
    note_quad!("2", "hypercall_page"),        // HYPERCALL_PAGE
    note_str!("10", "!writable_page_tables"), // FEATURES
    ".previous",
);

extern "C" {
    static hypercall_page: u8;
}

// --- Console ------------------------------------------------------------------------------------

fn page() -> HypercallPage {
    // SAFETY: Xen filled `hypercall_page` through the HYPERCALL_PAGE note before entry.
    unsafe { HypercallPage::new(core::ptr::addr_of!(hypercall_page)) }
}

/// Line-buffered console_io output through the hypercall page (kept correct even when a broken
/// backend is under test).
struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    const fn new() -> Self {
        Console {
            buf: [0; 256],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            // SAFETY: buf is ours and readable for len bytes.
            let _ = unsafe { console_io_write(&page(), self.len as u32, self.buf.as_ptr()) };
            self.len = 0;
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

static mut CONSOLE: Console = Console::new();

fn con() -> &'static mut Console {
    // SAFETY: single vCPU, no interrupts: nothing else touches the console.
    unsafe { &mut *core::ptr::addr_of_mut!(CONSOLE) }
}

macro_rules! say {
    ($($t:tt)*) => {{ let _ = writeln!(con(), $($t)*); }};
}

// --- Checks ------------------------------------------------------------------------------------

struct Checks {
    backend: &'static str,
    failed: u32,
    passed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: core::fmt::Arguments<'_>) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        say!(
            "CHECK {} {}: {} ({})",
            self.backend,
            name,
            if ok { "ok" } else { "FAIL" },
            detail
        );
    }
}

/// Maps the shared_info page (machine address from start_info) over `SHINFO`, so event-channel
/// pending bits can be read.
#[repr(C, align(4096))]
struct PageBuf([u8; 4096]);
static mut SHINFO: PageBuf = PageBuf([0; 4096]);

fn shinfo() -> *const u8 {
    core::ptr::addr_of!(SHINFO).cast()
}

/// `__HYPERVISOR_update_va_mapping` (PV MMU, not part of the stable spec) and UVMF_INVLPG.
const HYPERVISOR_UPDATE_VA_MAPPING: u32 = 14;
const UVMF_INVLPG: u64 = 2;

fn map_shared_info(start_info: *const u8) -> Result<(), XenErrno> {
    // start_info (x86_64): char magic[32]; u64 nr_pages @32; u64 shared_info (machine address) @40.
    // SAFETY: Xen passed a valid, mapped start_info page.
    let maddr = unsafe { start_info.add(40).cast::<u64>().read_volatile() };
    let pte = (maddr & !0xfff) | 0x67; // present, rw, user, accessed, dirty
                                       // SAFETY: remaps our own page-aligned .bss page; nothing holds a reference to it.
    let r = unsafe {
        page().hypercall(
            HYPERVISOR_UPDATE_VA_MAPPING,
            [shinfo() as u64, pte, UVMF_INVLPG, 0, 0],
        )
    };
    hypercall_result(r).map(drop)
}

fn port_pending(port: u32) -> bool {
    // shared_info (x86_64): vcpu_info[32] of 64 bytes, then xen_ulong_t evtchn_pending[64].
    let word = 2048 + (port as usize / 64) * 8;
    // SAFETY: within the mapped shared_info page; Xen writes it concurrently, hence volatile.
    let w = unsafe { shinfo().add(word).cast::<u64>().read_volatile() };
    w & (1 << (port % 64)) != 0
}

/// A backend that passes the first two arguments in each other's registers (test-only).
#[cfg(feature = "broken-backend")]
struct Swapped<'a>(&'a dyn Hypercall);
#[cfg(feature = "broken-backend")]
// SAFETY: deliberately wrong; only built to show that the checks catch it.
unsafe impl Hypercall for Swapped<'_> {
    unsafe fn hypercall(&self, op: u32, mut args: [u64; 5]) -> i64 {
        args.swap(0, 1);
        // SAFETY: test-only misuse, see above.
        unsafe { self.0.hypercall(op, args) }
    }
}

/// The oldest Xen release this kernel supports.
const OLDEST_XEN: XenVersion = XenVersion::new(4, 14);

/// `XENVER_extraversion2` (Xen 4.20), gated by the running release: used where Xen has it (it
/// starts with what `XENVER_extraversion` returned, which is cut at 15 bytes), refused with
/// -XEN_ENOSYS where it does not.
fn extraversion2(h: &dyn Hypercall, c: &mut Checks, running: XenVersion, extra: &[u8]) {
    /// `xen_varbuf` with room for the string after `len`.
    #[repr(C, align(4))]
    struct Varbuf {
        len: u32,
        buf: [u8; 64],
    }
    let since = <XenVarbuf as XenAbi>::SINCE;
    let mut vb = Varbuf {
        len: 64,
        buf: [0; 64],
    };
    // SAFETY: a xen_varbuf header followed by the `len` bytes it announces, all ours.
    let r = unsafe { xen_version_extraversion2(h, (&mut vb as *mut Varbuf).cast()) };
    if running >= since {
        let n = r.map_or(0, |n| n as usize).min(vb.buf.len());
        c.check(
            "xen_version.extraversion2 (Xen has it: used)",
            r.is_ok() && vb.buf[..n].starts_with(extra),
            format_args!(
                "rc {:?}, \"{}\"",
                r,
                core::str::from_utf8(&vb.buf[..n]).unwrap_or("?")
            ),
        );
        let full = core::str::from_utf8(&vb.buf[..n]).unwrap_or("?");
        say!("EXTRAVERSION2 {} {}", c.backend, full);
    } else {
        c.check(
            "xen_version.extraversion2 (Xen lacks it: refused)",
            r == Err(XenErrno::ENOSYS),
            format_args!(
                "rc {:?}, want XEN_ENOSYS before {}.{}",
                r, since.major, since.minor
            ),
        );
    }
    let verdict = if running >= since { "used" } else { "refused" };
    say!("GATE {} XENVER_extraversion2 {}", c.backend, verdict);
}

fn suite(h: &dyn Hypercall, c: &mut Checks, shinfo_ok: bool) {
    // xen_version
    // SAFETY: no memory.
    let v = unsafe { xen_version_version(h) };
    // The same binary runs on every release: what it may use is decided by what Xen reports
    // here (the harness checks the report against the hypervisor it booted).
    let running = XenVersion::from_xenver(v.unwrap_or(0) as u32);
    c.check(
        "xen_version.version",
        v.is_ok() && running >= OLDEST_XEN,
        format_args!("{:?}, want Ok(>= 4.14)", v.map(|x| x as u32)),
    );
    say!("VERSION {} {}.{}", c.backend, running.major, running.minor);
    let mut extra = XenExtraversion::default();
    // SAFETY: a 16-byte buffer Xen fills.
    let r = unsafe { xen_version_extraversion(h, &mut extra) };
    let len = extra.iter().position(|b| *b == 0).unwrap_or(extra.len());
    let s = core::str::from_utf8(&extra[..len]).unwrap_or("?");
    c.check(
        "xen_version.extraversion",
        r == Ok(0) && len > 0,
        format_args!("rc {:?} extraversion \"{}\"", r, s),
    );
    say!("EXTRAVERSION {} {}", c.backend, s);
    extraversion2(h, c, running, &extra[..len]);
    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: an 8-byte in/out struct.
    let r = unsafe { xen_version_get_features(h, &mut fi) };
    c.check(
        "xen_version.get_features(0)",
        r == Ok(0) && fi.submap != 0,
        format_args!("rc {:?} submap {:#x}", r, fi.submap),
    );

    // console_io write through the backend under test
    let msg = b"console_io write through the backend under test\n";
    // SAFETY: our buffer.
    let r = unsafe { console_io_write(h, msg.len() as u32, msg.as_ptr()) };
    c.check("console_io.write", r.is_ok(), format_args!("rc {:?}", r));

    // event channels: loopback pair
    let mut au = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_alloc_unbound(h, &mut au) };
    let p1 = au.port;
    c.check(
        "evtchn.alloc_unbound",
        r == Ok(0) && p1 != 0,
        format_args!("rc {:?} port {}", r, p1),
    );
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port: p1,
        ..Default::default()
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_status(h, &mut st) };
    c.check(
        "evtchn.status(unbound)",
        r == Ok(0) && st.status == EvtchnStatusKind::UNBOUND,
        format_args!("rc {:?} status {:?}", r, st.status),
    );
    let mut bi = EvtchnBindInterdomain {
        remote_dom: DOMID_SELF,
        remote_port: p1,
        ..Default::default()
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_bind_interdomain(h, &mut bi) };
    let p2 = bi.local_port;
    c.check(
        "evtchn.bind_interdomain(loopback)",
        r == Ok(0) && p2 != 0 && p2 != p1,
        format_args!("rc {:?} local port {}", r, p2),
    );
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port: p1,
        ..Default::default()
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_status(h, &mut st) };
    let peer = st.u.interdomain().port;
    c.check(
        "evtchn.status(bound)",
        r == Ok(0) && st.status == EvtchnStatusKind::INTERDOMAIN && peer == p2,
        format_args!("rc {:?} status {:?} peer port {}", r, st.status, peer),
    );
    let before = shinfo_ok && port_pending(p1);
    let send = EvtchnSend { port: p2 };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_send(h, &send) };
    let after = shinfo_ok && port_pending(p1);
    c.check(
        "evtchn.send",
        r == Ok(0) && !before && after,
        format_args!(
            "rc {:?}; port {} pending before {} after {}",
            r, p1, before, after
        ),
    );
    if after {
        let ports = [p1];
        let poll = SchedPoll {
            ports: GuestHandle::from_ptr(ports.as_ptr()),
            nr_ports: 1,
            timeout: 0,
            ..Default::default()
        };
        // SAFETY: our struct and port array; the port is pending so the call returns at once.
        let r = unsafe { sched_op_poll(h, &poll) };
        c.check(
            "sched_op.poll(pending port)",
            r == Ok(0),
            format_args!("rc {:?}", r),
        );
    } else {
        c.check(
            "sched_op.poll(pending port)",
            false,
            format_args!("skipped: the port never became pending"),
        );
    }
    for p in [p2, p1] {
        let cl = EvtchnClose { port: p };
        // SAFETY: our struct.
        let r = unsafe { event_channel_op_close(h, &cl) };
        c.check(
            "evtchn.close",
            r == Ok(0),
            format_args!("port {} rc {:?}", p, r),
        );
    }
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port: p1,
        ..Default::default()
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_status(h, &mut st) };
    c.check(
        "evtchn.status(closed)",
        r == Ok(0) && st.status == EvtchnStatusKind::CLOSED,
        format_args!("rc {:?} status {:?}", r, st.status),
    );

    // dm_op aimed at ourselves: xen/common/dm.c locks the target with
    // rcu_lock_remote_domain_by_id(), which refuses the calling domain with -EPERM.
    let mut op = XenDmOp {
        op: XenDmop::NR_VCPUS,
        ..Default::default()
    };
    let mut bufs = [XenDmOpBuf {
        h: GuestHandle::from_ptr(&mut op),
        size: core::mem::size_of::<XenDmOp>() as u64,
    }];
    // SAFETY: our buffer array and op.
    let r = unsafe { dm_op(h, 0, 1, bufs.as_mut_ptr()) };
    c.check(
        "dm_op(self)",
        r == Err(XenErrno::EPERM),
        format_args!("rc {:?}, want EPERM", r),
    );
}

#[no_mangle]
extern "C" fn kmain(start_info: *const u8) -> ! {
    say!("xen-pv-dom0-test: started");
    // SAFETY: Xen passes start_info in rsi; its magic starts "xen-3.0-x86_64".
    let magic = unsafe { core::slice::from_raw_parts(start_info, 14) };
    let mut total = Checks {
        backend: "boot",
        failed: 0,
        passed: 0,
    };
    total.check(
        "start_info.magic",
        magic == b"xen-3.0-x86_64",
        format_args!("{:?}", core::str::from_utf8(magic)),
    );
    let sh = map_shared_info(start_info);
    total.check("shared_info mapped", sh.is_ok(), format_args!("{:?}", sh));

    let page = page();
    // SAFETY: a 64-bit PV guest enters Xen with SYSCALL.
    let direct = unsafe { Direct::new(DirectKind::Syscall) };
    #[cfg(feature = "broken-backend")]
    let (page_b, direct_b) = (Swapped(&page), Swapped(&direct));
    #[cfg(feature = "broken-backend")]
    let backends: [(&'static str, &dyn Hypercall); 2] =
        [("hypercall-page", &page_b), ("syscall", &direct_b)];
    #[cfg(not(feature = "broken-backend"))]
    let backends: [(&'static str, &dyn Hypercall); 2] =
        [("hypercall-page", &page), ("syscall", &direct)];
    for (name, h) in backends {
        let mut c = Checks {
            backend: name,
            failed: 0,
            passed: 0,
        };
        suite(h, &mut c, sh.is_ok());
        total.failed += c.failed;
        total.passed += c.passed;
    }
    finish(total.passed, total.failed)
}

fn finish(passed: u32, failed: u32) -> ! {
    if failed == 0 {
        say!("RESULT: PASS ({} checks)", passed);
    } else {
        say!(
            "RESULT: FAIL ({} of {} checks failed)",
            failed,
            passed + failed
        );
    }
    let iopl = PhysdevSetIopl { iopl: 1 };
    // SAFETY: our struct.
    let r = unsafe { physdev_op_set_iopl(&page(), &iopl) };
    if r.is_ok() {
        let code: u8 = if failed == 0 { 0x10 } else { 0x11 };
        // SAFETY: with iopl 1 Xen lets dom0 reach QEMU's isa-debug-exit port, which ends QEMU
        // with status (code << 1) | 1.
        unsafe { asm!("out dx, al", in("dx") 0xf4u16, in("al") code, options(nostack)) };
    }
    say!("isa-debug-exit unavailable ({:?}); shutting down", r);
    let sd = SchedShutdown {
        reason: if failed == 0 {
            SchedShutdownReason::POWEROFF
        } else {
            SchedShutdownReason::CRASH
        },
    };
    loop {
        // SAFETY: our struct.
        let _ = unsafe { sched_op_shutdown(&page(), &sd) };
    }
}

/// The prebuilt `core` references the unwinding personality even with panic=abort; nothing
/// ever unwinds here.

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("PANIC: {}", info);
    finish(0, 1)
}

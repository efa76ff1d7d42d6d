//! A freestanding arm64 dom0 kernel: Xen boots it as an arm64 Image and it checks xen-sys's HVC
//! backend against the running hypervisor, printing one line per check with console_io and
//! ending QEMU through semihosting with the result as exit status.
//!
//! It runs with the MMU off (as Xen enters dom0), so everything is built with strict alignment
//! and avoids core::fmt. Xen's Arm ABI asks for hypercall memory to be Normal write-back
//! cacheable; QEMU does not model caches, so this is sound under emulation only.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::{asm, global_asm};

use freestanding_mem as _;
use xen_sys::backend::Hvc;
use xen_sys::*;

global_asm!(
    ".section .text.head, \"ax\"",
    ".globl _start",
    "_start:",
    "    b 1f",                    // code0
    "    .long 0",                 // code1
    "    .quad 0",                 // text_offset
    "    .quad 0",                 // image_size: patched by the harness to the file size
    "    .quad 0xa",               // flags: little-endian, 4K pages, anywhere
    "    .quad 0, 0, 0",           // res2..res4
    "    .ascii \"ARM\\x64\"",     // magic
    "    .long 0",                 // res5
    "1:",
    // x19 = load address; apply R_AARCH64_RELATIVE relocations.
    "    adr x19, _start",
    "    adrp x1, __rela_start",
    "    add x1, x1, :lo12:__rela_start",
    "    adrp x2, __rela_end",
    "    add x2, x2, :lo12:__rela_end",
    "2:  cmp x1, x2",
    "    b.hs 3f",
    "    ldp x3, x4, [x1], #16",   // r_offset, r_info
    "    ldr x5, [x1], #8",        // r_addend
    "    cmp w4, #1027",           // R_AARCH64_RELATIVE
    "    b.ne 2b",
    "    add x5, x5, x19",
    "    str x5, [x19, x3]",
    "    b 2b",
    // Zero .bss, set the stack, go.
    "3:  adrp x1, __bss_start",
    "    add x1, x1, :lo12:__bss_start",
    "    adrp x2, __bss_end",
    "    add x2, x2, :lo12:__bss_end",
    "4:  cmp x1, x2",
    "    b.hs 5f",
    "    str xzr, [x1], #8",
    "    b 4b",
    "5:  adrp x1, {stack}",
    "    add x1, x1, :lo12:{stack}",
    "    add sp, x1, #{size}",
    "    bl {main}",
    "6:  wfi",
    "    b 6b",
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym kmain,
);

const STACK_SIZE: usize = 16 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

// --- Console, without core::fmt ----------------------------------------------------------------

struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 200],
            len: 0,
        }
    }
    fn s(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }
    fn bytes(&mut self, s: &[u8]) -> &mut Self {
        for &b in s {
            if self.len < self.buf.len() && b != 0 {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }
    fn hex(&mut self, v: u64) -> &mut Self {
        self.s("0x");
        let mut started = false;
        for i in (0..16).rev() {
            let d = ((v >> (i * 4)) & 0xf) as u8;
            if d != 0 || started || i == 0 {
                started = true;
                let c = if d < 10 { b'0' + d } else { b'a' + d - 10 };
                self.buf[self.len.min(self.buf.len() - 1)] = c;
                self.len = (self.len + 1).min(self.buf.len());
            }
        }
        self
    }
    fn res(&mut self, r: Result<u64, XenErrno>) -> &mut Self {
        match r {
            Ok(v) => self.s("Ok(").hex(v).s(")"),
            Err(e) => self.s("Err(").s(e.name().unwrap_or("?")).s(")"),
        }
    }
    fn print(&mut self) {
        self.s("\n");
        // SAFETY: our buffer, readable for len bytes.
        let _ = unsafe { console_io_write(&Hvc::new(), self.len as u32, self.buf.as_ptr()) };
        self.len = 0;
    }
}

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: &mut Line) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let mut l = Line::new();
        l.s("CHECK hvc ")
            .s(name)
            .s(": ")
            .s(if ok { "ok" } else { "FAIL" })
            .s(" (");
        l.bytes(&detail.buf[..detail.len]).s(")");
        l.print();
    }
}

#[cfg(feature = "broken-backend")]
struct Swapped;
#[cfg(feature = "broken-backend")]
// SAFETY: deliberately wrong; only built to show that the checks catch it.
unsafe impl Hypercall for Swapped {
    unsafe fn hypercall(&self, op: u32, mut args: [u64; 5]) -> i64 {
        args.swap(0, 1);
        // SAFETY: test-only misuse.
        unsafe { Hvc::new().hypercall(op, args) }
    }
}

fn suite(h: &dyn Hypercall, c: &mut Checks) {
    // SAFETY: no memory.
    let v = unsafe { xen_version_version(h) };
    c.check(
        "xen_version.version",
        v == Ok(0x0004_0011),
        Line::new().res(v),
    );
    let mut extra = XenExtraversion::default();
    // SAFETY: a 16-byte buffer Xen fills.
    let r = unsafe { xen_version_extraversion(h, &mut extra) };
    c.check(
        "xen_version.extraversion",
        r == Ok(0) && extra[0] != 0,
        Line::new().res(r).s(" \"").bytes(&extra).s("\""),
    );
    Line::new().s("EXTRAVERSION hvc ").bytes(&extra).print();
    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: our struct.
    let r = unsafe { xen_version_get_features(h, &mut fi) };
    c.check(
        "xen_version.get_features(0)",
        r == Ok(0) && fi.submap != 0,
        Line::new().res(r).s(" submap ").hex(u64::from(fi.submap)),
    );

    let msg = b"console_io write through the backend under test\n";
    // SAFETY: our buffer.
    let r = unsafe { console_io_write(h, msg.len() as u32, msg.as_ptr()) };
    c.check("console_io.write", r.is_ok(), Line::new().res(r));

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
        Line::new().res(r).s(" port ").hex(u64::from(p1)),
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
        Line::new().res(r).s(" local port ").hex(u64::from(p2)),
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
        Line::new()
            .res(r)
            .s(" status ")
            .hex(u64::from(st.status.0))
            .s(" peer ")
            .hex(u64::from(peer)),
    );
    let send = EvtchnSend { port: p2 };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_send(h, &send) };
    c.check("evtchn.send", r == Ok(0), Line::new().res(r));
    // The send made p1 pending, so polling it returns at once.
    let ports = [p1];
    let poll = SchedPoll {
        ports: GuestHandle::from_ptr(ports.as_ptr()),
        nr_ports: 1,
        timeout: 0,
        ..Default::default()
    };
    // SAFETY: our struct and port array.
    let r = unsafe { sched_op_poll(h, &poll) };
    c.check(
        "sched_op.poll(pending port)",
        r == Ok(0),
        Line::new().res(r),
    );
    for p in [p2, p1] {
        let cl = EvtchnClose { port: p };
        // SAFETY: our struct.
        let r = unsafe { event_channel_op_close(h, &cl) };
        c.check(
            "evtchn.close",
            r == Ok(0),
            Line::new().res(r).s(" port ").hex(u64::from(p)),
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
        Line::new().res(r),
    );

    // Not a check but a fact about the hypervisor, which the harness judges per build: Xen on
    // Arm has dm_op only when built with CONFIG_IOREQ_SERVER (Debian's arm64 Xen is not). For a
    // domain that does not exist it answers ENOSYS without it, ESRCH with it.
    let mut op = XenDmOp {
        op: XenDmop::CREATE_IOREQ_SERVER,
        ..Default::default()
    };
    let mut buf = XenDmOpBuf {
        h: GuestHandle::from_ptr(&mut op as *mut XenDmOp),
        size: core::mem::size_of::<XenDmOp>() as XenUlong,
    };
    // SAFETY: one buffer descriptor for our `op`, both alive across the call.
    let r = unsafe { dm_op(h, 1, 1, &mut buf) };
    Line::new()
        .s("DMOP hvc create_ioreq_server(domain 1): ")
        .res(r)
        .print();
}

#[no_mangle]
extern "C" fn kmain() -> ! {
    Line::new().s("xen-arm64-dom0-test: started").print();
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };
    #[cfg(feature = "broken-backend")]
    let h = Swapped;
    #[cfg(not(feature = "broken-backend"))]
    let h = Hvc::new();
    suite(&h, &mut c);
    finish(c.passed, c.failed)
}

fn finish(passed: u32, failed: u32) -> ! {
    let mut l = Line::new();
    if failed == 0 {
        l.s("RESULT: PASS (").hex(u64::from(passed)).s(" checks)");
    } else {
        l.s("RESULT: FAIL (").hex(u64::from(failed)).s(" failed)");
    }
    l.print();
    // Semihosting SYS_EXIT_EXTENDED-style block: ADP_Stopped_ApplicationExit and the status.
    let block: [u64; 2] = [0x20026, if failed == 0 { 0 } else { 1 }];
    // SAFETY: semihosting call (QEMU -semihosting): w0 = SYS_EXIT (0x18), x1 = parameter block.
    unsafe { asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack)) };
    loop {
        // SAFETY: wait for interrupt; nothing else to do.
        unsafe { asm!("wfi", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    Line::new().s("PANIC").print();
    finish(0, 1)
}

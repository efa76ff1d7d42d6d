//! A freestanding 32-bit PVH guest: it drives the device an IOREQ server emulates (MMIO of 1, 2,
//! 4 and 8 bytes, port I/O, `rep outsb`/`rep insb`, a straddling access, a released range),
//! checks every answer itself, prints one line per check on port 0xe9 (Xen's console shows
//! them as `(dN) ...`), runs timed read loops for the harness, and shuts down.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use core::arch::{asm, global_asm};

use freestanding_mem::heap::Bump;
use xen_sys::backend::Direct;
use xen_sys::*;

global_asm!(
    ".section .text.entry, \"ax\"",
    ".globl _start",
    ".code32",
    "_start:",
    // Enable SSE (the compiler uses it; 8-byte MMIO uses movq).
    "    mov eax, cr0",
    "    and eax, 0xfffffffb", // clear EM
    "    or eax, 2",           // set MP
    "    mov cr0, eax",
    "    mov eax, cr4",
    "    or eax, 0x600",       // OSFXSR | OSXMMEXCPT
    "    mov cr4, eax",
    "    lea esp, [{stack} + {size}]",
    // ebx: the physical address of the hvm_start_info (the PVH boot ABI), gmain's argument;
    // the padding keeps esp 16-byte aligned at the call, as the i386 ABI (and SSE) requires.
    "    sub esp, 12",
    "    push ebx",
    "    call {main}",
    "2:  hlt",
    "    jmp 2b",
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym gmain,
);

global_asm!(
    ".section .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4, 4, 18", // XEN_ELFNOTE_PHYS32_ENTRY
    ".asciz \"Xen\"",
    ".balign 4",
    ".long _start",
    ".balign 4",
    ".previous",
);

/// A small fixed heap: `xen` (for its no_std grant table) links `alloc`; the guest allocates
/// nothing.
#[global_allocator]
static HEAP: Bump<4096> = Bump::new();

const STACK_SIZE: usize = 16 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

/// RAM for the string-I/O edge checks: three pages, so buffers can straddle page boundaries.
#[repr(C, align(4096))]
struct Edge([u8; 3 * 4096]);
static mut EDGE: Edge = Edge([0; 3 * 4096]);

// --- I/O primitives --------------------------------------------------------------------------

fn outb(port: u16, v: u8) {
    // SAFETY: port I/O from the guest kernel; intercepted by Xen.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, preserves_flags)) };
}
fn outw(port: u16, v: u16) {
    // SAFETY: as above.
    unsafe { asm!("out dx, ax", in("dx") port, in("ax") v, options(nostack, preserves_flags)) };
}
fn outl(port: u16, v: u32) {
    // SAFETY: as above.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) };
}
fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as above.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, preserves_flags)) };
    v
}
fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as above.
    unsafe { asm!("in ax, dx", in("dx") port, out("ax") v, options(nostack, preserves_flags)) };
    v
}
fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as above.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags)) };
    v
}
fn rep_outsb(port: u16, buf: &[u8]) {
    // SAFETY: reads `buf` with DF clear; Xen forwards one rep request with data_is_ptr.
    unsafe {
        // esi is reserved by LLVM on x86: save it around the string instruction.
        asm!("push esi", "mov esi, {src}", "cld", "rep outsb", "pop esi",
            src = in(reg) buf.as_ptr(), in("dx") port, inout("ecx") buf.len() => _)
    };
}
fn rep_insb(port: u16, buf: &mut [u8]) {
    // SAFETY: writes `buf` with DF clear.
    unsafe {
        asm!("cld", "rep insb", in("dx") port, inout("edi") buf.as_mut_ptr() => _, inout("ecx") buf.len() => _, options(nostack))
    };
}

/// `rep insb` backwards (DF=1): `count` bytes, the first at `last`, the rest below it.
fn rep_insb_down(port: u16, last: *mut u8, count: usize) {
    // SAFETY: writes [last - count + 1, last], which the caller owns; DF is cleared again.
    unsafe {
        asm!("std", "rep insb", "cld", in("dx") port, inout("edi") last => _,
            inout("ecx") count => _, options(nostack))
    };
}
/// `rep movsd` of `count` dwords from `src` to `dst` (guest-physical: RAM or MMIO), backwards
/// (DF=1) if `down`, in which case both are the addresses of the highest dword.
fn rep_movsd(dst: usize, src: usize, count: usize, down: bool) {
    // SAFETY: the caller owns the RAM side; the MMIO side is the device's. esi is saved as in
    // rep_outsb; DF is cleared again.
    unsafe {
        if down {
            asm!("push esi", "mov esi, {src}", "std", "rep movsd", "cld", "pop esi",
                src = in(reg) src, inout("edi") dst => _, inout("ecx") count => _)
        } else {
            asm!("push esi", "mov esi, {src}", "cld", "rep movsd", "pop esi",
                src = in(reg) src, inout("edi") dst => _, inout("ecx") count => _)
        }
    };
}
/// `rep stosd`: `count` copies of `v` from `dst` up (MMIO here).
fn rep_stosd(dst: usize, v: u32, count: usize) {
    // SAFETY: the device's MMIO.
    unsafe {
        asm!("cld", "rep stosd", in("eax") v, inout("edi") dst => _, inout("ecx") count => _,
            options(nostack))
    };
}

fn mmio_read(addr: u32, size: u32) -> u64 {
    // SAFETY: paging is off: `addr` is a guest-physical MMIO address Xen intercepts.
    unsafe {
        let p = addr as usize;
        match size {
            1 => u64::from((p as *const u8).read_volatile()),
            2 => u64::from((p as *const u16).read_volatile()),
            4 => u64::from((p as *const u32).read_volatile()),
            _ => {
                let mut out = 0u64;
                asm!("movq xmm0, qword ptr [{p}]", "movq qword ptr [{o}], xmm0",
                    p = in(reg) p, o = in(reg) &mut out as *mut u64, out("xmm0") _, options(nostack));
                out
            }
        }
    }
}

fn mmio_write(addr: u32, size: u32, v: u64) {
    // SAFETY: as above.
    unsafe {
        let p = addr as usize;
        match size {
            1 => (p as *mut u8).write_volatile(v as u8),
            2 => (p as *mut u16).write_volatile(v as u16),
            4 => (p as *mut u32).write_volatile(v as u32),
            _ => asm!("movq xmm0, qword ptr [{i}]", "movq qword ptr [{p}], xmm0",
                p = in(reg) p, i = in(reg) &v as *const u64, out("xmm0") _, options(nostack)),
        }
    }
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

// --- Console ----------------------------------------------------------------------------------

struct Con;
impl core::fmt::Write for Con {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            outb(0xe9, b);
        }
        Ok(())
    }
}
macro_rules! say {
    ($($t:tt)*) => {{ let _ = core::fmt::Write::write_fmt(&mut Con, format_args!($($t)*)); outb(0xe9, b'\n'); }};
}

// --- The device (see xen/examples/ioreq_device.rs) -------------------------------------------

const BASE: u32 = 0xfe00_0000;
const ID: u32 = BASE;
const SCRATCH: u32 = BASE + 0x8;
const COUNTER: u32 = BASE + 0x10;
const RELEASE: u32 = BASE + 0x20;
const PORT_SUM: u32 = BASE + 0x28;
const RELEASED: u32 = BASE + 0x30;
const PHASE: u32 = BASE + 0x38;
/// Writing 1 makes the server stop and tear down.
const STOP: u32 = BASE + 0x40;
const RUST_ID: u64 = 0x5845_4e31;
const C_ID: u64 = 0x4353_5256;
/// Answered only by the last Rust server (the harness starts it with this ready port).
const READY_PORT: u16 = 0x5100;
const HIGH: u32 = BASE + 0x800;
const PORT: u16 = 0x5000;

struct Checks {
    failed: u32,
    passed: u32,
}
impl Checks {
    fn check(&mut self, name: &str, got: u64, want: u64) {
        if got == want {
            self.passed += 1;
            say!("GUEST CHECK {}: ok ({:#x})", name, got);
        } else {
            self.failed += 1;
            say!(
                "GUEST CHECK {}: FAIL (got {:#x}, want {:#x})",
                name,
                got,
                want
            );
        }
    }
}

/// Whether the command line in the PVH start info (xl's `cmdline`) holds `word`.
/// `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h): magic at offset 0,
/// Whether the command line of the start info (`HvmStartInfo`, a NUL-terminated string at
/// `cmdline_paddr`, 0 if none) has the word `word`; paging is off.
fn cmdline_has(start_info: u32, word: &[u8]) -> bool {
    // SAFETY: Xen placed the start info at this physical address, identity-mapped (no paging);
    // a copy, read once.
    let info = unsafe { (start_info as usize as *const HvmStartInfo).read_unaligned() };
    let cmdline = info.cmdline_paddr;
    if info.magic != XEN_HVM_START_MAGIC_VALUE || cmdline == 0 || cmdline >= 1 << 32 {
        return false;
    }
    let mut line = [0u8; 128];
    let mut len = 0;
    while len < line.len() {
        // SAFETY: the NUL-terminated command line Xen wrote into guest RAM; bounded by `line`.
        let b = unsafe { (cmdline as usize as *const u8).add(len).read_volatile() };
        if b == 0 {
            break;
        }
        line[len] = b;
        len += 1;
    }
    line[..len].split(|&b| b == b' ').any(|w| w == word)
}

mod frontend;

#[no_mangle]
extern "C" fn gmain(start_info: u32) -> ! {
    say!("GUEST started");
    let mut c = Checks {
        failed: 0,
        passed: 0,
    };
    if cmdline_has(start_info, b"unserved") {
        // No IOREQ server claims the device (the harness's server refused to start): every
        // access must complete at once, reads all-ones, writes dropped; nothing blocks.
        c.check(
            "unserved: mmio read4 id reads all-ones",
            mmio_read(ID, 4),
            0xffff_ffff,
        );
        mmio_write(SCRATCH, 8, 0x1122_3344_5566_7788);
        c.check(
            "unserved: an mmio write8 is dropped",
            mmio_read(SCRATCH, 8),
            u64::MAX,
        );
        c.check(
            "unserved: pio in16 reads all-ones",
            u64::from(inw(PORT)),
            0xffff,
        );
        outl(PORT, 0x10000);
        c.check(
            "unserved: pio out32 completes",
            u64::from(inl(PORT)),
            0xffff_ffff,
        );
        finish(&c);
    }
    if cmdline_has(start_info, b"echo-frontend") {
        // The front end of xen's pv_echo_backend example (tests/real-xen/xenstore-grant.sh).
        frontend::echo_checks(&mut c);
        finish(&c);
    }
    if cmdline_has(start_info, b"frontend") {
        // No device: the xenstore and grant-table checks with dom0 (tests/real-xen/xenstore-grant.sh).
        frontend::checks(&mut c);
        finish(&c);
    }
    device_checks(&mut c);
    if cmdline_has(start_info, b"stubdom") {
        // Served by a stub domain: one timed loop (with `timed`), then the device's stop
        // request; the server tears down, after which the device must read all-ones
        // (unclaimed), not block.
        if cmdline_has(start_info, b"timed") {
            timed("stubdom");
        }
        mmio_write(STOP, 4, 1);
        let mut reads = 0u32;
        while mmio_read(ID, 4) != 0xffff_ffff && reads < 1_000_000 {
            reads += 1;
        }
        c.check(
            "after the stop request the device reads all-ones (torn down, not blocked)",
            mmio_read(ID, 4),
            0xffff_ffff,
        );
        mmio_write(SCRATCH, 8, 0x77);
        c.check(
            "... and a write is dropped",
            mmio_read(SCRATCH, 8),
            u64::MAX,
        );
        if !cmdline_has(start_info, b"then-dom0") {
            finish(&c);
        }
        // Then the same loop against the dom0 Rust server, started by the harness once the
        // stub domain is gone; the phase write tells the harness to stop it.
        wait_for_id(RUST_ID);
        c.check(
            "the dom0 server answers after the stub domain",
            mmio_read(ID, 4),
            RUST_ID,
        );
        timed("rust");
        mmio_write(PHASE, 4, 1);
        finish(&c);
    }

    timed("rust");
    // Phase 1 done: the harness stops the Rust server with SIGTERM and starts the C server.
    mmio_write(PHASE, 4, 1);
    let ones = wait_for_id(C_ID);
    c.check(
        "after SIGTERM the old range reads all-ones until a new server claims it",
        u64::from(ones > 0),
        1,
    );
    c.check("C server answers", mmio_read(ID, 4), C_ID);
    timed("c");
    // Phases 2 and 3: the same loop again against each server run under `strace -c`, so the
    // timed loops above are not slowed by tracing.
    mmio_write(PHASE, 4, 2);
    wait_for_id(RUST_ID);
    mmio_write(SCRATCH, 8, 0x5a5a);
    c.check(
        "a new Rust server for the same guest works",
        mmio_read(SCRATCH, 8),
        0x5a5a,
    );
    timed("rust-traced");
    mmio_write(PHASE, 4, 3);
    wait_for_id(C_ID);
    timed("c-traced");
    mmio_write(PHASE, 4, 4);
    wait_for_id(RUST_ID);
    // Phase 5 done: the harness SIGKILLs this server (no teardown; Xen keeps its dead ioreq
    // server) and starts another one, which claims READY_PORT. Touch nothing the dead server
    // claims until then. The harness kills it once this line shows the answer arrived: killed
    // before it answers, the server would leave this vCPU waiting on a dead server forever.
    mmio_write(PHASE, 4, 5);
    say!("GUEST phase 5 answered");
    let mut polls = 0u32;
    while u64::from(inw(READY_PORT)) != u64::from(READY_PORT) && polls < 2_000_000 {
        polls += 1;
    }
    c.check(
        "after SIGKILL a new server still works",
        mmio_read(ID, 4),
        RUST_ID,
    );
    mmio_write(SCRATCH, 8, 0xa5a5);
    c.check(
        "... and serves reads and writes",
        mmio_read(SCRATCH, 8),
        0xa5a5,
    );
    // The same loop against this (untraced) Rust server, timed after C this time, so the
    // harness can compare in both orders.
    timed("rust-again");
    mmio_write(PHASE, 4, 6);
    finish(&c)
}

/// The device checks every server must pass: MMIO of every width, port I/O, rep string I/O
/// through guest RAM, unclaimed and straddling accesses, and a range released on request.
fn device_checks(c: &mut Checks) {
    c.check("mmio read4 id", mmio_read(ID, 4), 0x5845_4e31);
    // MMIO of every width.
    mmio_write(SCRATCH, 8, 0x1122_3344_5566_7788);
    c.check(
        "mmio write8/read8",
        mmio_read(SCRATCH, 8),
        0x1122_3344_5566_7788,
    );
    c.check("mmio read4", mmio_read(SCRATCH, 4), 0x5566_7788);
    c.check("mmio read2", mmio_read(SCRATCH, 2), 0x7788);
    c.check("mmio read1", mmio_read(SCRATCH, 1), 0x88);
    mmio_write(SCRATCH, 1, 0xab);
    c.check("mmio write1", mmio_read(SCRATCH, 8), 0xab);
    mmio_write(SCRATCH, 2, 0xcdef);
    c.check("mmio write2", mmio_read(SCRATCH, 8), 0xcdef);
    mmio_write(SCRATCH, 4, 0x1234_5678);
    c.check("mmio write4", mmio_read(SCRATCH, 8), 0x1234_5678);
    let a = mmio_read(COUNTER, 4);
    let b = mmio_read(COUNTER, 4);
    c.check("counter increments on read", b.wrapping_sub(a), 1);
    // Port I/O.
    c.check("pio in8", u64::from(inb(PORT + 1)), 0x01);
    c.check("pio in16", u64::from(inw(PORT)), 0x5000);
    c.check("pio in32", u64::from(inl(PORT)), 0x5000);
    c.check(
        "pio in32 straddling the claimed ports",
        u64::from(inl(PORT + 2)),
        0xffff_ffff,
    );
    let s0 = mmio_read(PORT_SUM, 8);
    outb(PORT, 3);
    outw(PORT, 0x100);
    outl(PORT, 0x10000);
    c.check(
        "pio out8/16/32",
        mmio_read(PORT_SUM, 8).wrapping_sub(s0),
        3 + 0x100 + 0x10000,
    );
    // rep outsb / rep insb: count > 1 with the data in guest RAM.
    let buf: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    let s0 = mmio_read(PORT_SUM, 8);
    rep_outsb(PORT, &buf);
    c.check(
        "rep outsb (16 bytes via guest RAM)",
        mmio_read(PORT_SUM, 8).wrapping_sub(s0),
        136,
    );
    let mut inbuf = [0u8; 8];
    rep_insb(PORT + 3, &mut inbuf);
    c.check(
        "rep insb (8 bytes into guest RAM)",
        u64::from_le_bytes(inbuf),
        0x0303_0303_0303_0303,
    );
    edge_checks(c);
    // Unclaimed, straddling and released accesses read all-ones.
    c.check("unclaimed mmio", mmio_read(0xfd00_0000, 4), 0xffff_ffff);
    c.check(
        "straddling the claimed range",
        mmio_read(BASE + 0xbfe, 4),
        0xffff_ffff,
    );
    c.check("high range before release", mmio_read(HIGH, 4), 0x1111_1111);
    mmio_write(RELEASE, 4, 1);
    // The server releases the range after answering the write: wait until it says so.
    let mut tries = 0u32;
    while mmio_read(RELEASED, 4) != 1 && tries < 100_000 {
        tries += 1;
    }
    c.check("server reports the release", mmio_read(RELEASED, 4), 1);
    c.check(
        "released range reads all-ones",
        mmio_read(HIGH, 4),
        0xffff_ffff,
    );
    c.check("the rest is still served", mmio_read(ID, 4), 0x5845_4e31);
}

/// The requests a guest can make that are least like a plain access: string I/O backwards,
/// across page boundaries (Xen splits those into several requests), MMIO as the source or
/// destination of `rep movsd` (the device address moving up or down) and `rep stosd` into MMIO.
fn edge_checks(c: &mut Checks) {
    let edge = core::ptr::addr_of_mut!(EDGE).cast::<u8>();
    let at = |i: usize| {
        // SAFETY: inside EDGE (callers stay below 3 pages).
        unsafe { edge.add(i) }
    };
    let get = |i: usize| {
        // SAFETY: as above; volatile, since the string instructions wrote it behind our back.
        unsafe { at(i).read_volatile() }
    };
    let fill = |from: usize, to: usize, f: &dyn Fn(usize) -> u8| {
        for i in from..to {
            // SAFETY: as above.
            unsafe { at(i).write_volatile(f(i)) };
        }
    };
    // 32 bytes backwards over the boundary of the first and second page, guarded either side.
    fill(4096 - 64, 4096 + 64, &|_| 0xee);
    rep_insb_down(PORT + 3, at(4096 + 15), 32);
    let written = (4096 - 16..4096 + 16).filter(|&i| get(i) == 3).count();
    c.check(
        "rep insb backwards (DF=1) across a page boundary",
        written as u64,
        32,
    );
    c.check(
        "... and not a byte outside the buffer",
        u64::from(get(4096 - 17) == 0xee && get(4096 + 16) == 0xee),
        1,
    );
    // 6000 bytes out from RAM spanning three pages.
    fill(100, 6100, &|i| (i * 7) as u8);
    let want: u64 = (100..6100).map(|i| u64::from((i * 7) as u8)).sum();
    let s0 = mmio_read(PORT_SUM, 8);
    // SAFETY: 6000 bytes inside EDGE.
    rep_outsb(PORT, unsafe { core::slice::from_raw_parts(at(100), 6000) });
    c.check(
        "rep outsb of 6000 bytes across three pages",
        mmio_read(PORT_SUM, 8).wrapping_sub(s0),
        want,
    );
    // MMIO as the source: the counter (0x10) and the register after it (0x14, reads 0).
    let dwords = |i: usize| {
        u64::from(get(i))
            | u64::from(get(i + 1)) << 8
            | u64::from(get(i + 2)) << 16
            | u64::from(get(i + 3)) << 24
    };
    let buf = 8192 - 4; // the two dwords straddle the second page boundary
    fill(buf, buf + 8, &|_| 0xee);
    let c0 = mmio_read(COUNTER, 4);
    rep_movsd(at(buf) as usize, COUNTER as usize, 2, false);
    c.check(
        "rep movsd from MMIO into RAM (counter, then 0x14)",
        (dwords(buf + 4) << 32) | dwords(buf).wrapping_sub(c0),
        1,
    );
    fill(buf, buf + 8, &|_| 0xee);
    let c0 = mmio_read(COUNTER, 4);
    rep_movsd(at(buf + 4) as usize, COUNTER as usize + 4, 2, true);
    c.check(
        "rep movsd backwards from MMIO (0x14, then counter)",
        (dwords(buf + 4) << 32) | dwords(buf).wrapping_sub(c0),
        1,
    );
    // MMIO as the destination: the scratch register takes the first dword (0x0c ignores the
    // second).
    fill(buf, buf + 8, &|i| 0x40 + (i - buf) as u8);
    rep_movsd(SCRATCH as usize, at(buf) as usize, 2, false);
    c.check(
        "rep movsd from RAM into MMIO",
        mmio_read(SCRATCH, 8),
        0x4342_4140,
    );
    rep_stosd(SCRATCH as usize, 0x0bad_cafe, 2);
    c.check("rep stosd into MMIO", mmio_read(SCRATCH, 8), 0x0bad_cafe);
}

/// The result line, then power off.
fn finish(c: &Checks) -> ! {
    if c.failed == 0 {
        say!("GUEST RESULT: PASS ({} checks)", c.passed);
    } else {
        say!(
            "GUEST RESULT: FAIL ({} of {} checks failed)",
            c.failed,
            c.failed + c.passed
        );
    }
    // SAFETY: an HVM/PVH guest kernel issues vmcall/vmmcall directly.
    let xen = unsafe { Direct::hvm() };
    let sd = SchedShutdown {
        reason: SchedShutdownReason::POWEROFF,
    };
    loop {
        // SAFETY: our struct.
        let _ = unsafe { sched_op_shutdown(&xen, &sd) };
    }
}

/// N counter reads against whichever server is up, timed with the TSC, after an untimed warm-up
/// so that neither server pays for QEMU translating its request path for the first time.
fn timed(label: &str) {
    const N: u32 = 2000;
    for _ in 0..N / 4 {
        let _ = mmio_read(COUNTER, 4);
    }
    let t0 = rdtsc();
    for _ in 0..N {
        let _ = mmio_read(COUNTER, 4);
    }
    let t1 = rdtsc();
    say!("GUEST TIMING {} reads={} tsc={}", label, N, t1 - t0);
}

/// Poll the ID register until it reads `id`; returns how many all-ones reads were seen.
fn wait_for_id(id: u64) -> u32 {
    let mut ones = 0u32;
    for _ in 0..2_000_000u32 {
        match mmio_read(ID, 4) {
            v if v == id => return ones,
            0xffff_ffff => ones = ones.saturating_add(1),
            _ => {}
        }
    }
    say!("GUEST gave up waiting for id {:#x}", id);
    ones
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("GUEST PANIC {}", info);
    loop {
        // SAFETY: halt forever.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

//! The regbank device: a register bank at MMIO 0xfe000000 and ports 0x5000-0x5003 (see main.rs),
//! and `serve`, which claims its ranges and serves them. `no_std`: the dom0 example and the PVH
//! stub domain (tests/xen-pvh-stubdom) both include this file.

use core::fmt::Arguments;
use core::sync::atomic::{AtomicBool, Ordering};

use xen::dm::RangeKind;
use xen::ioreq::{Handler, Invalid, IoreqServer, ServerOptions, Size, Space};
use xen::platform::Platform;
use xen::{DomId, Error, Xen};

/// Base of the register bank.
pub const MMIO_BASE: u64 = 0xfe00_0000;
/// The port that answers its own address.
pub const PORT: u64 = 0x5000;
/// ISA IRQ raised by writing 1 to the IRQ register.
pub const IRQ: u8 = 5;
/// The upper part of the bank, released on request: [HIGH, HIGH_END].
pub const HIGH: u64 = MMIO_BASE + 0x800;
/// End of the claimed MMIO (inclusive); it ends inside a page so an access across it stays one
/// request (Xen splits accesses at page boundaries).
pub const HIGH_END: u64 = MMIO_BASE + 0xbff;

/// The device state.
pub struct RegBank<'x, P: Platform> {
    xen: &'x Xen<P>,
    say: &'x dyn Fn(Arguments<'_>),
    domid: DomId,
    scratch: u64,
    counter: u64,
    irq: bool,
    port_sum: u64,
    release: bool,
    released: bool,
    phase: u64,
    invalidations: u64,
    stop: bool,
}

impl<P: Platform> Handler for RegBank<'_, P> {
    fn read(&mut self, space: Space, addr: u64, _size: Size) -> u64 {
        match (space, addr.wrapping_sub(MMIO_BASE)) {
            (Space::Port, _) => addr,
            (Space::Mmio, 0x0) => 0x5845_4e31, // "XEN1"
            (Space::Mmio, 0x8) => self.scratch,
            (Space::Mmio, 0x10) => {
                self.counter += 1;
                self.counter
            }
            (Space::Mmio, 0x18) => u64::from(self.irq),
            (Space::Mmio, 0x28) => self.port_sum,
            (Space::Mmio, 0x30) => u64::from(self.released),
            (Space::Mmio, 0x38) => self.phase,
            (Space::Mmio, a) if a >= 0x800 => 0x1111_1111,
            _ => 0,
        }
    }

    fn write(&mut self, space: Space, addr: u64, _size: Size, value: u64) {
        match (space, addr.wrapping_sub(MMIO_BASE)) {
            (Space::Mmio, 0x8) => self.scratch = value,
            (Space::Mmio, 0x20) => self.release = value & 1 != 0,
            // The guest asks the server to stop (a stub domain has no one else to tell it).
            (Space::Mmio, 0x40) => self.stop = value & 1 != 0,
            (Space::Mmio, 0x38) => {
                self.phase = value;
                (self.say)(format_args!("regbank: phase {value}"));
            }
            (Space::Port, _) => self.port_sum = self.port_sum.wrapping_add(value),
            (Space::Mmio, 0x18) => {
                self.irq = value & 1 != 0;
                if let Err(e) = self.xen.set_isa_irq_level(self.domid, IRQ, self.irq) {
                    (self.say)(format_args!("regbank: {e}"));
                }
            }
            _ => {}
        }
    }

    fn invalidate(&mut self) {
        // Nothing is cached here; count them (a Linux guest ballooning down sends some).
        self.invalidations += 1;
    }

    fn invalid(&mut self, vcpu: u32, why: Invalid) {
        (self.say)(format_args!("regbank: vCPU {vcpu}: refused request: {why}"));
    }
}

/// Claim the device's ranges (plus `ready_port`, a port that only this instance answers, so a
/// guest can tell it is up) and serve until `stop` is set and the loop woken, the guest writes 1
/// to the stop register (0x40), or the platform reports `Stopped`. `wait` runs before each `serve_once`: an event loop's wait for the
/// platform's descriptor, or nothing when `serve_once` itself blocks.
pub fn serve<P: Platform>(
    xen: &Xen<P>,
    domid: DomId,
    ready_port: Option<u16>,
    stop: &AtomicBool,
    wait: &mut dyn FnMut() -> Result<(), Error>,
    say: &dyn Fn(Arguments<'_>),
) -> Result<(), Error> {
    let mut server = IoreqServer::create(xen, domid, ServerOptions::default())?;
    server.map_range(RangeKind::Mmio, MMIO_BASE, HIGH - 1)?;
    server.map_range(RangeKind::Mmio, HIGH, HIGH_END)?;
    server.map_range(RangeKind::Port, PORT, PORT + 3)?;
    if let Some(p) = ready_port {
        server.map_range(RangeKind::Port, u64::from(p), u64::from(p))?;
    }
    say(format_args!(
        "regbank: serving domain {domid} (server {})",
        server.id()
    ));
    let mut dev = RegBank {
        xen,
        say,
        domid,
        scratch: 0,
        counter: 0,
        irq: false,
        port_sum: 0,
        release: false,
        released: false,
        phase: 0,
        invalidations: 0,
        stop: false,
    };
    // Wake-ups that found several events (vCPUs with requests in flight at once): one read and
    // one unmask served them all.
    let mut batched = 0u64;
    loop {
        wait()?;
        match server.serve_once(&mut dev) {
            // Whoever sets `stop` also wakes the loop, which then returns without events.
            Ok(0) if stop.load(Ordering::Acquire) => break,
            Ok(n) => batched += u64::from(n > 1),
            Err(Error::Stopped) => break,
            Err(e) => return Err(e),
        }
        if dev.stop {
            say(format_args!("regbank: stop requested by the guest"));
            break;
        }
        if core::mem::take(&mut dev.release) && !dev.released {
            server.unmap_range(RangeKind::Mmio, HIGH, HIGH_END)?;
            dev.released = true;
            say(format_args!("regbank: released {HIGH:#x}-{HIGH_END:#x}"));
        }
    }
    let stats = server.stats();
    server.shutdown()?;
    say(format_args!(
        "regbank: stopped after {} requests, torn down ({} invalidations, {} wake-ups with several events)",
        stats.requests, dev.invalidations, batched
    ));
    Ok(())
}

//! A small deterministic device served by `IoreqServer`: a register bank at MMIO 0xfe000000
//! (ID, scratch, a counter that increments on read, an IRQ line driven with dm_op, a register that
//! makes the server release its upper 2 KiB, the sum of bytes written to the port) and I/O ports
//! 0x5000-0x5003 that return their own address. The same `serve` runs on the simulator and on
//! Linux dom0.
//!
//! Simulator: `cargo run -p xen --features sim --example regbank`
//! Linux dom0: `cargo run -p xen --features std --profile server --example regbank -- DOMID
//! [READY_PORT_HEX] [--poll]` (the `server` profile is release with LTO, as timed on real Xen)
//! (SIGTERM or SIGINT stops it; the server is torn down before it exits; `--poll` serves from a
//! poll(2) loop on a non-blocking descriptor instead of blocking in `serve_once`).

use std::sync::atomic::{AtomicBool, Ordering};

use xen::dm::RangeKind;
use xen::ioreq::{Handler, Invalid, IoreqServer, ServerOptions, Size, Space};
use xen::platform::Platform;
use xen::sys::Domid;
use xen::{Error, Xen};

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
    domid: Domid,
    scratch: u64,
    counter: u64,
    irq: bool,
    port_sum: u64,
    release: bool,
    released: bool,
    phase: u64,
    invalidations: u64,
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
            (Space::Mmio, 0x38) => {
                self.phase = value;
                println!("regbank: phase {value}");
            }
            (Space::Port, _) => self.port_sum = self.port_sum.wrapping_add(value),
            (Space::Mmio, 0x18) => {
                self.irq = value & 1 != 0;
                if let Err(e) = self.xen.set_isa_irq_level(self.domid, IRQ, self.irq) {
                    eprintln!("regbank: {e}");
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
        eprintln!("regbank: vCPU {vcpu}: refused request: {why}");
    }
}

/// Claim the device's ranges (plus `ready_port`, a port that only this instance answers, so a
/// guest can tell it is up) and serve until `stop` is set and the loop woken, or the platform
/// reports `Stopped`. `wait` runs before each `serve_once`: an event loop's wait for the
/// platform's descriptor, or nothing when `serve_once` itself blocks.
pub fn serve<P: Platform>(
    xen: &Xen<P>,
    domid: Domid,
    ready_port: Option<u16>,
    stop: &AtomicBool,
    wait: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<(), Error> {
    let mut server = IoreqServer::create(xen, domid, ServerOptions::default())?;
    server.map_range(RangeKind::Mmio, MMIO_BASE, HIGH - 1)?;
    server.map_range(RangeKind::Mmio, HIGH, HIGH_END)?;
    server.map_range(RangeKind::Port, PORT, PORT + 3)?;
    if let Some(p) = ready_port {
        server.map_range(RangeKind::Port, u64::from(p), u64::from(p))?;
    }
    println!("regbank: serving domain {domid} (server {})", server.id());
    let mut dev = RegBank {
        xen,
        domid,
        scratch: 0,
        counter: 0,
        irq: false,
        port_sum: 0,
        release: false,
        released: false,
        phase: 0,
        invalidations: 0,
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
        if core::mem::take(&mut dev.release) && !dev.released {
            server.unmap_range(RangeKind::Mmio, HIGH, HIGH_END)?;
            dev.released = true;
            println!("regbank: released {HIGH:#x}-{HIGH_END:#x}");
        }
    }
    let stats = server.stats();
    server.shutdown()?;
    println!(
        "regbank: stopped after {} requests, torn down ({} invalidations, {} wake-ups with several events)",
        stats.requests, dev.invalidations, batched
    );
    Ok(())
}

#[cfg(feature = "sim")]
fn simulated() -> Result<(), Box<dyn std::error::Error>> {
    use xen::sim::Sim;
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone())?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let server = s.spawn(|| serve(&xen, dom, None, &stop, &mut || Ok(())));
        let v = sim.vcpu(dom, 0);
        // Wait until the server has claimed its ranges.
        while v.mmio_read(MMIO_BASE, 4).map_err(|e| format!("{e:?}"))? != 0x5845_4e31 {
            std::thread::yield_now();
        }
        println!(
            "id       = {:#x}",
            v.mmio_read(MMIO_BASE, 4).map_err(|e| format!("{e:?}"))?
        );
        v.mmio_write(MMIO_BASE + 8, 8, 0x1234_5678_9abc_def0)
            .map_err(|e| format!("{e:?}"))?;
        println!(
            "scratch  = {:#x}",
            v.mmio_read(MMIO_BASE + 8, 8)
                .map_err(|e| format!("{e:?}"))?
        );
        for _ in 0..3 {
            println!(
                "counter  = {}",
                v.mmio_read(MMIO_BASE + 0x10, 4)
                    .map_err(|e| format!("{e:?}"))?
            );
        }
        println!(
            "port     = {:#x}",
            v.pio_in(PORT as u16, 2).map_err(|e| format!("{e:?}"))?
        );
        v.mmio_write(MMIO_BASE + 0x18, 4, 1)
            .map_err(|e| format!("{e:?}"))?;
        println!("irq log  = {:?}", sim.irq_log());
        println!(
            "unclaimed= {:#x}",
            v.mmio_read(0xfd00_0000, 4).map_err(|e| format!("{e:?}"))?
        );
        stop.store(true, Ordering::Release);
        sim.wake();
        server.join().map_err(|_| "server thread panicked")??;
        Ok(())
    })?;
    println!("servers left: {}", sim.servers(dom));
    Ok(())
}

#[cfg(all(feature = "std", target_os = "linux"))]
fn on_linux(
    domid: &str,
    ready_port: Option<&str>,
    poll: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use rustix::event::{PollFd, PollFlags};
    use signal_hook::consts::{SIGINT, SIGTERM};
    use std::sync::Arc;
    use xen::linux::Linux;
    static STOP: AtomicBool = AtomicBool::new(false);
    let domid: Domid = domid.parse()?;
    let ready_port = ready_port
        .map(|p| u16::from_str_radix(p.trim_start_matches("0x"), 16))
        .transpose()?;
    let linux = if poll {
        println!("regbank: polling a non-blocking evtchn descriptor");
        Linux::open_nonblocking()?
    } else {
        Linux::open()?
    };
    let xen = Arc::new(Xen::new(linux)?);
    // One thread: the signal handler itself wakes the serving loop (request_stop is a flag
    // store and an event, both async-signal-safe), so no second thread shares the descriptor
    // table (which would make every system call of the loop take file references).
    for sig in [SIGTERM, SIGINT] {
        let x = Arc::clone(&xen);
        // SAFETY: the handler only stores to atomics and makes one ioctl; it allocates nothing
        // and takes no lock.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                STOP.store(true, Ordering::Release);
                x.platform().request_stop();
            })
        }?;
    }
    // --poll: the descriptor is non-blocking and an event loop (here a plain poll(2)) waits
    // for it, as a backend sharing its thread with other devices would.
    let mut wait = || -> Result<(), Error> {
        if poll {
            let mut fds = [PollFd::new(xen.platform(), PollFlags::IN)];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(Error::Os {
                        op: "poll /dev/xen/evtchn",
                        errno: e.raw_os_error(),
                    })
                }
            }
        }
        Ok(())
    };
    serve(&xen, domid, ready_port, &STOP, &mut wait)?;
    Ok(())
}

#[cfg(not(all(feature = "std", target_os = "linux")))]
fn on_linux(_: &str, _: Option<&str>, _: bool) -> Result<(), Box<dyn std::error::Error>> {
    Err("serving a real guest needs Linux and the `std` feature".into())
}

#[cfg(not(feature = "sim"))]
fn simulated() -> Result<(), Box<dyn std::error::Error>> {
    Err("usage: regbank DOMID (the simulated demo needs the `sim` feature)".into())
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let poll = args.iter().any(|a| a == "--poll");
    args.retain(|a| a != "--poll");
    let r = match args.first() {
        Some(d) => on_linux(d, args.get(1).map(String::as_str), poll),
        None => simulated(),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regbank: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

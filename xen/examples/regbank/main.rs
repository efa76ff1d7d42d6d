//! A small deterministic device served by `IoreqServer`: a register bank at MMIO 0xfe000000
//! (ID, scratch, a counter that increments on read, an IRQ line driven with dm_op, a register that
//! makes the server release its upper 2 KiB, the sum of bytes written to the port, a stop
//! register) and I/O ports 0x5000-0x5003 that return their own address. The same `serve`
//! (`device.rs`, no_std) runs on the simulator, on Linux dom0 and in the PVH stub domain of
//! `tests/xen-pvh-stubdom`.
//!
//! Simulator: `cargo run -p xen --features sim --example regbank`
//! Linux dom0: `cargo run -p xen --features std --profile server --example regbank -- DOMID
//! [READY_PORT_HEX] [--poll]` (the `server` profile is release with LTO, as timed on real Xen)
//! (SIGTERM or SIGINT stops it; the server is torn down before it exits; `--poll` serves from a
//! poll(2) loop on a non-blocking descriptor instead of blocking in `serve_once`).

use std::sync::atomic::{AtomicBool, Ordering};

use xen::{DomId, Error, Xen};

// The device, shared with the PVH stub domain (tests/xen-pvh-stubdom), hence no_std.
mod device;
use device::serve;
#[cfg(feature = "sim")]
use device::{MMIO_BASE, PORT};

/// The device's messages, on stdout (line-buffered, so each reaches a pipe whole).
fn say(a: std::fmt::Arguments<'_>) {
    println!("{a}");
}

#[cfg(feature = "sim")]
fn simulated() -> Result<(), Box<dyn std::error::Error>> {
    use xen::sim::Sim;
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone())?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        let server = s.spawn(|| serve(&xen, dom, None, &stop, &mut || Ok(()), &say));
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
    let domid = DomId(domid.parse()?);
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
    serve(&xen, domid, ready_port, &STOP, &mut wait, &say)?;
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

//! Attach virtio devices to a running or paused guest: in-process ones and ones served by
//! vhost-user back ends (rust-vmm's `vhost-device-*` built with `--features xen`), several in
//! one process, each a virtio-pci function of its own.
//!
//! ```text
//! virtio_attach [--pvh] [--state FILE] [--relay-interrupts] DOMID RAM_START-RAM_END... DEVICE...
//!   --rng SLOT                          in-process virtio-rng at 00:SLOT.0
//!   --vhost SLOT:TYPE:SOCKET[:SIZE]     a vhost-user back end listening on SOCKET, as device
//!                                       TYPE (rng, console, blk, scsi, vsock or a number),
//!                                       queues of SIZE entries (default 64; as many queues
//!                                       as the back end has)
//! ```
//!
//! `--state FILE`: the guest's device set-up is written to FILE as it changes; started again
//! with the same arguments after being killed, virtio_attach takes over the IOREQ server and
//! the devices where the killed one left them (the queues continue from the used index). A
//! clean stop removes FILE.
//!
//! A back end that goes away is reported and its device set to `NEEDS_RESET`; the others keep
//! working. Its socket is tried again every 500 ms; when a back end answers, the device resumes
//! where the guest's driver left it (or, if the driver reset it meanwhile, is set up afresh).
//!
//! A back end's "used buffers" signal becomes the queue's MSI-X interrupt in the dom0 kernel
//! where it can (privcmd irqfd: Linux 6.6 or later built with `CONFIG_XEN_PRIVCMD_EVENTFD`;
//! Debian's kernels are not), with no return to this process; otherwise, or with
//! `--relay-interrupts`, this process reads the signal and injects the interrupt.
//!
//! `--pvh`: the guest has no device model (the host bridge and the 0xCF8 read-back; the guest
//! boots with `pci=noacpi`). One thread serves everything (`PciBus::serve`: a poll(2) loop on
//! the event channel and every back end's call eventfd and socket). SIGTERM or SIGINT stops
//! it; the server is torn down and the back ends' rings stopped.

use xen::ioreq::{IoreqServer, ServerOptions};
use xen::pci::{PciBus, SavedBus};
use xen::virtio::{InterruptPath, VirtioPci};

#[path = "common/rng.rs"]
mod rng;
#[path = "common/setup.rs"]
mod setup;
#[path = "common/vhost.rs"]
mod vhost;
use setup::{Res, STOP};
use vhost::device_type;

const USAGE: &str = "usage: virtio_attach [--pvh] [--state FILE] [--relay-interrupts] DOMID \
                     RAM_START-RAM_END... \
                     [--rng SLOT] [--vhost SLOT:TYPE:SOCKET[:SIZE]]...";

/// A device as the command line describes it.
enum Device {
    Rng(u8),
    Vhost {
        slot: u8,
        kind: u32,
        socket: String,
        size: u16,
    },
}

/// The command line: `--pvh`, `--state`, `--relay-interrupts`, the domain, its RAM ranges and
/// the devices.
struct Args {
    pvh: bool,
    state: Option<std::path::PathBuf>,
    interrupts: InterruptPath,
    domid: xen::DomId,
    ram: Vec<(u64, u64)>,
    devices: Vec<Device>,
}

fn parse() -> Res<Args> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter().peekable();
    let (mut pvh, mut state, mut interrupts) = (false, None, InterruptPath::default());
    while let Some(flag) = it.next_if(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--pvh" => pvh = true,
            "--state" => state = Some(std::path::PathBuf::from(it.next().ok_or(USAGE)?)),
            "--relay-interrupts" => interrupts = InterruptPath::Relayed,
            _ => return Err(USAGE.into()),
        }
    }
    let domid = xen::DomId(it.next().ok_or(USAGE)?.parse()?);
    let mut ram = Vec::new();
    while let Some(r) = it.next_if(|a| !a.starts_with("--")) {
        ram.push(setup::ram_range(r)?);
    }
    let mut devices = Vec::new();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(USAGE)?;
        devices.push(match flag.as_str() {
            "--rng" => Device::Rng(val.parse()?),
            "--vhost" => {
                let mut p = val.splitn(4, ':');
                let slot = p.next().ok_or(USAGE)?.parse()?;
                let kind = device_type(p.next().ok_or(USAGE)?)?;
                let socket = p.next().ok_or(USAGE)?.to_string();
                let size = p.next().map_or(Ok(64), str::parse)?;
                Device::Vhost {
                    slot,
                    kind,
                    socket,
                    size,
                }
            }
            _ => return Err(USAGE.into()),
        });
    }
    if ram.is_empty() || devices.is_empty() {
        return Err(USAGE.into());
    }
    Ok(Args {
        pvh,
        state,
        interrupts,
        domid,
        ram,
        devices,
    })
}

/// Restore `f` from the predecessor's state, if it saved one for this function.
fn restore<D, M>(
    f: &mut VirtioPci<'_, xen::linux::Linux, D, M>,
    saved: Option<&SavedBus>,
) -> Res<()>
where
    D: xen::virtio::VirtioDevice<M>,
    M: vm_memory::GuestMemory,
{
    if let Some(text) = saved.and_then(|s| s.function(f.sbdf())) {
        f.restore_state(text)?;
        println!(
            "virtio_attach: 00:{:02x}.0 restored as the previous instance left it",
            f.sbdf() >> 3
        );
    }
    Ok(())
}

fn main() -> Res<()> {
    let Args {
        pvh,
        state,
        interrupts,
        domid,
        ram,
        devices,
    } = parse()?;
    // A predecessor's state: it was killed while serving this guest; take over from it.
    let saved = match &state {
        Some(path) if path.exists() => Some(SavedBus::parse(&std::fs::read_to_string(path)?)?),
        _ => None,
    };
    let xen = setup::open(true)?;
    let guest = setup::guest_ram("virtio_attach", &xen, domid, &ram)?;
    // What the back ends may map: the populated runs, not the holes between them.
    let populated: Vec<(u64, u64)> = guest.regions().iter().map(|r| (r.gpa(), r.len())).collect();
    let mut bus = if pvh {
        PciBus::with_host_bridge()
    } else {
        PciBus::new()
    };
    for d in devices {
        let mem = guest.vm_memory()?;
        match d {
            Device::Rng(slot) => {
                let rng = rng::Rng(std::fs::File::open("/dev/urandom")?);
                let mut f =
                    VirtioPci::new(&xen, domid, xen::sys::pci_sbdf(0, 0, slot, 0), rng, mem)?;
                restore(&mut f, saved.as_ref())?;
                bus.add(f)?;
                println!("virtio_attach: 00:{slot:02x}.0 in-process rng");
            }
            Device::Vhost {
                slot,
                kind,
                socket,
                size,
            } => {
                let dev = vhost::connect(&xen, domid, &socket, kind, size, &populated)?;
                let queues = dev.num_queues();
                let mut f =
                    VirtioPci::new(&xen, domid, xen::sys::pci_sbdf(0, 0, slot, 0), dev, mem)?;
                f.set_interrupt_path(interrupts);
                restore(&mut f, saved.as_ref())?;
                bus.add(f)?;
                println!(
                    "virtio_attach: 00:{slot:02x}.0 type {kind} ({queues} queues) from the back end at {socket}"
                );
            }
        }
    }
    let mut server = match &saved {
        Some(s) => {
            let server = IoreqServer::adopt(
                &xen,
                domid,
                s.server,
                ServerOptions::default(),
                &bus.claimed_ranges(),
            )?;
            println!(
                "virtio_attach: took over IOREQ server {} from a previous instance",
                s.server
            );
            server
        }
        None => {
            let mut server = IoreqServer::create(&xen, domid, ServerOptions::default())?;
            bus.claim(&mut server)?;
            server
        }
    };
    let id = server.id();
    let save = |bus: &PciBus<'_>| {
        if let Some(path) = &state {
            // Written whole, then renamed: a successor never reads half a state.
            let tmp = path.with_extension("tmp");
            let r =
                std::fs::write(&tmp, bus.save_state(id)).and_then(|()| std::fs::rename(&tmp, path));
            if let Err(e) = r {
                eprintln!(
                    "virtio_attach: writing the state to {}: {e}",
                    path.display()
                );
            }
        }
    };
    save(&bus);
    println!("virtio_attach: serving domain {domid}");
    let served = bus.serve_with(&mut server, &STOP, save);
    let stats = server.stats();
    server.shutdown()?;
    drop(bus);
    // Torn down: nothing left to take over.
    if let Some(path) = &state {
        let _ = std::fs::remove_file(path);
    }
    served?;
    println!(
        "virtio_attach: stopped after {} requests ({} refused), torn down",
        stats.requests, stats.invalid
    );
    Ok(())
}

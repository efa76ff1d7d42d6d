//! Serve virtio-mmio devices to an Arm guest: a disk of our own (virtio-blk on a file, in this
//! process) and devices served by vhost-user back ends (rust-vmm's `vhost-device-*` built with
//! `--features xen`), each at the base and SPI the guest's device tree gives it.
//!
//! ```text
//! virtio_mmio_attach DOMID RAM_START-RAM_END... DEVICE...
//!   --blk BASE:IRQ:FILE[:ro]                a virtio-blk disk on FILE
//!   --vhost BASE:IRQ:TYPE:SOCKET[:SIZE]     a vhost-user back end listening on SOCKET, as device
//!                                           TYPE (rng, console, blk, scsi, vsock or a number)
//! virtio_mmio_attach --xenstore [--socket TYPE=SOCKET]...
//! ```
//!
//! `--xenstore`: serve what libxl announces, as guests are created: start it before `xl
//! create`. It watches dom0's `backend/virtio_disk` (xl 4.17's `specification=virtio` disks,
//! served by the in-process disk on the disk line's `target`) and `backend/virtio` (4.18's
//! `virtio = [...]`, served by the back end `--socket` names for the type). Each device gets an
//! IOREQ server of its own, its back end reaches `XenbusStateInitWait` once it serves (libxl
//! waits for that), then `Connected`. The guest's RAM is Arm's guest layout for its
//! `memory/static-max`. A malformed entry is reported with its key and left alone.
//!
//! A vhost-user back end that goes away is reported and its device set to `NEEDS_RESET`; the
//! others keep working. Its socket is tried again every 500 ms; when a back end answers, the
//! device resumes where the guest's driver left it (or, if the driver reset it meanwhile, is set
//! up afresh), as in `virtio_attach` (the same code: `xen::vhost` and the transport-neutral
//! device state under both transports).
//!
//! SIGTERM or SIGINT stops everything; the servers are torn down. A guest whose RAM a device
//! model (or a vhost-user back end) still maps cannot be destroyed: stop the devices served by
//! hand before the guest goes (those from xenstore stop when libxl removes them).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use xen::ioreq::{IoreqServer, ServerOptions};
use xen::linux::Linux;
use xen::mmio::MmioBus;
use xen::virtio::announce::{announcements, Announced, Announcement};
use xen::virtio::{Access, Block, VirtioMmio};
use xen::xenstore::Client;
use xen::{DomId, Xen};

#[path = "common/setup.rs"]
mod setup;
#[path = "common/vhost.rs"]
mod vhost;
use setup::{Res, STOP};
use vhost::device_type;

const USAGE: &str = "usage: virtio_mmio_attach DOMID RAM_START-RAM_END... \
                     [--blk BASE:IRQ:FILE[:ro]] [--vhost BASE:IRQ:TYPE:SOCKET[:SIZE]]...\n       \
                     virtio_mmio_attach --xenstore [--socket TYPE=SOCKET]...";

/// A device as the command line or xenstore describes it.
enum Device {
    Blk {
        base: u64,
        irq: u32,
        file: String,
        access: Access,
    },
    Vhost {
        base: u64,
        irq: u32,
        kind: u32,
        socket: String,
        size: u16,
    },
}

/// A number: hexadecimal with `0x`, else decimal.
fn number(s: &str) -> Res<u64> {
    Ok(match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16)?,
        None => s.parse()?,
    })
}

/// Arm's guest RAM for `mem_kib` KiB (`GUEST_RAM0`: 3 GiB at 1 GiB, then `GUEST_RAM1` at
/// 8 GiB), as (start, length).
fn arm_guest_ram(mem_kib: u64) -> Vec<(u64, u64)> {
    const RAM0: (u64, u64) = (0x4000_0000, 0xc000_0000);
    const RAM1: u64 = 0x2_0000_0000;
    let bytes = mem_kib.saturating_mul(1024);
    let mut ram = vec![(RAM0.0, bytes.min(RAM0.1))];
    if bytes > RAM0.1 {
        ram.push((RAM1, bytes - RAM0.1));
    }
    ram
}

/// Serve `devices` to `domid` (RAM `ram`) on one IOREQ server of `xen` until `stop` is set
/// and the platform woken; `ready` once the server is live (the devices' ranges claimed).
fn serve(
    xen: &Xen<Linux>,
    stop: &AtomicBool,
    domid: DomId,
    ram: &[(u64, u64)],
    devices: Vec<Device>,
    ready: impl FnOnce(),
) -> Res<()> {
    let guest = setup::guest_ram("virtio_mmio_attach", xen, domid, ram)?;
    let populated: Vec<(u64, u64)> = guest.regions().iter().map(|r| (r.gpa(), r.len())).collect();
    let mut bus = MmioBus::new();
    for d in devices {
        let mem = guest.vm_memory()?;
        match d {
            Device::Blk {
                base,
                irq,
                file,
                access,
            } => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(access == Access::ReadWrite)
                    .open(&file)
                    .map_err(|e| format!("{file}: {e}"))?;
                let disk = Block::new(f, access, "xen-virtio-disk")?;
                let sectors = disk.sectors();
                bus.add(VirtioMmio::new(xen, domid, base, irq, disk, mem)?)?;
                println!(
                    "virtio_mmio_attach: {base:#x} SPI {irq}: disk {file} ({sectors} sectors, {access:?})"
                );
            }
            Device::Vhost {
                base,
                irq,
                kind,
                socket,
                size,
            } => {
                let dev = vhost::connect(xen, domid, &socket, kind, size, &populated)?;
                bus.add(VirtioMmio::new(xen, domid, base, irq, dev, mem)?)?;
                println!(
                    "virtio_mmio_attach: {base:#x} SPI {irq}: type {kind} from the back end at {socket}"
                );
            }
        }
    }
    let mut server = IoreqServer::create(xen, domid, ServerOptions::default())?;
    bus.claim(&mut server)?;
    ready();
    println!(
        "virtio_mmio_attach: serving domain {domid} (IOREQ server {})",
        server.id()
    );
    let served = bus.serve(&mut server, stop);
    let stats = server.stats();
    server.shutdown()?;
    served?;
    println!(
        "virtio_mmio_attach: domain {domid}: stopped after {} requests ({} refused), torn down",
        stats.requests, stats.invalid
    );
    Ok(())
}

/// The command line's devices.
fn parse_devices(args: &[String]) -> Res<Vec<Device>> {
    let mut devices = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let val = it.next().ok_or(USAGE)?;
        let p: Vec<&str> = val.split(':').collect();
        let at = |i: usize| p.get(i).copied().ok_or(USAGE);
        devices.push(match flag.as_str() {
            "--blk" => Device::Blk {
                base: number(at(0)?)?,
                irq: u32::try_from(number(at(1)?)?)?,
                file: at(2)?.to_string(),
                access: match p.get(3) {
                    None => Access::ReadWrite,
                    Some(&"ro") => Access::ReadOnly,
                    Some(_) => return Err(USAGE.into()),
                },
            },
            "--vhost" => Device::Vhost {
                base: number(at(0)?)?,
                irq: u32::try_from(number(at(1)?)?)?,
                kind: device_type(at(2)?)?,
                socket: at(3)?.to_string(),
                size: p.get(4).map_or(Ok(64), |s| s.parse())?,
            },
            _ => return Err(USAGE.into()),
        });
    }
    if devices.is_empty() {
        return Err(USAGE.into());
    }
    Ok(devices)
}

/// An announcement as a device to serve (a generic one needs its type's `--socket`).
fn announced(a: &Announcement, sockets: &[(u32, String)]) -> Res<Device> {
    Ok(match &a.what {
        Announced::Disk { path, access } => Device::Blk {
            base: a.base,
            irq: a.irq,
            file: path.clone(),
            access: *access,
        },
        Announced::Device { device_id } => {
            let socket = sockets
                .iter()
                .find(|(k, _)| k == device_id)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| {
                    format!("{}: device type {device_id}: no --socket for it", a.backend)
                })?;
            Device::Vhost {
                base: a.base,
                irq: a.irq,
                kind: *device_id,
                socket,
                size: 64,
            }
        }
        other => return Err(format!("{}: {other:?} is not served", a.backend).into()),
    })
}

/// Write the back end's state (a failure is reported: libxl then times out on it).
fn set_state(a: &Announcement, state: xen::sys::XenbusState) {
    let r = Client::open()
        .and_then(|mut xs| xs.write(&a.state_path(), Announcement::state_value(state).as_bytes()));
    if let Err(e) = r {
        eprintln!("virtio_mmio_attach: {}: {e}", a.state_path());
    }
}

/// A device served from xenstore's announcement: its thread, the handle that wakes it.
struct Served {
    announcement: Announcement,
    xen: Arc<Xen<Linux>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Served {
    /// Stop serving: the server is torn down, the thread joined.
    fn stop(self) -> Announcement {
        self.stop.store(true, Ordering::Release);
        self.xen.platform().request_stop();
        let _ = self.thread.join();
        self.announcement
    }
}

/// `--xenstore`: serve every device libxl announces from now on, one server and thread each;
/// a device libxl removes (its back end set to `Closing`) is torn down and set `Closed`.
fn from_xenstore(sockets: Vec<(u32, String)>) -> Res<()> {
    use xen::sys::XenbusState;
    let mut xs = Client::open()?;
    let home = format!("{}/backend", xs.get_domain_path(DomId(0))?);
    for kind in ["virtio_disk", "virtio"] {
        xs.watch(&format!("{home}/{kind}"), "virtio")?;
    }
    println!("virtio_mmio_attach: watching {home}/virtio_disk and {home}/virtio");
    let mut seen = BTreeSet::new();
    let mut served: Vec<Served> = Vec::new();
    while !STOP.load(Ordering::Acquire) {
        // Woken by a change below the watched directories, or every half second to notice a stop.
        if xs.wait_event(Some(Duration::from_millis(500)))?.is_none() {
            continue;
        }
        // Devices libxl is removing (or that are gone): torn down, then Closed.
        let mut i = 0;
        while i < served.len() {
            let path = served[i].announcement.state_path();
            let state = xs
                .read(&path)
                .ok()
                .and_then(|v| String::from_utf8_lossy(&v).trim().parse::<u32>().ok());
            let finished = served[i].thread.is_finished();
            if finished || state.is_none_or(|s| s >= XenbusState::CLOSING.0) {
                let a = served.swap_remove(i).stop();
                println!("virtio_mmio_attach: {} removed", a.backend);
                if state.is_some() {
                    set_state(&a, XenbusState::CLOSED);
                }
                seen.remove(&a.backend);
            } else {
                i += 1;
            }
        }
        // Which guests have announcements now.
        let mut guests = BTreeSet::new();
        for kind in ["virtio_disk", "virtio"] {
            if let Ok(ds) = xs.directory(&format!("{home}/{kind}")) {
                guests.extend(ds.into_iter().filter_map(|d| d.parse::<u16>().ok()));
            }
        }
        for domid in guests.into_iter().map(DomId) {
            for a in announcements(&mut xs, &home, domid) {
                let a = match a {
                    Ok(a) => a,
                    Err(e) => {
                        if seen.insert(e.key.clone()) {
                            eprintln!("virtio_mmio_attach: refused: {e}");
                        }
                        continue;
                    }
                };
                if !seen.insert(a.backend.clone()) {
                    continue;
                }
                let static_max = xs
                    .read(&format!("/local/domain/{}/memory/static-max", domid.0))
                    .ok()
                    .and_then(|v| String::from_utf8_lossy(&v).trim().parse::<u64>().ok());
                let Some(mem_kib) = static_max else {
                    eprintln!("virtio_mmio_attach: domain {domid}: no memory/static-max");
                    continue;
                };
                let device = match announced(&a, &sockets) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("virtio_mmio_attach: {e}");
                        continue;
                    }
                };
                println!(
                    "virtio_mmio_attach: {} announces {:?} at {:#x} SPI {} for domain {domid}",
                    a.backend, a.what, a.base, a.irq
                );
                let xen = Arc::new(Xen::new(Linux::open_nonblocking()?)?);
                let stop = Arc::new(AtomicBool::new(false));
                let (x, st, ann) = (Arc::clone(&xen), Arc::clone(&stop), a.clone());
                let thread = std::thread::spawn(move || {
                    let ram = arm_guest_ram(mem_kib);
                    let r = serve(&x, &st, domid, &ram, vec![device], || {
                        // libxl goes on with the guest once the back end is here.
                        set_state(&ann, XenbusState::INITWAIT);
                        set_state(&ann, XenbusState::CONNECTED);
                    });
                    if let Err(e) = &r {
                        eprintln!("virtio_mmio_attach: {}: {e}", ann.backend);
                        set_state(&ann, XenbusState::CLOSED);
                    }
                });
                served.push(Served {
                    announcement: a,
                    xen,
                    stop,
                    thread,
                });
            }
        }
    }
    for s in served {
        s.stop();
    }
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--xenstore") {
        let mut sockets = Vec::new();
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            let (ty, socket) = match (flag.as_str(), it.next()) {
                ("--socket", Some(v)) => v.split_once('=').ok_or(USAGE)?,
                _ => return Err(USAGE.into()),
            };
            sockets.push((device_type(ty)?, socket.to_string()));
        }
        // The signal handlers, before anything is served.
        drop(setup::open(true)?);
        return from_xenstore(sockets);
    }
    let domid = DomId(args.first().ok_or(USAGE)?.parse()?);
    let ram_args: Vec<&String> = args[1..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .collect();
    let ram = ram_args
        .iter()
        .map(|r| setup::ram_range(r))
        .collect::<Res<Vec<_>>>()?;
    if ram.is_empty() {
        return Err(USAGE.into());
    }
    let devices = parse_devices(&args[1 + ram.len()..])?;
    let xen = setup::open(true)?;
    serve(&xen, &STOP, domid, &ram, devices, || {})
}

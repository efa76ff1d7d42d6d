//! virtio-rng served in this process: a guest's stock `virtio_rng` driver (`/dev/hwrng`) reads
//! the host's entropy through a virtio-pci function at 00:SLOT.0 of the guest, with no QEMU
//! and no second process. The device is the ~30 lines of `Rng` below; `xen::virtio` does the
//! transport (PCI configuration space, BAR, MSI-X or INTx, queue set-up and validation).
//!
//! `cargo run -p xen --features virtio --example virtio_rng -- [--pvh] DOMID SLOT
//! RAM_START-RAM_END...` in dom0 (RAM ranges in hex, the guest's RAM as `xl` built it, e.g.
//! `0-3fffffff`). `--pvh`: the guest has no device model, so the server also answers the
//! 0xCF8 read-back and puts a host bridge at 00:00.0 (the guest needs `pci=noacpi`). SIGTERM
//! or SIGINT stops it and tears the server down.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemory};
use xen::ioreq::{IoreqServer, ServerOptions};
use xen::linux::Linux;
use xen::memory::GuestRam;
use xen::pci::PciBus;
use xen::virtio::{device_id, DeviceError, VirtioDevice, VirtioPci};
use xen::{Error, Xen};

/// virtio-rng (virtio 1.x §5.4): one queue; every buffer the driver offers is filled.
struct Rng(std::fs::File);

impl<M: GuestMemory> VirtioDevice<M> for Rng {
    fn device_type(&self) -> u32 {
        device_id::RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[64]
    }
    fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut len = 0;
            for d in chain.writable() {
                // At most a page per buffer: the driver asks for little at a time.
                let mut bytes = vec![0u8; (d.len() as usize).min(4096)];
                self.0
                    .read_exact(&mut bytes)
                    .map_err(|_| DeviceError::Device("reading /dev/urandom failed"))?;
                mem.write_slice(&bytes, d.addr())
                    .map_err(|_| DeviceError::Device("a buffer outside guest RAM"))?;
                len += bytes.len() as u32;
            }
            q.add_used(mem, head, len)
                .map_err(|e| DeviceError::queue(index, e))?;
            used = true;
        }
        Ok(used)
    }
}

fn hex(s: &str) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    static STOP: AtomicBool = AtomicBool::new(false);
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pvh = args.first().is_some_and(|a| a == "--pvh");
    if pvh {
        args.remove(0);
    }
    let usage = "usage: virtio_rng [--pvh] DOMID SLOT RAM_START-RAM_END...";
    let domid: u16 = args.first().ok_or(usage)?.parse()?;
    let slot: u8 = args.get(1).ok_or(usage)?.parse()?;
    let mut ram = Vec::new();
    for r in args.get(2..).unwrap_or_default() {
        let (a, b) = r.split_once('-').ok_or(usage)?;
        ram.push((hex(a)?, hex(b)? - hex(a)? + 1));
    }
    if ram.is_empty() || slot == 0 || slot > 31 {
        return Err(usage.into());
    }
    let xen = Arc::new(Xen::new(Linux::open()?)?);
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let x = Arc::clone(&xen);
        // SAFETY: the handler stores to an atomic and makes one ioctl; no allocation, no lock.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                STOP.store(true, Ordering::Release);
                x.platform().request_stop();
            })
        }?;
    }
    let guest = GuestRam::map(xen.platform(), domid, &ram)?;
    if !guest.failed_pages().is_empty() {
        eprintln!(
            "virtio_rng: {} pages of the given RAM are not mapped",
            guest.failed_pages().len()
        );
    }
    let mem = guest.vm_memory()?;
    let sbdf = xen::sys::pci_sbdf(0, 0, slot, 0);
    let mut server = IoreqServer::create(&xen, domid, ServerOptions::default())?;
    let rng = Rng(std::fs::File::open("/dev/urandom")?);
    let mut bus = if pvh {
        PciBus::with_host_bridge()
    } else {
        PciBus::new()
    };
    bus.add(VirtioPci::new(&xen, domid, sbdf, rng, mem)?)?;
    bus.claim(&mut server)?;
    println!("virtio_rng: serving 00:{slot:02x}.0 of domain {domid}");
    let served = server.run(&mut bus, &STOP);
    let stats = server.stats();
    server.shutdown()?;
    match served {
        Ok(()) | Err(Error::Stopped) => {}
        Err(e) => return Err(e.into()),
    }
    println!(
        "virtio_rng: stopped after {} requests ({} refused), torn down",
        stats.requests, stats.invalid
    );
    Ok(())
}

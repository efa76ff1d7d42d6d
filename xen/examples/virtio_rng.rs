//! virtio-rng served in this process: a guest's stock `virtio_rng` driver (`/dev/hwrng`) reads
//! the host's entropy through a virtio-pci function at 00:SLOT.0 of the guest, with no QEMU
//! and no second process. The device is the ~30 lines of `Rng` in `common/rng.rs`; `xen::virtio` does the
//! transport (PCI configuration space, BAR, MSI-X or INTx, queue set-up and validation).
//!
//! `cargo run -p xen --features virtio --example virtio_rng -- [--pvh] DOMID SLOT
//! RAM_START-RAM_END...` in dom0 (RAM ranges in hex, the guest's RAM as `xl` built it, e.g.
//! `0-3fffffff`). `--pvh`: the guest has no device model, so the server also answers the
//! 0xCF8 read-back and puts a host bridge at 00:00.0 (the guest needs `pci=noacpi`). SIGTERM
//! or SIGINT stops it and tears the server down.

use xen::ioreq::{IoreqServer, ServerOptions};
use xen::pci::PciBus;
use xen::virtio::VirtioPci;
use xen::Error;

#[path = "common/rng.rs"]
mod rng;
#[path = "common/setup.rs"]
mod setup;
use rng::Rng;
use setup::{Res, STOP};

fn main() -> Res<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let pvh = args.first().is_some_and(|a| a == "--pvh");
    if pvh {
        args.remove(0);
    }
    let usage = "usage: virtio_rng [--pvh] DOMID SLOT RAM_START-RAM_END...";
    let domid = xen::DomId(args.first().ok_or(usage)?.parse()?);
    let slot: u8 = args.get(1).ok_or(usage)?.parse()?;
    let ram = args
        .get(2..)
        .unwrap_or_default()
        .iter()
        .map(|r| setup::ram_range(r))
        .collect::<Res<Vec<_>>>()?;
    if ram.is_empty() || slot == 0 || slot > 31 {
        return Err(usage.into());
    }
    let xen = setup::open(false)?;
    let mem = setup::guest_ram("virtio_rng", &xen, domid, &ram)?.vm_memory()?;
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

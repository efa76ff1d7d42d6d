//! virtio-pci on the simulator, driven as Linux's virtio_pci_modern drives a device: enumerate
//! the function, size and place its BAR, walk the capabilities, negotiate, set up a queue, and
//! get buffers filled and interrupts delivered (MSI-X, or INTx without it). Then a guest that
//! breaks the rules, one way per test: the device needs a reset (one log line, a configuration
//! interrupt), nothing panics, and a reset brings it back.

use std::sync::atomic::{AtomicBool, Ordering};

use virtio_queue::Queue;
use vm_memory::GuestMemory;
use xen::dm::RangeKind;
use xen::ioreq::{IoreqServer, ServerOptions};
use xen::memory::GuestRam;
use xen::pci::PciBus;
use xen::sim::{Msi, Sim, Vcpu};
use xen::sys::pci_sbdf;
use xen::virtio::{status, DeviceError, VirtioDevice, VirtioPci, BAR_SIZE};
use xen::{DomId, Xen};

const BAR: u64 = 0xe000_0000;
const MSI_ADDR: u64 = 0xfee0_0000;

#[path = "common/virtio.rs"]
mod virtio;
use virtio::{serving, warnings_with, Ring, Rng, AVAIL, BUF, DESC, LOGGER, RAM, USED};

/// The guest side: Linux's virtio_pci_modern, step by step.
struct Driver {
    v: Vcpu,
    sim: Sim,
    dom: DomId,
    sbdf: u32,
}

impl Driver {
    fn ring(&self) -> Ring<'_> {
        Ring {
            sim: &self.sim,
            dom: self.dom,
        }
    }
    fn offer(&self, n: u16, addr: u64, len: u32) {
        self.ring().offer(n, addr, len)
    }
    fn used_idx(&self) -> u16 {
        self.ring().used_idx()
    }
    fn cfg(&self, reg: u32, size: u32) -> u64 {
        self.v.pci_config_read(self.sbdf, reg, size).unwrap()
    }
    fn set_cfg(&self, reg: u32, size: u32, v: u64) {
        self.v.pci_config_write(self.sbdf, reg, size, v).unwrap()
    }
    fn rd(&self, off: u64, size: u32) -> u64 {
        self.v.mmio_read(BAR + off, size).unwrap()
    }
    fn wr(&self, off: u64, size: u32, v: u64) {
        self.v.mmio_write(BAR + off, size, v).unwrap()
    }
    fn status(&self) -> u8 {
        self.rd(0x14, 1) as u8
    }

    /// Enumerate, size the BAR, place it at `bar`, turn memory decoding on.
    fn place(&self, bar: u64) {
        assert_eq!(self.cfg(0, 2), 0x1af4, "vendor");
        assert_eq!(self.cfg(2, 2), 0x1044, "device id (modern, rng)");
        self.set_cfg(0x10, 4, 0xffff_ffff);
        self.set_cfg(0x14, 4, 0xffff_ffff);
        let lo = self.cfg(0x10, 4);
        let hi = self.cfg(0x14, 4);
        assert_eq!(lo & 0xf, 0b100, "64-bit memory BAR");
        let size = !((hi << 32 | lo) & !0xf) + 1;
        assert_eq!(size, BAR_SIZE);
        self.set_cfg(0x10, 4, bar & 0xffff_ffff);
        self.set_cfg(0x14, 4, bar >> 32);
        self.set_cfg(4, 2, self.cfg(4, 2) | 2);
    }

    /// The capability list: (cfg_type, offset in the BAR) of each virtio capability, and the
    /// MSI-X capability's position.
    fn caps(&self) -> (Vec<(u8, u32)>, Option<u32>) {
        assert_ne!(self.cfg(6, 2) & 0x10, 0, "capability list");
        let mut at = self.cfg(0x34, 1) as u32;
        let (mut virtio, mut msix) = (Vec::new(), None);
        while at != 0 {
            match self.cfg(at, 1) {
                0x09 => virtio.push((self.cfg(at + 3, 1) as u8, self.cfg(at + 8, 4) as u32)),
                0x11 => msix = Some(at),
                id => panic!("unexpected capability {id:#x}"),
            }
            at = self.cfg(at + 1, 1) as u32;
        }
        (virtio, msix)
    }

    /// MSI-X on, vector `v` → data 0x40 + v.
    fn msix(&self, vectors: u64) {
        let (_, msix) = self.caps();
        let at = msix.expect("an MSI-X capability");
        let table_size = (self.cfg(at + 2, 2) & 0x7ff) + 1;
        assert!(table_size >= vectors);
        for v in 0..vectors {
            let e = 0x4000 + 16 * v;
            self.wr(e, 4, MSI_ADDR);
            self.wr(e + 4, 4, 0);
            self.wr(e + 8, 4, 0x40 + v);
            self.wr(e + 12, 4, 0);
        }
        self.set_cfg(at + 2, 2, 0x8000);
    }

    /// Negotiate VERSION_1 only.
    fn negotiate(&self) {
        self.wr(0x14, 1, 0); // reset
        self.wr(0x14, 1, u64::from(status::ACKNOWLEDGE | status::DRIVER));
        self.wr(0, 4, 1);
        assert_eq!(self.rd(4, 4) & 1, 1, "VERSION_1 offered");
        self.wr(8, 4, 1);
        self.wr(0xc, 4, 1);
        self.wr(
            0x14,
            1,
            u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
        );
        assert_ne!(self.status() & status::FEATURES_OK, 0, "features accepted");
    }

    /// Queue 0: `size` entries, MSI-X vector `vector`, rings at DESC/AVAIL/USED, enabled.
    fn queue(&self, size: u64, vector: u64) {
        self.wr(0x16, 2, 0);
        assert_eq!(self.rd(0x18, 2), 8, "queue 0's maximum size");
        self.wr(0x18, 2, size);
        self.wr(0x1a, 2, vector);
        self.wr(0x20, 4, DESC);
        self.wr(0x24, 4, 0);
        self.wr(0x28, 8, AVAIL);
        self.wr(0x30, 4, USED);
        self.wr(0x34, 4, 0);
        self.wr(0x1c, 2, 1);
    }

    fn driver_ok(&self) {
        let s = self.status() | status::DRIVER_OK;
        self.wr(0x14, 1, u64::from(s));
    }

    fn kick(&self, queue: u64) {
        self.wr(0x3000 + 4 * queue, 2, queue);
    }
}

/// A guest with 1 MiB of RAM, an IOREQ server claiming 00:03.0, and the rng behind it; `body`
/// plays the guest while a thread serves.
fn with_device<R>(body: impl FnOnce(&Driver) -> R) -> (R, Sim, DomId) {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let mem = ram.vm_memory().unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let sbdf = pci_sbdf(0, 0, 3, 0);
    srv.map_range(RangeKind::Pci, u64::from(sbdf), u64::from(sbdf))
        .unwrap();
    let mut dev = VirtioPci::new(&xen, dom, sbdf, Rng::default(), mem).unwrap();
    let driver = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        sbdf,
    };
    let r = serving(&sim, &mut srv, &mut dev, || body(&driver));
    (r, sim, dom)
}

fn msis(sim: &Sim) -> Vec<u32> {
    sim.msi_log()
        .into_iter()
        .map(|Msi { addr, data, .. }| {
            assert_eq!(addr, MSI_ADDR);
            data
        })
        .collect()
}

#[test]
fn a_driver_gets_random_bytes_and_an_msix_interrupt_per_used_buffer() {
    let (bytes, sim, _) = with_device(|d| {
        d.place(BAR);
        let (caps, msix) = d.caps();
        // common, ISR, device, notify; each in BAR 0.
        let types: Vec<u8> = caps.iter().map(|c| c.0).collect();
        assert_eq!(types, [1, 3, 4, 2]);
        assert!(msix.is_some());
        d.msix(2);
        d.negotiate();
        d.wr(0x10, 2, 0); // config changes on vector 0
        assert_eq!(d.rd(0x10, 2), 0);
        d.queue(8, 1);
        assert_eq!(d.rd(0x1a, 2), 1, "queue 0's vector");
        assert_eq!(d.rd(0x12, 2), 1, "one queue");
        d.driver_ok();
        d.offer(0, BUF, 64);
        d.kick(0);
        assert_eq!(d.used_idx(), 1);
        d.offer(1, BUF + 64, 16);
        d.kick(0);
        assert_eq!(d.used_idx(), 2);
        assert_eq!(d.status() & status::NEEDS_RESET, 0);
        d.sim.guest_ram_read(d.dom, BUF, 80)
    });
    let want: Vec<u8> = (1..=80).collect();
    assert_eq!(bytes, want, "the device's bytes, in the guest's buffers");
    assert_eq!(
        msis(&sim),
        [0x41, 0x41],
        "one MSI-X on vector 1 per used buffer"
    );
    assert!(sim.intx_log().is_empty(), "no INTx with MSI-X on");
}

#[test]
fn without_msix_the_device_raises_intx_and_the_isr_read_lowers_it() {
    let ((isr, again), sim, dom) = with_device(|d| {
        d.place(BAR);
        d.negotiate();
        d.queue(8, 0xffff);
        d.driver_ok();
        d.offer(0, BUF, 8);
        d.kick(0);
        assert_eq!(d.used_idx(), 1);
        (d.rd(0x1000, 1), d.rd(0x1000, 1))
    });
    assert_eq!(isr, 1, "ISR: a queue interrupt");
    assert_eq!(again, 0, "reading the ISR acknowledged it");
    assert_eq!(
        sim.intx_log(),
        [(dom, 3, 0, true), (dom, 3, 0, false)],
        "INTA of device 3 raised, then lowered by the ISR read"
    );
    assert!(sim.msi_log().is_empty());
}

/// A guest that breaks one rule: the device needs a reset (status, one log line naming the
/// fault, a configuration interrupt on vector 0), then a reset and a clean set-up work again.
fn broken(rule: &str, log_says: &str, act: impl FnOnce(&Driver)) {
    let (msis_before_reset, sim, _) = with_device(|d| {
        d.place(BAR);
        d.msix(2);
        d.negotiate();
        d.wr(0x10, 2, 0);
        act(d);
        assert_ne!(d.status() & status::NEEDS_RESET, 0, "{rule}: NEEDS_RESET");
        let before = msis(&d.sim);
        // Recovery: reset, set up again, and the device serves.
        d.wr(0x14, 1, 0);
        assert_eq!(d.status(), 0, "{rule}: reset clears the status");
        d.msix(2);
        d.negotiate();
        d.wr(0x10, 2, 0);
        d.queue(8, 1);
        d.driver_ok();
        d.sim.guest_ram_write(d.dom, USED, &[0; 4]);
        d.sim.guest_ram_write(d.dom, AVAIL, &[0; 4]);
        d.offer(0, BUF, 4);
        d.kick(0);
        assert_eq!(d.used_idx(), 1, "{rule}: the device works after the reset");
        before
    });
    assert_eq!(
        msis_before_reset.last(),
        Some(&0x40),
        "{rule}: a configuration interrupt (vector 0)"
    );
    assert_eq!(msis(&sim).last(), Some(&0x41));
    assert_eq!(
        warnings_with(log_says),
        1,
        "{rule}: one log line saying {log_says:?}"
    );
}

#[test]
fn a_queue_size_that_is_not_a_power_of_two() {
    broken("size 6", "size 6 is not a power of two", |d| {
        d.wr(0x16, 2, 0);
        d.wr(0x18, 2, 6);
    });
}

#[test]
fn a_queue_size_above_the_maximum() {
    broken(
        "size 16",
        "size 16 is not a power of two of at most 8",
        |d| {
            d.wr(0x16, 2, 0);
            d.wr(0x18, 2, 16);
        },
    );
}

#[test]
fn rings_outside_guest_ram() {
    broken("rings at 512 MiB", "desc 0x20000000", |d| {
        d.wr(0x16, 2, 0);
        d.wr(0x20, 8, 0x2000_0000);
        d.wr(0x28, 8, AVAIL);
        d.wr(0x30, 8, USED);
        d.wr(0x1c, 2, 1);
        assert_eq!(d.rd(0x1c, 2), 0, "the queue stays disabled");
    });
}

#[test]
fn a_notify_of_a_queue_never_enabled() {
    broken("notify of queue 0", "notify of queue 0", |d| {
        d.driver_ok();
        d.kick(0);
    });
}

#[test]
fn a_notify_of_a_queue_that_does_not_exist() {
    broken("notify of queue 5", "notify of queue 5", |d| {
        d.queue(8, 1);
        d.driver_ok();
        d.kick(5);
    });
}

#[test]
fn a_write_to_a_read_only_register() {
    broken("num_queues", "read-only register num_queues", |d| {
        d.wr(0x12, 2, 7);
    });
}

#[test]
fn a_descriptor_outside_guest_ram() {
    broken("buffer at 1 GiB", "buffer outside guest RAM", |d| {
        d.queue(8, 1);
        d.driver_ok();
        d.offer(0, 0x4000_0000, 64);
        d.kick(0);
    });
}

#[test]
fn an_msix_table_write_out_of_range() {
    broken("MSI-X entry 9", "MSI-X table access at offset 0x90", |d| {
        d.wr(0x4000 + 16 * 9, 4, 0);
    });
}

#[test]
fn a_bar_over_guest_ram_is_not_claimed() {
    let ((status_read, cfg_ok), sim, _) = with_device(|d| {
        d.place(0x8000);
        // Nothing claims 0x8000 (RAM is not MMIO): the access is not the device's.
        let status = d.v.mmio_read(0x8000 + 0x14, 1).unwrap();
        // Configuration space still answers, and the BAR can be moved somewhere sane.
        let ok = d.cfg(0, 2) == 0x1af4;
        d.set_cfg(0x10, 4, BAR & 0xffff_ffff);
        d.set_cfg(0x14, 4, 0);
        ((status, d.status()), ok)
    });
    assert_eq!(status_read.0, 0xff, "the BAR over RAM was not claimed");
    assert_ne!(
        status_read.1 & status::NEEDS_RESET,
        0,
        "moved: the device reports the fault"
    );
    assert!(cfg_ok);
    assert_eq!(warnings_with("overlaps guest RAM"), 1);
    let _ = sim;
}

/// Two virtio-rng functions (00:03.0 and 00:04.0) and a host bridge on one server, as a PVH
/// guest needs them: the 0xCF8 read-back, the bridge at 00:00.0, each function with its own
/// BAR; the second device keeps working while the first needs a reset.
#[test]
fn two_devices_and_a_host_bridge_on_one_server() {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let mut bus = PciBus::with_host_bridge();
    for slot in [3, 4] {
        let mem = ram.vm_memory().unwrap();
        let f = VirtioPci::new(&xen, dom, pci_sbdf(0, 0, slot, 0), Rng::default(), mem).unwrap();
        bus.add(f).unwrap();
    }
    let dup = VirtioPci::new(
        &xen,
        dom,
        pci_sbdf(0, 0, 4, 0),
        Rng::default(),
        ram.vm_memory().unwrap(),
    )
    .unwrap();
    assert!(bus.add(dup).is_err(), "one function per SBDF");
    bus.claim(&mut srv).unwrap();
    let stop = AtomicBool::new(false);
    let d3 = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        sbdf: pci_sbdf(0, 0, 3, 0),
    };
    let d4 = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        sbdf: pci_sbdf(0, 0, 4, 0),
    };
    std::thread::scope(|s| {
        let t = s.spawn(|| srv.run(&mut bus, &stop));
        let v = sim.vcpu(dom, 0);
        // Linux's probe of the type-1 mechanism.
        v.pio_out(0xcf8, 4, 0x8000_0000).unwrap();
        assert_eq!(v.pio_in(0xcf8, 4).unwrap(), 0x8000_0000, "0xCF8 reads back");
        let host = sim.vcpu(dom, 0);
        assert_eq!(
            host.pci_config_read(0, 0, 4).unwrap(),
            0x1237_8086,
            "host bridge id"
        );
        assert_eq!(
            host.pci_config_read(0, 8, 4).unwrap() >> 8,
            0x06_0000,
            "class: host bridge"
        );
        // Device 3 at BAR, device 4 just above it.
        d3.place(BAR);
        let bar4 = BAR + BAR_SIZE;
        d4.set_cfg(0x10, 4, bar4 & 0xffff_ffff);
        d4.set_cfg(0x14, 4, 0);
        d4.set_cfg(4, 2, 2);
        // Device 3 breaks a rule; device 4 (reached through its own BAR) is untouched.
        d3.negotiate();
        d3.wr(0x16, 2, 0);
        d3.wr(0x18, 2, 3);
        assert_ne!(d3.status() & status::NEEDS_RESET, 0);
        let at4 = |off: u64, size: u32| d4.v.mmio_read(bar4 + off, size).unwrap();
        assert_eq!(at4(0x14, 1), 0, "device 4's status is its own");
        d4.v.mmio_write(bar4 + 0x14, 1, 3).unwrap();
        assert_eq!(at4(0x14, 1), 3);
        assert_eq!(d3.status() & 3, 3, "device 3 keeps its own status too");
        stop.store(true, Ordering::Release);
        sim.wake();
        t.join().unwrap().unwrap();
    });
    let sbdfs: Vec<u32> = bus.functions().map(|f| f.sbdf()).collect();
    assert_eq!(sbdfs, [pci_sbdf(0, 0, 3, 0), pci_sbdf(0, 0, 4, 0)]);
    assert_eq!(warnings_with("size 3 is not a power of two"), 1);
}

/// A device model killed with the driver's device live: its successor parses the state the
/// first one saved, restores the function, adopts the IOREQ server, and the driver carries on
/// (same status, the queue continuing from the used index, interrupts on its MSI-X vector).
#[test]
fn a_successor_takes_over_a_live_device_from_the_saved_state() {
    use xen::pci::SavedBus;
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let sbdf = pci_sbdf(0, 0, 3, 0);
    let driver = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        sbdf,
    };
    let serve =
        |srv: &mut IoreqServer<'_, Sim>, bus: &mut PciBus<'_>, wake: &Sim, body: &dyn Fn()| {
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let t = s.spawn(|| srv.run(bus, &stop));
                body();
                stop.store(true, Ordering::Release);
                wake.wake();
                t.join().expect("server thread").expect("run");
            });
        };

    // The first device model, on a handle of its own.
    let first = sim.open_channel();
    let xen1 = Xen::new(first.clone()).unwrap();
    let mut srv1 = IoreqServer::create(&xen1, dom, ServerOptions::default()).unwrap();
    let mut bus1 = PciBus::with_host_bridge();
    bus1.add(VirtioPci::new(&xen1, dom, sbdf, Rng::default(), ram.vm_memory().unwrap()).unwrap())
        .unwrap();
    bus1.claim(&mut srv1).unwrap();
    let g0 = bus1.state_generation();
    serve(&mut srv1, &mut bus1, &first, &|| {
        driver.place(BAR);
        driver.msix(2);
        driver.negotiate();
        driver.wr(0x10, 2, 0);
        driver.queue(8, 1);
        driver.driver_ok();
        driver.offer(0, BUF, 16);
        driver.kick(0);
        assert_eq!(driver.used_idx(), 1);
    });
    assert_ne!(
        bus1.state_generation(),
        g0,
        "the guest's set-up changed the state"
    );
    let text = bus1.save_state(srv1.id());
    let claimed = bus1.claimed_ranges();
    assert!(
        claimed.contains(&(RangeKind::Mmio, BAR, BAR + BAR_SIZE - 1)),
        "{claimed:?}"
    );
    // Killed: nothing torn down, its event channel handle closed.
    std::mem::forget(srv1);
    first.close_channel();
    drop(bus1);

    // The successor.
    let saved = SavedBus::parse(&text).unwrap();
    let xen2 = Xen::new(sim.open_channel()).unwrap();
    let mut f = VirtioPci::new(&xen2, dom, sbdf, Rng::default(), ram.vm_memory().unwrap()).unwrap();
    f.restore_state(saved.function(sbdf).unwrap()).unwrap();
    assert_eq!(f.bar_claimed(), Some(BAR));
    let mut bus2 = PciBus::with_host_bridge();
    bus2.add(f).unwrap();
    assert_eq!(bus2.claimed_ranges(), claimed);
    let mut srv2 =
        IoreqServer::adopt(&xen2, dom, saved.server, ServerOptions::default(), &claimed).unwrap();
    let msis_before = msis(&sim).len();
    let wake = xen2.platform().clone();
    serve(&mut srv2, &mut bus2, &wake, &|| {
        let live = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
        assert_eq!(driver.status(), live, "the driver's device, as it left it");
        driver.offer(1, BUF + 16, 16);
        driver.kick(0);
        assert_eq!(
            driver.used_idx(),
            2,
            "the queue continues from the used index"
        );
    });
    assert_eq!(bus2.save_state(saved.server), text, "the same state");
    // Each model's own rng counts from 1: the second buffer was filled by the successor.
    let bytes = sim.guest_ram_read(dom, BUF, 32);
    let want: Vec<u8> = (1..=16).chain(1..=16).collect();
    assert_eq!(bytes, want);
    assert!(
        msis(&sim).len() > msis_before,
        "interrupts on the restored MSI-X vector"
    );
    // Malformed or foreign state is refused.
    assert!(SavedBus::parse("garbage").is_err());
    let mut other = VirtioPci::new(
        &xen2,
        dom,
        pci_sbdf(0, 0, 4, 0),
        Rng::default(),
        ram.vm_memory().unwrap(),
    )
    .unwrap();
    assert!(other.restore_state(saved.function(sbdf).unwrap()).is_err());
    srv2.shutdown().unwrap();
}

/// A device served "in another process": it uses the buffers, then signals its call eventfd
/// (as a vhost-user back end does) instead of reporting them from `process_queue`.
#[derive(Debug)]
struct Signalling {
    rng: Rng,
    call: std::os::fd::OwnedFd,
    /// What the transport last said the kernel reads.
    kernel: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Signalling {
    fn new() -> Signalling {
        use rustix::event::{eventfd, EventfdFlags};
        Signalling {
            rng: Rng::default(),
            call: eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).unwrap(),
            kernel: Default::default(),
        }
    }
}

impl<M: GuestMemory> VirtioDevice<M> for Signalling {
    fn device_type(&self) -> u32 {
        xen::virtio::device_id::RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[8]
    }
    fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
        if self.rng.process_queue(index, q, mem)? {
            rustix::io::write(&self.call, &1u64.to_ne_bytes()).unwrap();
        }
        Ok(false)
    }
    fn take_interrupts(&mut self) -> u64 {
        if self.kernel.load(Ordering::SeqCst) & 1 != 0 {
            return 0;
        }
        let mut count = [0u8; 8];
        u64::from(rustix::io::read(&self.call, &mut count).is_ok())
    }
    fn queue_call_fd(&self, index: u16) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        (index == 0).then(|| self.call.as_fd())
    }
    fn set_kernel_interrupts(&mut self, queues: u64) {
        self.kernel.store(queues, Ordering::SeqCst);
    }
}

/// Wait (at most 5 s) until the guest has received `n` MSIs.
fn wait_msis(sim: &Sim, n: usize) -> Vec<u32> {
    let start = std::time::Instant::now();
    while sim.msi_log().len() < n && start.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    msis(sim)
}

/// The guest of the irqfd tests: 1 MiB of RAM, an IOREQ server claiming 00:03.0.
struct IrqfdGuest {
    sim: Sim,
    dom: DomId,
    xen: Xen<Sim>,
    ram: GuestRam<xen::sim::SimPages>,
}

impl IrqfdGuest {
    fn new(kernel_has_irqfd: bool) -> IrqfdGuest {
        let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
        let sim = Sim::new();
        if kernel_has_irqfd {
            sim.enable_irqfd();
        }
        let dom = sim.create_guest(1);
        let xen = Xen::new(sim.clone()).unwrap();
        let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
        IrqfdGuest { sim, dom, xen, ram }
    }

    /// Serve `dev` while `body` plays the guest.
    fn serve<D: VirtioDevice<M> + Send, M: GuestMemory + Send, R>(
        &self,
        srv: &mut IoreqServer<'_, Sim>,
        dev: &mut VirtioPci<'_, Sim, D, M>,
        body: impl FnOnce(&Driver) -> R,
    ) -> R {
        let driver = Driver {
            v: self.sim.vcpu(self.dom, 0),
            sim: self.sim.clone(),
            dom: self.dom,
            sbdf: pci_sbdf(0, 0, 3, 0),
        };
        serving(&self.sim, srv, dev, || body(&driver))
    }
}

/// A guest's rng set up with MSI-X: vector 1 for queue 0, one buffer used.
fn set_up_and_use(d: &Driver) {
    d.place(BAR);
    d.msix(2);
    d.negotiate();
    d.queue(8, 1);
    d.driver_ok();
    d.offer(0, BUF, 16);
    d.kick(0);
    assert_eq!(d.used_idx(), 1);
}

/// With a dom0 kernel that has privcmd irqfd, the back end's signal becomes the queue's MSI in
/// the kernel: no return to the device model. A masked vector is taken back (its signal
/// becomes the pending bit, delivered on unmask), and dropping the device unbinds.
#[test]
fn with_irqfd_the_kernel_delivers_the_queue_interrupt() {
    let g = IrqfdGuest::new(true);
    let mut srv = IoreqServer::create(&g.xen, g.dom, ServerOptions::default()).unwrap();
    let sbdf = pci_sbdf(0, 0, 3, 0);
    srv.map_range(RangeKind::Pci, u64::from(sbdf), u64::from(sbdf))
        .unwrap();
    let device = Signalling::new();
    let kernel = device.kernel.clone();
    let mem = g.ram.vm_memory().unwrap();
    let mut dev = VirtioPci::new(&g.xen, g.dom, sbdf, device, mem).unwrap();
    g.serve(&mut srv, &mut dev, |d| {
        set_up_and_use(d);
        // `run` serves requests only: only the kernel can have delivered this.
        assert_eq!(wait_msis(&g.sim, 1), [0x41], "the kernel injected vector 1");
        // The guest masks vector 1 and uses another buffer.
        d.wr(0x4000 + 16 + 12, 4, 1);
        d.offer(1, BUF + 16, 16);
        d.kick(0);
        assert_eq!(d.used_idx(), 2);
    });
    assert_eq!(
        g.sim.irqfd_count(),
        0,
        "a masked vector is not the kernel's"
    );
    assert_eq!(kernel.load(Ordering::SeqCst), 0);
    assert_eq!(dev.kernel_interrupts(), 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(msis(&g.sim), [0x41], "nothing delivered while masked");
    // The event loop reads the signal: vector 1's pending bit.
    dev.poll_interrupts();
    g.serve(&mut srv, &mut dev, |d| {
        assert_eq!(d.rd(0x5000, 8), 0b10, "vector 1 pending");
        d.wr(0x4000 + 16 + 12, 4, 0);
        assert_eq!(msis(&g.sim), [0x41, 0x41], "delivered on unmask");
        assert_eq!(d.rd(0x5000, 8), 0);
    });
    assert_eq!(g.sim.irqfd_count(), 1, "unmasked: the kernel's again");
    assert_eq!(dev.kernel_interrupts(), 1);
    drop(dev);
    assert_eq!(g.sim.irqfd_count(), 0, "dropping the device unbinds");
}

/// A kernel without irqfd (Debian's), or a device model that chooses the relay: the device
/// model reads the signal and injects the MSI itself.
#[test]
fn without_irqfd_the_device_model_relays_the_queue_interrupt() {
    for (kernel_has_irqfd, path) in [
        (false, xen::virtio::InterruptPath::KernelWhereAvailable),
        (true, xen::virtio::InterruptPath::Relayed),
    ] {
        let g = IrqfdGuest::new(kernel_has_irqfd);
        let mut srv = IoreqServer::create(&g.xen, g.dom, ServerOptions::default()).unwrap();
        let sbdf = pci_sbdf(0, 0, 3, 0);
        srv.map_range(RangeKind::Pci, u64::from(sbdf), u64::from(sbdf))
            .unwrap();
        let mem = g.ram.vm_memory().unwrap();
        let mut dev = VirtioPci::new(&g.xen, g.dom, sbdf, Signalling::new(), mem).unwrap();
        dev.set_interrupt_path(path);
        g.serve(&mut srv, &mut dev, set_up_and_use);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(g.sim.msi_log().is_empty(), "{path:?}: not the kernel's");
        assert_eq!(g.sim.irqfd_count(), 0);
        assert_eq!(dev.kernel_interrupts(), 0);
        dev.poll_interrupts();
        assert_eq!(msis(&g.sim), [0x41], "{path:?}: relayed");
    }
}

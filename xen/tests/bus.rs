//! `xen::bus::IoBus` as an IOREQ server's handler on the simulator: several devices at ports,
//! MMIO and PCI functions, each seeing offsets within its own range; one device model shared
//! by two ranges; accesses that reach no device; claims released when one is refused.
#![cfg(feature = "sim")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use xen::bus::{BusAccess, BusDevice, IoBus};
use xen::dm::RangeKind;
use xen::ioreq::{IoreqServer, ServerOptions, Size, Space};
use xen::sim::Sim;
use xen::Xen;

/// Records every access it gets and answers reads with `tag << 32 | offset`.
#[derive(Default)]
struct Probe {
    tag: u64,
    seen: Vec<(BusAccess, Size, Option<u64>)>,
}

impl Probe {
    fn new(tag: u64) -> Arc<Mutex<Probe>> {
        Arc::new(Mutex::new(Probe {
            tag,
            seen: Vec::new(),
        }))
    }
}

impl BusDevice for Probe {
    fn read(&mut self, at: BusAccess, size: Size) -> u64 {
        self.seen.push((at, size, None));
        (self.tag << 32) | at.offset
    }
    fn write(&mut self, at: BusAccess, size: Size, value: u64) {
        self.seen.push((at, size, Some(value)));
    }
}

fn seen(p: &Arc<Mutex<Probe>>) -> Vec<(BusAccess, Size, Option<u64>)> {
    std::mem::take(&mut p.lock().unwrap().seen)
}

const SBDF: u32 = 0x0000_0018; // 00:03.0

/// Serve `bus` on a fresh one-vCPU guest while `body` plays the guest.
fn serve_bus(bus: &mut IoBus<'_>, body: impl FnOnce(&xen::sim::Vcpu)) -> u64 {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    bus.claim(&mut srv).unwrap();
    let vcpu = sim.vcpu(dom, 0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let t = s.spawn(|| srv.run(&mut *bus, &stop));
        body(&vcpu);
        stop.store(true, Ordering::Release);
        sim.wake();
        t.join().unwrap().unwrap();
    });
    bus.unclaimed_accesses()
}

#[test]
fn each_device_sees_offsets_within_its_own_range() {
    let (uart, window, func) = (Probe::new(1), Probe::new(2), Probe::new(3));
    let mut bus = IoBus::new();
    bus.insert(RangeKind::Port, 0x3f8, 8, uart.clone()).unwrap();
    bus.insert(RangeKind::Mmio, 0xfe00_1000, 0x1000, window.clone())
        .unwrap();
    bus.insert(RangeKind::Pci, u64::from(SBDF), 1, func.clone())
        .unwrap();
    assert_eq!(
        bus.ranges(),
        [
            (RangeKind::Port, 0x3f8, 0x3ff),
            (RangeKind::Mmio, 0xfe00_1000, 0xfe00_1fff),
            (RangeKind::Pci, u64::from(SBDF), u64::from(SBDF)),
        ]
    );
    let unclaimed = serve_bus(&mut bus, |v| {
        v.pio_out(0x3fb, 1, 0x83).unwrap();
        assert_eq!(v.pio_in(0x3fd, 1).unwrap(), 0x05, "offset 5, one byte");
        v.mmio_write(0xfe00_1ff8, 8, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(v.mmio_read(0xfe00_1004, 4).unwrap(), 0x0000_0004);
        assert_eq!(
            v.pci_config_read(SBDF, 0x10, 4).unwrap(),
            (3 << 32 | 0x10) & 0xffff_ffff
        );
        v.pci_config_write(SBDF, 0x04, 2, 0x0006).unwrap();
    });
    assert_eq!(unclaimed, 0);
    let at = |space, base, offset| BusAccess {
        space,
        base,
        offset,
    };
    assert_eq!(
        seen(&uart),
        [
            (at(Space::Port, 0x3f8, 3), Size::B1, Some(0x83)),
            (at(Space::Port, 0x3f8, 5), Size::B1, None),
        ]
    );
    assert_eq!(
        seen(&window),
        [
            (
                at(Space::Mmio, 0xfe00_1000, 0xff8),
                Size::B8,
                Some(0x1122_3344_5566_7788)
            ),
            (at(Space::Mmio, 0xfe00_1000, 4), Size::B4, None),
        ]
    );
    let pci = Space::PciConfig { sbdf: SBDF };
    assert_eq!(
        seen(&func),
        [
            (at(pci, u64::from(SBDF), 0x10), Size::B4, None),
            (at(pci, u64::from(SBDF), 0x04), Size::B2, Some(6)),
        ]
    );
}

#[test]
fn one_device_model_at_two_ranges_shares_its_state() {
    // A device with a port window and an MMIO BAR: one state, a clone of its handle per range.
    #[derive(Default)]
    struct Counter(u64);
    impl BusDevice for Counter {
        fn read(&mut self, _: BusAccess, _: Size) -> u64 {
            self.0
        }
        fn write(&mut self, _: BusAccess, _: Size, v: u64) {
            self.0 += v;
        }
    }
    let dev = Arc::new(Mutex::new(Counter::default()));
    let mut bus = IoBus::new();
    bus.insert(RangeKind::Port, 0x510, 2, dev.clone()).unwrap();
    bus.insert(RangeKind::Mmio, 0xfeb0_0000, 8, dev.clone())
        .unwrap();
    serve_bus(&mut bus, |v| {
        v.pio_out(0x510, 2, 5).unwrap();
        v.mmio_write(0xfeb0_0000, 4, 7).unwrap();
        assert_eq!(v.pio_in(0x511, 1).unwrap(), 12);
        assert_eq!(v.mmio_read(0xfeb0_0004, 4).unwrap(), 12);
    });
    assert_eq!(dev.lock().unwrap().0, 12);
}

#[test]
fn accesses_that_reach_no_device_are_answered_and_counted() {
    let dev = Probe::new(1);
    let mut bus = IoBus::new();
    bus.insert(RangeKind::Mmio, 0xfe00_0000, 0x10, dev.clone())
        .unwrap();
    // Claim more than the device covers, so the guest's accesses past it reach the server.
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0xfe00_0000, 0xfe00_0fff)
        .unwrap();
    let vcpu = sim.vcpu(dom, 0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let t = s.spawn(|| srv.run(&mut bus, &stop));
        // Past the device: all-ones.
        assert_eq!(vcpu.mmio_read(0xfe00_0100, 4).unwrap(), 0xffff_ffff);
        // Straddling its end: never half-delivered.
        assert_eq!(vcpu.mmio_read(0xfe00_000c, 8).unwrap(), u64::MAX);
        vcpu.mmio_write(0xfe00_000e, 4, 1).unwrap();
        // Inside: delivered.
        assert_eq!(vcpu.mmio_read(0xfe00_0008, 8).unwrap(), 1 << 32 | 8);
        stop.store(true, Ordering::Release);
        sim.wake();
        t.join().unwrap().unwrap();
    });
    assert_eq!(bus.unclaimed_accesses(), 3);
    assert_eq!(seen(&dev).len(), 1);
}

#[test]
fn bad_ranges_are_refused_and_removal_gives_the_device_back() {
    let mut bus = IoBus::new();
    let p = || Probe::new(0);
    assert!(bus.insert(RangeKind::Port, 0x10, 0, p()).is_err(), "empty");
    assert!(
        bus.insert(RangeKind::Port, 0xfff0, 0x20, p()).is_err(),
        "ports end at 0xffff"
    );
    assert!(
        bus.insert(RangeKind::Mmio, u64::MAX, 2, p()).is_err(),
        "wraps"
    );
    bus.insert(RangeKind::Port, 0x100, 0x10, p()).unwrap();
    for (start, len) in [(0xf8, 0x10), (0x10f, 1), (0x100, 1), (0x0, 0x1000)] {
        let e = bus.insert(RangeKind::Port, start, len, p()).unwrap_err();
        assert!(e.to_string().contains("overlapping"), "{e}");
    }
    // Another space, or adjacent: fine.
    bus.insert(RangeKind::Mmio, 0x100, 0x10, p()).unwrap();
    bus.insert(RangeKind::Port, 0x110, 1, p()).unwrap();
    bus.insert(RangeKind::Port, 0xff, 1, p()).unwrap();
    assert!(bus.remove(RangeKind::Port, 0x101).is_none());
    assert!(bus.remove(RangeKind::Port, 0x100).is_some());
    bus.insert(RangeKind::Port, 0x100, 0x10, p()).unwrap();
    assert_eq!(bus.ranges().len(), 4);
    assert!(format!("{bus:?}").contains("IoBus"));
}

#[test]
fn a_refused_claim_releases_what_the_bus_claimed() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    // Xen refuses a range overlapping one the same server claimed.
    srv.map_range(RangeKind::Mmio, 0x9800, 0x98ff).unwrap();
    let mut bus = IoBus::new();
    bus.insert(RangeKind::Port, 0x80, 1, Probe::new(0)).unwrap();
    bus.insert(RangeKind::Mmio, 0x9800, 0x10, Probe::new(1))
        .unwrap();
    let e = bus
        .claim(&mut srv)
        .expect_err("the MMIO range overlaps one the server claimed");
    assert!(e.to_string().contains("EEXIST"), "{e}");
    // The port the bus claimed first was released again, so claiming it now succeeds.
    srv.map_range(RangeKind::Port, 0x80, 0x80).unwrap();
}

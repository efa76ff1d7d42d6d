//! Every request a server takes is answered, whatever fails, and the device only ever sees
//! addresses inside the ranges the server claims. On the simulator, checking what the vCPU
//! receives: a handler that panics (caught by the caller, or unwinding through the server's
//! drop), a notify that fails in the middle of a batch, requests outside every claimed range
//! (a range released while a request was in flight, a repeated access running past its range or
//! past the end of the address space, and random requests put straight into the slot), and a
//! buffered ring whose write pointer is more than a ring ahead.
#![cfg(feature = "sim")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use xen::dm::RangeKind;
use xen::ioreq::{Buffered, Handler, Invalid, IoreqServer, ServerOptions, Size, Space};
use xen::platform::{DeviceModel, EventChannels, ForeignMemory, Version};
use xen::sim::{ioreq, GuestError, Sim, SimPages};
use xen::sys::{IoreqType, XenMemResourceType};
use xen::{DomId, Error, EvtchnPort, Xen, XenVersion};

/// Answers reads with the address; panics on the read of `PANIC_AT` (while `armed`).
struct Panicky {
    armed: bool,
    seen: Vec<(Space, u64)>,
}

const PANIC_AT: u64 = 0x1ff0;

impl Handler for Panicky {
    fn read(&mut self, space: Space, addr: u64, _: Size) -> u64 {
        self.seen.push((space, addr));
        if self.armed && addr == PANIC_AT {
            self.armed = false;
            panic!("the device model has a bug");
        }
        addr
    }
    fn write(&mut self, space: Space, addr: u64, _: Size, _: u64) {
        self.seen.push((space, addr));
    }
}

fn guest(vcpus: u32) -> (Sim, DomId, Xen<Sim>) {
    let sim = Sim::new();
    let dom = sim.create_guest(vcpus);
    let xen = Xen::new(sim.clone()).unwrap();
    (sim, dom, xen)
}

fn quiet_panics() {
    // The panics here are the point; keep the test output readable.
    std::panic::set_hook(Box::new(|_| {}));
}

#[test]
fn a_handler_that_panics_leaves_no_vcpu_waiting_and_the_server_goes_on() {
    quiet_panics();
    let (sim, dom, xen) = guest(2);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let mut dev = Panicky {
        armed: true,
        seen: Vec::new(),
    };
    // Xen marks freshly bound ports pending: take that batch first.
    srv.serve_once(&mut dev).unwrap();
    // Both vCPUs read at once: one batch of two events, the first request panics.
    assert_eq!(sim.post_mmio(dom, 0, PANIC_AT, 4, None), Ok(None));
    assert_eq!(sim.post_mmio(dom, 1, PANIC_AT, 4, None), Ok(None));
    let r = catch_unwind(AssertUnwindSafe(|| srv.serve_once(&mut dev)));
    assert!(r.is_err(), "the handler's panic did not reach the caller");
    // The request being served when the handler panicked was answered as invalid: all-ones.
    let answers = [sim.collect(dom, 0), sim.collect(dom, 1)];
    assert_eq!(
        answers.iter().filter(|a| **a == Ok(0xffff_ffff)).count(),
        1,
        "{answers:?}"
    );
    // The rest of the batch was taken from the evtchn device but not handled yet: the next call
    // handles it before waiting for anything new (else that vCPU would wait forever: its port
    // is masked until the batch is unmasked).
    let pending = answers
        .iter()
        .position(|a| a.is_err())
        .expect("one still to answer");
    srv.serve_once(&mut dev).unwrap();
    assert_eq!(sim.collect(dom, pending as u32), Ok(PANIC_AT));
    // And the server serves as before.
    let v = sim.vcpu(dom, 0).with_timeout(Duration::from_secs(5));
    std::thread::scope(|s| {
        let g = s.spawn(|| v.mmio_read(0x1008, 4));
        // One event: the read.
        assert_eq!(srv.serve_once(&mut dev), Ok(1));
        assert_eq!(g.join().unwrap(), Ok(0x1008));
    });
}

#[test]
fn a_panic_unwinding_through_the_server_still_answers_the_vcpu() {
    quiet_panics();
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    srv.serve_once(&mut Panicky {
        armed: false,
        seen: Vec::new(),
    })
    .unwrap();
    let v = sim.vcpu(dom, 0).with_timeout(Duration::from_secs(5));
    std::thread::scope(|s| {
        let g = s.spawn(|| v.mmio_read(PANIC_AT, 4));
        // The server's owner panics with it: the server is dropped while unwinding.
        let served = s.spawn(move || {
            let mut dev = Panicky {
                armed: true,
                seen: Vec::new(),
            };
            loop {
                srv.serve_once(&mut dev).unwrap();
            }
        });
        assert!(served.join().is_err(), "the server thread did not panic");
        // Not a timeout, not a crashed domain: the answer of an invalid request.
        assert_eq!(g.join().unwrap(), Ok(0xffff_ffff));
    });
    assert_eq!(sim.crashed(dom), None);
}

/// The simulator with a notify that fails once for one port.
#[derive(Clone)]
struct FailingNotify {
    sim: Sim,
    fail_port: std::sync::Arc<AtomicU32>,
}

impl Version for FailingNotify {
    fn xen_version(&self) -> Result<XenVersion, Error> {
        self.sim.xen_version()
    }
}
impl DeviceModel for FailingNotify {
    fn dm_op(&self, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        self.sim.dm_op(domid, bufs)
    }
}
impl ForeignMemory for FailingNotify {
    type Pages = SimPages;
    fn map_resource(
        &self,
        domid: DomId,
        ty: XenMemResourceType,
        id: u32,
        frame: u32,
        nr: u32,
    ) -> Result<SimPages, Error> {
        self.sim.map_resource(domid, ty, id, frame, nr)
    }
    fn read_guest(&self, domid: DomId, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.sim.read_guest(domid, gpa, buf)
    }
    fn write_guest(&self, domid: DomId, gpa: u64, buf: &[u8]) -> Result<(), Error> {
        self.sim.write_guest(domid, gpa, buf)
    }
}
impl EventChannels for FailingNotify {
    fn bind_interdomain(&self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, Error> {
        self.sim.bind_interdomain(remote, port)
    }
    fn unbind(&self, port: EvtchnPort) -> Result<(), Error> {
        self.sim.unbind(port)
    }
    fn notify(&self, port: EvtchnPort) -> Result<(), Error> {
        if self
            .fail_port
            .compare_exchange(port.0, u32::MAX, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Err(Error::Os {
                op: "IOCTL_EVTCHN_NOTIFY",
                errno: 5,
            });
        }
        self.sim.notify(port)
    }
    fn wait_pending(&self, out: &mut [EvtchnPort]) -> Result<usize, Error> {
        self.sim.wait_pending(out)
    }
    fn unmask(&self, ports: &[EvtchnPort]) -> Result<(), Error> {
        self.sim.unmask(ports)
    }
}

#[test]
fn a_failed_notify_does_not_drop_the_rest_of_the_batch() {
    let sim = Sim::new();
    let dom = sim.create_guest(3);
    let p = FailingNotify {
        sim: sim.clone(),
        fail_port: std::sync::Arc::new(AtomicU32::new(u32::MAX)),
    };
    let xen = Xen::new(p.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let mut dev = Panicky {
        armed: false,
        seen: Vec::new(),
    };
    srv.serve_once(&mut dev).unwrap();
    let ports: Vec<_> = srv.local_ports().collect();
    for v in 0..3 {
        assert_eq!(
            sim.post_mmio(dom, v, 0x1100 + 8 * u64::from(v), 4, None),
            Ok(None)
        );
    }
    // The notify of vCPU 0's answer fails; whatever the order in the batch, the other two are
    // still answered and notified, and the error is reported.
    p.fail_port.store(ports[0].0, Ordering::SeqCst);
    assert_eq!(
        srv.serve_once(&mut dev),
        Err(Error::Os {
            op: "IOCTL_EVTCHN_NOTIFY",
            errno: 5
        })
    );
    for v in 0..3 {
        assert_eq!(
            sim.collect(dom, v),
            Ok(0x1100 + 8 * u64::from(v)),
            "vCPU {v}"
        );
    }
    assert_eq!(srv.stats().requests, 3);
}

/// Records what reaches the device and what is refused.
#[derive(Default)]
struct Rec {
    seen: Vec<(Space, u64, Size)>,
    refused: Vec<Invalid>,
}

impl Handler for Rec {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        self.seen.push((space, addr, size));
        0x42
    }
    fn write(&mut self, space: Space, addr: u64, size: Size, _: u64) {
        self.seen.push((space, addr, size));
    }
    fn invalid(&mut self, _: u32, why: Invalid) {
        self.refused.push(why);
    }
}

#[test]
fn a_request_in_flight_when_its_range_is_released_is_refused() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let mut dev = Rec::default();
    srv.serve_once(&mut dev).unwrap();
    assert_eq!(sim.post_mmio(dom, 0, 0x1800, 4, None), Ok(None));
    srv.unmap_range(RangeKind::Mmio, 0x1800, 0x1fff).unwrap();
    srv.serve_once(&mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(0xffff_ffff));
    assert!(dev.seen.is_empty(), "{:?}", dev.seen);
    assert_eq!(dev.refused, vec![Invalid::Unclaimed(0x1800)]);
    assert_eq!(srv.stats().invalid, 1);
}

#[test]
fn repeated_accesses_are_claimed_in_full_or_refused() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    srv.map_range(RangeKind::Mmio, 0xffff_ffff_ffff_f000, u64::MAX)
        .unwrap();
    srv.map_range(RangeKind::Port, 0x5000, 0x5003).unwrap();
    let id = srv.id();
    let mut dev = Rec::default();
    srv.serve_once(&mut dev).unwrap();
    let mut run = |r, dev: &mut Rec| {
        sim.post_unrouted(dom, 0, id, r).unwrap();
        srv.serve_once(dev).unwrap();
        sim.collect(dom, 0).unwrap()
    };
    // Four dwords from the last one of the range: three run past its end.
    let past_end = ioreq(IoreqType::COPY, 0x1ffc, 4, 4, Some(1), false, false);
    run(past_end, &mut dev);
    // Backwards (df) from the first dword: three below the range.
    let below = ioreq(IoreqType::COPY, 0x1000, 4, 4, Some(1), false, true);
    run(below, &mut dev);
    // Past the end of the address space: the last dword and one more wraps to 0.
    let wraps = ioreq(IoreqType::COPY, u64::MAX - 3, 4, 2, Some(1), false, false);
    run(wraps, &mut dev);
    // A 4-byte port access at the last claimed port spills over by 3.
    let port = ioreq(IoreqType::PIO, 0x5003, 4, 1, None, false, false);
    assert_eq!(run(port, &mut dev), 0xffff_ffff);
    // A PCI config access to a device the server does not claim.
    let pci = ioreq(
        IoreqType::PCI_CONFIG,
        3 << 32 | 0x10,
        4,
        1,
        None,
        false,
        false,
    );
    assert_eq!(run(pci, &mut dev), 0xffff_ffff);
    assert!(dev.seen.is_empty(), "{:?}", dev.seen);
    assert_eq!(dev.refused.len(), 5, "{:?}", dev.refused);
    // The same shapes inside the ranges are served in full.
    let inside = ioreq(IoreqType::COPY, 0x1ff0, 4, 4, Some(1), false, false);
    run(inside, &mut dev);
    let down = ioreq(IoreqType::COPY, 0x100c, 4, 4, Some(1), false, true);
    run(down, &mut dev);
    let last = ioreq(IoreqType::COPY, u64::MAX - 3, 4, 1, None, false, false);
    assert_eq!(run(last, &mut dev), 0x42);
    assert_eq!(dev.seen.len(), 9);
    assert_eq!(dev.refused.len(), 5);
}

#[derive(Clone, Copy, Debug)]
struct Claim(u64, u64);

const CLAIMS: [Claim; 2] = [Claim(0x1000, 0x1fff), Claim(0xfe00_0000, 0xfe00_0fff)];
const PORTS: Claim = Claim(0x5000, 0x50ff);

fn in_claims(space: Space, addr: u64, size: Size) -> bool {
    let Some(end) = addr.checked_add(u64::from(size.bytes()) - 1) else {
        return false;
    };
    match space {
        Space::Mmio => CLAIMS.iter().any(|c| c.0 <= addr && end <= c.1),
        Space::Port => PORTS.0 <= addr && end <= PORTS.1,
        Space::PciConfig { .. } => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Random requests put straight into the slot (no routing): every one is answered, and the
    /// device never sees an address outside the claimed ranges.
    #[test]
    fn the_device_only_sees_claimed_addresses(
        ty in prop_oneof![Just(IoreqType::COPY), Just(IoreqType::PIO), Just(IoreqType::PCI_CONFIG)],
        addr in prop_oneof![
            0x0fe0u64..0x2020,
            0xfdff_ffe0u64..0xfe00_1020,
            0x4fe0u64..0x5120,
            u64::MAX - 64..=u64::MAX,
            any::<u64>(),
        ],
        size in prop_oneof![Just(1u32), Just(2), Just(4), Just(8)],
        count in prop_oneof![Just(1u32), 1u32..40],
        write in any::<Option<u64>>(),
        df in any::<bool>(),
    ) {
        let (sim, dom, xen) = guest(1);
        let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
        for c in CLAIMS {
            srv.map_range(RangeKind::Mmio, c.0, c.1).unwrap();
        }
        srv.map_range(RangeKind::Port, PORTS.0, PORTS.1).unwrap();
        let mut dev = Rec::default();
        srv.serve_once(&mut dev).unwrap();
        let r = ioreq(ty, addr, size, count, write, false, df);
        sim.post_unrouted(dom, 0, srv.id(), r).unwrap();
        srv.serve_once(&mut dev).unwrap();
        let answer = sim.collect(dom, 0);
        prop_assert!(answer.is_ok(), "{:?}", answer);
        for &(space, a, s) in &dev.seen {
            prop_assert!(in_claims(space, a, s), "{:?} at {:#x} ({:?}) reached the device", space, a, s);
        }
    }
}

#[test]
fn a_buffered_write_pointer_a_ring_ahead_resynchronises_and_never_replays() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(
        &xen,
        dom,
        ServerOptions {
            buffered: Buffered::Atomic,
        },
    )
    .unwrap();
    srv.map_range(RangeKind::Mmio, 0, 0xf_ffff).unwrap();
    let buf_port = srv.local_ports().last().unwrap();
    let prod = sim.bufioreq_producer(dom).unwrap();
    let mut dev = Rec::default();
    // Two real writes, then the write pointer jumps 600 slots ahead (no sane producer does).
    assert!(prod.push(0x100, 4, 1));
    assert!(prod.push(0x104, 4, 2));
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(dev.seen.len(), 2);
    let (r, w) = prod.pointers();
    prod.set_pointers(r, w + 600);
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(
        dev.seen.len(),
        2,
        "stale slots were replayed: {:?}",
        dev.seen
    );
    assert_eq!(srv.stats().buffered_resyncs, 1);
    assert_eq!(prod.pointers(), (w + 600, w + 600));
    // Delivery goes on.
    assert!(prod.push(0x108, 4, 3));
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(dev.seen.last(), Some(&(Space::Mmio, 0x108, Size::B4)));
    assert_eq!(srv.stats().buffered, 3);
}

#[test]
fn guest_errors_are_not_hidden() {
    // The model's own refusal of an unrouted post to a missing server is typed.
    let (sim, dom, _xen) = guest(1);
    let r = ioreq(IoreqType::COPY, 0, 4, 1, None, false, false);
    assert_eq!(
        sim.post_unrouted(dom, 0, 7, r),
        Err(GuestError::NothingPosted)
    );
}

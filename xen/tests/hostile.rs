//! A hostile guest rewrites its ioreq slot while the server reads it. The server must take no
//! action on anything but its single copy: the fetch audit counts every byte read from shared
//! slots, and each request must cost exactly 32 bytes: one load of the state word plus one copy
//! of the other three words (the slot, once). A test-only mutation that re-reads `size` (a
//! double fetch) must be caught by the same check. Every access to the slot, the scribbler's
//! included, is an atomic access of a whole word: the test is data-race-free.
// Built only with `RUSTFLAGS="--cfg xen_fetch_audit"` (tests/run.sh does): the audit is a
// compiler flag, not a Cargo feature.
#![cfg(all(feature = "sim", xen_fetch_audit))]

use std::sync::atomic::{AtomicBool, Ordering};

use xen::dm::RangeKind;
use xen::ioreq::slot::audit;
use xen::ioreq::{Handler, Invalid, IoreqServer, ServerOptions, Size, Space};
use xen::sim::{ioreq, Sim};
use xen::sys::IoreqType;
use xen::Xen;

#[derive(Default)]
struct Counting {
    calls: u64,
    invalid: u64,
}

impl Handler for Counting {
    fn read(&mut self, _: Space, _: u64, size: Size) -> u64 {
        self.calls += 1;
        size.mask()
    }
    fn write(&mut self, _: Space, _: u64, size: Size, value: u64) {
        assert_eq!(
            value & !size.mask(),
            0,
            "value wider than its size reached the device"
        );
        self.calls += 1;
    }
    fn invalid(&mut self, _: u32, _: Invalid) {
        self.invalid += 1;
    }
}

/// Run `n` requests against a concurrently scribbling guest; returns (slot bytes read per
/// request, handler stats).
fn run(n: u64) -> (f64, Counting) {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0, u64::MAX).unwrap();
    srv.map_range(RangeKind::Port, 0, 0xffff).unwrap();
    let port = srv.local_ports().next().unwrap();
    let mut h = Counting::default();
    let stop = AtomicBool::new(false);
    let mut evil = sim.hostile_writer(dom, 0).unwrap();
    let before = audit::SLOT_BYTES_READ.load(Ordering::Relaxed);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                evil.scribble();
            }
        });
        for i in 0..n {
            let (ty, write) = match i % 4 {
                0 => (IoreqType::COPY, Some(i)),
                1 => (IoreqType::COPY, None),
                2 => (IoreqType::PIO, Some(i & 0xff)),
                _ => (IoreqType::PIO, None),
            };
            let r = ioreq(ty, (i * 8) & 0xfff8, 4, 1, write, false, false);
            assert_eq!(
                sim.post(dom, 0, r),
                Ok(None),
                "request {i} not routed to the server"
            );
            srv.handle_port(port, &mut h).unwrap();
            // Whatever the torn copy said, the vCPU gets an answer and the slot is freed.
            sim.collect(dom, 0).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let read = audit::SLOT_BYTES_READ.load(Ordering::Relaxed) - before;
    assert_eq!(srv.stats().requests, n);
    (read as f64 / n as f64, h)
}

#[test]
fn a_million_hostile_requests_are_each_fetched_exactly_once_and_a_double_fetch_is_caught() {
    // The state word and the other three words once per request; nothing else is ever read.
    let (per_request, h) = run(1_000_000);
    assert_eq!(per_request, 32.0, "slot bytes read per request");
    assert!(h.calls > 0, "no request reached the device");
    assert!(
        h.invalid > 0,
        "the scribbler never produced an invalid request (test too weak)"
    );

    // The mutation re-reads `size` after the copy: the audit must see it.
    audit::MUTANT_REFETCH_SIZE.store(true, Ordering::Relaxed);
    let (per_request, _) = run(20_000);
    audit::MUTANT_REFETCH_SIZE.store(false, Ordering::Relaxed);
    assert_ne!(per_request, 32.0, "a double fetch went unnoticed");
    assert_eq!(per_request, 40.0);
}

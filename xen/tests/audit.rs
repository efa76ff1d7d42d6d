//! The fetch audit's own counters, which the stub domain reports from real Xen: on the simulator
//! (no scribbler) every answered request costs one load of the state word and one copy of the
//! other three words (the 32-byte slot, once), one INPROCESS and one IORESP_READY write, each
//! forward; nothing else is read but the event-channel port words at set-up. A backward write, made by hand on a private slot, is counted as one.
// Built only with `RUSTFLAGS="--cfg xen_fetch_audit"` (tests/run.sh does): the audit is a
// compiler flag, not a Cargo feature.
#![cfg(all(feature = "sim", xen_fetch_audit))]

use xen::dm::RangeKind;
use xen::ioreq::slot::{audit, Slot};
use xen::ioreq::{Handler, IoreqServer, ServerOptions, Size, Space};
use xen::sim::{ioreq, Sim};
use xen::sys::{IoreqFlags, IoreqType, STATE_IORESP_READY};
use xen::Xen;

struct Echo;

impl Handler for Echo {
    fn read(&mut self, _: Space, addr: u64, _: Size) -> u64 {
        addr
    }
    fn write(&mut self, _: Space, _: u64, _: Size, _: u64) {}
}

// One test function: the counters are process-wide.
#[test]
fn every_answer_follows_one_copy_and_every_state_write_moves_forward() {
    const VCPUS: u32 = 2;
    const N: u64 = 1000;
    let sim = Sim::new();
    let dom = sim.create_guest(VCPUS);
    let xen = Xen::new(sim.clone()).unwrap();
    let before = audit::snapshot();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Port, 0, 0xffff).unwrap();
    let ports: Vec<_> = srv.local_ports().collect();
    for i in 0..N {
        let vcpu = (i % u64::from(VCPUS)) as u32;
        let r = ioreq(
            IoreqType::PIO,
            i & 0xfff,
            2,
            1,
            (i % 3 == 0).then_some(i),
            false,
            false,
        );
        assert_eq!(sim.post(dom, vcpu, r), Ok(None));
        srv.handle_port(ports[vcpu as usize], &mut Echo).unwrap();
        sim.collect(dom, vcpu).unwrap();
    }
    // An event with nothing READY: one state read, nothing else.
    srv.handle_port(ports[0], &mut Echo).unwrap();
    drop(srv);
    let a = audit::snapshot();
    let d = |f: fn(&audit::Snapshot) -> u64| f(&a) - f(&before);
    assert_eq!(d(|s| s.copies), N, "copies");
    assert_eq!(d(|s| s.inprocess), N, "INPROCESS writes");
    assert_eq!(d(|s| s.responses), N, "IORESP_READY writes");
    assert_eq!(d(|s| s.backward), 0, "backward state writes");
    // N events with a request, one without, and one state read per vCPU at teardown.
    assert_eq!(
        d(|s| s.state_reads),
        N + 1 + u64::from(VCPUS),
        "state reads"
    );
    assert_eq!(
        d(|s| s.other_bytes()),
        8 * u64::from(VCPUS),
        "bytes read besides state words and copies (the event-port words)"
    );

    // The detector itself: a slot that already holds a response, moved to INPROCESS.
    let mut mem = [0u64; 4];
    let slot_ptr = mem.as_mut_ptr().cast::<u8>();
    // SAFETY: 32 private, 8-aligned bytes that outlive the slot.
    let slot = unsafe { Slot::new(slot_ptr) };
    let flags = IoreqFlags(0).with_state(STATE_IORESP_READY);
    // SAFETY: the flags byte of our own buffer.
    unsafe { slot_ptr.add(30).write(flags.0) };
    let raw = slot.copy();
    let b0 = audit::snapshot().backward;
    slot.set_inprocess(&raw);
    assert_eq!(
        audit::snapshot().backward - b0,
        1,
        "a backward write went uncounted"
    );
    slot.complete(&raw, None);
    assert_eq!(
        audit::snapshot().backward - b0,
        1,
        "a forward write counted as backward"
    );
}

//! Integration tests of `IoreqServer` against the in-process hypervisor model (`xen::sim`):
//! setup/teardown order and leaks, version gating, error codes, every request type through a
//! real event loop, `rep`/`df`/`data_is_ptr`, invalid requests, invalidate/time-offset,
//! several vCPUs at once, ranges changing between requests, the buffered ring, and timeouts.
#![cfg(feature = "sim")]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xen::dm::RangeKind;
use xen::ioreq::{Buffered, Handler, Invalid, IoreqServer, ServerOptions, Size, Space, Stats};
use xen::sim::{ioreq, GuestError, Sim};
use xen::sys::IoreqType;
use xen::{DomId, Error, Xen, XenVersion};

// --- a recording device --------------------------------------------------------------------------

/// Everything the handler was told, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Read(Space, u64, Size),
    Write(Space, u64, Size, u64),
    Invalidate,
    TimeOffset(u64),
    Invalid(u32, Invalid),
    MemError(u32, u64),
}

#[derive(Default)]
struct RecState {
    log: Vec<Ev>,
    /// Last value written per (space, address).
    regs: HashMap<(Space, u64), u64>,
    /// Values to return, in order, for reads of (space, address) (before `regs`).
    fifo: HashMap<(Space, u64), VecDeque<u64>>,
    /// Whether to log reads/writes (off for the load test).
    quiet: bool,
}

/// The value of a never-written register: a full 64-bit pattern, so masking is visible.
fn pattern(addr: u64) -> u64 {
    0xfedc_ba98_7654_3210 ^ addr
}

/// A device shared between the serving thread and the test thread.
#[derive(Clone, Default)]
struct Rec(Arc<Mutex<RecState>>);

impl Rec {
    fn st(&self) -> std::sync::MutexGuard<'_, RecState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Take the log so far.
    fn take(&self) -> Vec<Ev> {
        std::mem::take(&mut self.st().log)
    }
    fn queue(&self, space: Space, addr: u64, values: &[u64]) {
        self.st()
            .fifo
            .entry((space, addr))
            .or_default()
            .extend(values.iter().copied());
    }
}

impl Handler for Rec {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        let mut st = self.st();
        if !st.quiet {
            st.log.push(Ev::Read(space, addr, size));
        }
        if let Some(v) = st.fifo.get_mut(&(space, addr)).and_then(|q| q.pop_front()) {
            return v;
        }
        st.regs
            .get(&(space, addr))
            .copied()
            .unwrap_or_else(|| pattern(addr))
    }
    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        let mut st = self.st();
        assert_eq!(value & !size.mask(), 0, "value wider than its size");
        if !st.quiet {
            st.log.push(Ev::Write(space, addr, size, value));
        }
        st.regs.insert((space, addr), value);
    }
    fn invalidate(&mut self) {
        self.st().log.push(Ev::Invalidate);
    }
    fn time_offset(&mut self, offset: u64) {
        self.st().log.push(Ev::TimeOffset(offset));
    }
    fn invalid(&mut self, vcpu: u32, why: Invalid) {
        self.st().log.push(Ev::Invalid(vcpu, why));
    }
    fn guest_memory_error(&mut self, vcpu: u32, gpa: u64) {
        self.st().log.push(Ev::MemError(vcpu, gpa));
    }
}

// --- helpers -------------------------------------------------------------------------------------

fn log_strs(sim: &Sim) -> Vec<String> {
    sim.call_log()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const NR_VCPUS: &str = "dm_op XEN_DMOP_nr_vcpus";
const CREATE: &str = "dm_op XEN_DMOP_create_ioreq_server";
const INFO: &str = "dm_op XEN_DMOP_get_ioreq_server_info";
const STATE: &str = "dm_op XEN_DMOP_set_ioreq_server_state";
const DESTROY: &str = "dm_op XEN_DMOP_destroy_ioreq_server";
const MAP: &str = "dm_op XEN_DMOP_map_io_range_to_ioreq_server";
const UNMAP: &str = "dm_op XEN_DMOP_unmap_io_range_from_ioreq_server";
const MAP_RES: &str = "map_resource";
const BIND: &str = "bind_interdomain";
const UNBIND: &str = "unbind";

/// Sets `stop` and wakes the loop when dropped (also when the test body panics, so the scope
/// can join the serving thread instead of hanging).
struct StopOnDrop<'a> {
    stop: &'a AtomicBool,
    sim: &'a Sim,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.sim.wake();
    }
}

/// Run `srv.run(handler)` in a thread while `body` plays the guest; returns `body`'s result.
fn serving<R>(
    sim: &Sim,
    srv: &mut IoreqServer<'_, Sim>,
    handler: &Rec,
    body: impl FnOnce() -> R,
) -> R {
    let stop = AtomicBool::new(false);
    let mut h = handler.clone();
    // The server's own handle wakes it (it may not be `sim`'s first).
    let own = srv.xen().platform().clone();
    let _ = sim;
    std::thread::scope(|s| {
        let t = s.spawn(|| srv.run(&mut h, &stop));
        let guard = StopOnDrop {
            stop: &stop,
            sim: &own,
        };
        let r = body();
        drop(guard);
        t.join()
            .expect("server thread panicked")
            .expect("run failed");
        r
    })
}

/// A simulated hypervisor with one HVM guest of `vcpus` vCPUs, and a `Xen` handle on it.
fn guest(vcpus: u32) -> (Sim, DomId, Xen<Sim>) {
    let sim = Sim::new();
    let dom = sim.create_guest(vcpus);
    let xen = Xen::new(sim.clone()).unwrap();
    (sim, dom, xen)
}

fn ones(size: u32) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    }
}

fn sbdf(bus: u32, dev: u32, func: u32) -> u32 {
    ((bus & 0xff) << 8) | ((dev & 0x1f) << 3) | (func & 7)
}

// --- 1. lifecycle --------------------------------------------------------------------------------

#[test]
fn lifecycle_setup_and_teardown_order() {
    let (sim, dom, xen) = guest(2);
    let srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    assert_eq!(
        log_strs(&sim),
        strs(&[NR_VCPUS, CREATE, MAP_RES, STATE, BIND, BIND])
    );
    assert_eq!(srv.vcpus(), 2);
    assert_eq!(srv.domid(), dom);
    assert_eq!(srv.id(), 0);
    assert_eq!(
        srv.local_ports().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(sim.servers(dom), 1);
    assert_eq!(sim.bound_ports(), 2);
    assert_eq!(srv.stats(), Stats::default());

    drop(srv);
    assert_eq!(sim.servers(dom), 0);
    assert_eq!(sim.bound_ports(), 0);
    assert_eq!(
        log_strs(&sim),
        strs(&[NR_VCPUS, CREATE, MAP_RES, STATE, BIND, BIND, UNBIND, UNBIND, STATE, DESTROY])
    );
}

#[test]
fn lifecycle_with_ranges_and_bufioreq_and_explicit_shutdown() {
    let (sim, dom, xen) = guest(2);
    let opts = ServerOptions {
        buffered: Buffered::Atomic,
    };
    let mut srv = IoreqServer::create(&xen, dom, opts).unwrap();
    assert_eq!(
        log_strs(&sim),
        strs(&[NR_VCPUS, CREATE, MAP_RES, STATE, INFO, BIND, BIND, BIND])
    );
    assert_eq!(
        srv.local_ports().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(sim.bound_ports(), 3);
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    srv.map_range(RangeKind::Port, 0x60, 0x6f).unwrap();
    srv.shutdown().unwrap();
    assert_eq!(sim.servers(dom), 0);
    assert_eq!(sim.bound_ports(), 0);
    let log = log_strs(&sim);
    assert_eq!(
        log[8..],
        strs(&[MAP, MAP, UNMAP, UNMAP, UNBIND, UNBIND, UNBIND, STATE, DESTROY])[..]
    );
}

#[test]
fn two_servers_get_distinct_ids_and_the_newest_claims_first() {
    let (sim, dom, xen) = guest(1);
    // A second server needs a handle of its own (its own event channel).
    let xen_b = Xen::new(sim.open_channel()).unwrap();
    let mut a = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let mut b = IoreqServer::create(&xen_b, dom, ServerOptions::default()).unwrap();
    assert_eq!((a.id(), b.id()), (0, 1));
    assert_eq!(sim.servers(dom), 2);
    a.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // Different servers may claim the same range.
    b.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let (ra, rb) = (Rec::default(), Rec::default());
    let v = serving(&sim, &mut b, &rb, || sim.vcpu(dom, 0).mmio_read(0x1000, 4));
    assert_eq!(v, Ok(pattern(0x1000) & 0xffff_ffff));
    assert_eq!(ra.take(), vec![]);
    assert_eq!(rb.take(), vec![Ev::Read(Space::Mmio, 0x1000, Size::B4)]);
    drop(b);
    assert_eq!(sim.servers(dom), 1);
    let v = serving(&sim, &mut a, &ra, || sim.vcpu(dom, 0).mmio_read(0x1004, 2));
    assert_eq!(v, Ok(pattern(0x1004) & 0xffff));
    assert_eq!(ra.take(), vec![Ev::Read(Space::Mmio, 0x1004, Size::B2)]);
    drop(a);
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
}

/// Two servers would share one handle's event channel and take each other's events: the
/// second is refused while the first lives; with a handle each, both get all their requests.
#[test]
fn one_server_per_handle_and_a_handle_each_serves_both() {
    let (sim, dom, xen) = guest(2);
    let mut a = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let e = IoreqServer::create(&xen, dom, ServerOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("already has an IoreqServer"), "{e}");
    assert_eq!(sim.servers(dom), 1, "nothing created for the refused one");
    let xen_b = Xen::new(sim.open_channel()).unwrap();
    let mut b = IoreqServer::create(&xen_b, dom, ServerOptions::default()).unwrap();
    a.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    b.map_range(RangeKind::Mmio, 0x8000, 0x8fff).unwrap();
    let (ra, rb) = (Rec::default(), Rec::default());
    // Each server waits on its own handle: A's events never reach B's wait, and B's never A's.
    let stop = AtomicBool::new(false);
    std::thread::scope(|t| {
        let (mut da, mut db) = (ra.clone(), rb.clone());
        let (sa, sb) = (&mut a, &mut b);
        let stop = &stop;
        t.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                sa.serve_once(&mut da).unwrap();
            }
        });
        t.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                sb.serve_once(&mut db).unwrap();
            }
        });
        for i in 0..50u64 {
            assert_eq!(
                sim.vcpu(dom, 0).mmio_read(0x1000 + i * 4, 4),
                Ok(pattern(0x1000 + i * 4) & 0xffff_ffff)
            );
            assert_eq!(
                sim.vcpu(dom, 1).mmio_read(0x8000 + i * 4, 4),
                Ok(pattern(0x8000 + i * 4) & 0xffff_ffff)
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        sim.wake();
        xen_b.platform().wake();
    });
    // Every request answered (above) by the server that claimed it, none by the other.
    let seen = |r: &Rec| {
        r.take()
            .into_iter()
            .map(|e| match e {
                Ev::Read(Space::Mmio, addr, Size::B4) => addr,
                other => panic!("unexpected {other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(&ra),
        (0..50).map(|i| 0x1000 + i * 4).collect::<Vec<_>>()
    );
    assert_eq!(
        seen(&rb),
        (0..50).map(|i| 0x8000 + i * 4).collect::<Vec<_>>()
    );
    assert_eq!((a.stats().requests, b.stats().requests), (50, 50));
    drop(a);
    // Its slot is free again.
    IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
}

/// A handler chosen at run time (`Box<dyn Handler>`) serves like any other.
#[test]
fn a_boxed_dyn_handler_serves() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let rec = Rec::default();
    let mut boxed: Box<dyn Handler + Send> = Box::new(rec.clone());
    let stop = AtomicBool::new(false);
    std::thread::scope(|t| {
        let (srv, stop) = (&mut srv, &stop);
        let h = &mut *boxed;
        t.spawn(move || srv.run(h, stop).unwrap());
        assert_eq!(
            sim.vcpu(dom, 0).mmio_read(0x1008, 4),
            Ok(pattern(0x1008) & 0xffff_ffff)
        );
        stop.store(true, Ordering::Release);
        sim.wake();
    });
    assert_eq!(rec.take(), vec![Ev::Read(Space::Mmio, 0x1008, Size::B4)]);
}

/// A device model killed mid-request: its successor takes the server over (`adopt`) and
/// serves the request the dead one had taken, the one posted while nobody listened, and what
/// comes next; the ranges it names are its own (released at teardown).
#[test]
fn a_successor_adopts_the_server_of_a_killed_device_model() {
    let (sim, dom, _) = guest(2);
    let first = sim.open_channel();
    let xen1 = Xen::new(first.clone()).unwrap();
    let mut old = IoreqServer::create(&xen1, dom, ServerOptions::default()).unwrap();
    old.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let id = old.id();
    let rec = Rec::default();
    let xen2 = Xen::new(sim.open_channel()).unwrap();
    let (v0, v1, stats) = std::thread::scope(|t| {
        // vCPU 0 reads; the first device model takes the request and is killed.
        let r0 = t.spawn(|| sim.vcpu(dom, 0).mmio_read(0x1010, 4));
        let start = std::time::Instant::now();
        while !sim.take_and_die(dom, 0) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no request to take"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::mem::forget(old);
        first.close_channel();
        // vCPU 1 reads while nobody listens.
        let r1 = t.spawn(|| sim.vcpu(dom, 1).mmio_read(0x1020, 4));
        std::thread::sleep(Duration::from_millis(20));
        let mut new = IoreqServer::adopt(
            &xen2,
            dom,
            id,
            ServerOptions::default(),
            &[(RangeKind::Mmio, 0x1000, 0x1fff)],
        )
        .unwrap();
        assert_eq!(new.id(), id);
        let (v0, v1) = serving(&sim, &mut new, &rec, || {
            (r0.join().unwrap(), r1.join().unwrap())
        });
        let v2 = serving(&sim, &mut new, &rec, || {
            sim.vcpu(dom, 0).mmio_read(0x1030, 2)
        });
        assert_eq!(v2, Ok(pattern(0x1030) & 0xffff));
        let stats = new.stats();
        new.shutdown().unwrap();
        (v0, v1, stats)
    });
    assert_eq!(
        v0,
        Ok(pattern(0x1010) & 0xffff_ffff),
        "the dead one's request"
    );
    assert_eq!(
        v1,
        Ok(pattern(0x1020) & 0xffff_ffff),
        "the one nobody heard"
    );
    assert_eq!(stats.requeued, 1);
    let mut seen = rec.take();
    seen.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        seen,
        vec![
            Ev::Read(Space::Mmio, 0x1010, Size::B4),
            Ev::Read(Space::Mmio, 0x1020, Size::B4),
            Ev::Read(Space::Mmio, 0x1030, Size::B2),
        ]
    );
    // Teardown released the adopted range and destroyed the server.
    assert_eq!(sim.servers(dom), 0);
    assert!(sim.call_log().iter().any(|c| c == UNMAP));
}

// --- 2. teardown at every setup step -------------------------------------------------------------

fn fail_every_step(opts: ServerOptions, setup: &[&str]) {
    for n in 1..=setup.len() as u32 {
        let (sim, dom, xen) = guest(2);
        sim.fail_call(n, 12);
        let err = IoreqServer::create(&xen, dom, opts)
            .err()
            .unwrap_or_else(|| panic!("create succeeded although call {n} failed"));
        assert_eq!(err.errno(), Some(12), "call {n}: {err:?}");
        assert_eq!(sim.servers(dom), 0, "server leaked when call {n} failed");
        assert_eq!(sim.bound_ports(), 0, "port leaked when call {n} failed");
        // The calls made: the first n of setup, then the undo of exactly what succeeded.
        let n = n as usize;
        let done = &setup[..n - 1];
        let mut expect: Vec<&str> = setup[..n].to_vec();
        let binds = done.iter().filter(|c| **c == BIND).count();
        expect.extend(std::iter::repeat_n(UNBIND, binds));
        if done.contains(&STATE) {
            expect.push(STATE);
        }
        if done.contains(&CREATE) {
            expect.push(DESTROY);
        }
        assert_eq!(log_strs(&sim), strs(&expect), "call {n}");
    }
}

#[test]
fn teardown_at_every_setup_step() {
    fail_every_step(
        ServerOptions::default(),
        &[NR_VCPUS, CREATE, MAP_RES, STATE, BIND, BIND],
    );
}

#[test]
fn teardown_at_every_setup_step_with_bufioreq() {
    fail_every_step(
        ServerOptions {
            buffered: Buffered::Atomic,
        },
        &[NR_VCPUS, CREATE, MAP_RES, STATE, INFO, BIND, BIND, BIND],
    );
}

#[test]
fn fail_call_after_the_last_setup_call_does_not_fire_during_create() {
    let (sim, dom, xen) = guest(2);
    sim.fail_call(7, 12);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    // The 7th call is the first range mapping: it fails, and the server keeps no record of it.
    let e = srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap_err();
    assert_eq!(e.errno(), Some(12));
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    drop(srv);
    let log = log_strs(&sim);
    assert_eq!(
        log[6..],
        strs(&[MAP, MAP, UNMAP, UNBIND, UNBIND, STATE, DESTROY])[..]
    );
}

// --- 3. version gating ---------------------------------------------------------------------------

#[test]
fn version_gating_refuses_nr_vcpus_on_4_14() {
    let sim = Sim::with_version(XenVersion::new(4, 14));
    let dom = sim.create_guest(2);
    let xen = Xen::new(sim.clone()).unwrap();
    assert_eq!(xen.running(), XenVersion::new(4, 14));
    let err = IoreqServer::create(&xen, dom, ServerOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::Unsupported {
            op: "XEN_DMOP_nr_vcpus",
            since: XenVersion::new(4, 15),
            running: XenVersion::new(4, 14),
        }
    );
    assert_eq!(err.errno(), None);
    assert_eq!(log_strs(&sim), Vec::<String>::new());
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
}

#[test]
fn version_4_15_is_enough() {
    let sim = Sim::with_version(XenVersion::new(4, 15));
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    assert_eq!(srv.vcpus(), 1);
}

// --- 4. errors -----------------------------------------------------------------------------------

#[test]
fn no_such_domain_is_esrch_from_nr_vcpus() {
    let sim = Sim::new();
    let _dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let err = IoreqServer::create(&xen, DomId(77), ServerOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::Os {
            op: "XEN_DMOP_nr_vcpus",
            errno: 3
        }
    );
    assert_eq!(log_strs(&sim), strs(&[NR_VCPUS]));
}

#[test]
fn pv_guest_is_einval() {
    let sim = Sim::new();
    let dom = sim.create_pv_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let err = IoreqServer::create(&xen, dom, ServerOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::Os {
            op: "XEN_DMOP_nr_vcpus",
            errno: 22
        }
    );
    assert_eq!(sim.servers(dom), 0);
}

#[test]
fn io_port_ranges_end_at_0xffff() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let calls = log_strs(&sim).len();
    // Wholly above the 16-bit port space, or running past its end: refused by the library
    // (errno 0), naming the range and why, before any dm_op.
    for (claim, start, end) in [
        (true, 0x10000, 0x10007),
        (true, 0xfff8, 0x10000),
        (false, 0x10000, 0x10000),
    ] {
        let e = if claim {
            srv.map_range(RangeKind::Port, start, end)
        } else {
            srv.unmap_range(RangeKind::Port, start, end)
        }
        .unwrap_err();
        assert_eq!(
            e,
            Error::Range {
                claim,
                kind: RangeKind::Port,
                start,
                end,
                errno: 0
            }
        );
        assert_eq!(e.errno(), None);
        let verb = if claim { "claiming" } else { "releasing" };
        assert_eq!(
            e.to_string(),
            format!("{verb} the Port range {start:#x}-{end:#x}: not a range of its kind: I/O ports end at 0xffff")
        );
    }
    assert_eq!(
        log_strs(&sim).len(),
        calls,
        "Xen never saw the refused ranges"
    );
    // The other reasons, each in words.
    let e = srv.map_range(RangeKind::Pci, 0, 0x1_0000_0000).unwrap_err();
    assert!(
        e.to_string().ends_with(": PCI SBDFs end at 0xffffffff"),
        "{e}"
    );
    let e = srv.map_range(RangeKind::Port, 0x70, 0x60).unwrap_err();
    assert!(e.to_string().ends_with(": it starts after its end"), "{e}");
    // The last port itself is a port.
    srv.map_range(RangeKind::Port, 0xfff8, 0xffff).unwrap();
    srv.shutdown().unwrap();
}

#[test]
fn range_errors() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    // Not ranges of their kind: refused before Xen sees them, naming the range.
    let e = srv.map_range(RangeKind::Mmio, 0x2000, 0x1fff).unwrap_err();
    assert_eq!(
        e,
        Error::Range {
            claim: true,
            kind: RangeKind::Mmio,
            start: 0x2000,
            end: 0x1fff,
            errno: 0
        }
    );
    assert_eq!(e.errno(), None);
    let e = srv.map_range(RangeKind::Port, 0xfff0, 0x10000).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("claiming the Port range 0xfff0-0x10000: not a range of its kind"),
        "{e}"
    );
    assert!(srv.map_range(RangeKind::Pci, 0, 0x1_0000_0000).is_err());
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    for (a, b) in [
        (0x1000, 0x1fff),
        (0x800, 0x1000),
        (0x1fff, 0x3000),
        (0x1800, 0x1810),
    ] {
        let e = srv.map_range(RangeKind::Mmio, a, b).unwrap_err();
        assert_eq!(e.errno(), Some(17), "{a:#x}..{b:#x}");
        assert_eq!(
            e.to_string(),
            format!("claiming the Mmio range {a:#x}-{b:#x}: EEXIST (errno 17): overlaps a range this server already claims")
        );
    }
    // The same numbers in another space do not overlap.
    srv.map_range(RangeKind::Port, 0x1000, 0x1fff).unwrap();
    let e = srv
        .unmap_range(RangeKind::Mmio, 0x3000, 0x3fff)
        .unwrap_err();
    assert_eq!(
        e,
        Error::Range {
            claim: false,
            kind: RangeKind::Mmio,
            start: 0x3000,
            end: 0x3fff,
            errno: 2
        }
    );
    assert!(e.to_string().ends_with("not claimed by this server"), "{e}");
    // Partly claimed is not claimed.
    let e = srv
        .unmap_range(RangeKind::Mmio, 0x1800, 0x2800)
        .unwrap_err();
    assert_eq!(e.errno(), Some(2));
    let e = srv.unmap_range(RangeKind::Pci, 0x1000, 0x1fff).unwrap_err();
    assert_eq!(e.errno(), Some(2));
    srv.unmap_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // Released: unmapping again fails, mapping again works.
    assert_eq!(
        srv.unmap_range(RangeKind::Mmio, 0x1000, 0x1fff)
            .unwrap_err()
            .errno(),
        Some(2)
    );
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // Teardown releases exactly the two live ranges (none of the failed ones): no error.
    srv.shutdown().unwrap();
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
}

// --- 5. every request type through the event loop ------------------------------------------------

const MMIO: u64 = 0x1000;
const MMIO_END: u64 = 0x1fff;
const PORT: u16 = 0x60;
const PORT_END: u16 = 0x6f;

fn claimed(srv: &mut IoreqServer<'_, Sim>) {
    srv.map_range(RangeKind::Mmio, MMIO, MMIO_END).unwrap();
    srv.map_range(RangeKind::Port, u64::from(PORT), u64::from(PORT_END))
        .unwrap();
    srv.map_range(
        RangeKind::Pci,
        u64::from(sbdf(0, 3, 0)),
        u64::from(sbdf(0, 3, 0)),
    )
    .unwrap();
}

#[test]
fn every_request_type_through_the_loop() {
    let (sim, dom, xen) = guest(2);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    let dev3 = Space::PciConfig {
        sbdf: sbdf(0, 3, 0),
    };
    serving(&sim, &mut srv, &dev, || {
        let v0 = sim.vcpu(dom, 0);
        let v1 = sim.vcpu(dom, 1);

        // MMIO reads of every size are masked to the size.
        for (size, sz) in [(1, Size::B1), (2, Size::B2), (4, Size::B4), (8, Size::B8)] {
            assert_eq!(v0.mmio_read(0x1100, size), Ok(pattern(0x1100) & ones(size)));
            assert_eq!(dev.take(), vec![Ev::Read(Space::Mmio, 0x1100, sz)]);
        }
        // MMIO writes: the device sees the value masked to the size.
        v1.mmio_write(0x1200, 2, 0xdead_beef_1234_5678).unwrap();
        assert_eq!(
            dev.take(),
            vec![Ev::Write(Space::Mmio, 0x1200, Size::B2, 0x5678)]
        );
        v1.mmio_write(0x1208, 8, 0x0123_4567_89ab_cdef).unwrap();
        assert_eq!(v0.mmio_read(0x1208, 8), Ok(0x0123_4567_89ab_cdef));
        assert_eq!(v1.mmio_read(0x1208, 4), Ok(0x89ab_cdef));
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Mmio, 0x1208, Size::B8, 0x0123_4567_89ab_cdef),
                Ev::Read(Space::Mmio, 0x1208, Size::B8),
                Ev::Read(Space::Mmio, 0x1208, Size::B4),
            ]
        );
        // The last bytes of the range are claimed.
        assert_eq!(
            v0.mmio_read(MMIO_END - 3, 4),
            Ok(pattern(MMIO_END - 3) & 0xffff_ffff)
        );
        assert_eq!(v0.mmio_read(MMIO_END, 1), Ok(pattern(MMIO_END) & 0xff));
        assert_eq!(
            dev.take(),
            vec![
                Ev::Read(Space::Mmio, MMIO_END - 3, Size::B4),
                Ev::Read(Space::Mmio, MMIO_END, Size::B1),
            ]
        );

        // Port I/O.
        assert_eq!(v0.pio_in(PORT, 1), Ok(pattern(0x60) & 0xff));
        assert_eq!(v0.pio_in(PORT + 2, 2), Ok(pattern(0x62) & 0xffff));
        v1.pio_out(PORT + 4, 4, 0x1_2345_6789).unwrap();
        assert_eq!(v1.pio_in(PORT + 4, 4), Ok(0x2345_6789));
        v0.pio_out(PORT_END, 1, 0x1ab).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Read(Space::Port, 0x60, Size::B1),
                Ev::Read(Space::Port, 0x62, Size::B2),
                Ev::Write(Space::Port, 0x64, Size::B4, 0x2345_6789),
                Ev::Read(Space::Port, 0x64, Size::B4),
                Ev::Write(Space::Port, 0x6f, Size::B1, 0xab),
            ]
        );

        // PCI config space of the claimed SBDF: the register offset is the address.
        v0.pci_config_write(sbdf(0, 3, 0), 0x10, 4, 0xfebf_0000)
            .unwrap();
        assert_eq!(v0.pci_config_read(sbdf(0, 3, 0), 0x10, 4), Ok(0xfebf_0000));
        assert_eq!(v1.pci_config_read(sbdf(0, 3, 0), 0x10, 2), Ok(0x0000));
        assert_eq!(
            v1.pci_config_read(sbdf(0, 3, 0), 0x0, 2),
            Ok(pattern(0) & 0xffff)
        );
        v1.pci_config_write(sbdf(0, 3, 0), 0x4, 1, 0x1_07).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(dev3, 0x10, Size::B4, 0xfebf_0000),
                Ev::Read(dev3, 0x10, Size::B4),
                Ev::Read(dev3, 0x10, Size::B2),
                Ev::Read(dev3, 0x0, Size::B2),
                Ev::Write(dev3, 0x4, Size::B1, 0x07),
            ]
        );

        // Unclaimed: all-ones of the size, nothing reaches the device.
        for size in [1, 2, 4, 8] {
            assert_eq!(v0.mmio_read(0x8000, size), Ok(ones(size)));
            assert_eq!(v0.mmio_read(MMIO - size as u64, size), Ok(ones(size)));
        }
        for size in [1, 2, 4] {
            assert_eq!(v1.pio_in(0x70, size), Ok(ones(size)));
        }
        assert_eq!(v0.pci_config_read(sbdf(0, 4, 0), 0, 4), Ok(0xffff_ffff));
        assert_eq!(v0.pci_config_read(sbdf(0, 3, 1), 0, 2), Ok(0xffff));
        v0.mmio_write(0x8000, 4, 1).unwrap();
        v0.pio_out(0x70, 1, 1).unwrap();
        v0.pci_config_write(sbdf(1, 3, 0), 0, 4, 1).unwrap();
        // Straddling the end (or the start) of a claimed range: unclaimed as a whole.
        assert_eq!(v0.mmio_read(MMIO_END - 1, 4), Ok(0xffff_ffff));
        assert_eq!(v0.mmio_read(MMIO_END - 3, 8), Ok(u64::MAX));
        assert_eq!(v0.mmio_read(MMIO - 1, 2), Ok(0xffff));
        v1.mmio_write(MMIO_END, 2, 5).unwrap();
        assert_eq!(v1.pio_in(PORT_END - 1, 4), Ok(0xffff_ffff));
        assert_eq!(v1.pio_in(PORT - 1, 2), Ok(0xffff));
        v1.pio_out(PORT_END, 2, 5).unwrap();
        assert_eq!(dev.take(), vec![]);

        // The device still answers after all that.
        assert_eq!(v1.mmio_read(0x1200, 2), Ok(0x5678));
        assert_eq!(dev.take(), vec![Ev::Read(Space::Mmio, 0x1200, Size::B2)]);
    });
    // Reads/writes that reached the server (unclaimed ones never do).
    assert_eq!(srv.stats().invalid, 0);
    assert_eq!(srv.stats().buffered, 0);
    assert_eq!(srv.stats().requests, 4 + 4 + 2 + 5 + 5 + 1);
}

#[test]
fn rep_without_guest_pointer() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        // rep stos to MMIO: the address moves, the value is repeated.
        v.raw(ioreq(
            IoreqType::COPY,
            0x1010,
            4,
            3,
            Some(0xaa55),
            false,
            false,
        ))
        .unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Mmio, 0x1010, Size::B4, 0xaa55),
                Ev::Write(Space::Mmio, 0x1014, Size::B4, 0xaa55),
                Ev::Write(Space::Mmio, 0x1018, Size::B4, 0xaa55),
            ]
        );
        // ... downwards with df.
        v.raw(ioreq(IoreqType::COPY, 0x1018, 2, 3, Some(7), false, true))
            .unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Mmio, 0x1018, Size::B2, 7),
                Ev::Write(Space::Mmio, 0x1016, Size::B2, 7),
                Ev::Write(Space::Mmio, 0x1014, Size::B2, 7),
            ]
        );
        // A repeated MMIO read answers the last element.
        let r = v
            .raw(ioreq(IoreqType::COPY, 0x1020, 1, 3, None, false, false))
            .unwrap();
        assert_eq!(r, pattern(0x1022) & 0xff);
        assert_eq!(
            dev.take(),
            vec![
                Ev::Read(Space::Mmio, 0x1020, Size::B1),
                Ev::Read(Space::Mmio, 0x1021, Size::B1),
                Ev::Read(Space::Mmio, 0x1022, Size::B1),
            ]
        );
        // Port I/O ignores count without a RAM operand (as QEMU does).
        v.raw(ioreq(IoreqType::PIO, 0x61, 1, 4, Some(0x3c), false, false))
            .unwrap();
        assert_eq!(
            v.raw(ioreq(IoreqType::PIO, 0x61, 1, 4, None, false, false)),
            Ok(0x3c)
        );
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Port, 0x61, Size::B1, 0x3c),
                Ev::Read(Space::Port, 0x61, Size::B1),
            ]
        );
    });
}

// --- 6. rep / df / data_is_ptr -------------------------------------------------------------------

#[test]
fn rep_outs_moves_ram_address_keeps_port() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    sim.guest_ram_write(
        dom,
        0x3000,
        &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08],
    );
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        v.rep_outs(0x64, 2, 0x3000, 4, false).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0201),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0403),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0605),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0807),
            ]
        );
        v.rep_outs(0x64, 2, 0x3006, 4, true).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0807),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0605),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0403),
                Ev::Write(Space::Port, 0x64, Size::B2, 0x0201),
            ]
        );
        v.rep_outs(0x60, 1, 0x3001, 3, false).unwrap();
        v.rep_outs(0x68, 4, 0x3004, 2, true).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Port, 0x60, Size::B1, 0x02),
                Ev::Write(Space::Port, 0x60, Size::B1, 0x03),
                Ev::Write(Space::Port, 0x60, Size::B1, 0x04),
                Ev::Write(Space::Port, 0x68, Size::B4, 0x0807_0605),
                Ev::Write(Space::Port, 0x68, Size::B4, 0x0403_0201),
            ]
        );
    });
    // RAM was only read.
    assert_eq!(
        sim.guest_ram_read(dom, 0x3000, 8),
        vec![0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]
    );
}

#[test]
fn rep_ins_writes_device_values_into_ram_in_order() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        // Device values wider than the access: only `size` bytes land in RAM.
        dev.queue(
            Space::Port,
            0x66,
            &[0xffff_a1b2, 0xffff_c3d4, 0xffff_e5f6, 0xffff_0718],
        );
        v.rep_ins(0x66, 2, 0x2000, 4, false).unwrap();
        assert_eq!(dev.take(), vec![Ev::Read(Space::Port, 0x66, Size::B2); 4]);
        assert_eq!(
            sim.guest_ram_read(dom, 0x2000, 10),
            vec![0xb2, 0xa1, 0xd4, 0xc3, 0xf6, 0xe5, 0x18, 0x07, 0, 0]
        );
        // df: the RAM address moves down from gpa.
        dev.queue(Space::Port, 0x66, &[0xa1b2, 0xc3d4, 0xe5f6, 0x0718]);
        v.rep_ins(0x66, 2, 0x2106, 4, true).unwrap();
        assert_eq!(dev.take(), vec![Ev::Read(Space::Port, 0x66, Size::B2); 4]);
        assert_eq!(
            sim.guest_ram_read(dom, 0x20fe, 12),
            vec![0, 0, 0x18, 0x07, 0xf6, 0xe5, 0xd4, 0xc3, 0xb2, 0xa1, 0, 0]
        );
        // Byte and dword elements.
        dev.queue(Space::Port, 0x60, &[0x11, 0x22, 0x33]);
        v.rep_ins(0x60, 1, 0x2200, 3, false).unwrap();
        dev.queue(Space::Port, 0x6c, &[0x4433_2211, 0x8877_6655]);
        v.rep_ins(0x6c, 4, 0x2300, 2, false).unwrap();
        assert_eq!(dev.take().len(), 5);
        assert_eq!(
            sim.guest_ram_read(dom, 0x2200, 4),
            vec![0x11, 0x22, 0x33, 0]
        );
        assert_eq!(
            sim.guest_ram_read(dom, 0x2300, 8),
            vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        );
    });
}

#[test]
fn rep_mmio_to_ram_moves_both_addresses() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        dev.queue(Space::Mmio, 0x1400, &[0x1111_1111_aaaa_aaaa]);
        dev.queue(Space::Mmio, 0x1404, &[0x2222_2222_bbbb_bbbb]);
        dev.queue(Space::Mmio, 0x1408, &[0x3333_3333_cccc_cccc]);
        v.rep_mmio_to_ram(0x1400, 4, 0x4000, 3, false).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Read(Space::Mmio, 0x1400, Size::B4),
                Ev::Read(Space::Mmio, 0x1404, Size::B4),
                Ev::Read(Space::Mmio, 0x1408, Size::B4),
            ]
        );
        assert_eq!(
            sim.guest_ram_read(dom, 0x4000, 16),
            vec![
                0xaa, 0xaa, 0xaa, 0xaa, 0xbb, 0xbb, 0xbb, 0xbb, 0xcc, 0xcc, 0xcc, 0xcc, 0, 0, 0, 0
            ]
        );
        // df: both go down, element i at addr - 4i -> gpa - 4i.
        dev.queue(Space::Mmio, 0x1508, &[0x0403_0201]);
        dev.queue(Space::Mmio, 0x1504, &[0x0807_0605]);
        dev.queue(Space::Mmio, 0x1500, &[0x0c0b_0a09]);
        v.rep_mmio_to_ram(0x1508, 4, 0x5008, 3, true).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Read(Space::Mmio, 0x1508, Size::B4),
                Ev::Read(Space::Mmio, 0x1504, Size::B4),
                Ev::Read(Space::Mmio, 0x1500, Size::B4),
            ]
        );
        assert_eq!(
            sim.guest_ram_read(dom, 0x5000, 12),
            vec![0x09, 0x0a, 0x0b, 0x0c, 0x05, 0x06, 0x07, 0x08, 0x01, 0x02, 0x03, 0x04]
        );
        // RAM to MMIO (rep movs the other way): a write with a guest pointer.
        sim.guest_ram_write(dom, 0x6000, &[1, 2, 3, 4, 5, 6, 7, 8]);
        v.raw(ioreq(
            IoreqType::COPY,
            0x1600,
            8,
            1,
            Some(0x6000),
            true,
            false,
        ))
        .unwrap();
        v.raw(ioreq(
            IoreqType::COPY,
            0x1702,
            2,
            2,
            Some(0x6002),
            true,
            true,
        ))
        .unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Mmio, 0x1600, Size::B8, 0x0807_0605_0403_0201),
                Ev::Write(Space::Mmio, 0x1702, Size::B2, 0x0403),
                Ev::Write(Space::Mmio, 0x1700, Size::B2, 0x0201),
            ]
        );
        // A rep running past the end of the claimed range is not claimed.
        v.rep_mmio_to_ram(MMIO_END - 7, 4, 0x7000, 3, false)
            .unwrap();
        assert_eq!(dev.take(), vec![]);
    });
}

#[test]
fn guest_pointer_outside_ram_is_reported() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    let end = xen::sim::GUEST_RAM as u64;
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        // rep outs from the last 2 bytes of RAM and beyond: the element beyond is reported and
        // not written to the device.
        sim.guest_ram_write(dom, end - 2, &[0x34, 0x12]);
        v.rep_outs(0x62, 2, end - 2, 2, false).unwrap();
        assert_eq!(
            dev.take(),
            vec![
                Ev::Write(Space::Port, 0x62, Size::B2, 0x1234),
                Ev::MemError(0, end),
            ]
        );
        // rep ins into RAM past the end: the device is still read.
        dev.queue(Space::Port, 0x62, &[0xbeef]);
        v.rep_ins(0x62, 2, end, 1, false).unwrap();
        assert_eq!(
            dev.take(),
            vec![Ev::Read(Space::Port, 0x62, Size::B2), Ev::MemError(0, end)]
        );
        assert_eq!(v.pio_in(0x62, 2), Ok(0x1234));
    });
}

// --- 7. invalid requests -------------------------------------------------------------------------

#[test]
fn invalid_requests_are_answered_and_reported() {
    let (sim, dom, xen) = guest(2);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    // Xen accepts a port range past 0xffff (the library refuses to claim one): claimed with
    // the raw dm_op, such a request reaches the server.
    xen.dm_op(
        dom,
        xen::sys::XenDmop::MAP_IO_RANGE_TO_IOREQ_SERVER,
        "XEN_DMOP_map_io_range_to_ioreq_server",
        xen::sys::XenDmOpIoreqServerRange {
            id: srv.id(),
            r#type: xen::sys::XenDmopIoRangeType::PORT,
            start: 0x1_0000,
            end: 0x1_000f,
            ..Default::default()
        },
    )
    .unwrap();
    let dev = Rec::default();
    let sb = u64::from(sbdf(0, 3, 0)) << 32;
    serving(&sim, &mut srv, &dev, || {
        let v0 = sim.vcpu(dom, 0);
        let v1 = sim.vcpu(dom, 1);
        let check_alive = |expect_log: Vec<Ev>| {
            assert_eq!(dev.take(), expect_log);
            assert_eq!(v0.mmio_read(0x1100, 1), Ok(pattern(0x1100) & 0xff));
            assert_eq!(dev.take(), vec![Ev::Read(Space::Mmio, 0x1100, Size::B1)]);
        };

        // Size 3 read: answered with all-ones of 4 bytes.
        assert_eq!(
            v0.raw(ioreq(IoreqType::COPY, 0x1000, 3, 1, None, false, false)),
            Ok(0xffff_ffff)
        );
        check_alive(vec![Ev::Invalid(0, Invalid::Size(3))]);
        // Other bad sizes: 0 -> 1 byte, 5..8 -> 8 bytes; on vCPU 1.
        assert_eq!(
            v1.raw(ioreq(IoreqType::COPY, 0x1000, 0, 1, None, false, false)),
            Ok(0xff)
        );
        assert_eq!(
            v1.raw(ioreq(IoreqType::COPY, 0x1000, 6, 1, None, false, false)),
            Ok(u64::MAX)
        );
        check_alive(vec![
            Ev::Invalid(1, Invalid::Size(0)),
            Ev::Invalid(1, Invalid::Size(6)),
        ]);
        // A write of a bad size is dropped.
        v0.raw(ioreq(IoreqType::COPY, 0x1000, 3, 1, Some(9), false, false))
            .unwrap();
        check_alive(vec![Ev::Invalid(0, Invalid::Size(3))]);

        // count 0.
        assert_eq!(
            v0.raw(ioreq(IoreqType::COPY, 0x1000, 4, 0, None, false, false)),
            Ok(0xffff_ffff)
        );
        v0.raw(ioreq(IoreqType::PIO, 0x60, 2, 0, Some(1), false, false))
            .unwrap();
        check_alive(vec![
            Ev::Invalid(0, Invalid::CountZero),
            Ev::Invalid(0, Invalid::CountZero),
        ]);

        // Unknown type 5 (routed as memory by the model).
        let mut r = ioreq(IoreqType::COPY, 0x1000, 2, 1, None, false, false);
        r.r#type = IoreqType(5);
        assert_eq!(v1.raw(r), Ok(0xffff));
        check_alive(vec![Ev::Invalid(1, Invalid::UnknownType(5))]);

        // PIO above 0xffff (XSA-199): all-ones of the size.
        assert_eq!(
            v0.raw(ioreq(IoreqType::PIO, 0x1_0000, 2, 1, None, false, false)),
            Ok(0xffff)
        );
        v0.raw(ioreq(IoreqType::PIO, 0x1_0004, 1, 1, Some(1), false, false))
            .unwrap();
        check_alive(vec![
            Ev::Invalid(0, Invalid::PortOutOfRange(0x1_0000)),
            Ev::Invalid(0, Invalid::PortOutOfRange(0x1_0004)),
        ]);
        // PIO of 8 bytes.
        assert_eq!(
            v0.raw(ioreq(IoreqType::PIO, 0x60, 8, 1, None, false, false)),
            Ok(u64::MAX)
        );
        check_alive(vec![Ev::Invalid(0, Invalid::PortSize(8))]);

        // PCI config of 8 bytes, and with repeats or a guest pointer.
        assert_eq!(
            v1.raw(ioreq(
                IoreqType::PCI_CONFIG,
                sb | 0x10,
                8,
                1,
                None,
                false,
                false
            )),
            Ok(u64::MAX)
        );
        assert_eq!(
            v1.raw(ioreq(
                IoreqType::PCI_CONFIG,
                sb | 0x10,
                4,
                2,
                None,
                false,
                false
            )),
            Ok(0xffff_ffff)
        );
        // A read into guest RAM gets no value back (the RAM is left alone).
        let mut r = ioreq(IoreqType::PCI_CONFIG, sb | 0x10, 4, 1, None, true, false);
        r.data = 0x100;
        assert_eq!(v1.raw(r), Ok(0x100));
        assert_eq!(sim.guest_ram_read(dom, 0x100, 4), vec![0, 0, 0, 0]);
        check_alive(vec![
            Ev::Invalid(1, Invalid::PciSize(8)),
            Ev::Invalid(1, Invalid::PciShape),
            Ev::Invalid(1, Invalid::PciShape),
        ]);
    });
    let st = srv.stats();
    assert_eq!(st.invalid, 13);
    assert_eq!(st.requests, 13 + 8);
}

// --- 8. invalidate and time offset ---------------------------------------------------------------

#[test]
fn invalidate_and_time_offset_are_completed() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        let v = sim.vcpu(dom, 0);
        // The model routes these by address like memory accesses: use a claimed one.
        let mut inv = ioreq(IoreqType::INVALIDATE, 0x1000, 4, 1, Some(!0), false, false);
        assert!(v.raw(inv).is_ok());
        assert_eq!(dev.take(), vec![Ev::Invalidate]);
        // A read-shaped invalidate still only calls the hook.
        inv.flags = inv.flags.with_dir(xen::sys::IOREQ_READ);
        assert!(v.raw(inv).is_ok());
        assert_eq!(dev.take(), vec![Ev::Invalidate]);
        let t = ioreq(
            IoreqType::TIMEOFFSET,
            0x1000,
            8,
            1,
            Some(0xffff_ffff_ffff_fc18),
            false,
            false,
        );
        assert!(v.raw(t).is_ok());
        assert_eq!(dev.take(), vec![Ev::TimeOffset(0xffff_ffff_ffff_fc18)]);
        // And the vCPU goes on.
        assert_eq!(v.mmio_read(0x1000, 1), Ok(pattern(0x1000) & 0xff));
        assert_eq!(dev.take(), vec![Ev::Read(Space::Mmio, 0x1000, Size::B1)]);
    });
    assert_eq!(srv.stats().requests, 4);
    assert_eq!(srv.stats().invalid, 0);
}

// --- 9. several vCPUs at once --------------------------------------------------------------------

#[test]
fn four_vcpus_concurrently() {
    const N: u64 = 2_000;
    let (sim, dom, xen) = guest(4);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    claimed(&mut srv);
    let dev = Rec::default();
    dev.st().quiet = true;
    serving(&sim, &mut srv, &dev, || {
        std::thread::scope(|s| {
            let guests: Vec<_> = (0..4u32)
                .map(|vc| {
                    let v = sim.vcpu(dom, vc);
                    s.spawn(move || {
                        let reg = 0x1800 + u64::from(vc) * 8;
                        for i in 0..N {
                            let val = (u64::from(vc) << 56) | (i * 0x1_0001) | 0x00ab_0000_0000;
                            v.mmio_write(reg, 8, val).unwrap();
                            assert_eq!(v.mmio_read(reg, 8), Ok(val), "vcpu {vc} iteration {i}");
                        }
                    })
                })
                .collect();
            for g in guests {
                g.join().expect("guest thread failed");
            }
        });
    });
    let st = srv.stats();
    assert_eq!(st.requests, 4 * N * 2);
    assert_eq!(st.invalid, 0);
    for vc in 0..4u64 {
        let last = (vc << 56) | ((N - 1) * 0x1_0001) | 0x00ab_0000_0000;
        assert_eq!(dev.st().regs[&(Space::Mmio, 0x1800 + vc * 8)], last);
    }
    assert_eq!(sim.crashed(dom), None);
}

// --- 10. ranges changing between requests (single-threaded) --------------------------------------

#[test]
fn ranges_added_and_removed_between_requests() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let port = srv.local_ports().next().unwrap();
    let mut dev = Rec::default();

    // Nothing claimed yet: the model answers without the server.
    assert_eq!(
        sim.post_mmio(dom, 0, 0x9000, 4, None),
        Ok(Some(0xffff_ffff))
    );

    srv.map_range(RangeKind::Mmio, 0x9000, 0x9fff).unwrap();
    assert_eq!(sim.post_mmio(dom, 0, 0x9004, 4, Some(0x55)), Ok(None));
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(0x55));
    assert_eq!(sim.post_mmio(dom, 0, 0x9004, 4, None), Ok(None));
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(0x55));

    // A second range, then the first is released.
    srv.map_range(RangeKind::Mmio, 0xa000, 0xa00f).unwrap();
    srv.unmap_range(RangeKind::Mmio, 0x9000, 0x9fff).unwrap();
    assert_eq!(
        sim.post_mmio(dom, 0, 0x9004, 4, None),
        Ok(Some(0xffff_ffff))
    );
    assert_eq!(
        sim.post_mmio(dom, 0, 0x9004, 8, Some(1)),
        Ok(Some(u64::MAX))
    );
    assert_eq!(sim.post_mmio(dom, 0, 0xa00c, 4, None), Ok(None));
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(pattern(0xa00c) & 0xffff_ffff));
    // Straddling the end of the new range.
    assert_eq!(sim.post_mmio(dom, 0, 0xa00c, 8, None), Ok(Some(u64::MAX)));

    // Re-claim and the old register is still in the device.
    srv.map_range(RangeKind::Mmio, 0x9000, 0x9fff).unwrap();
    assert_eq!(sim.post_mmio(dom, 0, 0x9004, 2, None), Ok(None));
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(0x55));

    // Ports: claim, use, release.
    srv.map_range(RangeKind::Port, 0x3f8, 0x3ff).unwrap();
    let out = ioreq(IoreqType::PIO, 0x3f8, 1, 1, Some(0x41), false, false);
    assert_eq!(sim.post(dom, 0, out), Ok(None));
    srv.handle_port(port, &mut dev).unwrap();
    sim.collect(dom, 0).unwrap();
    srv.unmap_range(RangeKind::Port, 0x3f8, 0x3ff).unwrap();
    assert_eq!(sim.post(dom, 0, out), Ok(Some(0xff)));

    // A second handle of the same event finds nothing READY: spurious.
    let before = srv.stats();
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(srv.stats().spurious, before.spurious + 1);
    assert_eq!(srv.stats().requests, before.requests);
    // A port that is not ours is ignored.
    srv.handle_port(xen::EvtchnPort(999), &mut dev).unwrap();
    assert_eq!(srv.stats().spurious, before.spurious + 2);

    assert_eq!(
        dev.take(),
        vec![
            Ev::Write(Space::Mmio, 0x9004, Size::B4, 0x55),
            Ev::Read(Space::Mmio, 0x9004, Size::B4),
            Ev::Read(Space::Mmio, 0xa00c, Size::B4),
            Ev::Read(Space::Mmio, 0x9004, Size::B2),
            Ev::Write(Space::Port, 0x3f8, Size::B1, 0x41),
        ]
    );
    assert_eq!(srv.stats().requests, 5);
    drop(srv);
    // Teardown released the two live ranges (0xa000 and the re-claimed 0x9000), in reverse.
    let log = log_strs(&sim);
    let tail: Vec<&str> = log.iter().rev().take(7).rev().map(|s| s.as_str()).collect();
    assert_eq!(tail, vec![MAP, UNMAP, UNMAP, UNMAP, UNBIND, STATE, DESTROY]);
}

// --- 11. buffered ioreqs -------------------------------------------------------------------------

/// A server with a buffered ring that claims the first MiB of MMIO but for 0x1000..0x2000,
/// which tests claim for synchronous requests (the model's producer puts its writes below 1 MiB,
/// and buffered writes reach the handler only inside a claimed range).
fn buffered_server<'x>(xen: &'x Xen<Sim>, dom: DomId) -> IoreqServer<'x, Sim> {
    let mut srv = IoreqServer::create(
        xen,
        dom,
        ServerOptions {
            buffered: Buffered::Atomic,
        },
    )
    .unwrap();
    srv.map_range(RangeKind::Mmio, 0, 0xfff).unwrap();
    srv.map_range(RangeKind::Mmio, 0x2000, 0xf_ffff).unwrap();
    srv
}

#[test]
fn buffered_writes_of_every_size() {
    let (sim, dom, xen) = guest(2);
    let mut srv = buffered_server(&xen, dom);
    let ports: Vec<_> = srv.local_ports().collect();
    assert_eq!(ports.len(), 3);
    let buf_port = *ports.last().unwrap();
    let prod = sim.bufioreq_producer(dom).expect("buffered page");
    assert_eq!(prod.pointers(), (0, 0));
    let mut dev = Rec::default();

    assert!(prod.push(0xa0000, 1, 0x1ff));
    assert!(prod.push(0xa0002, 2, 0x1_2345));
    assert!(prod.push(0xa0004, 4, 0x1_8765_4321));
    assert!(prod.push(0xa0008, 8, 0x0102_0304_0506_0708));
    assert!(prod.push(0xfffff, 1, 0x7));
    assert_eq!(prod.pointers(), (0, 6));
    prod.notify();
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(
        dev.take(),
        vec![
            Ev::Write(Space::Mmio, 0xa0000, Size::B1, 0xff),
            Ev::Write(Space::Mmio, 0xa0002, Size::B2, 0x2345),
            Ev::Write(Space::Mmio, 0xa0004, Size::B4, 0x8765_4321),
            Ev::Write(Space::Mmio, 0xa0008, Size::B8, 0x0102_0304_0506_0708),
            Ev::Write(Space::Mmio, 0xfffff, Size::B1, 0x7),
        ]
    );
    assert_eq!(prod.pointers(), (6, 6));
    assert_eq!(srv.stats().buffered, 5);
    assert_eq!(srv.stats().requests, 0);

    // Nothing more: draining again does nothing.
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(dev.take(), vec![]);

    // Buffered writes queued before a synchronous request are seen first (handled on the vCPU's
    // port too).
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    assert!(prod.push(0xa0010, 4, 0xcafe));
    assert_eq!(sim.post_mmio(dom, 1, 0x1000, 4, None), Ok(None));
    srv.handle_port(ports[1], &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 1), Ok(pattern(0x1000) & 0xffff_ffff));
    assert_eq!(
        dev.take(),
        vec![
            Ev::Write(Space::Mmio, 0xa0010, Size::B4, 0xcafe),
            Ev::Read(Space::Mmio, 0x1000, Size::B4),
        ]
    );
    assert_eq!(prod.pointers(), (7, 7));
    assert_eq!(srv.stats().buffered, 6);
}

#[test]
fn buffered_eight_byte_write_needs_both_halves() {
    let (sim, dom, xen) = guest(1);
    let mut srv = buffered_server(&xen, dom);
    let buf_port = srv.local_ports().last().unwrap();
    let prod = sim.bufioreq_producer(dom).unwrap();
    let mut dev = Rec::default();
    assert!(prod.push(0x100, 8, 0xaaaa_bbbb_cccc_dddd));
    // Pretend only the first half has been published.
    prod.set_pointers(0, 1);
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(dev.take(), vec![]);
    assert_eq!(prod.pointers(), (0, 1));
    prod.set_pointers(0, 2);
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(
        dev.take(),
        vec![Ev::Write(
            Space::Mmio,
            0x100,
            Size::B8,
            0xaaaa_bbbb_cccc_dddd
        )]
    );
    assert_eq!(prod.pointers(), (2, 2));
}

#[test]
fn buffered_ring_full_and_wrap_around() {
    let (sim, dom, xen) = guest(1);
    let mut srv = buffered_server(&xen, dom);
    let buf_port = srv.local_ports().last().unwrap();
    let prod = sim.bufioreq_producer(dom).unwrap();
    let mut dev = Rec::default();

    // Pointers near 2^32: 10 writes wrap the u32 pointers.
    let start = u32::MAX - 3;
    prod.set_pointers(start, start);
    let sizes = [1u32, 2, 4, 1, 2, 4, 1, 2, 4, 2];
    for (i, &size) in sizes.iter().enumerate() {
        assert!(prod.push(0x2000 + i as u32 * 4, size, 0x1000 + i as u64));
    }
    assert_eq!(prod.pointers(), (start, 6));
    prod.notify();
    srv.handle_port(buf_port, &mut dev).unwrap();
    let expect: Vec<Ev> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            Ev::Write(
                Space::Mmio,
                0x2000 + i as u64 * 4,
                Size::from_bytes(size).unwrap(),
                (0x1000 + i as u64) & ones(size),
            )
        })
        .collect();
    assert_eq!(dev.take(), expect);
    assert_eq!(prod.pointers(), (6, 6));

    // An 8-byte write straddling the wrap of the pointers.
    prod.set_pointers(u32::MAX, u32::MAX);
    assert!(prod.push(0x3000, 8, 0x1122_3344_5566_7788));
    assert_eq!(prod.pointers(), (u32::MAX, 1));
    srv.handle_port(buf_port, &mut dev).unwrap();
    assert_eq!(
        dev.take(),
        vec![Ev::Write(
            Space::Mmio,
            0x3000,
            Size::B8,
            0x1122_3344_5566_7788
        )]
    );
    assert_eq!(prod.pointers(), (1, 1));

    // A full ring (511 slots) is drained completely, in order.
    prod.set_pointers(100, 100);
    let mut n = 0u32;
    while prod.push(0x4000 + (n % 64) * 4, 4, u64::from(n)) {
        n += 1;
    }
    assert_eq!(n, 511);
    srv.handle_port(buf_port, &mut dev).unwrap();
    let seen = dev.take();
    assert_eq!(seen.len(), 511);
    for (i, ev) in seen.iter().enumerate() {
        let i = i as u32;
        assert_eq!(
            *ev,
            Ev::Write(
                Space::Mmio,
                u64::from(0x4000 + (i % 64) * 4),
                Size::B4,
                u64::from(i)
            )
        );
    }
    assert_eq!(prod.pointers(), (611, 611));
    assert_eq!(srv.stats().buffered, 10 + 1 + 511);
}

#[test]
fn buffered_writes_through_the_event_loop() {
    let (sim, dom, xen) = guest(1);
    let mut srv = buffered_server(&xen, dom);
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let prod = sim.bufioreq_producer(dom).unwrap();
    let dev = Rec::default();
    serving(&sim, &mut srv, &dev, || {
        for i in 0..20u32 {
            assert!(prod.push(0x500 + i, 1, u64::from(i)));
        }
        prod.notify();
        // A synchronous request afterwards sees the ring drained before it.
        assert_eq!(
            sim.vcpu(dom, 0).mmio_read(0x1000, 1),
            Ok(pattern(0x1000) & 0xff)
        );
        let mut expect: Vec<Ev> = (0..20u64)
            .map(|i| Ev::Write(Space::Mmio, 0x500 + i, Size::B1, i))
            .collect();
        expect.push(Ev::Read(Space::Mmio, 0x1000, Size::B1));
        assert_eq!(dev.take(), expect);
    });
    assert_eq!(srv.stats().buffered, 20);
}

/// A device that signals the buffered port again from inside its write handler, i.e. while
/// `serve_once` is still processing that port (the event arrives while the port is masked).
struct Resignal<'a>(&'a xen::sim::BufProducer, u32);

impl Handler for Resignal<'_> {
    fn read(&mut self, _: Space, _: u64, _: Size) -> u64 {
        0
    }
    fn write(&mut self, _: Space, _: u64, _: Size, _: u64) {
        self.1 += 1;
        self.0.notify();
    }
}

#[test]
fn an_event_raised_while_its_port_is_masked_is_delivered_after_serve_once() {
    let (sim, dom, xen) = guest(1);
    let mut srv = buffered_server(&xen, dom);
    let prod = sim.bufioreq_producer(dom).unwrap();
    let mut dev = Resignal(&prod, 0);
    // Xen marks both freshly bound ports (vCPU 0, buffered) pending.
    assert_eq!(srv.serve_once(&mut dev), Ok(2));
    assert!(prod.push(0x500, 4, 7));
    prod.notify();
    assert_eq!(srv.serve_once(&mut dev), Ok(1));
    assert_eq!(dev.1, 1);
    // The signal from inside the handler was raised while masked: the unmask at the end of
    // serve_once delivers it, so the next wait returns it even though `wake` asks for 0.
    sim.wake();
    assert_eq!(srv.serve_once(&mut dev), Ok(1));
    // Exactly once: nothing else is pending now.
    sim.wake();
    assert_eq!(srv.serve_once(&mut dev), Ok(0));
    assert_eq!(srv.stats().buffered, 1);
}

#[test]
fn a_failed_notify_is_reported_and_the_port_is_still_unmasked() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x9000, 0x9fff).unwrap();
    let mut dev = Rec::default();
    // Xen marks the freshly bound port pending; nothing is posted yet.
    assert_eq!(srv.serve_once(&mut dev), Ok(1));

    assert_eq!(sim.post_mmio(dom, 0, 0x9008, 4, Some(0x77)), Ok(None));
    sim.fail_next_notify(5);
    let e = srv.serve_once(&mut dev).unwrap_err();
    assert_eq!(e.errno(), Some(5), "{e}");
    // The answer was published before the notify failed.
    assert_eq!(sim.collect(dom, 0), Ok(0x77));

    // The port was unmasked anyway: the next request on it is delivered and served (a port
    // left masked would make this wait return the wake-up's 0 instead).
    assert_eq!(sim.post_mmio(dom, 0, 0x9008, 4, None), Ok(None));
    sim.wake();
    assert_eq!(srv.serve_once(&mut dev), Ok(1));
    assert_eq!(sim.collect(dom, 0), Ok(0x77));
    assert_eq!(srv.stats().requests, 2);
}

// --- 12. timeouts --------------------------------------------------------------------------------

#[test]
fn request_times_out_without_a_server_loop() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let v = sim.vcpu(dom, 0).with_timeout(Duration::from_millis(50));
    let t0 = std::time::Instant::now();
    assert_eq!(v.mmio_read(0x1000, 4), Err(GuestError::Timeout));
    assert!(t0.elapsed() >= Duration::from_millis(50));
    // The request is still outstanding: the slot is busy.
    assert_eq!(
        sim.post_mmio(dom, 0, 0x1000, 4, None),
        Err(GuestError::Busy)
    );
    // Unclaimed accesses do not need the slot.
    assert_eq!(
        sim.post_mmio(dom, 0, 0x8000, 4, None),
        Ok(Some(0xffff_ffff))
    );
    // The late answer can still be collected once the server handles it.
    let mut dev = Rec::default();
    let port = srv.local_ports().next().unwrap();
    srv.handle_port(port, &mut dev).unwrap();
    assert_eq!(sim.collect(dom, 0), Ok(pattern(0x1000) & 0xffff_ffff));
    assert_eq!(sim.collect(dom, 0), Err(GuestError::NothingPosted));
    assert_eq!(sim.crashed(dom), None);
    // No such vCPU.
    assert_eq!(
        sim.vcpu(dom, 1).mmio_read(0x1000, 4),
        Err(GuestError::NoSuchVcpu)
    );
}

#[test]
fn partial_unmap_keeps_the_rest_and_teardown_is_clean() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // Xen releases a contained sub-range, splitting the claimed one.
    srv.unmap_range(RangeKind::Mmio, 0x1400, 0x17ff).unwrap();
    assert_eq!(
        sim.post_mmio(dom, 0, 0x1400, 4, None),
        Ok(Some(0xffff_ffff))
    );
    assert_eq!(
        sim.post_mmio(dom, 0, 0x17fc, 4, None),
        Ok(Some(0xffff_ffff))
    );
    let port = srv.local_ports().next().unwrap();
    let mut dev = Rec::default();
    for a in [0x13fc, 0x1800] {
        assert_eq!(sim.post_mmio(dom, 0, a, 4, None), Ok(None));
        srv.handle_port(port, &mut dev).unwrap();
        assert_eq!(sim.collect(dom, 0), Ok(pattern(a) & 0xffff_ffff));
    }
    // Teardown releases exactly what is still claimed: both pieces, without an error.
    srv.shutdown().unwrap();
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
    let log = log_strs(&sim);
    let unmaps = log.iter().filter(|s| *s == UNMAP).count();
    assert_eq!(unmaps, 3);
}

#[test]
fn ninth_server_is_enospc_and_leaks_nothing() {
    let (sim, dom, xen) = guest(1);
    let handles: Vec<_> = (0..8)
        .map(|_| Xen::new(sim.open_channel()).unwrap())
        .collect();
    let servers: Vec<_> = handles
        .iter()
        .map(|x| IoreqServer::create(x, dom, ServerOptions::default()).unwrap())
        .collect();
    assert_eq!(
        servers.iter().map(|s| s.id()).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    let before = sim.call_log().len();
    let err = IoreqServer::create(&xen, dom, ServerOptions::default())
        .err()
        .unwrap();
    assert_eq!(
        err,
        Error::Os {
            op: "XEN_DMOP_create_ioreq_server",
            errno: 28
        }
    );
    assert_eq!(sim.call_log()[before..], strs(&[NR_VCPUS, CREATE])[..]);
    assert_eq!((sim.servers(dom), sim.bound_ports()), (8, 8));
    drop(servers);
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
}

/// A device that panics on every access.
struct Panicking;

impl Handler for Panicking {
    fn read(&mut self, _: Space, _: u64, _: Size) -> u64 {
        panic!("device failure")
    }
    fn write(&mut self, _: Space, _: u64, _: Size, _: u64) {
        panic!("device failure")
    }
}

#[test]
fn handler_panic_tears_the_server_down() {
    let (sim, dom, xen) = guest(2);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let port = srv.local_ports().next().unwrap();
    assert_eq!(sim.post_mmio(dom, 0, 0x1000, 4, None), Ok(None));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut srv = srv;
        let _ = srv.handle_port(port, &mut Panicking);
    }));
    assert!(r.is_err());
    assert_eq!((sim.servers(dom), sim.bound_ports()), (0, 0));
    let log = sim.call_log();
    assert_eq!(
        log[log.len() - 5..],
        strs(&[UNMAP, UNBIND, UNBIND, STATE, DESTROY])[..]
    );
}

#[test]
fn teardown_after_the_guest_is_gone_succeeds_and_leaks_nothing() {
    let (sim, dom, xen) = guest(2);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // The guest shuts down: Xen destroys the domain and its servers.
    sim.destroy_domain(dom);
    assert_eq!(srv.shutdown(), Ok(()));
    assert_eq!(sim.servers(dom), 0);
    assert_eq!(sim.bound_ports(), 0);
}

#[test]
fn teardown_reports_real_errors_while_the_server_still_exists() {
    let (sim, dom, xen) = guest(1);
    let srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    // The next platform call (the first teardown dm_op) fails with EIO.
    sim.fail_call(1, 5);
    let e = srv.shutdown().unwrap_err();
    assert_eq!(e.errno(), Some(5));
    assert_eq!(sim.servers(dom), 0, "destroy still ran");
}

#[test]
fn a_request_in_flight_at_teardown_is_answered_as_unclaimed() {
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // The guest posts a 4-byte read; the server stops before serving it.
    assert_eq!(sim.post_mmio(dom, 0, 0x1000, 4, None), Ok(None));
    srv.shutdown().unwrap();
    // The vCPU is not left waiting: it gets what an unclaimed read gets.
    assert_eq!(sim.collect(dom, 0), Ok(0xffff_ffff));
}

#[test]
fn a_server_moving_the_state_backwards_crashes_the_domain() {
    use std::time::Duration;
    use xen::ioreq::slot::Slot;
    use xen::platform::{ForeignMemory, Pages};
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    // A broken emulator with its own view of the ioreq page.
    let pages = sim
        .map_resource(
            dom,
            xen::sys::XenMemResourceType::IOREQ_SERVER,
            u32::from(srv.id()),
            1,
            1,
        )
        .unwrap();
    // SAFETY: slot 0 of the live ioreq page.
    let slot = unsafe { Slot::new(pages.base()) };
    std::thread::scope(|s| {
        let guest = s.spawn(|| {
            sim.vcpu(dom, 0)
                .with_timeout(Duration::from_secs(5))
                .mmio_read(0x1000, 4)
        });
        while slot.state() != xen::sys::STATE_IOREQ_READY {
            std::thread::yield_now();
        }
        // INPROCESS (forward: fine), then back to READY: Xen crashes the domain (XSA-262).
        let raw = slot.copy();
        slot.set_inprocess(&raw);
        std::thread::sleep(Duration::from_millis(20));
        // Back to READY (that is the protocol violation): word 3 of the slot, stored atomically
        // like every access to it.
        // SAFETY: word 3 of the live, 8-aligned slot.
        let w3 = unsafe { std::sync::atomic::AtomicU64::from_ptr(pages.base().add(24).cast()) };
        let ready = u64::from(xen::sys::STATE_IOREQ_READY) << 48;
        let x = w3.load(std::sync::atomic::Ordering::Acquire);
        w3.store(
            x & !(0xf << 48) | ready,
            std::sync::atomic::Ordering::Release,
        );
        let r = guest.join().unwrap();
        assert!(
            matches!(r, Err(xen::sim::GuestError::DomainCrashed(_))),
            "{r:?}"
        );
    });
    assert!(
        sim.crashed(dom).unwrap().contains("moved from 2 to 1"),
        "{:?}",
        sim.crashed(dom)
    );
}

#[test]
fn invalidate_reaches_a_server_without_any_claimed_address() {
    struct Inv(u32);
    impl Handler for Inv {
        fn read(&mut self, _: Space, _: u64, _: Size) -> u64 {
            panic!("no access expected")
        }
        fn write(&mut self, _: Space, _: u64, _: Size, _: u64) {
            panic!("no access expected")
        }
        fn invalidate(&mut self) {
            self.0 += 1;
        }
    }
    let (sim, dom, xen) = guest(1);
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let port = srv.local_ports().next().unwrap();
    let mut h = Inv(0);
    let r = xen::sim::ioreq(
        xen::sys::IoreqType::INVALIDATE,
        0,
        4,
        1,
        Some(!0),
        false,
        false,
    );
    assert_eq!(
        sim.post(dom, 0, r),
        Ok(None),
        "routed to the server, not the null handler"
    );
    srv.handle_port(port, &mut h).unwrap();
    sim.collect(dom, 0).unwrap();
    assert_eq!(h.0, 1);
}

#[test]
fn a_server_on_a_shared_handle_owns_it_and_can_move_to_a_thread() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Arc::new(Xen::new(sim.clone()).unwrap());
    let mut srv = IoreqServer::create_shared(xen.clone(), dom, ServerOptions::default()).unwrap();
    // Still one server per handle, shared or not.
    let e = IoreqServer::create_shared(xen.clone(), dom, ServerOptions::default()).unwrap_err();
    assert!(e.to_string().contains("already has an IoreqServer"), "{e}");
    assert!(IoreqServer::create(&xen, dom, ServerOptions::default()).is_err());
    srv.map_range(RangeKind::Port, 0x80, 0x80).unwrap();
    // No borrow to outlive: the server moves into the serving thread, handle and all.
    let rec = Rec::default();
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (mut h, stop) = (rec.clone(), stop.clone());
        std::thread::spawn(move || {
            let r = srv.run(&mut h, &stop);
            (srv, r)
        })
    };
    sim.vcpu(dom, 0).pio_out(0x80, 1, 0x42).unwrap();
    stop.store(true, Ordering::Release);
    sim.wake();
    let (srv, r) = t.join().unwrap();
    r.unwrap();
    assert_eq!(rec.take(), [Ev::Write(Space::Port, 0x80, Size::B1, 0x42)]);
    // Dropping it tears it down and frees the handle's slot.
    drop(srv);
    assert!(log_strs(&sim).iter().any(|l| l == DESTROY));
    IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
}

//! Per-request cost of `IoreqServer` on the simulator against a hand-written raw loop over the
//! same page (read state, copy the slot, write data, release, IORESP_READY, notify), measured in
//! the same run. Prints both figures and the ratio (goal: at most 1.2).
//!
//! `cargo bench -p xen --features sim --bench ioreq`; `tests/bench-insns.sh` counts the
//! instructions per request of each side with callgrind (independent of the machine's load).

use std::hint::black_box;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use xen::dm::RangeKind;
use xen::ioreq::{Handler, IoreqServer, ServerOptions, Size, Space};
use xen::platform::EventChannels;
use xen::sim::{ioreq, Sim};
use xen::sys::{IoreqType, STATE_IORESP_READY};
use xen::Xen;

struct Regs([u64; 16]);
impl Handler for Regs {
    #[inline]
    fn read(&mut self, _: Space, a: u64, _: Size) -> u64 {
        self.0[(a as usize / 8) % 16]
    }
    #[inline]
    fn write(&mut self, _: Space, a: u64, _: Size, v: u64) {
        self.0[(a as usize / 8) % 16] = v;
    }
}

/// The hand-written baseline: what a C server does in place, on the same slot.
/// SAFETY: `slot` points to the live 32-byte slot of vCPU 0.
#[inline(never)]
unsafe fn raw_handle(sim: &Sim, port: xen::EvtchnPort, slot: *mut u8, regs: &mut [u64; 16]) {
    // SAFETY: the caller's contract.
    unsafe {
        if slot.add(30).read_volatile() & 0xf != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let addr = slot.cast::<u64>().read_volatile();
        let data = slot.add(8).cast::<u64>().read_volatile();
        let flags = slot.add(30).read_volatile();
        let i = (addr as usize / 8) % 16;
        if flags & 0x20 != 0 {
            slot.add(8).cast::<u64>().write_volatile(regs[i]);
        } else {
            regs[i] = data;
        }
        fence(Ordering::Release);
        slot.add(30)
            .write_volatile((flags & !0xf) | STATE_IORESP_READY);
    }
    sim.notify(port).unwrap();
}

fn main() {
    let n: u32 = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    let port = srv.local_ports().next().unwrap();
    let mut regs = Regs([0; 16]);
    let mut raw_regs = [0u64; 16];
    let reqs = [
        ioreq(IoreqType::COPY, 0x1008, 8, 1, Some(7), false, false),
        ioreq(IoreqType::COPY, 0x1008, 8, 1, None, false, false),
    ];
    // The slot address, found the way a guest-side tool would: post, then look for READY.
    let slot = {
        let pages = xen::platform::ForeignMemory::map_resource(
            &sim,
            dom,
            xen::sys::XenMemResourceType::IOREQ_SERVER,
            u32::from(srv.id()),
            1,
            1,
        )
        .unwrap();
        let p = xen::platform::Pages::base(&pages);
        std::mem::forget(pages); // keep the mapping alive for the run
        p
    };
    // BENCH_ONLY=lib or raw runs one side only, for an instruction count that does not depend
    // on the machine's load (valgrind --tool=callgrind at two values of BENCH_REQUESTS; the
    // difference per request is the side's cost, posting and collecting included).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (run_lib, run_raw) = (only != "raw", only != "lib");
    // BENCH_VIA=serve: the library side through `serve_once` (wait, handle, unmask) instead of
    // `handle_port` alone.
    let via_serve = std::env::var("BENCH_VIA").is_ok_and(|v| v == "serve");
    if via_serve {
        // Xen marks freshly bound ports pending: take that event first.
        srv.serve_once(&mut regs).unwrap();
    }
    let mut lib = Duration::ZERO;
    let mut raw = Duration::ZERO;
    for round in 0..4 {
        for i in 0..n {
            let r = reqs[i as usize % 2];
            let mut d = Duration::ZERO;
            let mut e = Duration::ZERO;
            if run_lib {
                sim.post(dom, 0, r).unwrap();
                let t = Instant::now();
                if via_serve {
                    // The whole serving step: wait for the event, handle it, unmask.
                    srv.serve_once(&mut regs).unwrap();
                } else {
                    srv.handle_port(port, &mut regs).unwrap();
                }
                d = t.elapsed();
                black_box(sim.collect(dom, 0).unwrap());
            }
            if run_raw {
                // Hand-written, same page, same request.
                sim.post(dom, 0, r).unwrap();
                let t = Instant::now();
                // SAFETY: `slot` is vCPU 0's slot of the live server.
                unsafe { raw_handle(&sim, port, slot, &mut raw_regs) };
                e = t.elapsed();
                black_box(sim.collect(dom, 0).unwrap());
            }
            if round > 0 {
                lib += d;
                raw += e;
            }
        }
    }
    let total = f64::from(n) * 3.0;
    let l = lib.as_nanos() as f64 / total;
    let r = raw.as_nanos() as f64 / total;
    println!("ioreq server (library):   {l:.0} ns/request");
    println!("hand-written raw loop:    {r:.0} ns/request");
    if run_lib && run_raw {
        println!("ratio library/raw:        {:.3} (goal <= 1.2)", l / r);
        assert_eq!(regs.0[1], raw_regs[1]);
    }
}

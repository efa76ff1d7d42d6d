//! Steady-state serving allocates nothing: a counting global allocator (per thread) around the
//! server's handling of requests.
#![cfg(feature = "sim")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use xen::dm::RangeKind;
use xen::ioreq::{Handler, IoreqServer, ServerOptions, Size, Space};
use xen::sim::{ioreq, Sim};
use xen::sys::IoreqType;
use xen::Xen;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

struct Regs([u64; 16]);
impl Handler for Regs {
    fn read(&mut self, _: Space, a: u64, _: Size) -> u64 {
        self.0[(a as usize / 8) % 16]
    }
    fn write(&mut self, _: Space, a: u64, _: Size, v: u64) {
        self.0[(a as usize / 8) % 16] = v;
    }
}

#[test]
fn serving_a_request_allocates_nothing() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
    srv.map_range(RangeKind::Port, 0x60, 0x6f).unwrap();
    let port = srv.local_ports().next().unwrap();
    let mut regs = Regs([0; 16]);
    let reqs = [
        ioreq(IoreqType::COPY, 0x1008, 8, 1, Some(7), false, false),
        ioreq(IoreqType::COPY, 0x1008, 8, 1, None, false, false),
        ioreq(IoreqType::PIO, 0x60, 1, 1, Some(3), false, false),
        ioreq(IoreqType::PIO, 0x60, 2, 1, None, false, false),
        ioreq(IoreqType::COPY, 0x1000, 4, 8, Some(1), false, false),
    ];
    let mut serve = |n: usize| -> u64 {
        let mut in_server = 0;
        for i in 0..n {
            sim.post(dom, 0, reqs[i % reqs.len()]).unwrap();
            let before = allocs();
            srv.handle_port(port, &mut regs).unwrap();
            in_server += allocs() - before;
            sim.collect(dom, 0).unwrap();
        }
        in_server
    };
    serve(1_000); // warm-up
    assert_eq!(
        serve(100_000),
        0,
        "heap allocations while serving 100,000 requests"
    );
}

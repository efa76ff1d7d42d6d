//! The bare (hypercall) platform against a fake hypervisor that checks the hypercall numbers,
//! sub-ops and argument memory, and answers as Xen would.

use std::cell::{Cell, RefCell};

use xen::bare::{Bare, FrameWindow, EVTCHN_PENDING_OFFSET};
use xen::platform::{EventChannels, ForeignMemory, Pages};
use xen::sys::*;
use xen::Xen;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

struct FakeXen {
    shared_info: *mut u8,
    next_port: Cell<u32>,
    log: RefCell<Vec<String>>,
}

// SAFETY: a test double that models Xen's answers on memory the test owns.
unsafe impl Hypercall for FakeXen {
    unsafe fn hypercall(&self, op: u32, a: [u64; 5]) -> i64 {
        self.log.borrow_mut().push(format!("{op}:{}", a[0]));
        // SAFETY (all arms): the pointers come from the platform under test and point to live
        // structs of the documented types.
        unsafe {
            match (op, a[0]) {
                (17, 0) => 0x0004_0011,
                (41, domid) => {
                    let bufs = a[2] as usize as *const XenDmOpBuf;
                    assert_eq!(a[1], 1, "one buffer");
                    let b = bufs.read();
                    assert!(b.size as usize >= 32);
                    let p = b.h.addr() as usize as *mut u8;
                    let dm_op = p.cast::<u32>().read();
                    if domid != 7 {
                        return -3;
                    }
                    match XenDmop(dm_op) {
                        XenDmop::NR_VCPUS => {
                            p.add(8).cast::<u32>().write(2);
                            0
                        }
                        _ => -95,
                    }
                }
                (32, 0) => {
                    let b = a[1] as usize as *mut EvtchnBindInterdomain;
                    let mut v = b.read();
                    assert_eq!((v.remote_dom, v.remote_port), (7, 3));
                    v.local_port = self.next_port.get();
                    self.next_port.set(v.local_port + 1);
                    b.write(v);
                    0
                }
                (32, 3) | (32, 4) => 0,
                (29, 3) => {
                    // SCHEDOP_poll: an event arrives on the first polled port.
                    let poll = (a[1] as usize as *const SchedPoll).read();
                    let port = (poll.ports.addr() as usize as *const u32).read();
                    let w = self
                        .shared_info
                        .add(EVTCHN_PENDING_OFFSET + (port as usize / 64) * 8)
                        .cast::<u64>();
                    w.write(w.read() | (1 << (port % 64)));
                    0
                }
                (12, 28) => {
                    let r = (a[1] as usize as *const XenMemAcquireResource).read();
                    assert_eq!(
                        (r.domid, r.r#type, r.id, r.frame, r.nr_frames),
                        (7, XenMemResourceType::IOREQ_SERVER, 1, 1, 1)
                    );
                    let gfns = r.frame_list.addr() as usize as *const XenPfn;
                    assert_eq!(gfns.read(), 0x1234);
                    0
                }
                _ => -38,
            }
        }
    }
}

static GFNS: [XenPfn; 2] = [0x1234, 0x1235];

#[test]
fn bare_platform_issues_the_right_hypercalls() {
    let mut shinfo = Box::new(Page([0; 4096]));
    let mut window = Box::new([Page([0; 4096]), Page([0; 4096])]);
    let fake = FakeXen {
        shared_info: shinfo.0.as_mut_ptr(),
        next_port: Cell::new(40),
        log: RefCell::new(Vec::new()),
    };
    let w = FrameWindow {
        va: window.as_mut_ptr().cast(),
        gfns: &GFNS,
    };
    // SAFETY: the pages live for the whole test.
    let bare = unsafe { Bare::new(fake, shinfo.0.as_mut_ptr(), Some(w)) };
    let xen = Xen::new(bare).unwrap();
    assert_eq!(xen.running(), XenVersion::new(4, 17));
    assert_eq!(xen.nr_vcpus(7), Ok(2));
    assert_eq!(xen.nr_vcpus(9).unwrap_err().errno(), Some(3));
    let p = xen.platform();
    let port = p.bind_interdomain(7, 3).unwrap();
    assert_eq!(port, 40);
    let mut out = [0u32; 4];
    // Nothing pending: the platform polls, the fake raises the port, the platform consumes it.
    assert_eq!(p.wait_pending(&mut out), Ok(1));
    assert_eq!(out[0], 40);
    let word = EVTCHN_PENDING_OFFSET; // port 40 is in the first word
    assert_eq!(
        u64::from_le_bytes(shinfo.0[word..word + 8].try_into().unwrap()) & (1 << 40),
        0,
        "pending bit consumed"
    );
    p.notify(port).unwrap();
    let pages = p
        .map_resource(7, XenMemResourceType::IOREQ_SERVER, 1, 1, 1)
        .unwrap();
    assert_eq!(pages.base(), window.as_mut_ptr().cast::<u8>());
    assert_eq!(pages.len(), 4096);
    p.unbind(port).unwrap();
    assert_eq!(
        p.wait_pending(&mut out),
        Ok(0),
        "no bound port: nothing to wait for"
    );
    let _ = &mut shinfo;
}

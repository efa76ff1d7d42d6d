//! The bare (hypercall) platform against a fake hypervisor that checks the hypercall numbers,
//! sub-ops and argument memory, and answers as Xen would.

use std::cell::{Cell, RefCell};

use xen::bare::{Bare, FrameWindow, EVTCHN_PENDING_OFFSET};
use xen::platform::{EventChannels, ForeignMemory, Pages};
use xen::sys::*;
use xen::{DomId, EvtchnPort, Gfn, Xen};

#[repr(C, align(4096))]
struct Page([u8; 4096]);

struct FakeXen {
    shared_info: *mut u8,
    next_port: Cell<u32>,
    log: RefCell<Vec<String>>,
    /// Domain 7's RAM, and the caller's scratch page (where a foreign frame "appears").
    guest_ram: RefCell<Vec<u8>>,
    scratch: *mut u8,
    mapped: Cell<Option<usize>>,
    /// What XENVER_version answers.
    version: i64,
    /// Refuse foreign mappings into the caller as x86 Xen before 4.19 does for a PVH domain
    /// (acquire_resource EACCES, gmfn_foreign EPERM per frame).
    refuse_foreign: bool,
}

// SAFETY: a test double that models Xen's answers on memory the test owns.
unsafe impl Hypercall for FakeXen {
    unsafe fn hypercall(&self, op: u32, a: [u64; 5]) -> i64 {
        self.log.borrow_mut().push(format!("{op}:{}", a[0]));
        // SAFETY (all arms): the pointers come from the platform under test and point to live
        // structs of the documented types.
        unsafe {
            match (op, a[0]) {
                (17, 0) => self.version,
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
                (12, 23) => {
                    let b = (a[1] as usize as *const XenAddToPhysmapBatch).read();
                    assert_eq!(
                        (b.domid, b.space, b.size, b.u.foreign_domid()),
                        (DOMID_SELF, Xenmapspace::GMFN_FOREIGN, 1, 7)
                    );
                    assert_eq!(
                        (b.gpfns.addr() as usize as *const XenPfn).read(),
                        0x1235,
                        "the scratch frame"
                    );
                    if self.refuse_foreign {
                        (b.errs.addr() as usize as *mut i32).write(-1);
                        return 0;
                    }
                    let gfn = (b.idxs.addr() as usize as *const XenUlong).read() as usize;
                    let ram = self.guest_ram.borrow();
                    if (gfn + 1) * 4096 > ram.len() {
                        (b.errs.addr() as usize as *mut i32).write(-22);
                        return 0;
                    }
                    std::ptr::copy_nonoverlapping(ram[gfn * 4096..].as_ptr(), self.scratch, 4096);
                    self.mapped.set(Some(gfn));
                    (b.errs.addr() as usize as *mut i32).write(0);
                    0
                }
                (12, 15) => {
                    let r = (a[1] as usize as *const XenRemoveFromPhysmap).read();
                    assert_eq!((r.domid, r.gpfn), (DOMID_SELF, 0x1235));
                    let gfn = self.mapped.take().expect("something mapped");
                    let mut ram = self.guest_ram.borrow_mut();
                    std::ptr::copy_nonoverlapping(
                        self.scratch,
                        ram[gfn * 4096..].as_mut_ptr(),
                        4096,
                    );
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
                    if self.refuse_foreign {
                        return -13;
                    }
                    0
                }
                _ => -38,
            }
        }
    }
}

static GFNS: [Gfn; 2] = [Gfn(0x1234), Gfn(0x1235)];

#[test]
fn bare_platform_issues_the_right_hypercalls() {
    let mut shinfo = Box::new(Page([0; 4096]));
    let mut window = Box::new([Page([0; 4096]), Page([0; 4096])]);
    let mut ram = vec![0u8; 4 * 4096];
    for (i, b) in ram.iter_mut().enumerate() {
        *b = i as u8;
    }
    let fake = FakeXen {
        shared_info: shinfo.0.as_mut_ptr(),
        next_port: Cell::new(40),
        log: RefCell::new(Vec::new()),
        guest_ram: RefCell::new(ram),
        scratch: window[1].0.as_mut_ptr(),
        mapped: Cell::new(None),
        version: 0x0004_0011,
        refuse_foreign: false,
    };
    let w = FrameWindow {
        va: window.as_mut_ptr().cast(),
        gfns: &GFNS,
    };
    // SAFETY: the pages live for the whole test.
    let bare = unsafe { Bare::new(fake, shinfo.0.as_mut_ptr(), Some(w)) };
    let xen = Xen::new(bare).unwrap();
    assert_eq!(xen.running(), XenVersion::new(4, 17));
    assert_eq!(xen.nr_vcpus(DomId(7)), Ok(2));
    assert_eq!(xen.nr_vcpus(DomId(9)).unwrap_err().errno(), Some(3));
    let p = xen.platform();
    let port = p.bind_interdomain(DomId(7), EvtchnPort(3)).unwrap();
    assert_eq!(port, EvtchnPort(40));
    let mut out = [EvtchnPort(0); 4];
    // Nothing pending: the platform polls, the fake raises the port, the platform consumes it.
    assert_eq!(p.wait_pending(&mut out), Ok(1));
    assert_eq!(out[0], EvtchnPort(40));
    let word = EVTCHN_PENDING_OFFSET; // port 40 is in the first word
    assert_eq!(
        u64::from_le_bytes(shinfo.0[word..word + 8].try_into().unwrap()) & (1 << 40),
        0,
        "pending bit consumed"
    );
    p.notify(port).unwrap();
    let pages = p
        .map_resource(DomId(7), XenMemResourceType::IOREQ_SERVER, 1, 1, 1)
        .unwrap();
    assert_eq!(pages.base(), window.as_mut_ptr().cast::<u8>());
    assert_eq!(pages.len(), 4096);
    // Guest RAM for data_is_ptr, across a page boundary, through the scratch frame.
    let mut buf = [0u8; 8];
    p.read_guest(DomId(7), 0x1ffc, &mut buf).unwrap();
    assert_eq!(buf, [0xfc, 0xfd, 0xfe, 0xff, 0x00, 0x01, 0x02, 0x03]);
    p.write_guest(DomId(7), 0x2ffe, &[0xaa, 0xbb, 0xcc])
        .unwrap();
    let mut back = [0u8; 4];
    p.read_guest(DomId(7), 0x2ffd, &mut back).unwrap();
    assert_eq!(back, [0xfd, 0xaa, 0xbb, 0xcc]);
    let e = p.read_guest(DomId(7), 0x8000, &mut buf).unwrap_err();
    assert_eq!(e.errno(), Some(22), "per-frame error reported");
    // Only one frame is free for resources now (the last is the scratch frame).
    assert_eq!(
        p.map_resource(DomId(7), XenMemResourceType::IOREQ_SERVER, 1, 1, 1)
            .unwrap_err()
            .errno(),
        Some(28)
    );
    p.unbind(port).unwrap();
    assert_eq!(
        p.wait_pending(&mut out),
        Ok(0),
        "no bound port: nothing to wait for"
    );
    let _ = &mut shinfo;
}

/// Xen before 4.19 maps foreign pages into no PVH/HVM domain but the hardware domain: a stub
/// domain's mappings fail with the typed version error there, and with the plain errno where the
/// running release should have allowed them.
#[test]
fn foreign_mappings_refused_before_4_19_are_a_version_error() {
    for (version, want_typed) in [(0x0004_0011, true), (0x0004_0014, false)] {
        let mut shinfo = Box::new(Page([0; 4096]));
        let mut window = Box::new([Page([0; 4096]), Page([0; 4096])]);
        let fake = FakeXen {
            shared_info: shinfo.0.as_mut_ptr(),
            next_port: Cell::new(40),
            log: RefCell::new(Vec::new()),
            guest_ram: RefCell::new(vec![0u8; 4096]),
            scratch: window[1].0.as_mut_ptr(),
            mapped: Cell::new(None),
            version,
            refuse_foreign: true,
        };
        let w = FrameWindow {
            va: window.as_mut_ptr().cast(),
            gfns: &GFNS,
        };
        // SAFETY: the pages live for the whole test.
        let bare = unsafe { Bare::new(fake, shinfo.0.as_mut_ptr(), Some(w)) };
        let xen = Xen::new(bare).unwrap();
        let p = xen.platform();
        let res = p
            .map_resource(DomId(7), XenMemResourceType::IOREQ_SERVER, 1, 1, 1)
            .unwrap_err();
        let mut buf = [0u8; 4];
        let ram = p.read_guest(DomId(7), 0, &mut buf).unwrap_err();
        if want_typed {
            assert_eq!(
                res.to_string(),
                "XENMEM_acquire_resource into a PVH/HVM domain needs Xen 4.19 or later; the running hypervisor is 4.17"
            );
            assert_eq!(
                ram.to_string(),
                "XENMAPSPACE_gmfn_foreign into a PVH/HVM domain needs Xen 4.19 or later; the running hypervisor is 4.17"
            );
        } else {
            assert_eq!(res.errno(), Some(13));
            assert_eq!(ram.errno(), Some(1));
        }
        let _ = &mut shinfo;
    }
}

/// A local port beyond the 2-level bitmap in `shared_info` (what a FIFO-ABI Xen may hand out)
/// is refused with a typed error and closed again, instead of being waited for through a word
/// outside the bitmap.
#[test]
fn a_port_beyond_the_two_level_bitmap_is_refused_and_closed() {
    let mut shinfo = Box::new(Page([0; 4096]));
    let fake = FakeXen {
        shared_info: shinfo.0.as_mut_ptr(),
        next_port: Cell::new(xen::bare::MAX_2L_PORTS),
        log: RefCell::new(Vec::new()),
        guest_ram: RefCell::new(Vec::new()),
        scratch: std::ptr::null_mut(),
        mapped: Cell::new(None),
        version: 0x0004_0011,
        refuse_foreign: false,
    };
    // SAFETY: the shared-info page lives for the whole test; no window.
    let bare = unsafe { Bare::new(fake, shinfo.0.as_mut_ptr(), None) };
    assert_eq!(
        bare.bind_interdomain(DomId(7), EvtchnPort(3)),
        Err(xen::Error::Protocol {
            op: "EVTCHNOP_bind_interdomain",
            what: "a local port beyond the 2-level event-channel ABI's bitmap",
        })
    );
    // Bound, then closed (EVTCHNOP_close is sub-op 3), and nothing is left to wait for.
    assert_eq!(bare.wait_pending(&mut [EvtchnPort(0); 4]), Ok(0));
    let _ = &mut shinfo;
}

//! The bare platform: a stub domain or kernel talking to Xen through a hypercall backend
//! (`xen_sys::backend::{HypercallPage, Direct, Hvc}`): dm_op and event channels by hypercall,
//! events waited for with `SCHEDOP_poll` and read from the shared-info page, the ioreq pages
//! acquired into a window of the caller's own frames.

use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{AtomicU64, Ordering};

use xen_sys::*;

use crate::platform::{DeviceModel, EventChannels, ForeignMemory, Pages, Version};
use crate::{DomId, Error, EvtchnPort, Gfn};

/// Offset of `evtchn_pending` in `struct shared_info` (after `vcpu_info[XEN_LEGACY_MAX_VCPUS]`
/// of 64 bytes: 32 on x86, 1 on Arm).
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub const EVTCHN_PENDING_OFFSET: usize = 32 * 64;
/// Offset of `evtchn_pending` in `struct shared_info`.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
pub const EVTCHN_PENDING_OFFSET: usize = 64;

/// Ports of the 2-level event-channel ABI, the one `shared_info`'s pending bitmap covers: one
/// bit per port, `xen_ulong_t` words, as many words as a word has bits (4096 with 64-bit
/// words, 1024 on x86_32). A port Xen hands out beyond it is refused: its bit would lie outside
/// the bitmap.
pub const MAX_2L_PORTS: u32 = (core::mem::size_of::<XenUlong>() * 8).pow(2) as u32;

/// The most buffers one dm_op call passes (the library's ops use at most 2).
const MAX_DM_OP_BUFS: usize = 4;

/// Until Xen 4.19, x86 Xen maps foreign pages (another domain's, or an ioreq server's) only
/// into PV domains and the hardware domain: a PVH/HVM stub domain gets EACCES from
/// `XENMEM_acquire_resource` and EPERM from `XENMAPSPACE_gmfn_foreign` ("remove foreign
/// mappings from the p2m on teardown", 4.19, lifted it).
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
const FOREIGN_INTO_HVM: XenVersion = XenVersion::new(4, 19);

/// Frames of the caller where Xen may place pages: a virtual range and the guest frame numbers
/// behind it (HVM/PVH/Arm callers; a PV caller gets MFNs instead and is not supported here).
/// `XENMEM_acquire_resource` uses all but the last frame; the last one is where guest pages are
/// mapped one at a time (`XENMEM_add_to_physmap_batch`, `XENMAPSPACE_gmfn_foreign`) for
/// `data_is_ptr` requests.
#[derive(Clone, Copy, Debug)]
pub struct FrameWindow {
    /// Start of the virtual range (page-aligned).
    pub va: *mut u8,
    /// The GFN of each page of the range (each must fit this target's `xen_pfn_t`).
    pub gfns: &'static [Gfn],
}

/// Pages placed in the caller's frame window.
#[derive(Debug)]
pub struct WindowPages {
    base: *mut u8,
    len: usize,
}

// SAFETY: made only by `Bare::map_resource`, from frames of the caller's window that Xen just
// filled; the window is the caller's for the platform's life (`Bare::new`'s contract).
unsafe impl Pages for WindowPages {
    fn base(&self) -> *mut u8 {
        self.base
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// The bare platform over hypercall backend `H`.
pub struct Bare<H: Hypercall> {
    h: H,
    shared_info: *mut u8,
    window: Option<FrameWindow>,
    used_frames: RefCell<usize>,
    /// Raw port numbers: `SCHEDOP_poll` takes the array as it is.
    bound: RefCell<Vec<xen_sys::EvtchnPort>>,
}

impl<H: Hypercall> core::fmt::Debug for Bare<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bare")
            .field("used_frames", &self.used_frames.borrow())
            .field("bound", &self.bound.borrow().len())
            .finish_non_exhaustive()
    }
}

impl<H: Hypercall> Bare<H> {
    /// A platform over `h`.
    ///
    /// # Safety
    ///
    /// `shared_info` must be this domain's mapped shared-info page for the life of the value,
    /// the code must run in guest kernel mode (the backend's contract), and `window`'s pages
    /// must be the caller's, unused otherwise, with `gfns` their frame numbers, for as long as
    /// the platform or any mapping it returns lives.
    pub unsafe fn new(h: H, shared_info: *mut u8, window: Option<FrameWindow>) -> Self {
        Bare {
            h,
            shared_info,
            window,
            used_frames: RefCell::new(0),
            bound: RefCell::new(Vec::new()),
        }
    }

    /// The 64-bit word of the pending bitmap holding `port`'s bit. Only called for bound ports,
    /// which `bind_interdomain` keeps below [`MAX_2L_PORTS`].
    fn pending_word(&self, port: xen_sys::EvtchnPort) -> &AtomicU64 {
        debug_assert!(port < MAX_2L_PORTS);
        let off = EVTCHN_PENDING_OFFSET + (port as usize / 64) * 8;
        // SAFETY: the shared-info page is live (new's contract); the pending bitmap is updated
        // by Xen with atomic bit operations, so an atomic view is the matching access; the word
        // is 8-aligned inside the bitmap, hence the page, for every port below MAX_2L_PORTS
        // (checked when it was bound).
        unsafe { AtomicU64::from_ptr(self.shared_info.add(off).cast()) }
    }
}

impl<H: Hypercall> Version for Bare<H> {
    fn xen_version(&self) -> Result<XenVersion, Error> {
        // SAFETY: no memory.
        let v =
            unsafe { xen_version_version(&self.h) }.map_err(|e| Error::xen("XENVER_version", e))?;
        Ok(XenVersion::from_xenver(v as u32))
    }
}

impl<H: Hypercall> DeviceModel for Bare<H> {
    fn dm_op(&self, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        // On the stack, not the heap: a stub domain's heap is fixed, and IRQ dm_ops may come
        // while serving.
        let mut descs = [XenDmOpBuf::default(); MAX_DM_OP_BUFS];
        if bufs.len() > MAX_DM_OP_BUFS {
            return Err(Error::Protocol {
                op: "dm_op",
                what: "more buffers than the bare platform passes",
            });
        }
        for (d, b) in descs.iter_mut().zip(bufs.iter_mut()) {
            *d = XenDmOpBuf {
                h: GuestHandle::from_ptr(b.as_mut_ptr()),
                size: b.len() as XenUlong,
            };
        }
        // SAFETY: each used descriptor points to a live, writable slice we exclusively borrow
        // for the call, in the caller's own (kernel) memory that Xen translates.
        unsafe { xen_sys::dm_op(&self.h, domid.0, bufs.len() as u32, descs.as_mut_ptr()) }
            .map(drop)
            .map_err(|e| Error::xen("dm_op", e))
    }
}

impl<H: Hypercall> ForeignMemory for Bare<H> {
    type Pages = WindowPages;

    fn map_resource(
        &self,
        domid: DomId,
        ty: XenMemResourceType,
        id: u32,
        frame: u32,
        nr: u32,
    ) -> Result<WindowPages, Error> {
        const OP: &str = "XENMEM_acquire_resource";
        let w = self.window.ok_or(Error::Os {
            op: OP,
            errno: XenErrno::EOPNOTSUPP.0,
        })?;
        let mut used = self.used_frames.borrow_mut();
        let first = *used;
        let end = first + nr as usize;
        // The last frame is kept for guest RAM access.
        if end + 1 > w.gfns.len() {
            return Err(Error::Os {
                op: OP,
                errno: XenErrno::ENOSPC.0,
            });
        }
        let frames = w.gfns[first..end]
            .iter()
            .map(|g| pfn(OP, *g))
            .collect::<Result<Vec<XenPfn>, Error>>()?;
        let mut a = XenMemAcquireResource {
            domid: domid.0,
            r#type: ty,
            id,
            nr_frames: nr,
            frame: u64::from(frame),
            frame_list: GuestHandle::from_ptr(frames.as_ptr()),
            ..Default::default()
        };
        // SAFETY: `a` and the GFN list are live; Xen installs the frames at those GFNs.
        unsafe { memory_op_acquire_resource(&self.h, &mut a) }.map_err(|e| {
            self.foreign_refusal(
                OP,
                "XENMEM_acquire_resource into a PVH/HVM domain",
                e,
                XenErrno::EACCES,
            )
        })?;
        *used = end;
        Ok(WindowPages {
            // SAFETY: within the caller's window (checked above).
            base: unsafe { w.va.add(first * 4096) },
            len: nr as usize * 4096,
        })
    }

    fn read_guest(&self, domid: DomId, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.guest_pages(domid, gpa, buf.len(), |va, done, n| {
            // SAFETY: `va .. va + n` is inside the scratch page, which maps the guest frame right
            // now; guest memory is only read with atomic loads.
            unsafe { crate::shared::copy_from(va, &mut buf[done..done + n]) }
        })
    }

    fn write_guest(&self, domid: DomId, gpa: u64, buf: &[u8]) -> Result<(), Error> {
        self.guest_pages(domid, gpa, buf.len(), |va, done, n| {
            // SAFETY: as above, atomic stores.
            unsafe { crate::shared::copy_to(va, &buf[done..done + n]) }
        })
    }
}

impl<H: Hypercall> Bare<H> {
    /// The error for a failed foreign mapping `op`: where Xen answers `refusal` and reports a
    /// release that maps foreign pages only into PV and hardware domains (x86 before 4.19), the
    /// typed version error for `what`; otherwise the errno.
    fn foreign_refusal(
        &self,
        op: &'static str,
        what: &'static str,
        e: XenErrno,
        refusal: XenErrno,
    ) -> Error {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if e == refusal {
            if let Ok(running) = self.xen_version() {
                if running < FOREIGN_INTO_HVM {
                    return Error::Unsupported {
                        op: what,
                        since: FOREIGN_INTO_HVM,
                        running,
                    };
                }
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let _ = (what, refusal);
        Error::xen(op, e)
    }

    /// Map each guest frame covering [gpa, gpa+len) at the scratch frame in turn and call
    /// `f(address of the byte at gpa+done, done, n)`.
    fn guest_pages(
        &self,
        domid: DomId,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), Error> {
        const ADD: &str = "XENMEM_add_to_physmap_batch";
        const REMOVE: &str = "XENMEM_remove_from_physmap";
        let w = self.window.ok_or(Error::Os {
            op: ADD,
            errno: XenErrno::EOPNOTSUPP.0,
        })?;
        let last = w.gfns.len().checked_sub(1).ok_or(Error::Os {
            op: ADD,
            errno: XenErrno::ENOSPC.0,
        })?;
        let (scratch_gfn, scratch_va) = (pfn(ADD, w.gfns[last])?, w.va.wrapping_add(last * 4096));
        let mut done = 0;
        while done < len {
            let a = gpa.wrapping_add(done as u64);
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(len - done);
            let idx: XenUlong = (a >> 12) as XenUlong;
            let gpfns = [scratch_gfn];
            let mut errs = [0i32];
            let mut b = XenAddToPhysmapBatch {
                domid: DOMID_SELF,
                space: Xenmapspace::GMFN_FOREIGN,
                size: 1,
                u: XenAddToPhysmapBatchExtra::from_foreign_domid(domid.0),
                idxs: GuestHandle::from_ptr(&idx),
                gpfns: GuestHandle::from_ptr(gpfns.as_ptr()),
                errs: GuestHandle::from_ptr(errs.as_mut_ptr()),
            };
            // SAFETY: our struct and one-element arrays; Xen maps the foreign frame at the
            // scratch GFN, a frame of ours reserved for this.
            unsafe { memory_op_add_to_physmap_batch(&self.h, &mut b) }
                .map_err(|e| Error::xen(ADD, e))?;
            if errs[0] != 0 {
                return Err(self.foreign_refusal(
                    ADD,
                    "XENMAPSPACE_gmfn_foreign into a PVH/HVM domain",
                    XenErrno(-errs[0]),
                    XenErrno::EPERM,
                ));
            }
            f(scratch_va.wrapping_add(off), done, n);
            let r = XenRemoveFromPhysmap {
                domid: DOMID_SELF,
                gpfn: scratch_gfn,
                ..Default::default()
            };
            // SAFETY: our struct.
            unsafe { memory_op_remove_from_physmap(&self.h, &r) }
                .map_err(|e| Error::xen(REMOVE, e))?;
            done += n;
        }
        Ok(())
    }
}

impl<H: Hypercall> EventChannels for Bare<H> {
    fn bind_interdomain(&self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, Error> {
        let mut b = EvtchnBindInterdomain {
            remote_dom: remote.0,
            remote_port: port.0,
            ..Default::default()
        };
        // SAFETY: our struct.
        unsafe { event_channel_op_bind_interdomain(&self.h, &mut b) }
            .map_err(|e| Error::xen("EVTCHNOP_bind_interdomain", e))?;
        if b.local_port >= MAX_2L_PORTS {
            // Not a port this platform can wait for (a FIFO-ABI port): give it back.
            let _ = self.unbind(EvtchnPort(b.local_port));
            return Err(Error::Protocol {
                op: "EVTCHNOP_bind_interdomain",
                what: "a local port beyond the 2-level event-channel ABI's bitmap",
            });
        }
        self.bound.borrow_mut().push(b.local_port);
        Ok(EvtchnPort(b.local_port))
    }

    fn unbind(&self, port: EvtchnPort) -> Result<(), Error> {
        let c = EvtchnClose { port: port.0 };
        // SAFETY: our struct.
        unsafe { event_channel_op_close(&self.h, &c) }
            .map_err(|e| Error::xen("EVTCHNOP_close", e))?;
        self.bound.borrow_mut().retain(|p| *p != port.0);
        Ok(())
    }

    fn notify(&self, port: EvtchnPort) -> Result<(), Error> {
        let s = EvtchnSend { port: port.0 };
        // SAFETY: our struct.
        unsafe { event_channel_op_send(&self.h, &s) }
            .map(drop)
            .map_err(|e| Error::xen("EVTCHNOP_send", e))
    }

    fn wait_pending(&self, out: &mut [EvtchnPort]) -> Result<usize, Error> {
        let bound = self.bound.borrow();
        loop {
            let mut n = 0;
            for &p in bound.iter() {
                if n == out.len() {
                    break;
                }
                let bit = 1u64 << (p % 64);
                if self.pending_word(p).fetch_and(!bit, Ordering::AcqRel) & bit != 0 {
                    out[n] = EvtchnPort(p);
                    n += 1;
                }
            }
            if n > 0 || bound.is_empty() {
                return Ok(n);
            }
            let poll = SchedPoll {
                ports: GuestHandle::from_ptr(bound.as_ptr()),
                nr_ports: bound.len() as u32,
                timeout: 0,
                ..Default::default()
            };
            // SAFETY: our struct and port array; returns when a port is pending.
            unsafe { sched_op_poll(&self.h, &poll) }.map_err(|e| Error::xen("SCHEDOP_poll", e))?;
        }
    }

    fn unmask(&self, _ports: &[EvtchnPort]) -> Result<(), Error> {
        // Ports are never masked here: pending bits are consumed by wait_pending.
        Ok(())
    }
}

/// A frame number as this target's `xen_pfn_t` (32 bits on 32-bit x86 and Arm), or the error
/// of `op`.
fn pfn(op: &'static str, gfn: Gfn) -> Result<XenPfn, Error> {
    XenPfn::try_from(gfn.0).map_err(|_| Error::InvalidArgument {
        op,
        what: "a frame number too large for xen_pfn_t",
    })
}

//! The Linux dom0 platform: `/dev/xen/privcmd` (dm_op, resource and guest mappings, version) and
//! `/dev/xen/evtchn` (event channels).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use xen_sys::backend::privcmd::{Error as SysError, Mapping, Privcmd};

mod evtchn;
pub use evtchn::Evtchn;
use xen_sys::{XenMemResourceType, XenVersion};

use crate::platform::{DeviceModel, EventChannels, ForeignMemory, MapGuest, Pages, Version};
use crate::{DomId, Error, EvtchnPort, Gfn};

/// The privcmd backend's errors convert with `?`, named by the operation they carry, errno and
/// kernel release kept.
impl From<SysError> for Error {
    fn from(e: SysError) -> Error {
        let op = match &e {
            SysError::Open { path, .. } => *path,
            SysError::Ioctl { op, .. }
            | SysError::Mmap { op, .. }
            | SysError::Io { op, .. }
            | SysError::NotSupportedByKernel { op, .. }
            | SysError::KernelOptionMissing { op, .. }
            | SysError::Invalid { op, .. } => *op,
            _ => "hypercall buffers",
        };
        os(op, e)
    }
}

/// A privcmd/evtchn backend error as the safe layer's: the errno where there is one (never a
/// made-up one), the reason where the backend refused before calling the kernel.
pub(crate) fn os(op: &'static str, e: SysError) -> Error {
    match e {
        SysError::NotSupportedByKernel { linux, errno, .. } => {
            return Error::NotSupportedByKernel {
                op,
                linux,
                errno: errno.raw_os_error(),
            }
        }
        SysError::KernelOptionMissing { option, errno, .. } => {
            return Error::KernelOptionMissing {
                op,
                option,
                errno: errno.raw_os_error(),
            }
        }
        _ => {}
    }
    if let Some(errno) = e.errno() {
        return Error::Os {
            op,
            errno: errno.raw_os_error(),
        };
    }
    match e {
        SysError::Invalid { reason, .. } => Error::InvalidArgument { op, what: reason },
        SysError::BuffersExhausted { .. } => Error::Platform {
            op,
            what: "hypercall buffers exhausted",
        },
        _ => Error::Platform {
            op,
            what: "refused by the privcmd/evtchn backend",
        },
    }
}

/// privcmd + evtchn handles of a Linux dom0 (or driver domain).
#[derive(Debug)]
pub struct Linux {
    privcmd: Privcmd,
    evtchn: Evtchn,
    stop: AtomicBool,
    /// A loopback event-channel pair (receive, send) that wakes a blocked wait.
    waker: (EvtchnPort, EvtchnPort),
}

impl Linux {
    /// Open `/dev/xen/privcmd` and `/dev/xen/evtchn` (and bind a loopback pair used by
    /// [`request_stop`](Self::request_stop), before any restriction). Waiting for events
    /// blocks: `IoreqServer::serve_once` sleeps until a vCPU or `request_stop` wakes it.
    pub fn open() -> Result<Self, Error> {
        Self::with_evtchn(Evtchn::open())
    }

    /// Like [`open`](Self::open), but waiting for events never blocks, for an event loop
    /// (epoll, mio, tokio's `AsyncFd`): register [`AsFd::as_fd`] for readability and call
    /// `IoreqServer::serve_once` when it is readable; with nothing pending it returns `Ok(0)`
    /// at once. (An extra `poll`/`epoll_wait` per wake-up is the price of sharing the thread.)
    ///
    /// ```no_run
    /// # fn main() -> Result<(), xen::Error> {
    /// use std::os::fd::AsFd;
    /// let linux = xen::linux::Linux::open_nonblocking()?;
    /// let fd = linux.as_fd(); // readable when an event (or a stop request) is pending
    /// # let _ = fd;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open_nonblocking() -> Result<Self, Error> {
        Self::with_evtchn(Evtchn::open_nonblocking())
    }

    fn with_evtchn(evtchn: Result<Evtchn, Error>) -> Result<Self, Error> {
        let privcmd = Privcmd::open().map_err(|e| os("open /dev/xen/privcmd", e))?;
        let evtchn = evtchn?;
        let rx = evtchn.bind_unbound_port(DomId::SELF)?;
        let tx = evtchn.bind_interdomain(DomId::SELF, rx)?;
        Ok(Linux {
            privcmd,
            evtchn,
            stop: AtomicBool::new(false),
            waker: (rx, tx),
        })
    }

    /// Restrict both handles to `domid` (drop privilege before touching guest data): afterwards
    /// only dm_op, mappings and interdomain binds for that domain work.
    pub fn restrict(&self, domid: DomId) -> Result<(), Error> {
        self.privcmd
            .restrict(domid.0)
            .map_err(|e| os("IOCTL_PRIVCMD_RESTRICT", e))?;
        self.evtchn.restrict(domid)
    }

    /// The evtchn device.
    pub fn evtchn(&self) -> &Evtchn {
        &self.evtchn
    }

    /// The privcmd device.
    pub fn privcmd(&self) -> &Privcmd {
        &self.privcmd
    }
}

/// The evtchn descriptor: readable while an event (or a stop request) is pending.
impl AsFd for Linux {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.evtchn.as_fd()
    }
}

/// A privcmd mapping.
#[derive(Debug)]
pub struct LinuxPages(Mapping);

// SAFETY: a privcmd `Mapping` owns its mmap of `len()` bytes (page-aligned, unmapped on drop)
// and hands out only its raw pointer.
unsafe impl Pages for LinuxPages {
    fn base(&self) -> *mut u8 {
        self.0.as_ptr()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl Version for Linux {
    fn xen_version(&self) -> Result<XenVersion, Error> {
        // SAFETY: XENVER_version takes no memory.
        let v = unsafe { xen_sys::xen_version_version(&self.privcmd) }.map_err(|e| Error::Os {
            op: "XENVER_version",
            errno: e.0,
        })?;
        Ok(XenVersion::from_xenver(v as u32))
    }
}

impl DeviceModel for Linux {
    fn dm_op(&self, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        self.privcmd
            .dm_op(domid.0, bufs)
            .map_err(|e| os("IOCTL_PRIVCMD_DM_OP", e))
    }

    fn irqfd(
        &self,
        domid: DomId,
        eventfd: BorrowedFd<'_>,
        dm_op: Option<&[u8]>,
    ) -> Result<(), Error> {
        match dm_op {
            Some(op) => self.privcmd.irqfd_assign(domid.0, op, eventfd),
            None => self.privcmd.irqfd_deassign(domid.0, eventfd),
        }
        .map_err(|e| os("IOCTL_PRIVCMD_IRQFD", e))
    }
}

impl ForeignMemory for Linux {
    type Pages = LinuxPages;

    fn map_resource(
        &self,
        domid: DomId,
        ty: XenMemResourceType,
        id: u32,
        frame: u32,
        nr: u32,
    ) -> Result<LinuxPages, Error> {
        self.privcmd
            .map_resource(domid.0, ty, id, frame, nr)
            .map(LinuxPages)
            .map_err(|e| os("IOCTL_PRIVCMD_MMAP_RESOURCE", e))
    }

    fn read_guest(&self, domid: DomId, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.guest_copy(domid, gpa, buf.len(), |map, off, i, n| {
            // SAFETY: `off + n` <= 4096, inside the one-page foreign mapping, which lives for
            // the call; guest memory is read with atomic loads and never referenced.
            unsafe { crate::shared::copy_from(map.as_ptr().add(off), &mut buf[i..i + n]) }
        })
    }

    fn write_guest(&self, domid: DomId, gpa: u64, buf: &[u8]) -> Result<(), Error> {
        self.guest_copy(domid, gpa, buf.len(), |map, off, i, n| {
            // SAFETY: as above, atomic stores into the writable mapping.
            unsafe { crate::shared::copy_to(map.as_ptr().add(off), &buf[i..i + n]) }
        })
    }
}

impl MapGuest for Linux {
    type Mapping = LinuxPages;

    fn map_guest(
        &self,
        domid: DomId,
        gfn: Gfn,
        n: usize,
    ) -> Result<(LinuxPages, std::vec::Vec<i32>), Error> {
        let gfns = (gfn.0..)
            .take(n)
            .map(|g| {
                xen_sys::XenPfn::try_from(g).map_err(|_| Error::InvalidArgument {
                    op: "IOCTL_PRIVCMD_MMAPBATCH_V2",
                    what: "a frame number too large for xen_pfn_t",
                })
            })
            .collect::<Result<std::vec::Vec<_>, _>>()?;
        self.privcmd
            .map_foreign(domid.0, &gfns)
            .map(|(m, errs)| (LinuxPages(m), errs))
            .map_err(|e| os("IOCTL_PRIVCMD_MMAPBATCH_V2", e))
    }
}

impl Linux {
    /// Map the guest frames covering [gpa, gpa+len) and run `f(map, offset, done, n)` per chunk.
    fn guest_copy(
        &self,
        domid: DomId,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(&Mapping, usize, usize, usize),
    ) -> Result<(), Error> {
        let mut done = 0;
        while done < len {
            let a = gpa.wrapping_add(done as u64);
            let off = (a & 0xfff) as usize;
            let n = (4096 - off).min(len - done);
            let (map, errs) = self
                .privcmd
                .map_foreign(domid.0, &[(a >> 12) as xen_sys::XenPfn])
                .map_err(|e| os("IOCTL_PRIVCMD_MMAPBATCH_V2", e))?;
            if errs[0] != 0 {
                return Err(Error::Os {
                    op: "IOCTL_PRIVCMD_MMAPBATCH_V2",
                    errno: -errs[0],
                });
            }
            f(&map, off, done, n);
            done += n;
        }
        Ok(())
    }

    /// Make [`EventChannels::wait_pending`] return [`Error::Stopped`], now or as soon as it is
    /// entered: sets a flag and sends an event on the loopback pair to wake a blocked read.
    /// Call it from another thread or from a signal handler: it is async-signal-safe (an atomic
    /// store and one ioctl, no allocation, no lock), so a single-threaded server can stop on
    /// SIGTERM without a blocked read missing it.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.evtchn.notify(self.waker.1);
    }

    /// Remove the loopback wake-ups from `out[..n]` (re-enabling them), in one pass; `Stopped`
    /// if there was one and a stop was requested, else the number of real events kept at the
    /// front. (Several real events at once is the usual case with several busy vCPUs.)
    fn drop_wakeups(&self, out: &mut [EvtchnPort], n: usize) -> Result<usize, Error> {
        let (rx, tx) = self.waker;
        let mut kept = 0;
        for i in 0..n {
            let p = out[i];
            if p == rx || p == tx {
                let _ = self.evtchn.unmask(p);
            } else {
                out[kept] = p;
                kept += 1;
            }
        }
        if kept < n && self.stop.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        Ok(kept)
    }
}

impl EventChannels for Linux {
    fn bind_interdomain(&self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, Error> {
        self.evtchn.bind_interdomain(remote, port)
    }
    fn unbind(&self, port: EvtchnPort) -> Result<(), Error> {
        self.evtchn.unbind(port)
    }
    #[inline]
    fn notify(&self, port: EvtchnPort) -> Result<(), Error> {
        self.evtchn.notify(port)
    }
    #[inline]
    fn wait_pending(&self, out: &mut [EvtchnPort]) -> Result<usize, Error> {
        if self.stop.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        let n = match self.evtchn.pending_into(out) {
            Ok(n) => n,
            Err(e) if e.errno() == Some(xen_sys::backend::privcmd::Errno::INTR.raw_os_error()) => {
                return Ok(0)
            }
            Err(e) => return Err(e),
        };
        // The loopback ports fire once when bound and then only from `request_stop`; the usual
        // single real event is recognised without the general pass.
        let (rx, tx) = self.waker;
        if n == 1 && out[0] != rx && out[0] != tx {
            return Ok(1);
        }
        self.drop_wakeups(out, n)
    }
    #[inline]
    fn unmask(&self, ports: &[EvtchnPort]) -> Result<(), Error> {
        if ports.is_empty() {
            return Ok(()); // a non-blocking wait that found nothing: no system call
        }
        self.evtchn.unmask_all(ports)
    }
}

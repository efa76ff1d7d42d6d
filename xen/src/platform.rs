//! What the safe layer needs from the system, as small traits: implemented for Linux dom0
//! (`linux`, feature `std`), for the simulator (`sim`), and implementable over the bare hypercall
//! backends for stub domains.

use alloc::vec::Vec;

use xen_sys::{XenMemResourceType, XenVersion};

use crate::{DomId, Error, EvtchnPort, Gfn};

/// A mapping shared with Xen or another domain (ioreq pages, guest RAM, grants), reached only
/// through raw pointers with atomic or volatile accesses.
///
/// The library's own unsafe code reads and writes `base() .. base() + len()` on the strength of
/// this trait, so it is an `unsafe trait`: a safe impl returning a wild pointer would make
/// `GuestRam::write` or an `IoreqServer` write through it from safe code.
///
/// # Safety
///
/// For as long as the value lives (it may be moved, also to another thread):
/// - `base() .. base() + len()` is one mapping, valid for reads and writes (atomic or volatile
///   accesses of any width up to 8 bytes at their natural alignment), and `base()` is aligned to
///   4096 bytes;
/// - `base()` and `len()` return the same values on every call;
/// - no Rust reference (`&`/`&mut`) to that memory exists: other domains write it at any time.
///
/// An implementation that is not unsafe does not compile:
///
/// ```compile_fail,E0200
/// struct Wild;
/// impl xen::platform::Pages for Wild {
///     fn base(&self) -> *mut u8 { 0x10 as *mut u8 }
///     fn len(&self) -> usize { 1 << 20 }
/// }
/// ```
pub unsafe trait Pages {
    /// Start of the mapping.
    fn base(&self) -> *mut u8;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the mapping is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The running hypervisor's version.
pub trait Version {
    /// `XENVER_version`.
    fn xen_version(&self) -> Result<XenVersion, Error>;
}

/// `dm_op` on a target domain.
pub trait DeviceModel {
    /// Issue a dm_op: buffer 0 holds the `xen_dm_op`; Xen writes results back into the buffers.
    fn dm_op(&self, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error>;

    /// Let the kernel issue `dm_op` (a whole `xen_dm_op`, copied now) on `domid` each time
    /// `eventfd` is signalled, without a return to user space (Linux privcmd irqfd, from 6.6
    /// with `CONFIG_XEN_PRIVCMD_EVENTFD`); with `None`, remove that binding of `eventfd`.
    ///
    /// A platform without it answers an error (the default, and a kernel without the ioctl):
    /// callers then relay the eventfd themselves.
    #[cfg(all(feature = "std", target_os = "linux"))]
    fn irqfd(
        &self,
        domid: DomId,
        eventfd: std::os::fd::BorrowedFd<'_>,
        dm_op: Option<&[u8]>,
    ) -> Result<(), Error> {
        let _ = (domid, eventfd, dm_op);
        Err(Error::Platform {
            op: "irqfd",
            what: "this platform has no irqfd",
        })
    }
}

/// Mapping resources and guest memory.
pub trait ForeignMemory {
    /// The mapping type.
    type Pages: Pages;
    /// `XENMEM_acquire_resource` mapping of `nr` frames from `frame`.
    fn map_resource(
        &self,
        domid: DomId,
        ty: XenMemResourceType,
        id: u32,
        frame: u32,
        nr: u32,
    ) -> Result<Self::Pages, Error>;
    /// Copy guest RAM at guest-physical `gpa` into `buf`.
    fn read_guest(&self, domid: DomId, gpa: u64, buf: &mut [u8]) -> Result<(), Error>;
    /// Copy `buf` into guest RAM at guest-physical `gpa`.
    fn write_guest(&self, domid: DomId, gpa: u64, buf: &[u8]) -> Result<(), Error>;
}

/// Mapping a guest's RAM into this domain for as long as the mapping lives (what
/// [`crate::memory::GuestRam`] is built on).
pub trait MapGuest {
    /// The mapping; dropping it unmaps.
    type Mapping: Pages + Send + Sync + 'static;
    /// Map the guest frames `gfn .. gfn + n` of `domid` at consecutive pages. Returns the
    /// mapping (`n` pages) and one result per page: 0, or a negative errno for a page that is
    /// not mapped and must never be touched.
    fn map_guest(
        &self,
        domid: DomId,
        gfn: Gfn,
        n: usize,
    ) -> Result<(Self::Mapping, Vec<i32>), Error>;
}

/// Event channels of the calling domain.
pub trait EventChannels {
    /// Bind `port` of `remote`; returns the local port.
    fn bind_interdomain(&self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, Error>;
    /// Close a local port.
    fn unbind(&self, port: EvtchnPort) -> Result<(), Error>;
    /// Send an event on a local port.
    fn notify(&self, port: EvtchnPort) -> Result<(), Error>;
    /// Wait until at least one bound port is pending (or the wait is interrupted) and write the
    /// pending ports to `out`; returns how many (0: woken without events, e.g. to stop).
    fn wait_pending(&self, out: &mut [EvtchnPort]) -> Result<usize, Error>;
    /// Re-enable delivery of `ports`.
    fn unmask(&self, ports: &[EvtchnPort]) -> Result<(), Error>;
}

/// Everything an IOREQ server needs.
pub trait Platform: Version + DeviceModel + ForeignMemory + EventChannels {}
impl<T: Version + DeviceModel + ForeignMemory + EventChannels> Platform for T {}

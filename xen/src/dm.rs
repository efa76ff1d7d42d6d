//! The `Xen` handle: the running version read once, typed dm_op calls gated on it.

use xen_sys::*;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::platform::Platform;
use crate::{DomId, Error, EvtchnPort};

/// A handle on the hypervisor through a platform. Every operation newer than the running Xen is
/// refused with [`Error::Unsupported`] instead of an `-ENOSYS` surprise.
///
/// A handle serves at most one [`crate::ioreq::IoreqServer`] at a time: the servers would share
/// the platform's one event channel, and each would take (and drop) the other's events. Put
/// several devices on one server ([`crate::pci::PciBus`], or one handler that dispatches), or
/// open a second handle for a second server.
#[derive(Debug)]
pub struct Xen<P> {
    platform: P,
    running: XenVersion,
    /// An `IoreqServer` lives on this handle.
    serving: core::sync::atomic::AtomicBool,
}

/// An IO range type claimed by an IOREQ server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeKind {
    /// I/O ports.
    Port,
    /// Guest-physical MMIO.
    Mmio,
    /// PCI config space of SBDFs (`xen_sys::pci_sbdf`).
    Pci,
}

impl RangeKind {
    fn raw(self) -> XenDmopIoRangeType {
        match self {
            RangeKind::Port => XenDmopIoRangeType::PORT,
            RangeKind::Mmio => XenDmopIoRangeType::MEMORY,
            RangeKind::Pci => XenDmopIoRangeType::PCI,
        }
    }
}

/// How an IOREQ server holds its [`Xen`] handle: borrowed (the server lives within the
/// handle's scope) or shared (the server owns a reference and can live anywhere).
pub(crate) enum XenRef<'x, P: Platform> {
    Borrowed(&'x Xen<P>),
    Shared(alloc::sync::Arc<Xen<P>>),
}

impl<P: Platform> Clone for XenRef<'_, P> {
    fn clone(&self) -> Self {
        match self {
            XenRef::Borrowed(x) => XenRef::Borrowed(x),
            XenRef::Shared(x) => XenRef::Shared(x.clone()),
        }
    }
}

impl<P: Platform> core::ops::Deref for XenRef<'_, P> {
    type Target = Xen<P>;
    fn deref(&self) -> &Xen<P> {
        match self {
            XenRef::Borrowed(x) => x,
            XenRef::Shared(x) => x,
        }
    }
}

impl<'x, P: Platform> XenRef<'x, P> {
    /// Take the handle's one server slot; `None` while another server holds it.
    pub(crate) fn claim_server(self) -> Option<ServerSlot<'x, P>> {
        use core::sync::atomic::Ordering;
        // Not `then_some`: a slot built and dropped on refusal would free the holder's slot.
        if self.serving.swap(true, Ordering::AcqRel) {
            None
        } else {
            Some(ServerSlot(self))
        }
    }
}

/// A [`Xen`] handle's server slot, free again when dropped.
pub(crate) struct ServerSlot<'x, P: Platform>(XenRef<'x, P>);

impl<'x, P: Platform> ServerSlot<'x, P> {
    /// The handle.
    pub(crate) fn xen(&self) -> &XenRef<'x, P> {
        &self.0
    }
}

impl<P: Platform> Drop for ServerSlot<'_, P> {
    fn drop(&mut self) {
        self.0
            .serving
            .store(false, core::sync::atomic::Ordering::Release);
    }
}

/// Claim a range for an IOREQ server, or release it ([`Xen::io_range`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RangeOp {
    /// `XEN_DMOP_map_io_range_to_ioreq_server`.
    Claim,
    /// `XEN_DMOP_unmap_io_range_from_ioreq_server`.
    Release,
}

/// Outputs of `XEN_DMOP_get_ioreq_server_info` with `no_gfns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// The buffered-ioreq event channel in the target (valid when bufioreq is on).
    pub bufioreq_port: EvtchnPort,
}

impl<P: Platform> Xen<P> {
    /// Open the handle: reads `XENVER_version` once.
    pub fn new(platform: P) -> Result<Self, Error> {
        let running = platform.xen_version()?;
        Ok(Xen {
            platform,
            running,
            serving: core::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The running hypervisor's version.
    pub fn running(&self) -> XenVersion {
        self.running
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Refuse `op` unless the running Xen is at least `since`.
    pub fn require(&self, op: &'static str, since: XenVersion) -> Result<(), Error> {
        if self.running < since {
            return Err(Error::Unsupported {
                op,
                since,
                running: self.running,
            });
        }
        Ok(())
    }

    /// One dm_op with payload `T` (a generated `XenDmOp*` type, whose `since` gates the call):
    /// returns the payload as Xen wrote it back. For the dm_ops this handle has no method for
    /// (`name` is the operation's name in errors).
    ///
    /// ```no_run
    /// # #[cfg(feature = "sim")] {
    /// use xen::sys::{XenDmOpInjectMsi, XenDmop};
    /// # let xen = xen::Xen::new(xen::sim::Sim::new()).unwrap();
    /// let msi = XenDmOpInjectMsi { addr: 0xfee0_0000, data: 0x4041, ..Default::default() };
    /// xen.dm_op(xen::DomId(5), XenDmop::INJECT_MSI, "XEN_DMOP_inject_msi", msi)?;
    /// # }
    /// # Ok::<(), xen::Error>(())
    /// ```
    ///
    /// A payload that does not fit `struct xen_dm_op`'s union (24 bytes) is refused when the
    /// program is compiled, not when it runs:
    ///
    /// ```compile_fail,E0080
    /// let xen = xen::Xen::new(xen::sim::Sim::new()).unwrap();
    /// // struct xen_dm_op itself (32 bytes) is no payload.
    /// let _ = xen.dm_op(xen::DomId(5), xen::sys::XenDmop::NR_VCPUS, "too large", xen::sys::XenDmOp::default());
    /// ```
    pub fn dm_op<T>(
        &self,
        domid: DomId,
        op: XenDmop,
        name: &'static str,
        payload: T,
    ) -> Result<T, Error>
    where
        T: XenAbi + IntoBytes + FromBytes + Immutable,
    {
        let mut buf = self.dm_op_buffer(op, name, &payload)?;
        self.platform
            .dm_op(domid, &mut [&mut buf])
            .map_err(|e| match e {
                Error::Os { errno, .. } => Error::Os { op: name, errno },
                other => other,
            })?;
        T::read_from_prefix(&buf[8..])
            .map(|(v, _)| v)
            .map_err(|_| Error::Protocol {
                op: name,
                what: "payload does not fit the dm_op buffer",
            })
    }

    /// A whole `struct xen_dm_op` for `op` with `payload`, checked against the running
    /// hypervisor's version.
    fn dm_op_buffer<T>(
        &self,
        op: XenDmop,
        name: &'static str,
        payload: &T,
    ) -> Result<[u8; core::mem::size_of::<XenDmOp>()], Error>
    where
        T: XenAbi + IntoBytes + Immutable,
    {
        const BUF: usize = core::mem::size_of::<XenDmOp>();
        const {
            assert!(
                8 + core::mem::size_of::<T>() <= BUF,
                "the payload does not fit struct xen_dm_op"
            )
        };
        self.require(name, T::SINCE)?;
        let mut buf = [0u8; BUF];
        buf[..4].copy_from_slice(&op.0.to_ne_bytes());
        let p = payload.as_bytes();
        buf[8..8 + p.len()].copy_from_slice(p);
        Ok(buf)
    }

    /// `XEN_DMOP_nr_vcpus`: how many vCPUs (ioreq slots) the domain has.
    pub fn nr_vcpus(&self, domid: DomId) -> Result<u32, Error> {
        let r = self.dm_op(
            domid,
            XenDmop::NR_VCPUS,
            "XEN_DMOP_nr_vcpus",
            XenDmOpNrVcpus { vcpus: 0 },
        )?;
        Ok(r.vcpus)
    }

    /// `XEN_DMOP_create_ioreq_server`; returns the server id.
    pub fn create_ioreq_server(
        &self,
        domid: DomId,
        bufioreq: HvmIoreqsrvBufioreq,
    ) -> Result<Ioservid, Error> {
        let r = self.dm_op(
            domid,
            XenDmop::CREATE_IOREQ_SERVER,
            "XEN_DMOP_create_ioreq_server",
            XenDmOpCreateIoreqServer {
                handle_bufioreq: bufioreq,
                ..Default::default()
            },
        )?;
        Ok(r.id)
    }

    /// `XEN_DMOP_get_ioreq_server_info` with `XEN_DMOP_no_gfns` (the pages are acquired, never
    /// put in the guest's physmap).
    pub fn ioreq_server_info(&self, domid: DomId, id: Ioservid) -> Result<ServerInfo, Error> {
        let r = self.dm_op(
            domid,
            XenDmop::GET_IOREQ_SERVER_INFO,
            "XEN_DMOP_get_ioreq_server_info",
            XenDmOpGetIoreqServerInfo {
                id,
                flags: XenDmopIoreqServerInfoFlags::NO_GFNS,
                ..Default::default()
            },
        )?;
        Ok(ServerInfo {
            bufioreq_port: EvtchnPort(r.bufioreq_port),
        })
    }

    /// `XEN_DMOP_set_ioreq_server_state`.
    pub fn set_ioreq_server_state(
        &self,
        domid: DomId,
        id: Ioservid,
        enabled: bool,
    ) -> Result<(), Error> {
        self.dm_op(
            domid,
            XenDmop::SET_IOREQ_SERVER_STATE,
            "XEN_DMOP_set_ioreq_server_state",
            XenDmOpSetIoreqServerState {
                id,
                enabled: u8::from(enabled),
                pad: 0,
            },
        )
        .map(drop)
    }

    /// `XEN_DMOP_destroy_ioreq_server`.
    pub fn destroy_ioreq_server(&self, domid: DomId, id: Ioservid) -> Result<(), Error> {
        self.dm_op(
            domid,
            XenDmop::DESTROY_IOREQ_SERVER,
            "XEN_DMOP_destroy_ioreq_server",
            XenDmOpDestroyIoreqServer { id, pad: 0 },
        )
        .map(drop)
    }

    /// `XEN_DMOP_map_io_range_to_ioreq_server` (inclusive range) or the unmap variant. A range
    /// that is not one of its kind (start after end, ports past 0xffff, SBDFs past 0xffffffff)
    /// is refused before Xen sees it; every failure is an [`Error::Range`] naming the range.
    pub fn io_range(
        &self,
        domid: DomId,
        id: Ioservid,
        kind: RangeKind,
        start: u64,
        end: u64,
        op: RangeOp,
    ) -> Result<(), Error> {
        let map = op == RangeOp::Claim;
        let refused = |errno| Error::Range {
            claim: map,
            kind,
            start,
            end,
            errno,
        };
        let limit = match kind {
            RangeKind::Port => 0xffff,
            RangeKind::Pci => 0xffff_ffff,
            RangeKind::Mmio => u64::MAX,
        };
        if start > end || end > limit {
            return Err(refused(0));
        }
        let (op, name) = if map {
            (
                XenDmop::MAP_IO_RANGE_TO_IOREQ_SERVER,
                "XEN_DMOP_map_io_range_to_ioreq_server",
            )
        } else {
            (
                XenDmop::UNMAP_IO_RANGE_FROM_IOREQ_SERVER,
                "XEN_DMOP_unmap_io_range_from_ioreq_server",
            )
        };
        self.dm_op(
            domid,
            op,
            name,
            XenDmOpIoreqServerRange {
                id,
                r#type: kind.raw(),
                start,
                end,
                ..Default::default()
            },
        )
        .map(drop)
        .map_err(|e| match e {
            Error::Os { errno, .. } => refused(errno),
            other => other,
        })
    }

    /// `XEN_DMOP_set_irq_level` (Arm: SPIs).
    pub fn set_irq_level(&self, domid: DomId, irq: u32, level: bool) -> Result<(), Error> {
        self.dm_op(
            domid,
            XenDmop::SET_IRQ_LEVEL,
            "XEN_DMOP_set_irq_level",
            XenDmOpSetIrqLevel {
                irq,
                level: u8::from(level),
                ..Default::default()
            },
        )
        .map(drop)
    }

    /// `XEN_DMOP_inject_msi` (x86): deliver the MSI message `data` to `addr` (0xfeexxxxx), as a
    /// device's MSI or MSI-X table entry describes it.
    pub fn inject_msi(&self, domid: DomId, addr: u64, data: u32) -> Result<(), Error> {
        self.dm_op(
            domid,
            XenDmop::INJECT_MSI,
            "XEN_DMOP_inject_msi",
            XenDmOpInjectMsi {
                data,
                addr,
                ..Default::default()
            },
        )
        .map(drop)
    }

    /// Let the kernel deliver the MSI `addr`/`data` ([`inject_msi`](Self::inject_msi)) each time
    /// `eventfd` is signalled, with no return to user space (privcmd irqfd: Linux 6.6 or later
    /// built with `CONFIG_XEN_PRIVCMD_EVENTFD`). Undo with
    /// [`irqfd_remove`](Self::irqfd_remove) before `eventfd` is closed.
    ///
    /// An error where the platform or kernel has no irqfd
    /// ([`Error::NotSupportedByKernel`], [`Error::KernelOptionMissing`], [`Error::Platform`]):
    /// the caller then relays the eventfd itself.
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn irqfd_msi(
        &self,
        domid: DomId,
        eventfd: std::os::fd::BorrowedFd<'_>,
        addr: u64,
        data: u32,
    ) -> Result<(), Error> {
        let msi = XenDmOpInjectMsi {
            data,
            addr,
            ..Default::default()
        };
        let buf = self.dm_op_buffer(XenDmop::INJECT_MSI, "XEN_DMOP_inject_msi", &msi)?;
        self.platform.irqfd(domid, eventfd, Some(&buf))
    }

    /// Remove the binding of `eventfd` that [`irqfd_msi`](Self::irqfd_msi) made: its signals
    /// are the caller's to read again.
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn irqfd_remove(
        &self,
        domid: DomId,
        eventfd: std::os::fd::BorrowedFd<'_>,
    ) -> Result<(), Error> {
        self.platform.irqfd(domid, eventfd, None)
    }

    /// `XEN_DMOP_set_pci_intx_level` (x86): assert or deassert INTx pin `pin` (0..=3 for
    /// INTA..INTD) of device `device` on bus 0 of segment 0 (where Xen routes legacy INTx).
    pub fn set_pci_intx_level(
        &self,
        domid: DomId,
        device: u8,
        pin: u8,
        level: bool,
    ) -> Result<(), Error> {
        if device > 31 || pin > 3 {
            return Err(Error::InvalidArgument {
                op: "XEN_DMOP_set_pci_intx_level",
                what: "device 0..=31 and pin 0..=3",
            });
        }
        self.dm_op(
            domid,
            XenDmop::SET_PCI_INTX_LEVEL,
            "XEN_DMOP_set_pci_intx_level",
            XenDmOpSetPciIntxLevel {
                device,
                intx: pin,
                level: u8::from(level),
                ..Default::default()
            },
        )
        .map(drop)
    }

    /// `XEN_DMOP_set_isa_irq_level` (x86).
    pub fn set_isa_irq_level(&self, domid: DomId, isa_irq: u8, level: bool) -> Result<(), Error> {
        self.dm_op(
            domid,
            XenDmop::SET_ISA_IRQ_LEVEL,
            "XEN_DMOP_set_isa_irq_level",
            XenDmOpSetIsaIrqLevel {
                isa_irq,
                level: u8::from(level),
            },
        )
        .map(drop)
    }
}

//! Several MMIO devices on one IOREQ server, each at its own guest-physical range (the Arm
//! way: virtio-mmio devices that the guest's device tree places, no PCI bus), dispatched by
//! address, served by one thread with their back ends' interrupts.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::dm::RangeKind;
use crate::ioreq::{Handler, IoreqServer, Size, Space};
use crate::platform::Platform;
use crate::Error;

/// A device on an [`MmioBus`]: a [`Handler`] for its range (it gets absolute addresses).
pub trait MmioDevice: Handler {
    /// The guest-physical range it decodes, first and last byte.
    fn range(&self) -> (u64, u64);
    /// Deliver interrupts that arrived outside a request (a back end in another process), and
    /// notice a back end that went away or came back.
    fn poll_interrupts(&mut self) {}
    /// How soon [`poll_interrupts`](Self::poll_interrupts) wants to run again even if none of
    /// the [`interrupt_fds`](Self::interrupt_fds) becomes readable; `None`: only when one does.
    fn poll_timeout(&self) -> Option<core::time::Duration> {
        None
    }
    /// Descriptors that become readable when [`poll_interrupts`](Self::poll_interrupts) has
    /// work (with `std` on Linux).
    #[cfg(all(feature = "std", target_os = "linux"))]
    fn interrupt_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        Vec::new()
    }
}

/// MMIO devices behind one IOREQ server. Devices are `Send`, so the bus can be served from
/// another thread.
///
/// ```
/// use xen::mmio::{MmioBus, MmioDevice};
/// use xen::ioreq::{Handler, Size, Space};
///
/// /// A scratch register at 0x1000_0000.
/// struct Scratch(u64);
/// impl Handler for Scratch {
///     fn read(&mut self, _: Space, _: u64, _: Size) -> u64 { self.0 }
///     fn write(&mut self, _: Space, _: u64, _: Size, v: u64) { self.0 = v }
/// }
/// impl MmioDevice for Scratch {
///     fn range(&self) -> (u64, u64) { (0x1000_0000, 0x1000_0007) }
/// }
///
/// let mut bus = MmioBus::new();
/// bus.add(Scratch(0))?;
/// assert!(bus.add(Scratch(1)).is_err(), "overlapping ranges are refused");
/// bus.write(Space::Mmio, 0x1000_0000, Size::B8, 7);
/// assert_eq!(bus.read(Space::Mmio, 0x1000_0000, Size::B8), 7);
/// assert_eq!(bus.read(Space::Mmio, 0x2000_0000, Size::B4), 0xffff_ffff, "nothing there");
/// # Ok::<(), xen::Error>(())
/// ```
#[derive(Default)]
pub struct MmioBus<'h> {
    devices: Vec<Box<dyn MmioDevice + Send + 'h>>,
}

impl core::fmt::Debug for MmioBus<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ranges: Vec<(u64, u64)> = self.devices.iter().map(|d| d.range()).collect();
        f.debug_struct("MmioBus").field("ranges", &ranges).finish()
    }
}

impl<'h> MmioBus<'h> {
    /// An empty bus.
    pub fn new() -> Self {
        MmioBus {
            devices: Vec::new(),
        }
    }

    /// Add a device; refused if its range is empty or overlaps another device's.
    pub fn add(&mut self, d: impl MmioDevice + Send + 'h) -> Result<(), Error> {
        let (start, end) = d.range();
        if start > end {
            return Err(Error::InvalidArgument {
                op: "MMIO bus",
                what: "a device whose range ends before it starts",
            });
        }
        if self.devices.iter().any(|o| {
            let (s, e) = o.range();
            s <= end && start <= e
        }) {
            return Err(Error::InvalidArgument {
                op: "MMIO bus",
                what: "two devices over one address",
            });
        }
        self.devices.push(Box::new(d));
        Ok(())
    }

    /// The devices, in the order they were added.
    pub fn devices(&self) -> impl Iterator<Item = &(dyn MmioDevice + Send + 'h)> {
        self.devices.iter().map(|d| &**d)
    }

    /// Every device's range, as [`IoreqServer::map_range`] and
    /// [`IoreqServer::adopt`](crate::ioreq::IoreqServer::adopt) take them.
    pub fn claimed_ranges(&self) -> Vec<(RangeKind, u64, u64)> {
        self.devices
            .iter()
            .map(|d| {
                let (s, e) = d.range();
                (RangeKind::Mmio, s, e)
            })
            .collect()
    }

    /// Claim every device's range on `server`.
    pub fn claim<P: Platform>(&self, server: &mut IoreqServer<'_, P>) -> Result<(), Error> {
        for (kind, s, e) in self.claimed_ranges() {
            server.map_range(kind, s, e)?;
        }
        Ok(())
    }

    /// [`MmioDevice::poll_interrupts`] of every device.
    pub fn poll_interrupts(&mut self) {
        for d in &mut self.devices {
            d.poll_interrupts();
        }
    }

    /// Serve the bus on `server` until `stop` is set and the platform woken, as
    /// [`crate::pci::PciBus::serve`] does: requests, back ends' interrupts, back ends that go
    /// or come back. The platform must not block when it waits for events
    /// ([`crate::linux::Linux::open_nonblocking`]).
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn serve<P: Platform + std::os::fd::AsFd>(
        &mut self,
        server: &mut IoreqServer<'_, P>,
        stop: &core::sync::atomic::AtomicBool,
    ) -> Result<(), Error> {
        crate::serve::serve(self, server, stop, |_| {})
    }

    fn device(&mut self, space: Space, addr: u64) -> Option<&mut (dyn MmioDevice + Send + 'h)> {
        if space != Space::Mmio {
            return None;
        }
        let d = self.devices.iter_mut().find(|d| {
            let (s, e) = d.range();
            (s..=e).contains(&addr)
        })?;
        Some(&mut **d)
    }
}

#[cfg(all(feature = "std", target_os = "linux"))]
impl crate::serve::Sources for MmioBus<'_> {
    fn count(&self) -> usize {
        self.devices.len()
    }
    fn fds(&self, i: usize) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.devices[i].interrupt_fds()
    }
    fn timeout(&self, i: usize) -> Option<core::time::Duration> {
        self.devices[i].poll_timeout()
    }
    fn poll(&mut self, i: usize) {
        self.devices[i].poll_interrupts();
    }
    fn generation(&self) -> u64 {
        0
    }
}

impl Handler for MmioBus<'_> {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        match self.device(space, addr) {
            Some(d) => d.read(space, addr, size),
            None => size.mask(),
        }
    }

    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        if let Some(d) = self.device(space, addr) {
            d.write(space, addr, size, value);
        }
    }
}

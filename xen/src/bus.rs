//! Composing devices: an [`IoBus`] dispatches the accesses of an IOREQ server to the device
//! registered for each range (ports, MMIO or PCI functions), and each device sees offsets
//! within its own range, as rust-vmm's `vm-device` `IoManager` does.
//!
//! ```
//! use xen::bus::{BusAccess, BusDevice, IoBus};
//! use xen::dm::RangeKind;
//! use xen::ioreq::{Handler, Size, Space};
//!
//! /// Eight scratch bytes, wherever they are placed.
//! #[derive(Default)]
//! struct Scratch([u8; 8]);
//! impl BusDevice for Scratch {
//!     fn read(&mut self, at: BusAccess, size: Size) -> u64 {
//!         let mut v = [0u8; 8];
//!         let (o, n) = (at.offset as usize, size.bytes() as usize);
//!         v[..n].copy_from_slice(&self.0[o..o + n]);
//!         u64::from_le_bytes(v)
//!     }
//!     fn write(&mut self, at: BusAccess, size: Size, value: u64) {
//!         let (o, n) = (at.offset as usize, size.bytes() as usize);
//!         self.0[o..o + n].copy_from_slice(&value.to_le_bytes()[..n]);
//!     }
//! }
//!
//! let mut bus = IoBus::new();
//! bus.insert(RangeKind::Port, 0x510, 8, Scratch::default())?;
//! bus.insert(RangeKind::Mmio, 0xfe00_0000, 8, Scratch::default())?;
//! // The same device model at two places: each instance sees offsets 0..8.
//! bus.write(Space::Port, 0x512, Size::B2, 0xbeef);
//! assert_eq!(bus.read(Space::Port, 0x512, Size::B2), 0xbeef);
//! assert_eq!(bus.read(Space::Mmio, 0xfe00_0002, Size::B2), 0, "another device");
//! // Nothing there, or an access that does not fit in one device: all-ones, write dropped.
//! assert_eq!(bus.read(Space::Port, 0x600, Size::B1), 0xff);
//! assert_eq!(bus.read(Space::Port, 0x516, Size::B4), 0xffff_ffff);
//! assert!(bus.insert(RangeKind::Port, 0x517, 2, Scratch::default()).is_err(), "overlap");
//! # Ok::<(), xen::Error>(())
//! ```
//!
//! [`IoBus::claim`] claims every registered range on an
//! [`IoreqServer`], and the bus is the server's
//! [`Handler`].

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::dm::RangeKind;
use crate::ioreq::{Handler, IoreqServer, Size, Space};
use crate::platform::Platform;
use crate::Error;

/// Where an access landed, relative to the range its device was registered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusAccess {
    /// The space of the access, as the server received it (for PCI, the function's SBDF).
    pub space: Space,
    /// The first address of the range the device was registered for (for PCI, its first
    /// SBDF).
    pub base: u64,
    /// The access's offset from `base` (for PCI, the config-space register offset).
    pub offset: u64,
}

/// A device on an [`IoBus`]: one call per element of an access, with offsets within the
/// device's own range. Accesses that do not fit in the range never reach it.
pub trait BusDevice {
    /// Produce `size` bytes read by the guest at `at`.
    fn read(&mut self, at: BusAccess, size: Size) -> u64;
    /// Consume `value` (masked to `size`) written by the guest at `at`.
    fn write(&mut self, at: BusAccess, size: Size, value: u64);
}

impl<D: BusDevice + ?Sized> BusDevice for Box<D> {
    fn read(&mut self, at: BusAccess, size: Size) -> u64 {
        (**self).read(at, size)
    }
    fn write(&mut self, at: BusAccess, size: Size, value: u64) {
        (**self).write(at, size, value)
    }
}

/// One device model registered at several ranges (a port window and an MMIO BAR, say) shares
/// its state through an `Arc<Mutex<_>>`: register a clone per range. A lock poisoned by a
/// panicking handler is taken over rather than propagated (the server must keep answering).
#[cfg(feature = "std")]
impl<D: BusDevice + ?Sized> BusDevice for alloc::sync::Arc<std::sync::Mutex<D>> {
    fn read(&mut self, at: BusAccess, size: Size) -> u64 {
        let mut d = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d.read(at, size)
    }
    fn write(&mut self, at: BusAccess, size: Size, value: u64) {
        let mut d = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d.write(at, size, value)
    }
}

/// The ranges' order in the map: by space, then first address.
fn space_key(kind: RangeKind) -> u8 {
    match kind {
        RangeKind::Port => 0,
        RangeKind::Mmio => 1,
        RangeKind::Pci => 2,
    }
}

struct Entry<'h> {
    kind: RangeKind,
    end: u64,
    device: Box<dyn BusDevice + Send + 'h>,
}

/// Devices behind one IOREQ server, each at its own range, dispatched by space and address
/// (see the [module](self) example). Devices are `Send`, so the bus can be served from
/// another thread.
#[derive(Default)]
pub struct IoBus<'h> {
    /// (space, first address) → the range's last address and its device.
    ranges: BTreeMap<(u8, u64), Entry<'h>>,
    unclaimed: u64,
}

impl core::fmt::Debug for IoBus<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoBus")
            .field("ranges", &self.ranges())
            .field("unclaimed_accesses", &self.unclaimed)
            .finish()
    }
}

/// The range an access falls in: its space and address (an SBDF for PCI config space).
fn locate(space: Space, addr: u64) -> (RangeKind, u64) {
    match space {
        Space::Port => (RangeKind::Port, addr),
        Space::Mmio => (RangeKind::Mmio, addr),
        Space::PciConfig { sbdf } => (RangeKind::Pci, u64::from(sbdf)),
    }
}

impl<'h> IoBus<'h> {
    /// An empty bus.
    pub fn new() -> Self {
        IoBus {
            ranges: BTreeMap::new(),
            unclaimed: 0,
        }
    }

    /// Register `device` for `len` addresses of `kind` from `start` (for
    /// [`RangeKind::Pci`], `len` SBDFs). Refused when the range is empty, wraps, does not fit
    /// the space (ports end at 0xffff, SBDFs at 0xffff_ffff) or overlaps a registered one.
    pub fn insert(
        &mut self,
        kind: RangeKind,
        start: u64,
        len: u64,
        device: impl BusDevice + Send + 'h,
    ) -> Result<(), Error> {
        let invalid = |what| Error::InvalidArgument {
            op: "I/O bus insert",
            what,
        };
        if len == 0 {
            return Err(invalid("an empty range"));
        }
        let end = start
            .checked_add(len - 1)
            .ok_or(invalid("a range past the end of the address space"))?;
        let last = match kind {
            RangeKind::Port => 0xffff,
            RangeKind::Pci => 0xffff_ffff,
            RangeKind::Mmio => u64::MAX,
        };
        if end > last {
            return Err(invalid(
                "a range past the end of its space (ports end at 0xffff, SBDFs at 0xffff_ffff)",
            ));
        }
        if self.overlapping(kind, start, end) {
            return Err(invalid("a range overlapping a registered one"));
        }
        self.ranges.insert(
            (space_key(kind), start),
            Entry {
                kind,
                end,
                device: Box::new(device),
            },
        );
        Ok(())
    }

    fn overlapping(&self, kind: RangeKind, start: u64, end: u64) -> bool {
        let k = space_key(kind);
        // The last range starting at or before `end` is the only one that can overlap.
        self.ranges
            .range((k, 0)..=(k, end))
            .next_back()
            .is_some_and(|(_, e)| e.end >= start)
    }

    /// Unregister the range of `kind` that starts at `start`, giving its device back.
    pub fn remove(
        &mut self,
        kind: RangeKind,
        start: u64,
    ) -> Option<Box<dyn BusDevice + Send + 'h>> {
        self.ranges
            .remove(&(space_key(kind), start))
            .map(|e| e.device)
    }

    /// Every registered range (kind, first, last address), as
    /// [`IoreqServer::map_range`] takes them.
    pub fn ranges(&self) -> Vec<(RangeKind, u64, u64)> {
        self.ranges
            .iter()
            .map(|(&(_, start), e)| (e.kind, start, e.end))
            .collect()
    }

    /// Claim every registered range on `server`; on a refusal, the ranges claimed by this call
    /// are released again and the error returned.
    pub fn claim<P: Platform>(&self, server: &mut IoreqServer<'_, P>) -> Result<(), Error> {
        let ranges = self.ranges();
        for (i, &(kind, s, e)) in ranges.iter().enumerate() {
            if let Err(err) = server.map_range(kind, s, e) {
                for &(kind, s, e) in &ranges[..i] {
                    let _ = server.unmap_range(kind, s, e);
                }
                return Err(err);
            }
        }
        Ok(())
    }

    /// Accesses that reached no device (nothing registered there, or the access did not fit
    /// in one device's range), answered with all-ones or dropped.
    pub fn unclaimed_accesses(&self) -> u64 {
        self.unclaimed
    }

    /// The device an access of `size` bytes at `addr` falls in, with where it landed; `None`
    /// unless the whole access lies in one registered range.
    fn route(
        &mut self,
        space: Space,
        addr: u64,
        size: Size,
    ) -> Option<(&mut (dyn BusDevice + Send + 'h), BusAccess)> {
        let (kind, at) = locate(space, addr);
        let k = space_key(kind);
        let (&(_, base), e) = self.ranges.range_mut((k, 0)..=(k, at)).next_back()?;
        if at > e.end {
            return None;
        }
        let offset = match space {
            // A PCI function's accesses are register offsets of the function; the SBDF is
            // what the range is made of.
            Space::PciConfig { .. } => addr,
            _ => {
                // The last byte must be in the range too.
                let last = addr.checked_add(u64::from(size.bytes()) - 1)?;
                if last > e.end {
                    return None;
                }
                addr - base
            }
        };
        Some((
            &mut *e.device,
            BusAccess {
                space,
                base,
                offset,
            },
        ))
    }
}

impl Handler for IoBus<'_> {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        match self.route(space, addr, size) {
            Some((d, at)) => d.read(at, size) & size.mask(),
            None => {
                self.unclaimed += 1;
                size.mask()
            }
        }
    }

    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        match self.route(space, addr, size) {
            Some((d, at)) => d.write(at, size, value),
            None => self.unclaimed += 1,
        }
    }
}

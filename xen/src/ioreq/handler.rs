//! What a device implements.

use super::request::{Invalid, Size};
use crate::dm::RangeKind;
use crate::Error;

/// A change of the server's claimed ranges that a handler asks for while it handles a write
/// (a PCI device whose BAR the guest just placed or moved): the server applies it before it
/// answers that write, so the guest's next access already reaches the new range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeChange {
    /// Claim `start..=end` (inclusive) of `kind`.
    Claim {
        /// Ports, MMIO or PCI.
        kind: RangeKind,
        /// First address.
        start: u64,
        /// Last address.
        end: u64,
    },
    /// Release `start..=end` of `kind` (claimed before).
    Release {
        /// Ports, MMIO or PCI.
        kind: RangeKind,
        /// First address.
        start: u64,
        /// Last address.
        end: u64,
    },
}

/// The address space of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Space {
    /// I/O port.
    Port,
    /// Guest-physical MMIO.
    Mmio,
    /// PCI config space of `sbdf` (address = register offset).
    PciConfig {
        /// The device.
        sbdf: u32,
    },
}

/// A device model: one call per element of an access. The library splits `rep` accesses, moves
/// `data_is_ptr` data to and from guest RAM, honours the direction flag, and completes
/// invalidate/time-offset requests itself (after the hooks).
pub trait Handler {
    /// Produce `size` bytes read by the guest at `addr`.
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64;
    /// Consume `value` (already masked to `size`) written by the guest at `addr`.
    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64);
    /// `IOREQ_TYPE_INVALIDATE`: guest RAM mappings changed; drop cached guest mappings.
    fn invalidate(&mut self) {}
    /// `IOREQ_TYPE_TIMEOFFSET`: the guest's RTC offset changed.
    fn time_offset(&mut self, _offset: u64) {}
    /// A request failed validation (reads are answered with all-ones, writes dropped).
    fn invalid(&mut self, _vcpu: u32, _why: Invalid) {}
    /// A `data_is_ptr` access could not reach guest RAM (reads of the device still happened).
    fn guest_memory_error(&mut self, _vcpu: u32, _gpa: u64) {}
    /// After each write: the next claimed-range change this handler wants, if any (asked again
    /// until `None`, at most 16 times per request). None by default.
    #[inline]
    fn range_change(&mut self) -> Option<RangeChange> {
        None
    }
    /// How a change from [`range_change`](Self::range_change) went (an `Err`: Xen refused it,
    /// e.g. a range overlapping one already claimed).
    fn range_change_done(&mut self, _change: RangeChange, _result: Result<(), Error>) {}
}

//! Newtypes for the numbers Xen's interfaces pass around, so that a call such as
//! `grant(gref, domid, gfn, access)` cannot be made with two arguments swapped: a domain id
//! ([`DomId`]), an event-channel port ([`EvtchnPort`]), a grant reference ([`GrantRef`]) and a
//! guest frame number ([`Gfn`]).
//!
//! One style for all four, as rust-vmm's `vm-memory` has it for `GuestAddress(pub u64)`: a
//! tuple struct whose one field is public. Make one with the constructor (`DomId(5)`), read the
//! number with `.0`; the field's type is the `xen_sys` type of the same name where there is one
//! (`xen_sys::Domid`, `xen_sys::EvtchnPort`, `xen_sys::GrantRef`), so the raw value goes straight
//! into a generated structure. Each is `#[repr(transparent)]`, `Copy`, ordered and hashable, and
//! shows as its number (a [`Gfn`] in hex). They also derive `zerocopy`'s byte traits, so a
//! slice of them is a slice of the raw numbers where an interface takes bytes (the event-channel
//! device reads and writes ports that way).

#![deny(unsafe_code)]

use core::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A domain id (`domid_t`).
///
/// ```
/// use xen::DomId;
/// let guest = DomId(5);
/// assert_eq!(guest.0, 5);
/// assert_eq!(guest.to_string(), "5");
/// assert_eq!(DomId::SELF.0, xen::sys::DOMID_SELF);
/// ```
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
pub struct DomId(pub xen_sys::Domid);

impl DomId {
    /// `DOMID_SELF`: the calling domain.
    pub const SELF: DomId = DomId(xen_sys::DOMID_SELF);
    /// Domain 0.
    pub const DOM0: DomId = DomId(0);
}

/// A port of an event channel (`evtchn_port_t`): local to the domain it belongs to.
///
/// ```
/// use xen::EvtchnPort;
/// let port = EvtchnPort(7);
/// assert_eq!(port.0, 7);
/// assert_eq!(format!("event channel {port}"), "event channel 7");
/// ```
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
pub struct EvtchnPort(pub xen_sys::EvtchnPort);

/// A grant reference (`grant_ref_t`): an entry of the granting domain's grant table.
///
/// ```
/// use xen::GrantRef;
/// let gref = GrantRef(8);
/// assert_eq!(gref.0, 8);
/// assert_eq!(gref.to_string(), "8");
/// ```
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
pub struct GrantRef(pub xen_sys::GrantRef);

/// A guest frame number: a guest-physical address shifted right by 12 (4 KiB pages), as a
/// guest's physmap numbers its pages (what Xen calls a GFN; for a PV domain's own frames a
/// machine frame number instead).
///
/// Always 64 bits here, whatever `xen_pfn_t` is on the target: the functions that hand frames
/// to Xen refuse one that does not fit.
///
/// ```
/// use xen::Gfn;
/// let gfn = Gfn::containing(0x1234_5678);
/// assert_eq!(gfn, Gfn(0x12345));
/// assert_eq!(gfn.addr(), 0x1234_5000);
/// assert_eq!(gfn.to_string(), "0x12345");
/// ```
#[repr(transparent)]
#[derive(
    Copy,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
)]
pub struct Gfn(pub u64);

impl Gfn {
    /// Bytes per frame.
    pub const PAGE_SIZE: u64 = 4096;

    /// The frame holding guest-physical address `gpa`.
    pub const fn containing(gpa: u64) -> Gfn {
        Gfn(gpa >> 12)
    }

    /// The guest-physical address of the frame's first byte (wrapping past 2^64 for a frame
    /// number above `u64::MAX >> 12`).
    pub const fn addr(self) -> u64 {
        self.0 << 12
    }
}

impl fmt::Display for DomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for EvtchnPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for GrantRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for Gfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn shown_as_numbers() {
        assert_eq!(format!("{}", DomId(3)), "3");
        assert_eq!(format!("{:>3}", DomId(3)), "  3");
        assert_eq!(format!("{}", EvtchnPort(42)), "42");
        assert_eq!(format!("{}", GrantRef(9)), "9");
        assert_eq!(format!("{}", Gfn(0xfeed)), "0xfeed");
        assert_eq!(format!("{:#x}", Gfn(0xfeed)), "0xfeed");
    }

    #[test]
    fn frames_and_addresses() {
        assert_eq!(Gfn::containing(0xfff), Gfn(0));
        assert_eq!(Gfn::containing(0x1000).addr(), 0x1000);
        assert_eq!(Gfn(u64::MAX >> 12).addr(), 0xffff_ffff_ffff_f000);
        assert!(Gfn(1) < Gfn(2) && DomId(1) < DomId(2));
    }

    #[test]
    fn transparent() {
        assert_eq!(core::mem::size_of::<DomId>(), 2);
        assert_eq!(core::mem::size_of::<EvtchnPort>(), 4);
        assert_eq!(core::mem::size_of::<GrantRef>(), 4);
        assert_eq!(core::mem::size_of::<Gfn>(), 8);
    }
}

//! The safe layer over `xen-sys`: a `Xen` handle with version gating, dm_op calls, and an IOREQ
//! server that claims a guest's port/MMIO/PCI-config ranges, receives typed requests, answers
//! them, and survives a hostile guest.
//!
//! The core is `no_std` (with `alloc`); the Linux dom0 platform needs the `std` feature, the
//! in-process hypervisor model the `sim` feature.
//!
//! Domain ids, event-channel ports, grant references and guest frame numbers are newtypes
//! ([`DomId`], [`EvtchnPort`], [`GrantRef`], [`Gfn`]), so arguments of different kinds cannot
//! be swapped; the `xen_sys` (`xen::sys`) structures keep the raw integers.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bare;
pub mod bus;
pub mod dm;
mod error;
pub mod grant;
mod ids;
pub mod ioreq;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod linux;
pub mod memory;
pub mod mmio;
pub mod pci;
pub mod platform;
pub mod ring;
#[cfg(all(feature = "std", target_os = "linux"))]
mod serve;
mod shared;
#[cfg(feature = "sim")]
pub mod sim;
#[cfg(all(feature = "vhost-user", target_os = "linux"))]
pub mod vhost;
#[cfg(feature = "virtio")]
pub mod virtio;
#[cfg(all(feature = "std", unix))]
pub mod xenbus;
pub mod xenstore;

pub use dm::Xen;
pub use error::Error;
pub use ids::{DomId, EvtchnPort, Gfn, GrantRef};
pub use xen_sys as sys;
pub use xen_sys::XenVersion;

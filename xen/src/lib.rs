//! The safe layer over `xen-sys`. Skeleton: the IOREQ server, event channels and foreign memory
//! are tracked separately; today it re-exports the ABI crate and the running-version type.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub use xen_sys as sys;
pub use xen_sys::XenVersion;

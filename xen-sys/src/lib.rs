//! Xen's stable ABI as Rust types: generated from `abi-spec/` by `xen-abi-gen`.
//!
//! * every struct is `#[repr(C)]` with explicit padding and derives zerocopy's
//!   `FromBytes`/`IntoBytes`/`KnownLayout`/`Immutable`;
//! * value sets are integer newtypes with associated constants (a guest may write any value);
//! * per-architecture const assertions (size, alignment, every field offset) make a layout
//!   mismatch a compile error on `x86`, `x86_64`, `arm` and `aarch64`;
//! * typed hypercall wrappers are generic over the [`Hypercall`] call backend.
//!
//! ```
//! use xen_sys::{Ioreq, IoreqFlags, IoreqType};
//! let mut req = Ioreq::default();
//! req.flags = IoreqFlags::default().with_state(1).with_dir(1);
//! req.r#type = IoreqType::COPY;
//! assert_eq!(req.flags.state(), xen_sys::STATE_IOREQ_READY);
//! assert_eq!(core::mem::size_of::<Ioreq>(), 32);
//! ```
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

#[cfg(not(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "arm",
    target_arch = "aarch64"
)))]
compile_error!("xen-sys supports the architectures Xen runs on: x86, x86_64, arm and aarch64");

#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod backend;
#[rustfmt::skip]
#[allow(
    non_upper_case_globals,
    clippy::all,
    missing_docs,
    rustdoc::broken_intra_doc_links,
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags
)]
pub mod generated;

pub use abi::{hypercall_result, GuestHandle, Hypercall, XenAbi, XenVersion};
pub use generated::*;

/// `XEN_DMOP_PCI_SBDF(s, b, d, f)`: the PCI segment/bus/device/function encoding used by
/// `XEN_DMOP_IO_RANGE_PCI` ranges (and, shifted left by 32, by `IOREQ_TYPE_PCI_CONFIG` addresses).
///
/// ```
/// assert_eq!(xen_sys::pci_sbdf(0, 0, 3, 0), 0x18);
/// assert_eq!(xen_sys::pci_sbdf(1, 2, 3, 4), 0x0001_021c);
/// ```
pub const fn pci_sbdf(segment: u16, bus: u8, device: u8, function: u8) -> u32 {
    ((segment as u32 & XEN_DMOP_PCI_SBDF_SEG_MASK) << XEN_DMOP_PCI_SBDF_SEG_SHIFT)
        | ((bus as u32 & XEN_DMOP_PCI_SBDF_BUS_MASK) << XEN_DMOP_PCI_SBDF_BUS_SHIFT)
        | ((device as u32 & XEN_DMOP_PCI_SBDF_DEV_MASK) << XEN_DMOP_PCI_SBDF_DEV_SHIFT)
        | ((function as u32 & XEN_DMOP_PCI_SBDF_FUNC_MASK) << XEN_DMOP_PCI_SBDF_FUNC_SHIFT)
}

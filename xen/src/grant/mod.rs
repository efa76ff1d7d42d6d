//! Grant tables: sharing pages between domains.
//!
//! On Linux (feature `std`): map another domain's grants with [`Gntdev::map`] (unmapped and
//! released on drop), share pages with another domain with [`Gntalloc::share`] (ended on drop),
//! and grant copy ([`copy_from_grant`], [`copy_to_grant`]). Shared pages are reached through
//! [`Shared`]'s volatile copies only: the other domain may write them at any time.
//!
//! Freestanding (`no_std`, any [`xen_sys::Hypercall`] backend, e.g. a stub domain's): a
//! domain's own grant table ([`table::GrantTable`]: frames mapped, entries granted and ended),
//! `GNTTABOP_query_size`, `GNTTABOP_setup_table` and `GNTTABOP_copy` ([`table`]).

#[cfg(all(feature = "std", target_os = "linux"))]
mod dev;
#[cfg(all(feature = "std", target_os = "linux"))]
mod linux;
pub mod table;

/// What a grant lets the other domain do with the page (or what a mapping of a grant may do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

#[cfg(all(feature = "std", target_os = "linux"))]
pub use dev::{Gntalloc, Gntdev, GrantMap, SharedPages};
#[cfg(all(feature = "std", target_os = "linux"))]
pub use linux::*;

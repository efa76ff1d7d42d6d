//! IOREQ servers: receive a guest's port, MMIO and PCI-config accesses and answer them.

mod bufioreq;
mod handler;
mod request;
mod server;
pub mod slot;

pub use handler::{Handler, RangeChange, Space};
pub use request::{decode, fallback_size, Access, Data, Dir, Invalid, PciAccess, Request, Size};
pub use server::{Buffered, IoreqServer, ServerOptions, Stats};

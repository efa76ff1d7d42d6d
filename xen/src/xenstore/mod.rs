//! A xenstore client speaking the wire protocol (`io/xs_wire.h`) itself, over xenstored's
//! socket or `/dev/xen/xenbus`: no libxenstore. Reads, writes, directories, permissions,
//! transactions (retried on `EAGAIN`), watches (an iterator, or [`Client::dispatch`] from an
//! event loop on [`Client::event_fd`], which is readable while events are queued, as
//! libxenstore's `xs_fileno`). Every error names the operation and the path. The xenbus
//! handshake on top of it is [`crate::xenbus`].
//!
//! [`wire`] (framing and reply parsing, `no_std`) never trusts the daemon: lengths are
//! checked, strings must be terminated, and anything else is [`wire::Malformed`].

#[cfg(all(feature = "std", unix))]
mod client;
#[cfg(all(feature = "std", unix))]
mod error;
pub mod wire;

#[cfg(all(feature = "std", unix))]
pub use client::{
    Client, Conn, Connection, Transaction, WatchEvent, MAX_QUEUED_EVENTS, SOCKET_PATHS,
    TRANSACTION_ATTEMPTS, XENBUS_PATH,
};
#[cfg(all(feature = "std", unix))]
pub use error::Error;
pub use wire::{Access, Perm};

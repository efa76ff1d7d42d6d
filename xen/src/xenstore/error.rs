//! Errors of the xenstore client: the operation (`XS_*`), the path, and the daemon's errno or
//! what was wrong.

use std::string::String;

use super::wire::Malformed;

/// A failed xenstore operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The daemon answered `XS_ERROR`.
    #[error("{op} {path:?}: {name} (errno {errno})")]
    Daemon {
        /// The operation (`XS_READ`, ...).
        op: &'static str,
        /// The path it was about ("" for none).
        path: String,
        /// The errno of the daemon's error name (EIO for a name the protocol does not have).
        errno: i32,
        /// The name the daemon sent (`ENOENT`, ...).
        name: String,
    },
    /// Reading from or writing to the connection failed.
    #[error("{op} {path:?}: I/O error, errno {errno}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path.
        path: String,
        /// The errno.
        errno: i32,
    },
    /// The daemon sent something the protocol does not allow; the connection is unusable after
    /// it (see [`Error::Broken`]).
    #[error("{op} {path:?}: malformed message from the daemon: {what}")]
    Malformed {
        /// The operation.
        op: &'static str,
        /// The path.
        path: String,
        /// What was wrong.
        what: Malformed,
    },
    /// The request was refused before sending: too long a path or payload, or a NUL inside a
    /// path or token.
    #[error("{op} {path:?}: {what}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// The path (cut to 64 bytes when too long).
        path: String,
        /// What was wrong.
        what: &'static str,
    },
    /// An earlier malformed message or I/O error left the stream out of step; reconnect.
    #[error("{op} {path:?}: the connection is unusable after an earlier error")]
    Broken {
        /// The operation.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// The daemon closed the connection.
    #[error("{op} {path:?}: the daemon closed the connection")]
    Closed {
        /// The operation.
        op: &'static str,
        /// The path.
        path: String,
    },
    /// A transaction still conflicted (EAGAIN) after the retries [`super::Client::transaction`]
    /// allows.
    #[error("XS_TRANSACTION_END: still conflicting after {attempts} attempts")]
    Conflict {
        /// How often it was tried.
        attempts: u32,
    },
}

impl Error {
    /// The errno, for daemon and I/O errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Daemon { errno, .. } | Error::Io { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// Whether this is the daemon's `ENOENT` (no such node).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Daemon { errno: 2, .. })
    }
}

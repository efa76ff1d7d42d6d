//! Errors of the safe layer: the operation and the errno, or why the library refused.

use xen_sys::XenVersion;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The running hypervisor is older than the operation.
    #[error("{op} needs Xen {}.{} or later; the running hypervisor is {}.{}", since.major, since.minor, running.major, running.minor)]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The release that introduced it.
        since: XenVersion,
        /// The running release.
        running: XenVersion,
    },
    /// The hypervisor or the kernel refused an operation (shown by the errno's name:
    /// `XEN_DMOP_nr_vcpus: ESRCH (errno 3)`).
    #[error("{op}: {} (errno {errno})", xen_sys::XenErrno(*errno))]
    Os {
        /// The operation (e.g. `XEN_DMOP_create_ioreq_server`).
        op: &'static str,
        /// The errno (Xen's or Linux's, which agree).
        errno: i32,
    },
    /// Xen answered something the protocol does not allow.
    #[error("{op}: {what}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// An address (or range) outside what the operation may touch, e.g. guest RAM that is not
    /// mapped.
    #[error("{op}: {len} bytes at {addr:#x} are outside the mapped guest RAM")]
    BadAddress {
        /// The operation.
        op: &'static str,
        /// The first address not covered.
        addr: u64,
        /// Bytes still to go from there.
        len: u64,
    },
    /// The caller's arguments are invalid.
    #[error("{op}: {what}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// A grant operation finished with a `GNTST_*` status other than okay.
    #[error("{op}: {status:?} ({})", status.0)]
    Grant {
        /// The operation.
        op: &'static str,
        /// The status Xen wrote back.
        status: xen_sys::GnttabStatus,
    },
    /// The event loop was asked to stop.
    #[error("stopped")]
    Stopped,
    /// The platform refused an operation for a reason that has no errno (e.g. its hypercall
    /// buffers are exhausted).
    #[error("{op}: {what}")]
    Platform {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: &'static str,
    },
}

/// One error type for a back end that uses xenstore, grants and event channels: a xenstore
/// error converts with `?`, keeping its operation and errno (or what was wrong); the path stays
/// in `xenstore::Error` for code that wants it. (`Error` owns nothing on the heap: the serving
/// loop returns it per event, and drop glue there costs every request.)
#[cfg(all(feature = "std", unix))]
impl From<crate::xenstore::Error> for Error {
    fn from(e: crate::xenstore::Error) -> Error {
        use crate::xenstore::Error as X;
        match e {
            X::Daemon { op, errno, .. } | X::Io { op, errno, .. } => Error::Os { op, errno },
            X::Invalid { op, what, .. } => Error::InvalidArgument { op, what },
            X::Malformed { op, .. } => Error::Protocol {
                op,
                what: "malformed message from xenstored",
            },
            X::Broken { op, .. } => Error::Protocol {
                op,
                what: "the xenstore connection is unusable after an earlier error",
            },
            X::Closed { op, .. } => Error::Protocol {
                op,
                what: "xenstored closed the connection",
            },
            X::Conflict { .. } => Error::Protocol {
                op: "XS_TRANSACTION_END",
                what: "the transaction kept conflicting",
            },
        }
    }
}

// The serving loop returns `Result<_, Error>` per event: small, and nothing to drop.
const _: () = assert!(core::mem::size_of::<Error>() <= 40);
const _: () = assert!(!core::mem::needs_drop::<Error>());

impl Error {
    /// A hypercall's failure: the operation and Xen's errno.
    pub(crate) fn xen(op: &'static str, e: xen_sys::XenErrno) -> Error {
        Error::Os { op, errno: e.0 }
    }

    /// `Ok` for `GNTST_okay`, else [`Error::Grant`].
    pub(crate) fn grant_status(
        op: &'static str,
        status: xen_sys::GnttabStatus,
    ) -> Result<(), Error> {
        if status.0 == xen_sys::GNTST_okay {
            Ok(())
        } else {
            Err(Error::Grant { op, status })
        }
    }

    /// The errno, if the failure came with one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

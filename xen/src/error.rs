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
    #[error("{op}: {}", Errno(*errno))]
    Os {
        /// The operation (e.g. `XEN_DMOP_create_ioreq_server`).
        op: &'static str,
        /// The errno (Xen's or Linux's, which agree).
        errno: i32,
    },
    /// The running kernel does not implement the ioctl (it answered as its driver does for an
    /// unknown one): it is older than the release that introduced it.
    #[error("{op}: not supported by this kernel (Linux {linux} or later has it): {}", Errno(*errno))]
    NotSupportedByKernel {
        /// The ioctl.
        op: &'static str,
        /// The Linux release that introduced it.
        linux: &'static str,
        /// What the kernel answered.
        errno: i32,
    },
    /// The running kernel knows the ioctl but was built without the option that implements it
    /// (it answered EOPNOTSUPP), e.g. irqfd without `CONFIG_XEN_PRIVCMD_EVENTFD`.
    #[error("{op}: this kernel was built without {option}: {}", Errno(*errno))]
    KernelOptionMissing {
        /// The ioctl.
        op: &'static str,
        /// The kernel configuration option it needs.
        option: &'static str,
        /// What the kernel answered.
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
    /// Claiming or releasing an IOREQ server's range failed: the range, and why.
    #[error("{} {kind:?} range {start:#x}-{end:#x}: {}", if *claim { "claiming the" } else { "releasing the" }, RangeWhy { kind: *kind, start: *start, end: *end, errno: *errno })]
    Range {
        /// Claiming (`XEN_DMOP_map_io_range_to_ioreq_server`) or releasing it.
        claim: bool,
        /// Ports, MMIO or PCI SBDFs.
        kind: crate::dm::RangeKind,
        /// First address of the range.
        start: u64,
        /// Last address of the range (inclusive).
        end: u64,
        /// Xen's errno; 0 when the library refused the range itself.
        errno: i32,
    },
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

/// An errno shown by name and number (`ENOTTY (errno 25)`): Xen's names, then the Linux errnos
/// Xen's list lacks (Xen and Linux agree on every number Xen names).
struct Errno(i32);

impl core::fmt::Display for Errno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const LINUX_ONLY: [(i32, &str); 8] = [
            (15, "ENOTBLK"),
            (20, "ENOTDIR"),
            (25, "ENOTTY"),
            (26, "ETXTBSY"),
            (27, "EFBIG"),
            (29, "ESPIPE"),
            (32, "EPIPE"),
            (125, "ECANCELED"),
        ];
        let xen = xen_sys::XenErrno(self.0);
        let name = xen
            .name()
            .map(|n| n.strip_prefix("XEN_").unwrap_or(n))
            .or_else(|| {
                LINUX_ONLY
                    .iter()
                    .find(|(n, _)| *n == self.0)
                    .map(|(_, name)| *name)
            });
        match name {
            Some(n) => write!(f, "{n} (errno {})", self.0),
            None => write!(f, "errno {}", self.0),
        }
    }
}

/// Why a range was refused, in words where the errno has a usual cause; for a range the
/// library refused itself (errno 0), what is wrong with it.
struct RangeWhy {
    kind: crate::dm::RangeKind,
    start: u64,
    end: u64,
    errno: i32,
}

impl core::fmt::Display for RangeWhy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use crate::dm::RangeKind;
        match self.errno {
            0 => {
                f.write_str("not a range of its kind: ")?;
                match self.kind {
                    _ if self.start > self.end => f.write_str("it starts after its end"),
                    RangeKind::Port => f.write_str("I/O ports end at 0xffff"),
                    RangeKind::Pci => f.write_str("PCI SBDFs end at 0xffffffff"),
                    RangeKind::Mmio => f.write_str("refused"),
                }
            }
            17 => write!(
                f,
                "{}: overlaps a range this server already claims",
                Errno(17)
            ),
            2 => write!(f, "{}: not claimed by this server", Errno(2)),
            e => write!(f, "{}", Errno(e)),
        }
    }
}

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
            Error::Os { errno, .. }
            | Error::NotSupportedByKernel { errno, .. }
            | Error::KernelOptionMissing { errno, .. } => Some(*errno),
            Error::Range { errno, .. } if *errno != 0 => Some(*errno),
            _ => None,
        }
    }

    /// A Linux system call's failure: the operation and the kernel's errno.
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub(crate) fn os(op: &'static str, errno: rustix::io::Errno) -> Error {
        Error::Os {
            op,
            errno: errno.raw_os_error(),
        }
    }
}

//! Linux dom0 userspace: `/dev/xen/privcmd` (hypercalls, dm_op, resource and foreign mappings,
//! restriction) and `/dev/xen/hypercall` (argument memory): how a call reaches Xen from Linux.
//! The devices that hold resources (`/dev/xen/evtchn`, `gntdev`, `gntalloc`) are in the `xen`
//! crate, on [`sys`]'s system calls.
//!
//! ```no_run
//! use xen_sys::backend::Privcmd;
//! let xen = Privcmd::open()?;
//! // No pointer argument: no hypercall buffer needed.
//! // SAFETY: XENVER_version takes no memory.
//! let v = unsafe { xen_sys::xen_version_version(&xen) }.map_err(|e| format!("xen_version: {e:?}"))?;
//! println!("Xen {}.{}", v >> 16, v & 0xffff);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod buffers;
mod eventfd;
pub mod sys;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::vec;
use std::vec::Vec;

use rustix::fs::{Mode, OFlags};
pub use rustix::io::Errno;

pub use self::buffers::{Arena, BufferSource, HypercallBuf, HypercallBuffers, BUF_ALIGN};
pub use self::eventfd::Ioeventfd;
pub use self::sys::Mapping;
use crate::abi::Hypercall;
use crate::generated::*;

/// Errors of the Linux backends: the operation and the errno.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device could not be opened.
    #[error("open {path}: {errno}")]
    Open {
        /// Device path.
        path: &'static str,
        /// errno.
        errno: Errno,
    },
    /// An ioctl failed.
    #[error("{op}: {errno}")]
    Ioctl {
        /// The ioctl (e.g. `IOCTL_PRIVCMD_DM_OP`).
        op: &'static str,
        /// errno.
        errno: Errno,
    },
    /// A mapping failed.
    #[error("{op}: {errno}")]
    Mmap {
        /// What was being mapped.
        op: &'static str,
        /// errno.
        errno: Errno,
    },
    /// read/write on a device failed.
    #[error("{op}: {errno}")]
    Io {
        /// The operation.
        op: &'static str,
        /// errno.
        errno: Errno,
    },
    /// The hypercall buffer pool is full.
    #[error("hypercall buffers exhausted: {requested} bytes requested, {available} bytes free")]
    BuffersExhausted {
        /// Bytes asked for.
        requested: usize,
        /// Bytes free (possibly fragmented).
        available: usize,
    },
    /// The running kernel does not implement the ioctl (it answered as drivers do for an
    /// unknown one: ENOTTY from privcmd, ENOSYS from evtchn): it is older than the release
    /// that introduced it, or was built without the option it needs.
    #[error("{op}: not supported by this kernel (Linux {linux} or later has it): {errno}")]
    NotSupportedByKernel {
        /// The ioctl.
        op: &'static str,
        /// The Linux release that introduced it.
        linux: &'static str,
        /// What the kernel answered.
        errno: Errno,
    },
    /// The running kernel knows the ioctl but was built without the option that implements
    /// it (it answered EOPNOTSUPP), e.g. irqfd without `CONFIG_XEN_PRIVCMD_EVENTFD`, which
    /// Debian's 6.12 kernel does not set.
    #[error("{op}: this kernel was built without {option}: {errno}")]
    KernelOptionMissing {
        /// The ioctl.
        op: &'static str,
        /// The kernel configuration option it needs.
        option: &'static str,
        /// What the kernel answered.
        errno: Errno,
    },
    /// Arguments the kernel would refuse, caught before the call.
    #[error("{op}: {reason}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl Error {
    /// The errno, if the kernel (or Xen through it) returned one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { errno, .. }
            | Error::Ioctl { errno, .. }
            | Error::Mmap { errno, .. }
            | Error::Io { errno, .. }
            | Error::NotSupportedByKernel { errno, .. }
            | Error::KernelOptionMissing { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// The error of a privcmd ioctl newer than some supported kernels: privcmd answers an ioctl
/// it does not know with ENOTTY.
pub(crate) fn kernel_ioctl_error(op: &'static str, linux: &'static str, errno: Errno) -> Error {
    newer_ioctl_error(op, linux, errno, Errno::NOTTY)
}

/// `unknown`: what the driver answers for an ioctl it does not know.
pub(crate) fn newer_ioctl_error(
    op: &'static str,
    linux: &'static str,
    errno: Errno,
    unknown: Errno,
) -> Error {
    if errno == unknown {
        Error::NotSupportedByKernel { op, linux, errno }
    } else {
        Error::Ioctl { op, errno }
    }
}

/// Open the first of `paths` that opens (close-on-exec); the error of the last one otherwise.
pub fn open_dev(paths: &[&'static str], flags: OFlags) -> Result<(OwnedFd, &'static str), Error> {
    let mut last = Error::Invalid {
        op: "open",
        reason: "no device path given",
    };
    for p in paths {
        match rustix::fs::open(*p, flags | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => return Ok((fd, p)),
            Err(errno) => last = Error::Open { path: p, errno },
        }
    }
    Err(last)
}

/// Maximum buffers per `IOCTL_PRIVCMD_DM_OP` (Linux's default `dm_op_max_nr_bufs`).
pub const DM_OP_MAX_BUFS: usize = 16;
/// Maximum bytes per dm_op buffer (Linux's default `dm_op_buf_max_size`).
pub const DM_OP_MAX_BUF_SIZE: usize = 4096;
const PAGE: usize = 4096;

/// `/dev/xen/privcmd`.
#[derive(Debug)]
pub struct Privcmd {
    fd: OwnedFd,
    path: &'static str,
}

impl Privcmd {
    /// Open `/dev/xen/privcmd` (or the old `/proc/xen/privcmd`).
    pub fn open() -> Result<Self, Error> {
        let (fd, path) = open_dev(&["/dev/xen/privcmd", "/proc/xen/privcmd"], OFlags::RDWR)?;
        Ok(Privcmd { fd, path })
    }

    /// Wrap an already open privcmd descriptor (one passed in by a privileged parent, say).
    ///
    /// # Safety
    ///
    /// `fd` must be an open `/dev/xen/privcmd` (or `/proc/xen/privcmd`) descriptor (or, in
    /// tests, one on which every ioctl fails, such as `/dev/null`): every method issues privcmd
    /// ioctls on it and maps memory through it, and `Privcmd`'s `Hypercall` impl promises that a
    /// call reaches Xen; on another device the same ioctl numbers could do anything to this
    /// process's memory.
    ///
    /// A safe call does not compile:
    ///
    /// ```compile_fail,E0133
    /// let fd = std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    /// let _ = xen_sys::backend::privcmd::Privcmd::from_fd(fd);
    /// ```
    pub unsafe fn from_fd(fd: OwnedFd) -> Self {
        Privcmd {
            fd,
            path: "privcmd",
        }
    }

    /// The device path that was opened.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// `IOCTL_PRIVCMD_HYPERCALL`: Xen's result, or the ioctl's errno (which is Xen's error,
    /// or EPERM on a restricted descriptor).
    ///
    /// # Safety
    ///
    /// Every pointer among `args` (and every handle inside the memory they point to) must be
    /// valid for hypercall `op`, in [`HypercallBuffers`] memory.
    pub unsafe fn hypercall_ioctl(&self, op: u32, args: [u64; 5]) -> Result<i64, Error> {
        let mut call = PrivcmdHypercall {
            op: u64::from(op),
            arg: args,
        };
        // SAFETY: IOCTL_PRIVCMD_HYPERCALL takes a privcmd_hypercall; the pointer arguments are
        // the caller's responsibility (this function's contract).
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_HYPERCALL, &mut call) }
            .map(i64::from)
            .map_err(|errno| Error::Ioctl {
                op: "IOCTL_PRIVCMD_HYPERCALL",
                errno,
            })
    }

    /// `IOCTL_PRIVCMD_DM_OP`: run a dm_op on `domid` with `bufs` (buffer 0 holds the
    /// `xen_dm_op`). Works on a restricted descriptor; needs no hypercall buffers. Xen writes
    /// results back into the buffers.
    pub fn dm_op(&self, domid: Domid, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        let (mut arg, mut descs) = dm_op_args(domid, bufs)?;
        arg.ubufs = descs.as_mut_ptr() as usize;
        // SAFETY: IOCTL_PRIVCMD_DM_OP takes a privcmd_dm_op whose `ubufs` points to `num`
        // privcmd_dm_op_buf describing writable slices we exclusively borrow for the call.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_DM_OP, &mut arg) }
            .map(drop)
            .map_err(|errno| Error::Ioctl {
                op: "IOCTL_PRIVCMD_DM_OP",
                errno,
            })
    }

    /// `IOCTL_PRIVCMD_RESTRICT`: from now on this descriptor only acts on `domid` (dm_op and
    /// mappings); generic hypercalls fail with EPERM. Irreversible.
    pub fn restrict(&self, domid: Domid) -> Result<(), Error> {
        let mut d = domid;
        // SAFETY: IOCTL_PRIVCMD_RESTRICT takes a domid_t.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_RESTRICT, &mut d) }
            .map(drop)
            .map_err(|errno| Error::Ioctl {
                op: "IOCTL_PRIVCMD_RESTRICT",
                errno,
            })
    }

    /// `IOCTL_PRIVCMD_MMAP_RESOURCE` size query: how many frames resource (`ty`, `id`) of
    /// `domid` has (e.g. an ioreq server: 1 + its ioreq pages).
    ///
    /// Meaningful from Xen 4.15 only: before it Xen answers every size query with its batch
    /// limit (32), whatever the resource and without checking the domain.
    pub fn resource_size(
        &self,
        domid: Domid,
        ty: XenMemResourceType,
        id: u32,
    ) -> Result<u64, Error> {
        let mut r = PrivcmdMmapResource {
            dom: domid,
            r#type: u32::from(ty.0),
            id,
            ..Default::default()
        };
        // SAFETY: IOCTL_PRIVCMD_MMAP_RESOURCE with addr = num = 0 is the size query; the kernel
        // writes `num`.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_MMAP_RESOURCE, &mut r) }.map_err(|errno| {
            Error::Ioctl {
                op: "IOCTL_PRIVCMD_MMAP_RESOURCE (size query)",
                errno,
            }
        })?;
        Ok(r.num)
    }

    /// `IOCTL_PRIVCMD_MMAP_RESOURCE`: map `num` frames of resource (`ty`, `id`) of `domid`,
    /// starting at frame `idx` (ioreq server: frame 0 = buffered page, 1 + n = ioreq page n).
    pub fn map_resource(
        &self,
        domid: Domid,
        ty: XenMemResourceType,
        id: u32,
        idx: u32,
        num: u32,
    ) -> Result<Mapping, Error> {
        if num == 0 {
            return Err(Error::Invalid {
                op: "IOCTL_PRIVCMD_MMAP_RESOURCE",
                reason: "zero frames requested (that is the size query: use resource_size)",
            });
        }
        let len = num as usize * PAGE;
        let map = Mapping::shared(&self.fd, len).map_err(|errno| Error::Mmap {
            op: "mmap of privcmd for IOCTL_PRIVCMD_MMAP_RESOURCE",
            errno,
        })?;
        let mut r = PrivcmdMmapResource {
            dom: domid,
            r#type: u32::from(ty.0),
            id,
            idx,
            num: u64::from(num),
            addr: map.as_ptr() as usize as u64,
            ..Default::default()
        };
        // SAFETY: `addr` is the start of a VMA we created by mmap of this very fd, `num` pages
        // long, as the ioctl requires; the kernel fills it with the resource's frames.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_MMAP_RESOURCE, &mut r) }.map_err(|errno| {
            Error::Ioctl {
                op: "IOCTL_PRIVCMD_MMAP_RESOURCE",
                errno,
            }
        })?;
        Ok(map)
    }

    /// `IOCTL_PRIVCMD_MMAPBATCH_V2`: map guest frames `gfns` of `domid` at consecutive pages.
    /// Returns the mapping and one result per page (0, or a negative errno such as -ENOENT for a
    /// paged-out frame, -EINVAL for an unpopulated one); a page with an error is not mapped and
    /// must not be touched (it faults). The kernel also fails the whole ioctl with ENOENT when a
    /// page was paged out, after filling the per-page results: that case returns the mapping
    /// too, the results saying which pages to retry.
    pub fn map_foreign(&self, domid: Domid, gfns: &[XenPfn]) -> Result<(Mapping, Vec<i32>), Error> {
        let num = u32::try_from(gfns.len()).map_err(|_| Error::Invalid {
            op: "IOCTL_PRIVCMD_MMAPBATCH_V2",
            reason: "too many frames",
        })?;
        if num == 0 {
            return Err(Error::Invalid {
                op: "IOCTL_PRIVCMD_MMAPBATCH_V2",
                reason: "no frames to map",
            });
        }
        let map = Mapping::shared(&self.fd, gfns.len() * PAGE).map_err(|errno| Error::Mmap {
            op: "mmap of privcmd for IOCTL_PRIVCMD_MMAPBATCH_V2",
            errno,
        })?;
        let mut errs = vec![0i32; gfns.len()];
        let mut b = PrivcmdMmapbatchV2 {
            num,
            dom: domid,
            addr: map.as_ptr() as usize as u64,
            arr: gfns.as_ptr() as usize,
            err: errs.as_mut_ptr() as usize,
            ..Default::default()
        };
        // SAFETY: a VMA of this fd `num` pages long at `addr`; `arr` points to `num` frame
        // numbers we borrow, `err` to `num` writable ints we own.
        match unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_MMAPBATCH_V2, &mut b) } {
            Ok(_) => Ok((map, errs)),
            Err(errno) if errno == Errno::NOENT && errs.contains(&-2) => Ok((map, errs)),
            Err(errno) => Err(Error::Ioctl {
                op: "IOCTL_PRIVCMD_MMAPBATCH_V2",
                errno,
            }),
        }
    }

    /// `IOCTL_PRIVCMD_MMAPBATCH` (v1, legacy): like [`map_foreign`](Self::map_foreign) but
    /// errors are ORed into `gfns` (`PRIVCMD_MMAPBATCH_MFN_ERROR` / `_PAGED_ERROR`).
    pub fn map_foreign_v1(&self, domid: Domid, gfns: &mut [XenPfn]) -> Result<Mapping, Error> {
        let num = i32::try_from(gfns.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or(Error::Invalid {
                op: "IOCTL_PRIVCMD_MMAPBATCH",
                reason: "frame count must be 1..=i32::MAX",
            })?;
        let map = Mapping::shared(&self.fd, gfns.len() * PAGE).map_err(|errno| Error::Mmap {
            op: "mmap of privcmd for IOCTL_PRIVCMD_MMAPBATCH",
            errno,
        })?;
        let mut b = PrivcmdMmapbatch {
            num,
            dom: domid,
            addr: map.as_ptr() as usize as u64,
            arr: gfns.as_mut_ptr() as usize,
            ..Default::default()
        };
        // SAFETY: as for v2; `arr` is our exclusively borrowed, writable frame array.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_MMAPBATCH, &mut b) }.map_err(|errno| {
            Error::Ioctl {
                op: "IOCTL_PRIVCMD_MMAPBATCH",
                errno,
            }
        })?;
        Ok(map)
    }

    /// `IOCTL_PRIVCMD_MMAP` (PV dom0 only): map ranges of machine frames of `domid`; each
    /// entry's `va` must lie in `map` (one mapping of this fd).
    pub fn map_ranges(
        &self,
        domid: Domid,
        map: &Mapping,
        entries: &mut [PrivcmdMmapEntry],
    ) -> Result<(), Error> {
        let start = map.as_ptr() as usize as u64;
        let end = start + map.len() as u64;
        for e in entries.iter() {
            let last = e.va.checked_add(e.npages.saturating_mul(PAGE as u64));
            if e.va < start || last.is_none_or(|l| l > end) {
                return Err(Error::Invalid {
                    op: "IOCTL_PRIVCMD_MMAP",
                    reason: "an entry lies outside the given mapping",
                });
            }
        }
        let mut m = PrivcmdMmap {
            num: i32::try_from(entries.len()).map_err(|_| Error::Invalid {
                op: "IOCTL_PRIVCMD_MMAP",
                reason: "too many entries",
            })?,
            dom: domid,
            entry: entries.as_mut_ptr() as usize,
            ..Default::default()
        };
        // SAFETY: `entry` points to `num` entries we borrow, each inside a VMA of this fd.
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_MMAP, &mut m) }
            .map(drop)
            .map_err(|errno| Error::Ioctl {
                op: "IOCTL_PRIVCMD_MMAP",
                errno,
            })
    }

    /// A mapping of this descriptor to pass to [`map_ranges`](Self::map_ranges).
    pub fn reserve(&self, pages: usize) -> Result<Mapping, Error> {
        Mapping::shared(&self.fd, pages.max(1) * PAGE).map_err(|errno| Error::Mmap {
            op: "mmap of privcmd",
            errno,
        })
    }

    /// `IOCTL_PRIVCMD_UNIMPLEMENTED`: the errno the kernel gives for an unknown ioctl (ENOTTY on
    /// current kernels, EINVAL on old ones), as libxenforeignmemory checks.
    pub fn unimplemented_errno(&self) -> Errno {
        // SAFETY: an ioctl number no kernel implements, with no argument.
        match unsafe {
            sys::ioctl::<u8>(&self.fd, IOCTL_PRIVCMD_UNIMPLEMENTED, core::ptr::null_mut())
        } {
            Ok(_) => Errno::NOTSUP,
            Err(e) => e,
        }
    }
}

impl AsFd for Privcmd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// SAFETY: IOCTL_PRIVCMD_HYPERCALL passes `op` and `args` to Xen unchanged and returns Xen's
// result; an ioctl failure is reported as Xen would (negative errno).
unsafe impl Hypercall for Privcmd {
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        // SAFETY: forwarded from the trait's contract.
        match unsafe { self.hypercall_ioctl(op, args) } {
            Ok(v) => v,
            Err(e) => -i64::from(e.errno().map(|e| e.raw_os_error()).unwrap_or(22)),
        }
    }
}

/// The `privcmd_dm_op` argument and its buffer descriptors for `bufs` (the caller sets `ubufs`
/// once the descriptor array has its final address). Checks Linux's limits first.
pub fn dm_op_args(
    domid: Domid,
    bufs: &mut [&mut [u8]],
) -> Result<(PrivcmdDmOp, Vec<PrivcmdDmOpBuf>), Error> {
    const OP: &str = "IOCTL_PRIVCMD_DM_OP";
    if bufs.is_empty() {
        return Err(Error::Invalid {
            op: OP,
            reason: "no buffers (buffer 0 must hold the xen_dm_op)",
        });
    }
    if bufs.len() > DM_OP_MAX_BUFS {
        return Err(Error::Invalid {
            op: OP,
            reason: "more buffers than Linux accepts (16)",
        });
    }
    if bufs.iter().any(|b| b.len() > DM_OP_MAX_BUF_SIZE) {
        return Err(Error::Invalid {
            op: OP,
            reason: "a buffer is larger than Linux accepts (4096 bytes)",
        });
    }
    let descs: Vec<PrivcmdDmOpBuf> = bufs
        .iter_mut()
        .map(|b| PrivcmdDmOpBuf {
            uptr: b.as_mut_ptr() as usize,
            size: b.len() as core::ffi::c_ulong,
        })
        .collect();
    let arg = PrivcmdDmOp {
        dom: domid,
        num: bufs.len() as u16,
        ..Default::default()
    };
    Ok((arg, descs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_op_arguments_describe_each_buffer() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 100];
        let pa = a.as_ptr() as usize;
        let pb = b.as_ptr() as usize;
        let (arg, descs) = dm_op_args(7, &mut [&mut a, &mut b]).unwrap();
        assert_eq!(arg.dom, 7);
        assert_eq!(arg.num, 2);
        assert_eq!(descs.len(), 2);
        assert_eq!((descs[0].uptr, descs[0].size), (pa, 32));
        assert_eq!((descs[1].uptr, descs[1].size), (pb, 100));
        // Byte layout as the kernel reads it (LP64 here).
        let bytes = zerocopy::IntoBytes::as_bytes(&descs[1]);
        assert_eq!(&bytes[..8], &(pb as u64).to_le_bytes());
        assert_eq!(&bytes[8..16], &100u64.to_le_bytes());
    }

    #[test]
    fn dm_op_limits_are_checked_before_the_kernel() {
        let mut big = vec![0u8; 4097];
        assert!(matches!(
            dm_op_args(1, &mut [&mut big]),
            Err(Error::Invalid {
                op: "IOCTL_PRIVCMD_DM_OP",
                ..
            })
        ));
        assert!(dm_op_args(1, &mut []).is_err());
        let mut v: Vec<Vec<u8>> = (0..17).map(|_| vec![0u8; 8]).collect();
        let mut s: Vec<&mut [u8]> = v.iter_mut().map(|x| x.as_mut_slice()).collect();
        assert!(dm_op_args(1, &mut s).is_err());
    }

    #[test]
    fn ioctls_on_a_device_that_is_not_privcmd_fail_with_op_and_errno() {
        let fd = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()).unwrap();
        // SAFETY: /dev/null fails every ioctl (see `from_fd`).
        let p = unsafe { Privcmd::from_fd(fd) };
        let e = p.restrict(1).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("IOCTL_PRIVCMD_RESTRICT: {}", Errno::NOTTY)
        );
        let mut op = [0u8; 32];
        let e = p.dm_op(1, &mut [&mut op]).unwrap_err();
        assert!(
            matches!(e, Error::Ioctl { op: "IOCTL_PRIVCMD_DM_OP", errno } if errno == Errno::NOTTY)
        );
        // Through the Hypercall trait the errno comes back as Xen's error.
        // SAFETY: /dev/null rejects the ioctl before anything is dereferenced.
        let r = unsafe { crate::xen_version_version(&p) };
        assert_eq!(r, Err(XenErrno(Errno::NOTTY.raw_os_error())));
        assert_eq!(p.unimplemented_errno(), Errno::NOTTY);
        let e = p
            .resource_size(1, XenMemResourceType::IOREQ_SERVER, 0)
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("IOCTL_PRIVCMD_MMAP_RESOURCE (size query): "),
            "{e}"
        );
    }

    #[test]
    fn only_the_drivers_unknown_ioctl_answer_means_the_kernel_lacks_it() {
        // evtchn answers an unknown ioctl with ENOSYS, privcmd with ENOTTY.
        let e = newer_ioctl_error(
            "IOCTL_EVTCHN_BIND_STATIC",
            "6.2",
            Errno::NOSYS,
            Errno::NOSYS,
        );
        assert!(
            matches!(e, Error::NotSupportedByKernel { linux: "6.2", errno, .. } if errno == Errno::NOSYS),
            "{e:?}"
        );
        assert_eq!(e.errno(), Some(Errno::NOSYS));
        let e = newer_ioctl_error(
            "IOCTL_EVTCHN_BIND_STATIC",
            "6.2",
            Errno::INVAL,
            Errno::NOSYS,
        );
        assert!(
            matches!(e, Error::Ioctl { errno, .. } if errno == Errno::INVAL),
            "{e:?}"
        );
        let e = kernel_ioctl_error("IOCTL_PRIVCMD_IRQFD", "6.6", Errno::NOSYS);
        assert!(matches!(e, Error::Ioctl { .. }), "{e:?}");
    }

    #[test]
    fn opening_without_xen_names_the_device() {
        let present = std::path::Path::new("/dev/xen/privcmd").exists()
            || std::path::Path::new("/proc/xen/privcmd").exists();
        match Privcmd::open() {
            Ok(p) => assert!(present, "opened {} although no device exists", p.path()),
            Err(e) => {
                assert!(!present, "device present but open failed: {e}");
                // The last path tried is named, with its errno.
                assert!(e.to_string().starts_with("open /proc/xen/privcmd: "), "{e}");
                assert_eq!(e.errno(), Some(Errno::NOENT));
            }
        }
    }
}

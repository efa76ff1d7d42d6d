//! `/dev/xen/evtchn`: bind, notify and receive event channels from Linux userspace.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::OFlags;
use rustix::io::Errno;

use xen_sys::backend::privcmd::{open_dev, sys};
use xen_sys::*;

use crate::{DomId, Error, EvtchnPort};

/// An event-channel device handle. Every port bound through it is closed when it is dropped.
///
/// When a bound port fires the kernel masks it for this handle and queues its number: read it
/// with [`pending`](Self::pending), handle the event, then [`unmask`](Self::unmask) it.
#[derive(Debug)]
pub struct Evtchn {
    fd: OwnedFd,
}

impl Evtchn {
    /// Open `/dev/xen/evtchn` (blocking reads).
    pub fn open() -> Result<Self, Error> {
        Self::open_with(OFlags::RDWR)
    }

    /// Open `/dev/xen/evtchn` with non-blocking reads (`pending` returns `None` when idle).
    pub fn open_nonblocking() -> Result<Self, Error> {
        Self::open_with(OFlags::RDWR | OFlags::NONBLOCK)
    }

    fn open_with(flags: OFlags) -> Result<Self, Error> {
        let (fd, _) = open_dev(&["/dev/xen/evtchn"], flags)
            .map_err(|e| super::os("open /dev/xen/evtchn", e))?;
        Ok(Evtchn { fd })
    }

    /// Wrap an already open evtchn descriptor (one passed in by a privileged parent, say).
    ///
    /// # Safety
    ///
    /// `fd` must be an open `/dev/xen/evtchn` descriptor (or one on which every ioctl fails and
    /// reads and writes only move bytes, such as `/dev/null` or a pipe, as tests use): every
    /// method issues that device's ioctls on it, whose effects on this process's memory are only
    /// sound on that device (another device's ioctl with the same number could write anywhere).
    ///
    /// A safe call does not compile:
    ///
    /// ```compile_fail,E0133
    /// let fd = std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    /// let _ = xen::linux::Evtchn::from_fd(fd);
    /// ```
    pub unsafe fn from_fd(fd: OwnedFd) -> Self {
        Evtchn { fd }
    }

    #[inline]
    fn call<T>(&self, op: &'static str, opcode: u32, arg: &mut T) -> Result<u32, Error> {
        // SAFETY: every caller pairs an IOCTL_EVTCHN_* number with its argument struct.
        let r =
            unsafe { sys::ioctl(&self.fd, opcode, arg) }.map_err(|errno| Error::os(op, errno))?;
        Ok(r as u32)
    }

    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: bind `remote_port` of `remote_domain`; returns the local
    /// port (marked pending by Xen, so an event sent before binding is not lost).
    pub fn bind_interdomain(
        &self,
        remote_domain: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, Error> {
        let mut a = IoctlEvtchnBindInterdomain {
            remote_domain: u32::from(remote_domain.0),
            remote_port: remote_port.0,
        };
        self.call(
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            IOCTL_EVTCHN_BIND_INTERDOMAIN,
            &mut a,
        )
        .map(EvtchnPort)
    }

    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`: allocate a port that `remote_domain` may bind.
    pub fn bind_unbound_port(&self, remote_domain: DomId) -> Result<EvtchnPort, Error> {
        let mut a = IoctlEvtchnBindUnboundPort {
            remote_domain: u32::from(remote_domain.0),
        };
        self.call(
            "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
            IOCTL_EVTCHN_BIND_UNBOUND_PORT,
            &mut a,
        )
        .map(EvtchnPort)
    }

    /// `IOCTL_EVTCHN_BIND_VIRQ`: bind a virtual IRQ (on vCPU 0).
    pub fn bind_virq(&self, virq: Virq) -> Result<EvtchnPort, Error> {
        let mut a = IoctlEvtchnBindVirq { virq };
        self.call("IOCTL_EVTCHN_BIND_VIRQ", IOCTL_EVTCHN_BIND_VIRQ, &mut a)
            .map(EvtchnPort)
    }

    /// `IOCTL_EVTCHN_UNBIND`: close a port bound through this handle (ENOTCONN otherwise).
    pub fn unbind(&self, port: EvtchnPort) -> Result<(), Error> {
        let mut a = IoctlEvtchnUnbind { port: port.0 };
        self.call("IOCTL_EVTCHN_UNBIND", IOCTL_EVTCHN_UNBIND, &mut a)
            .map(drop)
    }

    /// `IOCTL_EVTCHN_NOTIFY`: send an event on a port bound through this handle.
    #[inline]
    pub fn notify(&self, port: EvtchnPort) -> Result<(), Error> {
        let mut a = IoctlEvtchnNotify { port: port.0 };
        self.call("IOCTL_EVTCHN_NOTIFY", IOCTL_EVTCHN_NOTIFY, &mut a)
            .map(drop)
    }

    /// `IOCTL_EVTCHN_RESET`: clear the pending ring and its overflow error.
    pub fn reset(&self) -> Result<(), Error> {
        // SAFETY: IOCTL_EVTCHN_RESET takes no argument.
        unsafe { sys::ioctl::<u8>(&self.fd, IOCTL_EVTCHN_RESET, core::ptr::null_mut()) }
            .map(drop)
            .map_err(|errno| Error::os("IOCTL_EVTCHN_RESET", errno))
    }

    /// `IOCTL_EVTCHN_RESTRICT_DOMID`: from now on only interdomain binds to `domid`. Irreversible.
    pub fn restrict(&self, domid: DomId) -> Result<(), Error> {
        let mut a = IoctlEvtchnRestrictDomid { domid: domid.0 };
        self.call(
            "IOCTL_EVTCHN_RESTRICT_DOMID",
            IOCTL_EVTCHN_RESTRICT_DOMID,
            &mut a,
        )
        .map(drop)
    }

    /// `IOCTL_EVTCHN_BIND_STATIC`: take over `port`, a static event channel of this domain
    /// (created with the domain, e.g. from a dom0less device tree), without binding it anew;
    /// closing the handle leaves it open. [`Error::NotSupportedByKernel`] before Linux 6.2
    /// (the evtchn driver answers an ioctl it does not know with ENOSYS, not ENOTTY).
    pub fn bind_static(&self, port: EvtchnPort) -> Result<(), Error> {
        let mut a = IoctlEvtchnBind { port: port.0 };
        // SAFETY: IOCTL_EVTCHN_BIND_STATIC takes an ioctl_evtchn_bind.
        unsafe { sys::ioctl(&self.fd, IOCTL_EVTCHN_BIND_STATIC, &mut a) }
            .map(drop)
            .map_err(|errno| {
                // The evtchn driver answers an ioctl it does not know with ENOSYS.
                if errno == Errno::NOSYS {
                    Error::NotSupportedByKernel {
                        op: "IOCTL_EVTCHN_BIND_STATIC",
                        linux: IOCTL_EVTCHN_BIND_STATIC_LINUX,
                        errno: errno.raw_os_error(),
                    }
                } else {
                    Error::os("IOCTL_EVTCHN_BIND_STATIC", errno)
                }
            })
    }

    /// Read pending ports into `out`; returns how many. `Ok(0)` on a non-blocking handle with
    /// nothing pending. EFBIG means the ring overflowed (call [`reset`](Self::reset)).
    #[inline]
    pub fn pending_into(&self, out: &mut [EvtchnPort]) -> Result<usize, Error> {
        let bytes = zerocopy::IntoBytes::as_mut_bytes(out);
        match sys::read(self.fd.as_fd(), bytes) {
            Ok(n) => Ok(n / 4),
            Err(Errno::AGAIN) => Ok(0),
            Err(errno) => Err(Error::os("read /dev/xen/evtchn", errno)),
        }
    }

    /// One pending port, or `None` on a non-blocking handle with nothing pending.
    pub fn pending(&self) -> Result<Option<EvtchnPort>, Error> {
        let mut p = [EvtchnPort(0); 1];
        Ok((self.pending_into(&mut p)? == 1).then_some(p[0]))
    }

    /// Re-enable delivery of `port` (write it back to the device).
    pub fn unmask(&self, port: EvtchnPort) -> Result<(), Error> {
        self.unmask_all(&[port])
    }

    /// Re-enable delivery of several ports with one write.
    #[inline]
    pub fn unmask_all(&self, ports: &[EvtchnPort]) -> Result<(), Error> {
        let bytes = zerocopy::IntoBytes::as_bytes(ports);
        let n = sys::write(self.fd.as_fd(), bytes)
            .map_err(|errno| Error::os("write /dev/xen/evtchn (unmask)", errno))?;
        if n != bytes.len() {
            return Err(Error::Platform {
                op: "write /dev/xen/evtchn (unmask)",
                what: "short write",
            });
        }
        Ok(())
    }
}

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use rustix::fs::Mode;

    fn fake(path: &str) -> Evtchn {
        let fd = rustix::fs::open(path, OFlags::RDWR, Mode::empty()).unwrap();
        // SAFETY: a test stand-in on which every ioctl fails (see `from_fd`).
        unsafe { Evtchn::from_fd(fd) }
    }

    #[test]
    fn ioctls_name_the_operation_and_errno() {
        let e = fake("/dev/null");
        let err = e.bind_interdomain(DomId(1), EvtchnPort(5)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IOCTL_EVTCHN_BIND_INTERDOMAIN: ENOTTY (errno 25)"
        );
        // Not what the evtchn driver answers for an unknown ioctl (ENOSYS): a plain failure.
        assert!(matches!(
            e.bind_static(EvtchnPort(7)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_BIND_STATIC",
                errno: 25
            })
        ));
        assert!(matches!(
            e.notify(EvtchnPort(3)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_NOTIFY",
                ..
            })
        ));
        assert!(matches!(
            e.reset(),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_RESET",
                ..
            })
        ));
        assert!(matches!(
            e.restrict(DomId(1)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_RESTRICT_DOMID",
                ..
            })
        ));
        assert!(matches!(
            e.bind_virq(Virq(0)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_BIND_VIRQ",
                ..
            })
        ));
        assert!(matches!(
            e.unbind(EvtchnPort(3)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_UNBIND",
                ..
            })
        ));
        assert!(matches!(
            e.bind_unbound_port(DomId(0)),
            Err(Error::Os {
                op: "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
                ..
            })
        ));
    }

    #[test]
    fn pending_reads_whole_ports_and_unmask_writes_them() {
        // A pipe stands in for the device's read/write protocol.
        let (r, w) = rustix::pipe::pipe().unwrap();
        // SAFETY: a pipe stands in for the device: no ioctl is issued on it.
        let writer = unsafe { Evtchn::from_fd(w) };
        writer.unmask_all(&[EvtchnPort(7), EvtchnPort(9)]).unwrap();
        // SAFETY: a pipe stands in for the device: no ioctl is issued on it.
        let reader = unsafe { Evtchn::from_fd(r) };
        let mut out = [EvtchnPort(0); 4];
        assert_eq!(reader.pending_into(&mut out).unwrap(), 2);
        assert_eq!(&out[..2], &[EvtchnPort(7), EvtchnPort(9)]);
    }

    #[test]
    fn read_and_write_errors_keep_their_errno() {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        // SAFETY: a pipe stands in for the device: no ioctl is issued on it.
        let reader = unsafe { Evtchn::from_fd(r) };
        // Nothing pending on a non-blocking handle: EAGAIN is "no port", not an error.
        assert_eq!(reader.pending_into(&mut [EvtchnPort(0); 4]).unwrap(), 0);
        assert_eq!(reader.pending().unwrap(), None);
        // The read end cannot be written, the write end cannot be read: EBADF, named.
        let err = reader.unmask(EvtchnPort(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "write /dev/xen/evtchn (unmask): EBADF (errno 9)"
        );
        // SAFETY: a pipe stands in for the device: no ioctl is issued on it.
        let writer = unsafe { Evtchn::from_fd(w) };
        let err = writer.pending_into(&mut [EvtchnPort(0); 1]).unwrap_err();
        assert_eq!(err.to_string(), "read /dev/xen/evtchn: EBADF (errno 9)");
    }
}

//! The kernel-side fast paths of `/dev/xen/privcmd` for virtio back ends: irqfd (an eventfd
//! signal makes the kernel issue a dm_op, e.g. raise a guest interrupt) and ioeventfd (the
//! kernel completes a virtio-mmio queue notify itself and signals an eventfd), plus the GSI
//! lookup a PVH dom0 needs for passthrough. All three are newer than most kernels in the field:
//! whether the running kernel has them is learned by calling them, and a kernel without one
//! answers ENOTTY, reported as [`Error::NotSupportedByKernel`]; a kernel that has irqfd and
//! ioeventfd compiled out answers EOPNOTSUPP, [`Error::KernelOptionMissing`]. (Both seen on real
//! Xen by the privcmd_check example: Debian's 5.10 and 6.1 lack all three ioctls, Debian's 6.12
//! has them but is built without `CONFIG_XEN_PRIVCMD_EVENTFD`.)

use std::os::fd::{AsRawFd, BorrowedFd};

use super::{kernel_ioctl_error, sys, Errno, Error, Mapping, Privcmd};
use crate::generated::*;

/// Access sizes the kernel accepts for an ioeventfd's notify write.
const IOEVENTFD_ACCESS_SIZES: [u32; 4] = [1, 2, 4, 8];
/// The kernel option behind irqfd and ioeventfd (without it they answer EOPNOTSUPP).
const EVENTFD_OPTION: &str = "CONFIG_XEN_PRIVCMD_EVENTFD";

/// An irqfd/ioeventfd error: a kernel without the ioctl, one built without its option, or the
/// ioctl's own errno.
fn eventfd_error(op: &'static str, linux: &'static str, errno: Errno) -> Error {
    if errno == Errno::OPNOTSUPP {
        Error::KernelOptionMissing {
            op,
            option: EVENTFD_OPTION,
            errno,
        }
    } else {
        kernel_ioctl_error(op, linux, errno)
    }
}

/// The kernel's limit on `vcpus` of an ioeventfd.
const IOEVENTFD_MAX_VCPUS: usize = 4096;

/// An ioeventfd binding ([`Privcmd::ioeventfd_assign`]): which guest writes the kernel answers
/// itself and the eventfd it signals for them.
#[derive(Clone, Copy, Debug)]
pub struct Ioeventfd<'a> {
    /// The guest.
    pub domid: Domid,
    /// The IOREQ server's synchronous ioreq page, mapped through this privcmd descriptor
    /// ([`Privcmd::map_resource`]).
    pub ioreq: &'a Mapping,
    /// The server's local event channel for each guest vCPU, in vCPU order (1 to 4096).
    pub ports: &'a [EvtchnPort],
    /// Guest-physical base of the virtio-mmio device (the notify register is at +0x50).
    pub base: u64,
    /// Access size of the notify write: 1, 2, 4 or 8.
    pub size: u32,
    /// The virtqueue index the write carries.
    pub queue: u32,
    /// The eventfd to signal.
    pub eventfd: BorrowedFd<'a>,
}

impl Privcmd {
    /// `IOCTL_PRIVCMD_IRQFD`: from now on, each signal of `eventfd` makes the kernel issue
    /// the dm_op in `dm_op` (a whole `xen_dm_op`, copied now) on `domid`.
    ///
    /// [`Error::NotSupportedByKernel`] on a kernel before Linux 6.6,
    /// [`Error::KernelOptionMissing`] on one built without `CONFIG_XEN_PRIVCMD_EVENTFD`.
    pub fn irqfd_assign(
        &self,
        domid: Domid,
        dm_op: &[u8],
        eventfd: BorrowedFd<'_>,
    ) -> Result<(), Error> {
        let size = u32::try_from(dm_op.len())
            .ok()
            .filter(|&s| s > 0)
            .ok_or(Error::Invalid {
                op: "IOCTL_PRIVCMD_IRQFD",
                reason: "the dm_op buffer must be 1 to 2^32-1 bytes",
            })?;
        self.irqfd(domid, dm_op.as_ptr() as usize as u64, size, eventfd, 0)
    }

    /// `IOCTL_PRIVCMD_IRQFD` with `PRIVCMD_IRQFD_FLAG_DEASSIGN`: stop acting on `eventfd`.
    pub fn irqfd_deassign(&self, domid: Domid, eventfd: BorrowedFd<'_>) -> Result<(), Error> {
        self.irqfd(domid, 0, 0, eventfd, PRIVCMD_IRQFD_FLAG_DEASSIGN)
    }

    fn irqfd(
        &self,
        domid: Domid,
        dm_op: u64,
        size: u32,
        eventfd: BorrowedFd<'_>,
        flags: u32,
    ) -> Result<(), Error> {
        let mut a = PrivcmdIrqfd {
            dm_op,
            size,
            fd: fd_number(eventfd),
            flags,
            dom: domid,
            pad: [0; 2],
        };
        // SAFETY: IOCTL_PRIVCMD_IRQFD takes a privcmd_irqfd; `dm_op` is 0 or the address of a
        // `size`-byte slice borrowed for the call (the kernel copies it before returning).
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_IRQFD, &mut a) }
            .map(drop)
            .map_err(|errno| eventfd_error("IOCTL_PRIVCMD_IRQFD", IOCTL_PRIVCMD_IRQFD_LINUX, errno))
    }

    /// `IOCTL_PRIVCMD_IOEVENTFD`: let the kernel complete the guest's queue-notify writes
    /// that `binding` describes itself, signalling its eventfd, instead of passing those
    /// ioreqs to the server.
    ///
    /// [`Error::NotSupportedByKernel`] on a kernel before Linux 6.7,
    /// [`Error::KernelOptionMissing`] on one built without `CONFIG_XEN_PRIVCMD_EVENTFD`.
    pub fn ioeventfd_assign(&self, binding: &Ioeventfd<'_>) -> Result<(), Error> {
        self.ioeventfd(binding, 0)
    }

    /// `IOCTL_PRIVCMD_IOEVENTFD` with `PRIVCMD_IOEVENTFD_FLAG_DEASSIGN`: undo an
    /// [`ioeventfd_assign`](Self::ioeventfd_assign) of the same binding.
    pub fn ioeventfd_deassign(&self, binding: &Ioeventfd<'_>) -> Result<(), Error> {
        self.ioeventfd(binding, PRIVCMD_IOEVENTFD_FLAG_DEASSIGN)
    }

    fn ioeventfd(&self, b: &Ioeventfd<'_>, flags: u32) -> Result<(), Error> {
        let op = "IOCTL_PRIVCMD_IOEVENTFD";
        if !IOEVENTFD_ACCESS_SIZES.contains(&b.size) {
            return Err(Error::Invalid {
                op,
                reason: "the notify access size must be 1, 2, 4 or 8 bytes",
            });
        }
        if b.ports.is_empty() || b.ports.len() > IOEVENTFD_MAX_VCPUS {
            return Err(Error::Invalid {
                op,
                reason: "one event channel per guest vCPU, 1 to 4096 of them",
            });
        }
        let mut a = PrivcmdIoeventfd {
            ioreq: b.ioreq.as_ptr() as usize as u64,
            ports: b.ports.as_ptr() as usize as u64,
            addr: b.base,
            addr_len: b.size,
            event_fd: fd_number(b.eventfd),
            // Checked against IOEVENTFD_MAX_VCPUS above.
            vcpus: b.ports.len() as u32,
            vq: b.queue,
            flags,
            dom: b.domid,
            pad: [0; 2],
        };
        // SAFETY: IOCTL_PRIVCMD_IOEVENTFD takes a privcmd_ioeventfd; `ioreq` is a live mapping
        // of this descriptor and `ports` a slice of `vcpus` u32 borrowed for the call (the
        // kernel copies the ports and keeps only the page it found behind the mapping).
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_IOEVENTFD, &mut a) }
            .map(drop)
            .map_err(|errno| eventfd_error(op, IOCTL_PRIVCMD_IOEVENTFD_LINUX, errno))
    }

    /// `IOCTL_PRIVCMD_PCIDEV_GET_GSI`: the GSI of the PCI device `sbdf` (see
    /// [`pci_sbdf`](crate::pci_sbdf)), which must be owned by xen-pciback.
    ///
    /// [`Error::NotSupportedByKernel`] before Linux 6.12.
    pub fn pcidev_get_gsi(&self, sbdf: u32) -> Result<u32, Error> {
        let mut a = PrivcmdPcidevGetGsi { sbdf, gsi: 0 };
        // SAFETY: IOCTL_PRIVCMD_PCIDEV_GET_GSI takes a privcmd_pcidev_get_gsi (plain integers).
        unsafe { sys::ioctl(&self.fd, IOCTL_PRIVCMD_PCIDEV_GET_GSI, &mut a) }.map_err(|errno| {
            kernel_ioctl_error(
                "IOCTL_PRIVCMD_PCIDEV_GET_GSI",
                IOCTL_PRIVCMD_PCIDEV_GET_GSI_LINUX,
                errno,
            )
        })?;
        Ok(a.gsi)
    }
}

/// A descriptor as the `u32` the ioctl structs carry (descriptors are non-negative ints).
fn fd_number(fd: BorrowedFd<'_>) -> u32 {
    fd.as_raw_fd() as u32
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use rustix::fs::{Mode, OFlags};

    use super::*;
    use crate::backend::privcmd::Errno;

    fn not_privcmd() -> Privcmd {
        let fd = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()).unwrap();
        // SAFETY: /dev/null fails every ioctl (see `from_fd`).
        unsafe { Privcmd::from_fd(fd) }
    }

    #[test]
    fn a_kernel_without_the_ioctl_is_reported_with_the_release_that_has_it() {
        // /dev/null answers every ioctl with ENOTTY, as a kernel without the driver code does.
        let p = not_privcmd();
        let e = p.pcidev_get_gsi(0x0000_0010).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NotSupportedByKernel {
                    op: "IOCTL_PRIVCMD_PCIDEV_GET_GSI",
                    linux: "6.12",
                    errno: Errno::NOTTY
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.errno(), Some(Errno::NOTTY));
        assert_eq!(
            e.to_string(),
            format!(
                "IOCTL_PRIVCMD_PCIDEV_GET_GSI: not supported by this kernel (Linux 6.12 or later has it): {}",
                Errno::NOTTY
            )
        );
        let null = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()).unwrap();
        let e = p.irqfd_assign(1, &[0u8; 32], null.as_fd()).unwrap_err();
        assert!(
            matches!(e, Error::NotSupportedByKernel { linux: "6.6", .. }),
            "{e:?}"
        );
        let e = p.irqfd_deassign(1, null.as_fd()).unwrap_err();
        assert!(matches!(e, Error::NotSupportedByKernel { .. }), "{e:?}");
    }

    #[test]
    fn eopnotsupp_from_irqfd_names_the_missing_kernel_option() {
        let e = eventfd_error("IOCTL_PRIVCMD_IRQFD", "6.6", Errno::OPNOTSUPP);
        assert_eq!(
            e.to_string(),
            format!(
                "IOCTL_PRIVCMD_IRQFD: this kernel was built without CONFIG_XEN_PRIVCMD_EVENTFD: {}",
                Errno::OPNOTSUPP
            )
        );
        assert!(matches!(
            eventfd_error("IOCTL_PRIVCMD_IRQFD", "6.6", Errno::NOTTY),
            Error::NotSupportedByKernel { .. }
        ));
        assert!(matches!(
            eventfd_error("IOCTL_PRIVCMD_IRQFD", "6.6", Errno::BADF),
            Error::Ioctl { .. }
        ));
    }

    #[test]
    fn ioeventfd_arguments_the_kernel_would_refuse_are_caught_first() {
        let p = not_privcmd();
        let null = rustix::fs::open("/dev/null", OFlags::RDWR, Mode::empty()).unwrap();
        let zero = rustix::fs::open("/dev/zero", OFlags::RDWR, Mode::empty()).unwrap();
        let page = Mapping::shared(&zero, 4096).unwrap();
        let mut b = Ioeventfd {
            domid: 1,
            ioreq: &page,
            ports: &[5],
            base: 0xfe00_0000,
            size: 3,
            queue: 0,
            eventfd: null.as_fd(),
        };
        let e = p.ioeventfd_assign(&b).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    op: "IOCTL_PRIVCMD_IOEVENTFD",
                    ..
                }
            ),
            "{e:?}"
        );
        b.size = 4;
        b.ports = &[];
        let e = p.ioeventfd_assign(&b).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        // Valid arguments reach the kernel, which here lacks the ioctl.
        b.ports = &[5, 6];
        let e = p.ioeventfd_deassign(&b).unwrap_err();
        assert!(
            matches!(e, Error::NotSupportedByKernel { linux: "6.7", .. }),
            "{e:?}"
        );
        let e = p.irqfd_assign(1, &[], null.as_fd()).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    }
}

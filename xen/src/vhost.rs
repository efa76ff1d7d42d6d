//! A vhost-user front end (feature `vhost-user`): a virtio device whose queues a back end in
//! another process serves, such as rust-vmm's `vhost-device-*` built with their `xen` feature.
//!
//! The protocol is rust-vmm's `vhost` crate (`Frontend`, with its `xen` feature: memory regions
//! carry `xen_mmap_flags` and the domid). What this module adds is what makes it work for a
//! Xen guest: the guest's RAM handed over as Xen foreign-mapping regions (the privcmd
//! descriptor, `VHOST_USER_PROTOCOL_F_XEN_MMAP` required), guest-physical ring addresses, and
//! the relay of kicks (a `QUEUE_NOTIFY` → the queue's kick eventfd) and interrupts (the call
//! eventfd → the transport's MSI-X or INTx, see [`crate::virtio::VirtioPci::poll_interrupts`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::os::fd::AsFd;
//! use xen::vhost::{GuestMemoryShare, VhostUserDevice};
//! let linux = xen::linux::Linux::open_nonblocking()?;
//! // The guest's RAM as the back end may map it (guest-physical start, length).
//! let ram = [(0u64, 128u64 << 20)];
//! let rng = VhostUserDevice::connect(
//!     std::path::Path::new("/run/rng.sock"),
//!     xen::virtio::device_id::RNG,
//!     &[64],
//!     GuestMemoryShare::XenForeign { privcmd: linux.privcmd().as_fd(), domid: 5 },
//!     &ram,
//! )?;
//! # let _ = rng;
//! # Ok(())
//! # }
//! ```

use alloc::vec::Vec;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use xen_sys::Domid;

use crate::virtio::{DeviceError, VirtioDevice};
use crate::Error;

/// `VHOST_USER_F_PROTOCOL_FEATURES`: a vhost-user feature bit, never a device's.
const PROTOCOL_FEATURES: u64 = 1 << 30;
/// vm-memory's `MmapXenFlags::FOREIGN`: the back end maps the pages itself through the privcmd
/// descriptor, by guest-physical address and domid.
const XEN_MMAP_FOREIGN: u32 = 0x1;
/// `MmapXenFlags::UNIX`: a plain shared mapping of the region's descriptor.
const XEN_MMAP_UNIX: u32 = 0x0;

/// A vhost-user protocol failure, named by the step.
fn protocol(op: &'static str) -> impl FnOnce(vhost::Error) -> Error {
    move |e| {
        log::warn!("vhost-user {op}: {e}");
        Error::Platform {
            op,
            what: "the vhost-user back end refused or broke the protocol",
        }
    }
}

/// How the back end reaches the guest's RAM.
#[derive(Clone, Copy, Debug)]
pub enum GuestMemoryShare<'a> {
    /// Xen foreign mappings: the back end maps the pages of `domid` itself through the privcmd
    /// descriptor, by guest-physical address (a real guest).
    XenForeign {
        /// `/dev/xen/privcmd` (the device keeps a duplicate).
        privcmd: BorrowedFd<'a>,
        /// The guest.
        domid: Domid,
    },
    /// Plain shared memory: one descriptor holding all of guest RAM from offset 0 in
    /// guest-physical order (`memfd`; tests, and guests whose RAM is a file).
    SharedFile {
        /// The memory's descriptor (the device keeps a duplicate).
        fd: BorrowedFd<'a>,
    },
}

/// A virtio device served by a vhost-user back end.
pub struct VhostUserDevice {
    frontend: Frontend,
    device_type: u32,
    features: u64,
    protocol: VhostUserProtocolFeatures,
    max_sizes: Vec<u16>,
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
    /// Our own duplicate of the memory descriptor: the back end gets it with every memory
    /// table, so it must stay this file for as long as the device lives (a number borrowed
    /// from the caller could be closed and reused for another file).
    memory: OwnedFd,
    /// `xen_mmap_flags` and `xen_mmap_data` of every region.
    xen_flags: u32,
    xen_data: u32,
    ram: Vec<(u64, u64)>,
    /// Queues handed to the back end (and not stopped since).
    started: u64,
}

impl core::fmt::Debug for VhostUserDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VhostUserDevice")
            .field("device_type", &self.device_type)
            .field("features", &self.features)
            .field("queues", &self.max_sizes)
            .field("xen_mmap", &(self.xen_flags, self.xen_data))
            .finish_non_exhaustive()
    }
}

impl VhostUserDevice {
    /// Connect to the back end listening on `socket`, as device `device_type` with queues of
    /// `queue_sizes` (maximum sizes), for a guest whose RAM is `ram` (guest-physical start and
    /// length of each populated run, as [`crate::memory::GuestRam::regions`] gives them),
    /// shared with the back end as `share` says. A back end that does not offer
    /// `VHOST_USER_PROTOCOL_F_XEN_MMAP` (one built without its `xen` feature) is refused.
    pub fn connect(
        socket: &Path,
        device_type: u32,
        queue_sizes: &[u16],
        share: GuestMemoryShare<'_>,
        ram: &[(u64, u64)],
    ) -> Result<Self, Error> {
        let n = queue_sizes.len();
        if n == 0 || n > 64 || ram.is_empty() {
            return Err(Error::InvalidArgument {
                op: "vhost-user device",
                what: "1 to 64 queues and some guest RAM",
            });
        }
        let (memory, xen_flags, xen_data) = match share {
            GuestMemoryShare::XenForeign { privcmd, domid } => {
                (privcmd, XEN_MMAP_FOREIGN, u32::from(domid))
            }
            GuestMemoryShare::SharedFile { fd } => (fd, XEN_MMAP_UNIX, 0),
        };
        let memory = memory.try_clone_to_owned().map_err(|e| Error::Os {
            op: "dup of the guest memory descriptor",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        let mut frontend = Frontend::connect(socket, n as u64).map_err(|e| {
            log::warn!("vhost-user connect {}: {e}", socket.display());
            Error::Platform {
                op: "vhost-user connect",
                what: "cannot connect to the back end's socket",
            }
        })?;
        frontend.set_owner().map_err(protocol("SET_OWNER"))?;
        let features = frontend.get_features().map_err(protocol("GET_FEATURES"))?;
        if features & PROTOCOL_FEATURES == 0 {
            return Err(Error::Protocol {
                op: "vhost-user GET_FEATURES",
                what: "the back end offers no protocol features (so no Xen memory regions)",
            });
        }
        // The features bit must be acked before the protocol features are negotiated.
        frontend
            .set_features(PROTOCOL_FEATURES)
            .map_err(protocol("SET_FEATURES"))?;
        let offered = frontend
            .get_protocol_features()
            .map_err(protocol("GET_PROTOCOL_FEATURES"))?;
        if !offered.contains(VhostUserProtocolFeatures::XEN_MMAP) {
            return Err(Error::Protocol {
                op: "vhost-user GET_PROTOCOL_FEATURES",
                what: "the back end lacks VHOST_USER_PROTOCOL_F_XEN_MMAP (build it with --features xen)",
            });
        }
        let protocol_features = offered
            & (VhostUserProtocolFeatures::XEN_MMAP
                | VhostUserProtocolFeatures::CONFIG
                | VhostUserProtocolFeatures::MQ
                | VhostUserProtocolFeatures::REPLY_ACK);
        frontend
            .set_protocol_features(protocol_features)
            .map_err(protocol("SET_PROTOCOL_FEATURES"))?;
        if protocol_features.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            // Every request answered: a back end that cannot map the guest's RAM says so at
            // SET_MEM_TABLE instead of failing silently later.
            frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        if protocol_features.contains(VhostUserProtocolFeatures::MQ) {
            let q = frontend
                .get_queue_num()
                .map_err(protocol("GET_QUEUE_NUM"))?;
            if q < n as u64 {
                return Err(Error::Protocol {
                    op: "vhost-user GET_QUEUE_NUM",
                    what: "the back end has fewer queues than the device",
                });
            }
        }
        let eventfd = || {
            EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Os {
                op: "eventfd",
                errno: e.raw_os_error().unwrap_or(0),
            })
        };
        let kicks = (0..n).map(|_| eventfd()).collect::<Result<Vec<_>, _>>()?;
        let calls = (0..n).map(|_| eventfd()).collect::<Result<Vec<_>, _>>()?;
        Ok(VhostUserDevice {
            frontend,
            device_type,
            features: features & !PROTOCOL_FEATURES,
            protocol: protocol_features,
            max_sizes: queue_sizes.to_vec(),
            kicks,
            calls,
            memory,
            xen_flags,
            xen_data,
            ram: ram.to_vec(),
            started: 0,
        })
    }

    /// Stop every queue handed to the back end (`GET_VRING_BASE` stops a ring).
    fn stop(&mut self) {
        for i in 0..self.max_sizes.len() {
            if self.started & (1 << i) != 0 {
                if let Err(e) = self.frontend.get_vring_base(i) {
                    log::warn!("vhost-user GET_VRING_BASE of queue {i}: {e}");
                }
            }
        }
        self.started = 0;
    }

    fn start(&mut self, features: u64, queues: &[Queue]) -> Result<(), vhost::Error> {
        self.frontend.set_features(features | PROTOCOL_FEATURES)?;
        let regions: Vec<VhostUserMemoryRegionInfo> = self
            .ram
            .iter()
            .map(|&(gpa, len)| VhostUserMemoryRegionInfo {
                guest_phys_addr: gpa,
                memory_size: len,
                // Ring addresses are guest-physical: the back end maps by gpa itself.
                userspace_addr: gpa,
                // A foreign mapping is by gpa; a shared file holds RAM at its gpa.
                mmap_offset: if self.xen_flags == XEN_MMAP_UNIX {
                    gpa
                } else {
                    0
                },
                mmap_handle: self.memory.as_raw_fd(),
                xen_mmap_flags: self.xen_flags,
                xen_mmap_data: self.xen_data,
            })
            .collect();
        self.frontend.set_mem_table(&regions)?;
        log::info!(
            "vhost-user memory: {} regions, xen_mmap {:#x}/{} (features {features:#x})",
            regions.len(),
            self.xen_flags,
            self.xen_data
        );
        for (i, q) in queues.iter().enumerate() {
            if !q.ready() {
                continue;
            }
            self.frontend.set_vring_num(i, q.size())?;
            self.frontend.set_vring_addr(
                i,
                &VringConfigData {
                    queue_max_size: q.max_size(),
                    queue_size: q.size(),
                    flags: 0,
                    desc_table_addr: q.desc_table(),
                    used_ring_addr: q.used_ring(),
                    avail_ring_addr: q.avail_ring(),
                    log_addr: None,
                },
            )?;
            self.frontend.set_vring_base(i, 0)?;
            self.frontend.set_vring_call(i, &self.calls[i])?;
            self.frontend.set_vring_kick(i, &self.kicks[i])?;
            self.frontend.set_vring_enable(i, true)?;
            self.started |= 1 << i;
            log::info!(
                "vhost-user queue {i} started: {} entries, rings at {:#x}/{:#x}/{:#x}",
                q.size(),
                q.desc_table(),
                q.avail_ring(),
                q.used_ring()
            );
        }
        // The back end handles messages on one thread and kicks on another: a kick that
        // overtakes SET_VRING_ENABLE is dropped. A request with a reply is a barrier: when it
        // is answered, every message before it has been handled. Then one kick per queue, for
        // buffers the driver made available before DRIVER_OK.
        self.frontend.get_features()?;
        for (i, k) in self.kicks.iter().enumerate() {
            if self.started & (1 << i) != 0 {
                k.write(1).map_err(vhost::Error::IOError)?;
            }
        }
        Ok(())
    }
}

impl<M: GuestMemory> VirtioDevice<M> for VhostUserDevice {
    fn device_type(&self) -> u32 {
        self.device_type
    }

    fn features(&self) -> u64 {
        self.features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.max_sizes
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !self.protocol.contains(VhostUserProtocolFeatures::CONFIG) {
            return;
        }
        // `Frontend` is a shared handle to one connection: a clone asks on it.
        let (Ok(off), Ok(len)) = (u32::try_from(offset), u32::try_from(data.len())) else {
            return;
        };
        let zeros = alloc::vec![0u8; data.len()];
        match self
            .frontend
            .clone()
            .get_config(off, len, VhostUserConfigFlags::empty(), &zeros)
        {
            Ok((_, bytes)) if bytes.len() == data.len() => data.copy_from_slice(&bytes),
            Ok(_) => log::warn!("vhost-user GET_CONFIG: a reply of the wrong size"),
            Err(e) => log::warn!("vhost-user GET_CONFIG at {offset:#x}: {e}"),
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if !self.protocol.contains(VhostUserProtocolFeatures::CONFIG) {
            return;
        }
        let Ok(off) = u32::try_from(offset) else {
            return;
        };
        if let Err(e) = self
            .frontend
            .set_config(off, VhostUserConfigFlags::WRITABLE, data)
        {
            log::warn!("vhost-user SET_CONFIG at {offset:#x}: {e}");
        }
    }

    fn activate(&mut self, features: u64, queues: &[Queue]) -> Result<(), DeviceError> {
        self.stop();
        self.start(features, queues).map_err(|e| {
            log::warn!("vhost-user device set-up: {e}");
            DeviceError::Device("the vhost-user back end refused the device set-up")
        })
    }

    fn process_queue(
        &mut self,
        index: u16,
        _queue: &mut Queue,
        _mem: &M,
    ) -> Result<bool, DeviceError> {
        // The back end consumes the buffers; the guest's notify becomes its kick.
        log::debug!("vhost-user queue {index}: kick");
        if let Some(k) = self.kicks.get(usize::from(index)) {
            k.write(1)
                .map_err(|_| DeviceError::Device("writing the kick eventfd failed"))?;
        }
        Ok(false)
    }

    fn reset(&mut self) {
        self.stop();
    }

    fn take_interrupts(&mut self) -> u64 {
        let mut mask = 0;
        for (i, c) in self.calls.iter().enumerate() {
            // Non-blocking: Ok when the back end signalled since the last read.
            if c.read().is_ok() {
                log::debug!("vhost-user queue {i}: the back end signalled");
                mask |= 1 << i;
            }
        }
        mask
    }

    fn interrupt_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.calls
            .iter()
            // SAFETY: the eventfds live as long as `self`, which the borrow is tied to.
            .map(|c| unsafe { BorrowedFd::borrow_raw(c.as_raw_fd()) })
            .collect()
    }
}

impl Drop for VhostUserDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

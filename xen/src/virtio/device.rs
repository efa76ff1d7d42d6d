//! What a virtio device implements, whatever the transport.

#[cfg(target_os = "linux")]
use alloc::vec::Vec;
#[cfg(target_os = "linux")]
use std::os::fd::BorrowedFd;

use virtio_queue::Queue;
use vm_memory::GuestMemory;

/// Why a device stopped serving a queue (the transport then sets `NEEDS_RESET`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The driver's rings or buffers could not be used (addresses outside guest RAM, a broken
    /// descriptor chain, ...).
    #[error("queue {queue}: {what}")]
    Queue {
        /// The queue index.
        queue: u16,
        /// What was wrong (virtio-queue's error, in words).
        what: alloc::string::String,
    },
    /// The device's own failure.
    #[error("{0}")]
    Device(&'static str),
    /// What serves the device (a back end in another process) went away or broke its protocol.
    /// The device needs a reset until [`BackendEvent::Restored`]; then the transport resumes
    /// it where the driver left it, if the driver has not reset it meanwhile.
    #[error("the back end is gone: {0}")]
    BackendLost(alloc::string::String),
}

/// A change in the connection between a device and what serves it, from
/// [`VirtioDevice::poll_backend`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendEvent {
    /// The back end went away (a [`DeviceError::BackendLost`]): the transport sets
    /// `NEEDS_RESET` and tells the driver.
    Lost(DeviceError),
    /// A back end is connected again and ready for [`VirtioDevice::activate`].
    Restored,
}

impl DeviceError {
    /// A `virtio-queue` error on queue `queue`.
    pub fn queue(queue: u16, e: virtio_queue::Error) -> DeviceError {
        DeviceError::Queue {
            queue,
            what: alloc::format!("{e}"),
        }
    }
}

/// A virtio device, independent of the transport (virtio-pci on x86, virtio-mmio on Arm).
///
/// The transport negotiates features, keeps the device status and the queues' configuration,
/// validates everything the driver writes, and calls the device when the driver notifies a
/// queue; the device only moves buffers. Guest RAM is rust-vmm's `GuestMemory` (for a Xen
/// guest, [`crate::memory::GuestRam::vm_memory`]).
///
/// ```
/// use virtio_queue::{Queue, QueueT};
/// use vm_memory::{Bytes, GuestMemory};
/// use xen::virtio::{DeviceError, VirtioDevice};
///
/// /// virtio-rng: fills every buffer the driver offers.
/// struct Rng(u8);
///
/// impl<M: GuestMemory> VirtioDevice<M> for Rng {
///     fn device_type(&self) -> u32 {
///         xen::virtio::device_id::RNG
///     }
///     fn queue_max_sizes(&self) -> &[u16] {
///         &[64]
///     }
///     fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
///         let mut used = false;
///         while let Some(chain) = q.pop_descriptor_chain(mem) {
///             let head = chain.head_index();
///             let mut len = 0;
///             for d in chain.writable() {
///                 let bytes = vec![self.0; d.len() as usize];
///                 mem.write_slice(&bytes, d.addr())
///                     .map_err(|_| DeviceError::Device("buffer outside guest RAM"))?;
///                 len += d.len();
///             }
///             q.add_used(mem, head, len).map_err(|e| DeviceError::queue(index, e))?;
///             used = true;
///         }
///         Ok(used)
///     }
/// }
/// ```
pub trait VirtioDevice<M: GuestMemory> {
    /// The virtio device ID ([`super::device_id`]).
    fn device_type(&self) -> u32;

    /// The device's feature bits (the transport adds `VIRTIO_F_VERSION_1`).
    fn features(&self) -> u64 {
        0
    }

    /// The maximum size of each queue (its length is the number of queues; each a power of
    /// two, at most 32768).
    fn queue_max_sizes(&self) -> &[u16];

    /// Read `data.len()` bytes of the device-specific configuration at `offset` (zeros by
    /// default; bytes past the end read as zero).
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let _ = offset;
        data.fill(0);
    }

    /// The driver wrote the device-specific configuration at `offset` (ignored by default).
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let _ = (offset, data);
    }

    /// The driver set `DRIVER_OK` with these features negotiated; `queues` as the driver set
    /// them up (an out-of-process device hands them to its back end here).
    fn activate(&mut self, features: u64, queues: &[Queue]) -> Result<(), DeviceError> {
        let _ = (features, queues);
        Ok(())
    }

    /// Queues whose buffers were used outside [`process_queue`](Self::process_queue) (a back
    /// end in another process signalled them), as a bit mask (bit `i`: queue `i`), each
    /// reported once. Polled by the transport when [`interrupt_fds`](Self::interrupt_fds)
    /// become readable. None by default.
    fn take_interrupts(&mut self) -> u64 {
        0
    }

    /// Descriptors that become readable when [`take_interrupts`](Self::take_interrupts) has
    /// something to report (for an event loop's poll). None by default.
    #[cfg(target_os = "linux")]
    fn interrupt_fds(&self) -> Vec<BorrowedFd<'_>> {
        Vec::new()
    }

    /// The eventfd this device's back end signals when it used buffers of queue `index`, for
    /// a transport whose kernel can turn each signal into the queue's interrupt itself (Linux
    /// privcmd irqfd), with no return to user space. None by default: used buffers are
    /// reported through [`take_interrupts`](Self::take_interrupts) only.
    #[cfg(target_os = "linux")]
    fn queue_call_fd(&self, index: u16) -> Option<BorrowedFd<'_>> {
        let _ = index;
        None
    }

    /// The queues whose [`queue_call_fd`](Self::queue_call_fd) the kernel consumes from now
    /// on (bit `i`: queue `i`; replaces the previous mask): [`take_interrupts`] and
    /// [`interrupt_fds`](Self::interrupt_fds) must leave those eventfds alone, or the two
    /// readers would race for their signals.
    ///
    /// [`take_interrupts`]: Self::take_interrupts
    #[cfg(target_os = "linux")]
    fn set_kernel_interrupts(&mut self, queues: u64) {
        let _ = queues;
    }

    /// The driver notified queue `index`: consume what it made available. Returns whether
    /// used buffers were added (the transport then interrupts the driver, as the queue's
    /// notification suppression allows). An error sets `NEEDS_RESET`.
    fn process_queue(
        &mut self,
        index: u16,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, DeviceError>;

    /// The driver reset the device (status 0): forget everything negotiated.
    fn reset(&mut self) {}

    /// Whether the device's back end went away or came back since the last call. Polled by
    /// the transport with [`take_interrupts`](Self::take_interrupts), and again after
    /// [`backend_retry`](Self::backend_retry) when no descriptor became readable. An
    /// in-process device has no back end: `None` by default.
    fn poll_backend(&mut self) -> Option<BackendEvent> {
        None
    }

    /// How soon [`poll_backend`](Self::poll_backend) wants to run again even if none of the
    /// [`interrupt_fds`](Self::interrupt_fds) becomes readable (a back end to reconnect to).
    /// `None` by default: only when one does.
    fn backend_retry(&self) -> Option<core::time::Duration> {
        None
    }
}

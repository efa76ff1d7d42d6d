//! The transport-neutral state of a virtio device: feature negotiation, device status, the
//! queues' configuration, and `NEEDS_RESET`. Each transport maps its registers onto these
//! operations (virtio-pci's common configuration structure, virtio-mmio's register block).

use alloc::vec::Vec;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;

use super::device::{BackendEvent, DeviceError, VirtioDevice};
use super::{features, status};

/// Why a device needs a reset: what the driver (or the device) did wrong. Shown once, in the
/// log line that reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// A queue size that is zero, not a power of two, or above the queue's maximum.
    #[error("queue {queue}: size {size} is not a power of two of at most {max}")]
    QueueSize {
        /// The queue.
        queue: u16,
        /// The size written.
        size: u16,
        /// The queue's maximum.
        max: u16,
    },
    /// A queue's configuration changed while it is enabled.
    #[error("queue {queue}: configuration written while the queue is enabled")]
    QueueLive {
        /// The queue.
        queue: u16,
    },
    /// A queue enabled with rings outside guest RAM or misaligned.
    #[error("queue {queue}: rings at desc {desc:#x}, driver {driver:#x}, device {device:#x} are not in guest RAM or misaligned")]
    QueueRings {
        /// The queue.
        queue: u16,
        /// Descriptor table address.
        desc: u64,
        /// Driver (available) ring address.
        driver: u64,
        /// Device (used) ring address.
        device: u64,
    },
    /// A queue disabled by writing 0 to its enable register (virtio 1.x forbids it).
    #[error("queue {queue}: disabled by the driver without a reset")]
    QueueDisabled {
        /// The queue.
        queue: u16,
    },
    /// A notify of a queue that does not exist or is not enabled, or before `DRIVER_OK`.
    #[error("notify of queue {queue}, which is not enabled")]
    NotifyDisabled {
        /// The queue.
        queue: u16,
    },
    /// A write to a read-only register.
    #[error("write to the read-only register {register}")]
    ReadOnly {
        /// The register.
        register: &'static str,
    },
    /// A register written with an access it does not support (size or offset).
    #[error("{size}-byte write at offset {offset:#x} of {region} matches no register")]
    BadAccess {
        /// The register block.
        region: &'static str,
        /// The offset in it.
        offset: u64,
        /// The access size.
        size: u32,
    },
    /// The driver cleared a status bit without resetting the device.
    #[error("device status {from:#04x} changed to {to:#04x}: bits cleared without a reset")]
    StatusCleared {
        /// The status before.
        from: u8,
        /// The status written.
        to: u8,
    },
    /// The device failed to serve a queue.
    #[error("{0}")]
    Device(DeviceError),
    /// The guest placed the device's memory BAR over its RAM or over another claimed range.
    #[error("BAR {bar} at {addr:#x} ({size:#x} bytes) overlaps {what}")]
    BarPlacement {
        /// The BAR index.
        bar: u8,
        /// The address the guest programmed.
        addr: u64,
        /// The BAR's size.
        size: u64,
        /// What it overlaps.
        what: &'static str,
    },
    /// A back end that came back did not continue the queue where the driver left it: its
    /// first used index after the resume is not past the one it was given (rust-vmm's
    /// `vhost-user-backend` before 0.11 restarts the used index at 0 on a new connection).
    #[error("queue {queue}: the back end did not resume at used index {base} (it wrote {used}, {avail} available); only a reset recovers")]
    BackendResume {
        /// The queue.
        queue: u16,
        /// The used index it was resumed at.
        base: u16,
        /// The used index it wrote.
        used: u16,
        /// The driver's available index.
        avail: u16,
    },
    /// An MSI-X table access outside the table.
    #[error("MSI-X table access at offset {offset:#x} is outside the table of {entries} entries")]
    MsixOutOfRange {
        /// The offset in the table region.
        offset: u64,
        /// Table entries.
        entries: u16,
    },
}

/// What [`Common::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Polled {
    /// Queues to interrupt the driver for (bit `i`: queue `i`).
    pub queues: u64,
    /// Whether the driver must be told of a fault (a configuration-change interrupt).
    pub tell: bool,
}

/// A virtio device's transport-neutral state and the device itself, on guest RAM `M`.
pub struct Common<D, M> {
    device: D,
    mem: M,
    device_features: u64,
    driver_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    status: u8,
    config_generation: u8,
    queue_select: u16,
    queues: Vec<Queue>,
    fault: Option<Fault>,
    faults: u64,
    /// Queues to interrupt at the next [`poll`](Common::poll) (after a
    /// resume: calls may have been lost with the back end).
    pending: u64,
    resumes: u64,
    /// Queues resumed with a new back end, with the used index they were resumed at, until
    /// the back end's first use of each shows it continued from there.
    unverified: Vec<(u16, u16)>,
}

impl<D: core::fmt::Debug, M> core::fmt::Debug for Common<D, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Common")
            .field("device", &self.device)
            .field("status", &self.status)
            .field("driver_features", &self.driver_features)
            .field("queues", &self.queues.len())
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl<D: VirtioDevice<M>, M: GuestMemory> Common<D, M> {
    /// The state of a freshly reset `device` on guest RAM `mem`. A device with no queue, more
    /// than 1024, or a maximum size that is not a power of two up to 32768 is refused.
    pub fn new(device: D, mem: M) -> Result<Self, crate::Error> {
        let max = device.queue_max_sizes();
        if max.is_empty() || max.len() > 1024 {
            return Err(crate::Error::InvalidArgument {
                op: "virtio device",
                what: "between 1 and 1024 queues",
            });
        }
        let queues = max
            .iter()
            .map(|&m| Queue::new(m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| crate::Error::InvalidArgument {
                op: "virtio device",
                what: "queue sizes must be powers of two of at most 32768",
            })?;
        let device_features = device.features() | features::VERSION_1;
        Ok(Common {
            device,
            mem,
            device_features,
            driver_features: 0,
            device_feature_select: 0,
            driver_feature_select: 0,
            status: 0,
            config_generation: 0,
            queue_select: 0,
            queues,
            fault: None,
            faults: 0,
            pending: 0,
            resumes: 0,
            unverified: Vec::new(),
        })
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably.
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Guest RAM.
    pub fn memory(&self) -> &M {
        &self.mem
    }

    /// The device status.
    pub fn status(&self) -> u8 {
        self.status
    }

    /// The features the driver accepted (valid from `FEATURES_OK`).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// Why the device needs a reset, if it does.
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Faults reported since the device was created (each is one log line).
    pub fn faults(&self) -> u64 {
        self.faults
    }

    /// Whether interrupts wait for the next [`poll`](Self::poll) (after a resume).
    pub fn has_pending_interrupts(&self) -> bool {
        self.pending != 0
    }

    /// How soon a transport must call [`poll`](Self::poll) even if none of the device's
    /// interrupt descriptors becomes readable: at once for interrupts owed after a resume,
    /// else when the device wants to retry its back end ([`VirtioDevice::backend_retry`]).
    pub fn poll_timeout(&self) -> Option<core::time::Duration> {
        if self.has_pending_interrupts() {
            return Some(core::time::Duration::ZERO);
        }
        self.device.backend_retry()
    }

    /// Times the device was resumed after its back end came back (without a reset).
    pub fn resumes(&self) -> u64 {
        self.resumes
    }

    /// The number of queues.
    pub fn num_queues(&self) -> u16 {
        self.queues.len() as u16
    }

    /// The configuration generation (changes with every configuration change the device makes).
    pub fn config_generation(&self) -> u8 {
        self.config_generation
    }

    /// Queue `index`, if it exists.
    pub fn queue(&self, index: u16) -> Option<&Queue> {
        self.queues.get(usize::from(index))
    }

    /// Set `NEEDS_RESET` for `fault` (reported once, until the driver resets the device).
    /// Returns whether the driver must be told (a configuration-change interrupt): true the
    /// first time.
    pub fn fail(&mut self, fault: Fault) -> bool {
        if self.fault.is_some() {
            return false;
        }
        log::warn!(
            "virtio device (type {}): {fault}; the device needs a reset",
            self.device.device_type()
        );
        self.fault = Some(fault);
        self.faults += 1;
        self.status |= status::NEEDS_RESET;
        self.config_generation = self.config_generation.wrapping_add(1);
        true
    }

    /// `device_feature_select`.
    pub fn device_feature_select(&self) -> u32 {
        self.device_feature_select
    }

    /// Write `device_feature_select`.
    pub fn set_device_feature_select(&mut self, v: u32) {
        self.device_feature_select = v;
    }

    /// The 32 device feature bits `device_feature_select` selects (0 past bit 63).
    pub fn device_features_word(&self) -> u32 {
        match self.device_feature_select {
            0 => self.device_features as u32,
            1 => (self.device_features >> 32) as u32,
            _ => 0,
        }
    }

    /// `driver_feature_select`.
    pub fn driver_feature_select(&self) -> u32 {
        self.driver_feature_select
    }

    /// Write `driver_feature_select`.
    pub fn set_driver_feature_select(&mut self, v: u32) {
        self.driver_feature_select = v;
    }

    /// The 32 driver feature bits `driver_feature_select` selects.
    pub fn driver_features_word(&self) -> u32 {
        match self.driver_feature_select {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        }
    }

    /// Write 32 driver feature bits (ignored once `FEATURES_OK` is set: the features are
    /// negotiated).
    pub fn set_driver_features_word(&mut self, v: u32) {
        if self.status & status::FEATURES_OK != 0 {
            return;
        }
        match self.driver_feature_select {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
            _ => {}
        }
    }

    /// Write the device status. 0 resets the device; otherwise bits may only be added.
    /// `FEATURES_OK` sticks only for features the device offered, `VIRTIO_F_VERSION_1` among
    /// them; `DRIVER_OK` activates the device. Returns whether the driver must be told of a
    /// fault (see [`fail`](Self::fail)).
    pub fn set_status(&mut self, v: u8) -> bool {
        if v == 0 {
            self.reset();
            return false;
        }
        // NEEDS_RESET is the device's bit: the driver may write back what it read.
        let now = self.status & !status::NEEDS_RESET;
        let v = v & !status::NEEDS_RESET;
        if v & now != now {
            return self.fail(Fault::StatusCleared { from: now, to: v });
        }
        let added = v & !now;
        let mut new = v;
        if added & status::FEATURES_OK != 0 {
            let acceptable = self.driver_features & !self.device_features == 0
                && self.driver_features & features::VERSION_1 != 0;
            if acceptable {
                let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
                for q in &mut self.queues {
                    q.set_event_idx(event_idx);
                }
            } else {
                // The driver reads the status back and sees the features refused.
                new &= !status::FEATURES_OK;
            }
        }
        self.status = new | (self.status & status::NEEDS_RESET);
        if added & status::DRIVER_OK != 0 && new & status::FEATURES_OK != 0 {
            if let Err(e) = self.device.activate(self.driver_features, &self.queues) {
                return self.fail(Fault::Device(e));
            }
        }
        false
    }

    /// The device reset: the device's own, every queue's, and the negotiation's.
    pub fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.status = 0;
        self.queue_select = 0;
        self.fault = None;
        self.pending = 0;
        self.unverified.clear();
    }

    /// `queue_select`.
    pub fn queue_select(&self) -> u16 {
        self.queue_select
    }

    /// Write `queue_select` (a queue that does not exist reads as size 0).
    pub fn set_queue_select(&mut self, v: u16) {
        self.queue_select = v;
    }

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(usize::from(self.queue_select))
    }

    /// The selected queue's size (0 when it does not exist).
    pub fn queue_size(&self) -> u16 {
        self.selected().map_or(0, |q| q.size())
    }

    /// The selected queue's maximum size (0 when it does not exist).
    pub fn queue_max_size(&self) -> u16 {
        self.selected().map_or(0, |q| q.max_size())
    }

    /// Whether the selected queue is enabled.
    pub fn queue_ready(&self) -> bool {
        self.selected().is_some_and(|q| q.ready())
    }

    /// The selected queue's descriptor table, driver ring and device ring addresses.
    pub fn queue_addresses(&self) -> (u64, u64, u64) {
        self.selected().map_or((0, 0, 0), |q| {
            (q.desc_table(), q.avail_ring(), q.used_ring())
        })
    }

    /// The selected queue, if it exists and is not enabled yet; a fault otherwise (a write
    /// to a queue that does not exist is ignored, as to no register).
    fn configurable(&mut self) -> Result<Option<&mut Queue>, bool> {
        let queue = self.queue_select;
        match self.queues.get(usize::from(queue)) {
            None => Ok(None),
            Some(q) if q.ready() => Err(self.fail(Fault::QueueLive { queue })),
            Some(_) => Ok(self.queues.get_mut(usize::from(queue))),
        }
    }

    /// Write the selected queue's size. Returns whether the driver must be told of a fault.
    pub fn set_queue_size(&mut self, size: u16) -> bool {
        let queue = self.queue_select;
        match self.configurable() {
            Err(tell) => tell,
            Ok(None) => false,
            Ok(Some(q)) => {
                let max = q.max_size();
                if size == 0 || size > max || !size.is_power_of_two() {
                    return self.fail(Fault::QueueSize { queue, size, max });
                }
                q.set_size(size);
                false
            }
        }
    }

    /// Write 32 bits of one of the selected queue's ring addresses (`ring`: 0 descriptor
    /// table, 1 driver ring, 2 device ring; `high`: the upper half). Returns whether the driver
    /// must be told of a fault.
    pub fn set_queue_address(&mut self, ring: u8, high: bool, v: u32) -> bool {
        match self.configurable() {
            Err(tell) => tell,
            Ok(None) => false,
            Ok(Some(q)) => {
                let (lo, hi) = if high {
                    (None, Some(v))
                } else {
                    (Some(v), None)
                };
                match ring {
                    0 => q.set_desc_table_address(lo, hi),
                    1 => q.set_avail_ring_address(lo, hi),
                    _ => q.set_used_ring_address(lo, hi),
                }
                false
            }
        }
    }

    /// Write the selected queue's enable register: 1 enables it once its rings are valid in
    /// guest RAM; 0 is not allowed (a reset disables queues). Returns whether the driver must
    /// be told of a fault.
    pub fn set_queue_ready(&mut self, v: u16) -> bool {
        let queue = self.queue_select;
        if v == 0 {
            if self.queue_ready() {
                return self.fail(Fault::QueueDisabled { queue });
            }
            return false;
        }
        let mem = &self.mem;
        match self.queues.get_mut(usize::from(queue)) {
            None => false,
            Some(q) if q.ready() => false,
            Some(q) => {
                // virtio-queue validates a queue marked ready only.
                q.set_ready(true);
                if q.is_valid(mem) {
                    false
                } else {
                    q.set_ready(false);
                    let (desc, driver, device) = (q.desc_table(), q.avail_ring(), q.used_ring());
                    self.fail(Fault::QueueRings {
                        queue,
                        desc,
                        driver,
                        device,
                    })
                }
            }
        }
    }

    /// The driver notified queue `index`. `Ok(true)`: the device used buffers and the driver
    /// wants an interrupt for them; `Err(tell)`: a fault (`tell`: the driver must be told).
    /// Nothing is processed while the device needs a reset.
    pub fn notify(&mut self, index: u16) -> Result<bool, bool> {
        if self.fault.is_some() {
            return Ok(false);
        }
        let live = self.status & status::DRIVER_OK != 0;
        let mem = &self.mem;
        let Some(q) = self
            .queues
            .get_mut(usize::from(index))
            .filter(|q| live && q.ready())
        else {
            return Err(self.fail(Fault::NotifyDisabled { queue: index }));
        };
        match self.device.process_queue(index, q, mem) {
            Ok(false) => Ok(false),
            Ok(true) => q
                .needs_notification(mem)
                .map_err(|e| self.fail(Fault::Device(DeviceError::queue(index, e)))),
            Err(e) => Err(self.fail(Fault::Device(e))),
        }
    }

    /// Poll the device for what happened outside a notify: its back end going away or coming
    /// back ([`VirtioDevice::poll_backend`]) and queues it used
    /// ([`VirtioDevice::take_interrupts`]).
    ///
    /// A back end that went away sets `NEEDS_RESET`. One that came back resumes the device
    /// where the driver left it, unless the driver reset it meanwhile (then it is set up at
    /// the next `DRIVER_OK`, as usual) or the device needs a reset for another reason: each
    /// enabled queue continues from the used index in guest RAM (buffers the lost back end
    /// took but never used are served again), the `NEEDS_RESET` the loss set is cleared, and
    /// every enabled queue gets one interrupt (the lost back end's last ones may not have
    /// arrived; a driver finds nothing new harmlessly). The back end's first use of each
    /// resumed queue is checked: one that did not continue from that used index
    /// ([`Fault::BackendResume`]) sets `NEEDS_RESET` again, for good.
    ///
    /// Queues not enabled, and everything while the device needs a reset, are left out of
    /// the interrupts.
    pub fn poll(&mut self) -> Polled {
        // Interrupts first: a device that found some knows why it was woken, and may skip
        // looking for a lost back end (see `VhostUserDevice`).
        let signalled = self.device.take_interrupts();
        let mut tell = match self.device.poll_backend() {
            None => false,
            Some(BackendEvent::Lost(e)) => self.fail(Fault::Device(e)),
            Some(BackendEvent::Restored) => self.resume(),
        };
        if !self.unverified.is_empty() {
            tell |= self.verify_resumed(signalled);
        }
        let mask = signalled | core::mem::take(&mut self.pending);
        if self.fault.is_some() {
            return Polled { queues: 0, tell };
        }
        let mut ready = 0;
        for (i, q) in self.queues.iter().enumerate().take(64) {
            if q.ready() {
                ready |= 1 << i;
            }
        }
        Polled {
            queues: mask & ready,
            tell,
        }
    }

    /// Check the resumed queues in `used` (see [`poll`](Self::poll)); whether the driver must
    /// be told of a fault.
    fn verify_resumed(&mut self, used: u64) -> bool {
        use core::num::Wrapping;
        use core::sync::atomic::Ordering;
        let mut bad = None;
        let mem = &self.mem;
        let queues = &self.queues;
        self.unverified.retain(|&(queue, base)| {
            if queue >= 64 || used & (1 << queue) == 0 || bad.is_some() {
                return true;
            }
            let Some(q) = queues.get(usize::from(queue)) else {
                return false;
            };
            let (Ok(u), Ok(a)) = (
                q.used_idx(mem, Ordering::Acquire),
                q.avail_idx(mem, Ordering::Acquire),
            ) else {
                return true;
            };
            let b = Wrapping(base);
            if u == b && a == b {
                return true; // nothing was available: nothing to judge by yet
            }
            if u == b || (u - b).0 > (a - b).0 {
                bad = Some(Fault::BackendResume {
                    queue,
                    base,
                    used: u.0,
                    avail: a.0,
                });
                return false;
            }
            false
        });
        match bad {
            Some(f) => {
                self.unverified.clear();
                self.fail(f)
            }
            None => false,
        }
    }

    /// The state the driver set up, as text (`common` and `queue` lines), for
    /// [`restore`](Self::restore) in a device model that takes over from this one.
    pub(crate) fn save(&self, out: &mut alloc::string::String) {
        use core::fmt::Write;
        let _ = writeln!(
            out,
            "common {} {:#x} {} {} {} {}",
            self.status,
            self.driver_features,
            self.device_feature_select,
            self.driver_feature_select,
            self.queue_select,
            self.config_generation
        );
        for (i, q) in self.queues.iter().enumerate() {
            let _ = writeln!(
                out,
                "queue {i} {} {} {:#x} {:#x} {:#x}",
                q.size(),
                u8::from(q.ready()),
                q.desc_table(),
                q.avail_ring(),
                q.used_ring()
            );
        }
    }

    /// Take over the state [`save`](Self::save) wrote (`common` and `queue` lines), as the
    /// driver set it up with a predecessor: the queues are set up again (validated as the
    /// driver's writes are) and, if the driver had set `DRIVER_OK`, the device is activated
    /// with each queue continuing from the used index in guest RAM (checked as after a back
    /// end's return, see [`poll`](Self::poll)). A state the device cannot take sets
    /// `NEEDS_RESET`; malformed text is an error.
    pub(crate) fn restore<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a str>,
    ) -> Result<(), crate::Error> {
        let bad = crate::Error::InvalidArgument {
            op: "virtio state",
            what: "malformed common or queue line",
        };
        let mut status = None;
        for line in lines {
            let mut w = line.split_whitespace();
            match w.next() {
                Some("common") => {
                    let v = super::state::nums::<6>(&mut w);
                    let [st, feat, dfs, drfs, qsel, gen] = v.ok_or(bad.clone())?;
                    status = Some(u8::try_from(st).map_err(|_| bad.clone())?);
                    self.driver_features = feat;
                    self.device_feature_select = u32::try_from(dfs).map_err(|_| bad.clone())?;
                    self.driver_feature_select = u32::try_from(drfs).map_err(|_| bad.clone())?;
                    self.queue_select = u16::try_from(qsel).map_err(|_| bad.clone())?;
                    self.config_generation = gen as u8;
                }
                Some("queue") => {
                    let v = super::state::nums::<6>(&mut w);
                    let [i, size, ready, desc, avail, used] = v.ok_or(bad.clone())?;
                    let q = u16::try_from(i).map_err(|_| bad.clone())?;
                    let saved = self.queue_select;
                    self.queue_select = q;
                    let size = u16::try_from(size).map_err(|_| bad.clone())?;
                    // Validated as the driver's writes are: a bad value sets NEEDS_RESET.
                    if size != 0 {
                        self.set_queue_size(size);
                    }
                    for (ring, a) in [(0u8, desc), (1, avail), (2, used)] {
                        self.set_queue_address(ring, false, a as u32);
                        self.set_queue_address(ring, true, (a >> 32) as u32);
                    }
                    if ready != 0 {
                        self.set_queue_ready(1);
                    }
                    self.queue_select = saved;
                }
                _ => return Err(bad),
            }
        }
        let Some(status) = status else {
            return Err(bad);
        };
        // The negotiated features as at FEATURES_OK, then the status as it was.
        let live = status::FEATURES_OK;
        if status & live != 0 {
            let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        self.status = status & !status::NEEDS_RESET;
        if status & (status::DRIVER_OK | status::FEATURES_OK)
            == status::DRIVER_OK | status::FEATURES_OK
        {
            // Activated as after a back end's return: from the used indexes, checked.
            self.fault = Some(Fault::Device(DeviceError::BackendLost(
                alloc::string::String::from("taking over from a previous device model"),
            )));
            // A takeover is not a configuration change the driver should see.
            let generation = self.config_generation;
            self.resume();
            self.config_generation = generation;
            // Buffers made available before the predecessor died were kicked already: use
            // them now (an in-process device; a back end got its kick from `activate`).
            for i in 0..self.num_queues().min(64) {
                if self.queue(i).is_some_and(|q| q.ready()) && self.notify(i) == Ok(true) {
                    self.pending |= 1 << i;
                }
            }
        }
        Ok(())
    }

    /// A back end came back: see [`poll`](Self::poll).
    fn resume(&mut self) -> bool {
        match &self.fault {
            None | Some(Fault::Device(DeviceError::BackendLost(_))) => {}
            Some(other) => {
                log::info!(
                    "virtio device (type {}): the back end is back; the device stays in need of a reset ({other})",
                    self.device.device_type()
                );
                return false;
            }
        }
        let lost = self.fault.take().is_some();
        self.status &= !status::NEEDS_RESET;
        if lost {
            self.config_generation = self.config_generation.wrapping_add(1);
        }
        let live = status::DRIVER_OK | status::FEATURES_OK;
        if self.status & live != live {
            log::info!(
                "virtio device (type {}): the back end is back; set up at the next DRIVER_OK",
                self.device.device_type()
            );
            return false;
        }
        let mut ready = 0;
        for (i, q) in self.queues.iter_mut().enumerate() {
            if !q.ready() {
                continue;
            }
            let used = match q.used_idx(&self.mem, core::sync::atomic::Ordering::Acquire) {
                Ok(u) => u.0,
                Err(e) => {
                    return self.fail(Fault::Device(DeviceError::queue(i as u16, e)));
                }
            };
            q.set_next_avail(used);
            q.set_next_used(used);
            if i < 64 {
                ready |= 1 << i;
            }
            if used != 0 {
                // From 0, a back end that restarts at 0 is right anyway.
                self.unverified.push((i as u16, used));
            }
        }
        if let Err(e) = self.device.activate(self.driver_features, &self.queues) {
            self.unverified.clear();
            return self.fail(Fault::Device(e));
        }
        self.resumes += 1;
        self.pending |= ready;
        log::info!(
            "virtio device (type {}): the back end is back; resumed where the driver left it (queues {ready:#x})",
            self.device.device_type()
        );
        false
    }

    /// Read the device-specific configuration.
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.device.read_config(offset, data);
    }

    /// Write the device-specific configuration.
    pub fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.device.write_config(offset, data);
    }
}

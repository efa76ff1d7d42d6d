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
//!     GuestMemoryShare::XenForeign { privcmd: linux.privcmd().as_fd(), domid: xen::DomId(5) },
//!     &ram,
//! )?;
//! # let _ = rng;
//! # Ok(())
//! # }
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::time::Duration;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserHeaderFlag};
use vhost::vhost_user::{Frontend, VhostUserFrontend, VhostUserProtocolFeatures};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::virtio::{BackendEvent, DeviceError, VirtioDevice};
use crate::{DomId, Error};

/// `VHOST_USER_F_PROTOCOL_FEATURES`: a vhost-user feature bit, never a device's.
const PROTOCOL_FEATURES: u64 = 1 << 30;
/// vm-memory's `MmapXenFlags::FOREIGN`: the back end maps the pages itself through the privcmd
/// descriptor, by guest-physical address and domid.
const XEN_MMAP_FOREIGN: u32 = 0x1;
/// `MmapXenFlags::UNIX`: a plain shared mapping of the region's descriptor.
const XEN_MMAP_UNIX: u32 = 0x0;

/// A vhost-user protocol failure during the handshake, named by the step.
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
        domid: DomId,
    },
    /// Plain shared memory: one descriptor holding all of guest RAM from offset 0 in
    /// guest-physical order (`memfd`; tests, and guests whose RAM is a file).
    SharedFile {
        /// The memory's descriptor (the device keeps a duplicate).
        fd: BorrowedFd<'a>,
    },
}

/// How many queues a [`VhostUserDevice`] has, and their maximum sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueSizes<'a> {
    /// One queue per entry, of that maximum size.
    Each(&'a [u16]),
    /// As many queues as the back end has (`GET_QUEUE_NUM` when it offers
    /// `VHOST_USER_PROTOCOL_F_MQ`; one queue when it does not), each of this maximum size.
    FromBackend(u16),
}

/// How a [`VhostUserDevice`] treats a slow or vanished back end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VhostUserOptions {
    /// How long a request (or the few of one step: the handshake, a device set-up) may wait
    /// for the back end; one slower than that is disconnected, so a wedged back end cannot
    /// stall the thread serving the guest for longer. Zero: wait forever. Default 5 s.
    pub reply_timeout: Duration,
    /// How often to try to reconnect after the back end went away. Default 500 ms.
    pub reconnect_interval: Duration,
}

impl Default for VhostUserOptions {
    fn default() -> Self {
        VhostUserOptions {
            reply_timeout: Duration::from_secs(5),
            reconnect_interval: Duration::from_millis(500),
        }
    }
}

impl VhostUserOptions {
    /// The defaults with `reply_timeout`.
    pub fn with_reply_timeout(mut self, reply_timeout: Duration) -> Self {
        self.reply_timeout = reply_timeout;
        self
    }

    /// The defaults with `reconnect_interval`.
    pub fn with_reconnect_interval(mut self, reconnect_interval: Duration) -> Self {
        self.reconnect_interval = reconnect_interval;
        self
    }
}

/// Ends a wait for a back end that does not answer in time by shutting its socket down (a
/// shut-down socket reads as end of file, which fails the request). A socket timeout cannot do
/// it: the `vhost` crate retries a read that timed out, forever.
struct Watchdog {
    shared: Arc<(Mutex<Watch>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    timeout: Duration,
}

#[derive(Default)]
struct Watch {
    deadline: Option<Instant>,
    socket: Option<UnixStream>,
    quit: bool,
}

fn lock(m: &Mutex<Watch>) -> std::sync::MutexGuard<'_, Watch> {
    // Nothing in `Watch` can be left half-updated by a panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Watchdog {
    fn new(timeout: Duration) -> Result<Self, Error> {
        let shared = Arc::new((Mutex::new(Watch::default()), Condvar::new()));
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(String::from("vhost-user watchdog"))
            .spawn(move || {
                let (m, cv) = &*theirs;
                let mut w = lock(m);
                while !w.quit {
                    let Some(deadline) = w.deadline else {
                        w = cv.wait(w).unwrap_or_else(std::sync::PoisonError::into_inner);
                        continue;
                    };
                    let now = Instant::now();
                    if now < deadline {
                        w = cv
                            .wait_timeout(w, deadline - now)
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .0;
                        continue;
                    }
                    w.deadline = None;
                    if let Some(s) = &w.socket {
                        log::warn!("vhost-user back end: no reply within {timeout:?}; shutting its connection down");
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                }
            })
            .map_err(|e| Error::Os {
                op: "vhost-user watchdog thread",
                errno: e.raw_os_error().unwrap_or(0),
            })?;
        Ok(Watchdog {
            shared,
            thread: Some(thread),
            timeout,
        })
    }

    /// Watch `socket` (a duplicate of the connection's) from now on.
    fn watch(&self, socket: Option<UnixStream>) {
        lock(&self.shared.0).socket = socket;
    }

    /// Start the clock until the returned guard is dropped (none with a zero timeout).
    fn arm(&self) -> Armed<'_> {
        if !self.timeout.is_zero() {
            lock(&self.shared.0).deadline = Some(Instant::now() + self.timeout);
            self.shared.1.notify_one();
        }
        Armed(self)
    }
}

/// See [`Watchdog::arm`].
struct Armed<'a>(&'a Watchdog);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        lock(&self.0.shared.0).deadline = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        lock(&self.shared.0).quit = true;
        self.shared.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The most queues a device may have here (interrupt masks are 64 bits).
const MAX_QUEUES: usize = 64;

/// A connected and negotiated back end.
struct Link {
    frontend: Frontend,
    /// A duplicate of the frontend's socket, to watch for the back end hanging up.
    watch: UnixStream,
    /// Device features it offers.
    features: u64,
    protocol: VhostUserProtocolFeatures,
    /// `GET_QUEUE_NUM`, when the back end offers `MQ`.
    queue_num: Option<u64>,
}

/// Connect to `socket` and negotiate what every connection needs: an owner, protocol
/// features with `XEN_MMAP`, at least `queues` queues (when the back end says how many).
fn handshake(socket: &Path, queues: usize, watchdog: &Watchdog) -> Result<Link, Error> {
    let stream = UnixStream::connect(socket).map_err(|e| Error::Os {
        op: "vhost-user connect to the back end's socket",
        errno: e.raw_os_error().unwrap_or(0),
    })?;
    let dup = || {
        stream.try_clone().map_err(|e| Error::Os {
            op: "vhost-user socket dup",
            errno: e.raw_os_error().unwrap_or(0),
        })
    };
    let watch = dup()?;
    watchdog.watch(Some(dup()?));
    let _armed = watchdog.arm();
    let mut frontend = Frontend::from_stream(stream, MAX_QUEUES as u64);
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
            what:
                "the back end lacks VHOST_USER_PROTOCOL_F_XEN_MMAP (build it with --features xen)",
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
    let mut queue_num = None;
    if protocol_features.contains(VhostUserProtocolFeatures::MQ) {
        let q = frontend
            .get_queue_num()
            .map_err(protocol("GET_QUEUE_NUM"))?;
        if q < queues as u64 || q == 0 {
            return Err(Error::Protocol {
                op: "vhost-user GET_QUEUE_NUM",
                what: "the back end has no queues, or fewer than the device",
            });
        }
        queue_num = Some(q);
    }
    Ok(Link {
        frontend,
        watch,
        features: features & !PROTOCOL_FEATURES,
        protocol: protocol_features,
        queue_num,
    })
}

/// A virtio device served by a vhost-user back end.
///
/// The back end is watched: when it closes its connection, breaks the protocol (a malformed
/// or missing reply) or takes longer than [`VhostUserOptions::reply_timeout`] to answer, it is
/// disconnected and [`VirtioDevice::poll_backend`] reports it lost (the transport sets
/// `NEEDS_RESET`); the device then reconnects to the same socket every
/// [`VhostUserOptions::reconnect_interval`] and, when a back end with the same features
/// answers, reports it restored (the transport resumes the queues where the driver left them).
pub struct VhostUserDevice {
    socket: PathBuf,
    options: VhostUserOptions,
    link: Option<Link>,
    device_type: u32,
    /// Device features of the first back end; a back end that comes back must offer them all.
    features: u64,
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
    watchdog: Watchdog,
    /// Disconnected on purpose after a reset, to reconnect (not a loss).
    renew: bool,
    /// Why the link broke, until [`VirtioDevice::poll_backend`] reports it (a `Cell`: reading
    /// the configuration through `&self` can find it broken).
    broken: Cell<Option<String>>,
    last_attempt: Option<Instant>,
    reconnects: u64,
    kicks_relayed: u64,
    calls_relayed: u64,
    /// Queues whose call eventfd the kernel turns into interrupts itself (privcmd irqfd).
    kernel_calls: u64,
    /// The last `take_interrupts` found calls: the wake-up had its reason, and a hung-up
    /// socket (readable for good) wakes the next one anyway.
    signalled: bool,
}

impl core::fmt::Debug for VhostUserDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VhostUserDevice")
            .field("socket", &self.socket)
            .field("connected", &self.link.is_some())
            .field("device_type", &self.device_type)
            .field("features", &self.features)
            .field("queues", &self.max_sizes)
            .field("xen_mmap", &(self.xen_flags, self.xen_data))
            .field("reconnects", &self.reconnects)
            .field("kicks_relayed", &self.kicks_relayed)
            .field("calls_relayed", &self.calls_relayed)
            .finish_non_exhaustive()
    }
}

impl VhostUserDevice {
    /// Connect to the back end listening on `socket`, as device `device_type` with queues of
    /// `queue_sizes` (maximum sizes), for a guest whose RAM is `ram` (guest-physical start and
    /// length of each populated run, as [`crate::memory::GuestRam::regions`] gives them),
    /// shared with the back end as `share` says, with the default [`VhostUserOptions`]. A
    /// back end that does not offer `VHOST_USER_PROTOCOL_F_XEN_MMAP` (one built without its
    /// `xen` feature) is refused.
    pub fn connect(
        socket: &Path,
        device_type: u32,
        queue_sizes: &[u16],
        share: GuestMemoryShare<'_>,
        ram: &[(u64, u64)],
    ) -> Result<Self, Error> {
        Self::connect_with(
            socket,
            device_type,
            QueueSizes::Each(queue_sizes),
            share,
            ram,
            VhostUserOptions::default(),
        )
    }

    /// [`connect`](Self::connect) with the queues `queues` describes and `options`.
    pub fn connect_with(
        socket: &Path,
        device_type: u32,
        queues: QueueSizes<'_>,
        share: GuestMemoryShare<'_>,
        ram: &[(u64, u64)],
        options: VhostUserOptions,
    ) -> Result<Self, Error> {
        let wanted = match queues {
            QueueSizes::Each(sizes) => sizes.len(),
            QueueSizes::FromBackend(_) => 1,
        };
        if wanted == 0 || wanted > MAX_QUEUES || ram.is_empty() {
            return Err(Error::InvalidArgument {
                op: "vhost-user device",
                what: "1 to 64 queues and some guest RAM",
            });
        }
        let (memory, xen_flags, xen_data) = match share {
            GuestMemoryShare::XenForeign { privcmd, domid } => {
                (privcmd, XEN_MMAP_FOREIGN, u32::from(domid.0))
            }
            GuestMemoryShare::SharedFile { fd } => (fd, XEN_MMAP_UNIX, 0),
        };
        let memory = memory.try_clone_to_owned().map_err(|e| Error::Os {
            op: "dup of the guest memory descriptor",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        let watchdog = Watchdog::new(options.reply_timeout)?;
        let link = handshake(socket, wanted, &watchdog)?;
        let max_sizes = match queues {
            QueueSizes::Each(sizes) => sizes.to_vec(),
            QueueSizes::FromBackend(size) => match link.queue_num {
                Some(q) if q <= MAX_QUEUES as u64 => alloc::vec![size; q as usize],
                Some(_) => {
                    return Err(Error::Protocol {
                        op: "vhost-user GET_QUEUE_NUM",
                        what: "the back end has more than 64 queues",
                    })
                }
                None => alloc::vec![size],
            },
        };
        let n = max_sizes.len();
        let eventfd = || {
            EventFd::new(EFD_NONBLOCK).map_err(|e| Error::Os {
                op: "eventfd",
                errno: e.raw_os_error().unwrap_or(0),
            })
        };
        let kicks = (0..n).map(|_| eventfd()).collect::<Result<Vec<_>, _>>()?;
        let calls = (0..n).map(|_| eventfd()).collect::<Result<Vec<_>, _>>()?;
        Ok(VhostUserDevice {
            socket: socket.to_path_buf(),
            options,
            device_type,
            features: link.features,
            link: Some(link),
            max_sizes,
            kicks,
            calls,
            memory,
            xen_flags,
            xen_data,
            ram: ram.to_vec(),
            started: 0,
            watchdog,
            renew: false,
            broken: Cell::new(None),
            last_attempt: None,
            reconnects: 0,
            kicks_relayed: 0,
            calls_relayed: 0,
            kernel_calls: 0,
            signalled: false,
        })
    }

    /// The number of queues.
    pub fn num_queues(&self) -> usize {
        self.max_sizes.len()
    }

    /// Whether a back end is connected now.
    pub fn connected(&self) -> bool {
        self.link.is_some()
    }

    /// Times a back end was connected again after one went away.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The driver's notifies passed to the back end as kicks.
    pub fn kicks_relayed(&self) -> u64 {
        self.kicks_relayed
    }

    /// The back end's calls (used buffers) taken for the transport to interrupt the driver.
    pub fn calls_relayed(&self) -> u64 {
        self.calls_relayed
    }

    /// The back end failed `op` with `e`: it is not trusted any more. Returns the error the
    /// transport sees.
    fn broke(&mut self, op: &str, e: &dyn core::fmt::Display) -> DeviceError {
        let why = alloc::format!("{op}: {e}");
        if self.drop_link(&why) {
            // Reported by the next `poll_backend`.
            self.broken.set(Some(why.clone()));
        }
        DeviceError::BackendLost(why)
    }

    /// Disconnect; whether there was a link to drop.
    fn drop_link(&mut self, why: &str) -> bool {
        self.started = 0;
        if self.link.take().is_none() {
            return false;
        }
        self.watchdog.watch(None);
        log::warn!(
            "vhost-user back end at {} (device type {}): {why}; disconnected",
            self.socket.display(),
            self.device_type
        );
        self.last_attempt = Some(Instant::now());
        true
    }

    /// Stop every queue handed to the back end (`GET_VRING_BASE` stops a ring).
    fn stop(&mut self) {
        for i in 0..self.max_sizes.len() {
            if self.started & (1 << i) == 0 {
                continue;
            }
            let Some(link) = self.link.as_mut() else {
                break;
            };
            let armed = self.watchdog.arm();
            let r = link.frontend.get_vring_base(i);
            drop(armed);
            if let Err(e) = r {
                self.broke("GET_VRING_BASE", &e);
                break;
            }
        }
        self.started = 0;
    }

    fn start(&mut self, features: u64, queues: &[Queue]) -> Result<(), vhost::Error> {
        let Some(link) = self.link.as_mut() else {
            return Err(vhost::Error::IOError(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        let frontend = &mut link.frontend;
        let _armed = self.watchdog.arm();
        frontend.set_features(features | PROTOCOL_FEATURES)?;
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
        frontend.set_mem_table(&regions)?;
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
            frontend.set_vring_num(i, q.size())?;
            frontend.set_vring_addr(
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
            // 0 on a fresh device; where the driver left off when a back end is replaced.
            frontend.set_vring_base(i, q.next_avail())?;
            frontend.set_vring_call(i, &self.calls[i])?;
            frontend.set_vring_kick(i, &self.kicks[i])?;
            frontend.set_vring_enable(i, true)?;
            self.started |= 1 << i;
            log::info!(
                "vhost-user queue {i} started at {}: {} entries, rings at {:#x}/{:#x}/{:#x}",
                q.next_avail(),
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
        frontend.get_features()?;
        for (i, k) in self.kicks.iter().enumerate() {
            if self.started & (1 << i) != 0 {
                k.write(1).map_err(vhost::Error::IOError)?;
            }
        }
        Ok(())
    }

    /// Whether the connected back end's socket is readable or hung up outside a request:
    /// the back end closed it (or sent what nobody asked for).
    fn hung_up(link: &Link) -> bool {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&link.watch, PollFlags::IN | PollFlags::RDHUP)];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
    }

    /// Try to connect to a back end again (at most once per reconnect interval).
    fn reconnect(&mut self) -> Option<BackendEvent> {
        let now = Instant::now();
        if self
            .last_attempt
            .is_some_and(|t| now.duration_since(t) < self.options.reconnect_interval)
        {
            return None;
        }
        self.last_attempt = Some(now);
        match handshake(&self.socket, self.max_sizes.len(), &self.watchdog) {
            Ok(link) if link.features & self.features == self.features => {
                self.link = Some(link);
                if core::mem::take(&mut self.renew) {
                    // Not a loss: nothing to restore.
                    return None;
                }
                self.reconnects += 1;
                log::info!(
                    "vhost-user back end at {} (device type {}): connected again",
                    self.socket.display(),
                    self.device_type
                );
                Some(BackendEvent::Restored)
            }
            Ok(link) => {
                self.watchdog.watch(None);
                log::warn!(
                    "vhost-user back end at {}: offers features {:#x}, lacking {:#x} the device was created with; not used",
                    self.socket.display(),
                    link.features,
                    self.features & !link.features
                );
                None
            }
            Err(e) => {
                self.watchdog.watch(None);
                log::debug!("vhost-user back end at {}: {e}", self.socket.display());
                None
            }
        }
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
        let Some(link) = self
            .link
            .as_ref()
            .filter(|l| l.protocol.contains(VhostUserProtocolFeatures::CONFIG))
        else {
            return;
        };
        let (Ok(off), Ok(len)) = (u32::try_from(offset), u32::try_from(data.len())) else {
            return;
        };
        let zeros = alloc::vec![0u8; data.len()];
        let _armed = self.watchdog.arm();
        // `Frontend` is a shared handle to one connection: a clone asks on it.
        match link
            .frontend
            .clone()
            .get_config(off, len, VhostUserConfigFlags::empty(), &zeros)
        {
            Ok((_, bytes)) if bytes.len() == data.len() => data.copy_from_slice(&bytes),
            Ok(_) => self
                .broken
                .set(Some(String::from("GET_CONFIG: a reply of the wrong size"))),
            Err(e) => self
                .broken
                .set(Some(alloc::format!("GET_CONFIG at {offset:#x}: {e}"))),
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let Some(link) = self
            .link
            .as_mut()
            .filter(|l| l.protocol.contains(VhostUserProtocolFeatures::CONFIG))
        else {
            return;
        };
        let (Ok(off), Ok(len)) = (u32::try_from(offset), u32::try_from(data.len())) else {
            return;
        };
        // Drivers write back values the device already has (virtio-scsi's sense and CDB
        // sizes), and some back ends cannot take SET_CONFIG at all (vhost-device-scsi 0.1.0
        // panics): only a write that changes something is sent.
        let armed = self.watchdog.arm();
        let zeros = alloc::vec![0u8; data.len()];
        let now = link
            .frontend
            .clone()
            .get_config(off, len, VhostUserConfigFlags::empty(), &zeros);
        drop(armed);
        match now {
            Ok((_, bytes)) if bytes == data => {
                log::debug!("vhost-user SET_CONFIG at {offset:#x}: unchanged, not sent");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                self.broke("GET_CONFIG", &e);
                return;
            }
        }
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let armed = self.watchdog.arm();
        let r = link
            .frontend
            .set_config(off, VhostUserConfigFlags::WRITABLE, data);
        drop(armed);
        if let Err(e) = r {
            self.broke("SET_CONFIG", &e);
        }
    }

    fn activate(&mut self, features: u64, queues: &[Queue]) -> Result<(), DeviceError> {
        self.stop();
        if self.link.is_none() && self.renew {
            // The back end is listening again within moments of the reset's disconnect.
            let deadline = Instant::now() + self.options.reply_timeout.max(Duration::from_secs(1));
            while self.link.is_none() && Instant::now() < deadline {
                self.last_attempt = None;
                if self.reconnect().is_none() && self.link.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if self.link.is_none() {
            return Err(DeviceError::BackendLost(String::from(
                "not connected (reconnecting)",
            )));
        }
        self.start(features, queues)
            .map_err(|e| self.broke("device set-up", &e))
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
            self.kicks_relayed += 1;
        }
        Ok(false)
    }

    fn reset(&mut self) {
        let used = self.started != 0;
        self.stop();
        // A back end built on vhost-user-backend before 0.11 keeps its used index across
        // GET_VRING_BASE and takes only the available one from SET_VRING_BASE: after a reset
        // it would use the driver's fresh rings from where the old ones were. A new connection
        // starts it from zero, as the fresh rings do.
        if used && self.link.take().is_some() {
            self.watchdog.watch(None);
            self.renew = true;
            self.last_attempt = None;
            log::info!(
                "vhost-user back end at {}: reconnecting after the driver's reset, for a fresh back-end state",
                self.socket.display()
            );
        }
    }

    fn take_interrupts(&mut self) -> u64 {
        let mut mask = 0;
        for (i, c) in self.calls.iter().enumerate() {
            if self.kernel_calls & (1 << i) != 0 {
                continue; // the kernel reads it
            }
            // Non-blocking: Ok when the back end signalled since the last read.
            if c.read().is_ok() {
                log::debug!("vhost-user queue {i}: the back end signalled");
                mask |= 1 << i;
                self.calls_relayed += 1;
            }
        }
        self.signalled = mask != 0;
        mask
    }

    fn interrupt_fds(&self) -> Vec<BorrowedFd<'_>> {
        let calls = self
            .calls
            .iter()
            .enumerate()
            .filter(|(i, _)| self.kernel_calls & (1 << i) == 0)
            // SAFETY: the eventfds live as long as `self`, which the borrow is tied to.
            .map(|(_, c)| unsafe { BorrowedFd::borrow_raw(c.as_raw_fd()) });
        // The socket becomes readable when the back end hangs up.
        let watch = self.link.as_ref().map(|l| l.watch.as_fd());
        calls.chain(watch).collect()
    }

    fn queue_call_fd(&self, index: u16) -> Option<BorrowedFd<'_>> {
        self.calls
            .get(usize::from(index))
            // SAFETY: the eventfds live as long as `self`, which the borrow is tied to (and
            // are never replaced: the back end gets the same one after every reconnect).
            .map(|c| unsafe { BorrowedFd::borrow_raw(c.as_raw_fd()) })
    }

    fn set_kernel_interrupts(&mut self, queues: u64) {
        self.kernel_calls = queues;
    }

    fn poll_backend(&mut self) -> Option<BackendEvent> {
        let mut why = self.broken.take();
        // No system call for a wake-up the back end's calls explain.
        let look = !core::mem::take(&mut self.signalled);
        if why.is_none() && look && self.link.as_ref().is_some_and(Self::hung_up) {
            why = Some(String::from("the back end closed its connection"));
        }
        if let Some(why) = why {
            // A failure seen through `&self` (GET_CONFIG) has not dropped the link yet.
            self.drop_link(&why);
            return Some(BackendEvent::Lost(DeviceError::BackendLost(why)));
        }
        if self.link.is_some() {
            return None;
        }
        self.reconnect()
    }

    fn backend_retry(&self) -> Option<Duration> {
        self.link
            .is_none()
            .then_some(self.options.reconnect_interval)
    }
}

impl Drop for VhostUserDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

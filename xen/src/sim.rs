//! An in-process model of the hypervisor side of IOREQ, good enough to test servers without Xen:
//! dm_op with Xen's validation and error codes, per-server ioreq pages, event channels, range
//! matching, the vCPU's wait for IORESP_READY (crashing the "domain" if the state moves
//! backwards), guest RAM for `data_is_ptr`, a hostile-guest writer, and fault injection.
//!
//! ```
//! use xen::sim::Sim;
//! use xen::{Xen, dm::RangeKind};
//! use xen::ioreq::{Handler, IoreqServer, ServerOptions, Size, Space};
//!
//! struct Regs([u64; 4]);
//! impl Handler for Regs {
//!     fn read(&mut self, _: Space, a: u64, _: Size) -> u64 { self.0[(a as usize / 8) % 4] }
//!     fn write(&mut self, _: Space, a: u64, _: Size, v: u64) { self.0[(a as usize / 8) % 4] = v }
//! }
//!
//! let sim = Sim::new();
//! let dom = sim.create_guest(1);
//! let xen = Xen::new(sim.clone()).unwrap();
//! let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
//! srv.map_range(RangeKind::Mmio, 0x1000, 0x1fff).unwrap();
//! let port = srv.local_ports().next().unwrap();
//! let mut regs = Regs([0; 4]);
//!
//! // Single-threaded: the guest posts, the server handles, the guest collects.
//! sim.post_mmio(dom, 0, 0x1008, 8, Some(42)).unwrap();
//! srv.handle_port(port, &mut regs).unwrap();
//! sim.collect(dom, 0).unwrap();
//! sim.post_mmio(dom, 0, 0x1008, 8, None).unwrap();
//! srv.handle_port(port, &mut regs).unwrap();
//! assert_eq!(sim.collect(dom, 0).unwrap(), 42);
//! ```

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::{BTreeMap, VecDeque};
use std::format;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use std::vec::Vec;

use xen_sys::*;

use crate::platform::{DeviceModel, EventChannels, ForeignMemory, MapGuest, Pages, Version};
use crate::{DomId, Error, EvtchnPort, Gfn};

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const E2BIG: i32 = 7;
const EFAULT: i32 = 14;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;
const ENOTCONN: i32 = 107;
const EOPNOTSUPP: i32 = 95;
const ENODATA: i32 = 61;

/// The emulator's domain id in the model (dom0).
pub const EMULATOR: DomId = DomId(0);
/// Guest RAM of every simulated guest.
pub const GUEST_RAM: usize = 1 << 20;
const MAX_SERVERS: usize = 8;
const MAX_RANGES: usize = 256;
/// Ports per side in the model (the 2-level ABI's limit on 64-bit).
const MAX_PORTS: usize = 4096;

/// Page-aligned memory shared between the model and a server.
struct PageBox {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: raw memory accessed only with volatile/atomic operations by both sides.
unsafe impl Send for PageBox {}
// SAFETY: as above.
unsafe impl Sync for PageBox {}

impl PageBox {
    fn new(pages: usize) -> PageBox {
        let layout = Layout::from_size_align(pages * 4096, 4096).expect("page layout");
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory for simulated pages");
        PageBox { ptr, layout }
    }
}

impl Drop for PageBox {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no mapping outlives the Arc.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// A mapping handed to a server (keeps the pages alive, as a real mapping holds references).
pub struct SimPages {
    mem: Arc<PageBox>,
    offset: usize,
    len: usize,
}

impl core::fmt::Debug for SimPages {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimPages")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: `offset .. offset + len` lies inside the page-aligned allocation (both constructors
// check it), which the `Arc` keeps alive as long as this value; both sides reach it only through
// raw pointers with atomic or volatile accesses.
unsafe impl Pages for SimPages {
    fn base(&self) -> *mut u8 {
        // SAFETY: offset < the allocation's size (checked in map_resource and map_guest).
        unsafe { self.mem.ptr.add(self.offset) }
    }
    fn len(&self) -> usize {
        self.len
    }
}

struct Server {
    domid: DomId,
    id: Ioservid,
    enabled: bool,
    bufioreq: bool,
    /// [buffered page][ioreq pages]
    mem: Arc<PageBox>,
    ioreq_pages: usize,
    ranges: [Vec<(u64, u64)>; 3],
    /// Target-side ports, per vCPU, then the buffered one.
    vcpu_ports: Vec<EvtchnPort>,
    buf_port: EvtchnPort,
}

impl Server {
    fn slot(&self, vcpu: u32) -> *mut u8 {
        // SAFETY: vcpu < nr_vcpus, checked by callers; the ioreq pages follow the buffered page.
        unsafe { self.mem.ptr.add(4096 + vcpu as usize * 32) }
    }
}

/// Word `i` (0..4) of the slot at `slot`. Xen's side of the model, like the server, touches a
/// slot only through atomic accesses of whole 64-bit words, so racing accesses (the server, a
/// hostile scribbler) are never of mixed sizes and the hostile tests are data-race-free.
///
/// # Safety
///
/// `slot` is a slot of a page kept alive for `'a`.
unsafe fn slot_word<'a>(slot: *mut u8, i: usize) -> &'a AtomicU64 {
    debug_assert!(i < 4);
    // SAFETY: an aligned word of the live slot (the caller's contract), accessed atomically by
    // every party.
    unsafe { AtomicU64::from_ptr(slot.cast::<u64>().add(i)) }
}

/// The state in a slot's word 3 (the flags byte is its byte 6).
fn state_of(word3: u64) -> u8 {
    (word3 >> 48) as u8 & 0xf
}

impl Domain {
    /// Copy RAM at `at` into `out`; `None` if outside it. Atomic and by raw pointer: mappings
    /// handed out by `MapGuest` reach the same bytes without the model's lock, as a device
    /// model and a guest do, so no reference to RAM is ever made.
    fn ram_read(&self, at: usize, out: &mut [u8]) -> Option<()> {
        (at.checked_add(out.len())? <= GUEST_RAM).then(|| {
            // SAFETY: inside the allocation (checked above), which `self.ram` keeps alive.
            unsafe { crate::shared::copy_from(self.ram.ptr.add(at), out) }
        })
    }

    /// Copy `data` into RAM at `at`; `None` if outside it.
    fn ram_write(&self, at: usize, data: &[u8]) -> Option<()> {
        (at.checked_add(data.len())? <= GUEST_RAM).then(|| {
            // SAFETY: as in `ram_read`.
            unsafe { crate::shared::copy_to(self.ram.ptr.add(at), data) }
        })
    }
}

struct Domain {
    nr_vcpus: u32,
    hvm: bool,
    /// Guest RAM: page-aligned, shared with mappings (`MapGuest`), which keep it alive.
    ram: Arc<PageBox>,
    /// Frames not populated (`Sim::unpopulate`): mappings refuse them per page.
    holes: std::collections::BTreeSet<u64>,
    crashed: Option<String>,
    next_port: EvtchnPort,
    /// Target-side ports with an event sent by the emulator (indexed by port; no allocation
    /// per event).
    events: Vec<bool>,
}

struct Binding {
    remote_dom: DomId,
    remote_port: EvtchnPort,
    /// The event channel handle ([`Sim::open_channel`]) that bound it and gets its events.
    channel: u32,
}

#[derive(Default)]
struct State {
    version: Option<XenVersion>,
    next_domid: DomId,
    domains: BTreeMap<DomId, Domain>,
    servers: Vec<Server>,
    bindings: BTreeMap<EvtchnPort, Binding>,
    next_local: EvtchnPort,
    queue: VecDeque<EvtchnPort>,
    /// Per local port (no allocation per event).
    masked: Vec<bool>,
    raised_while_masked: Vec<bool>,
    /// Handles woken without an event (bit per channel).
    wake: u64,
    /// Event channel handles opened so far besides the first.
    channels: u32,
    fail: Option<(u32, i32)>,
    /// Errno for the next `notify` (counted apart from `fail`: notifies happen per request).
    fail_notify: Option<i32>,
    /// Answers published by a server that was destroyed before the vCPU consumed them.
    orphans: BTreeMap<(DomId, u32), u64>,
    calls: u32,
    log: Vec<String>,
    irqs: Vec<(DomId, u32, bool)>,
    msis: Vec<Msi>,
    intx: Vec<(DomId, u8, u8, bool)>,
    /// Whether the modelled kernel has privcmd irqfd ([`Sim::enable_irqfd`]).
    irqfd: bool,
    irqfds: Vec<Irqfd>,
    /// The thread playing the kernel's irqfd wake-ups runs.
    irqfd_worker: bool,
}

/// An irqfd binding: the kernel's own reference to the eventfd, and the dm_op it issues.
struct Irqfd {
    domid: DomId,
    /// The descriptor number it was bound by (what deassign names).
    fd: i32,
    eventfd: std::os::fd::OwnedFd,
    dm_op: Vec<u8>,
}

/// An MSI a device model injected (`XEN_DMOP_inject_msi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    /// The target domain.
    pub domid: DomId,
    /// The message address.
    pub addr: u64,
    /// The message data.
    pub data: u32,
}

struct Shared {
    st: Mutex<State>,
    cv: Condvar,
}

/// The simulated hypervisor (and the emulator domain's view of it). Cheap to clone; a clone
/// shares the event channel handle too, [`Sim::open_channel`] opens another.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Shared>,
    /// Which event channel handle this is (as another open of `/dev/xen/evtchn`).
    channel: u32,
}

impl core::fmt::Debug for Sim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}

/// What can go wrong for a simulated vCPU access.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// The slot was not free (a request is already outstanding on this vCPU).
    #[error("the vCPU already has a request outstanding")]
    Busy,
    /// No answer in time (the server did not complete the request).
    #[error("no answer in time: the server did not complete the request")]
    Timeout,
    /// Xen crashed the domain (e.g. the server moved `state` backwards); the reason.
    #[error("Xen crashed the domain: {0}")]
    DomainCrashed(String),
    /// No such domain or vCPU.
    #[error("no such domain or vCPU")]
    NoSuchVcpu,
    /// Nothing outstanding to collect.
    #[error("no request outstanding to collect")]
    NothingPosted,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A hypervisor reporting Xen 4.17.
    pub fn new() -> Sim {
        Self::with_version(XenVersion::new(4, 17))
    }

    /// A hypervisor reporting `version` (to test version gating).
    pub fn with_version(version: XenVersion) -> Sim {
        let st = State {
            version: Some(version),
            next_domid: DomId(1),
            next_local: EvtchnPort(1),
            queue: VecDeque::with_capacity(MAX_PORTS),
            masked: std::vec![false; MAX_PORTS],
            raised_while_masked: std::vec![false; MAX_PORTS],
            ..Default::default()
        };
        Sim {
            inner: Arc::new(Shared {
                st: Mutex::new(st),
                cv: Condvar::new(),
            }),
            channel: 0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create an HVM guest with `vcpus` vCPUs and [`GUEST_RAM`] bytes of RAM; returns its domid.
    pub fn create_guest(&self, vcpus: u32) -> DomId {
        self.create_domain(vcpus, true)
    }

    /// Create a PV guest (dm_op refuses it with EINVAL, as Xen does).
    pub fn create_pv_guest(&self, vcpus: u32) -> DomId {
        self.create_domain(vcpus, false)
    }

    fn create_domain(&self, vcpus: u32, hvm: bool) -> DomId {
        let mut st = self.lock();
        let d = st.next_domid;
        st.next_domid.0 += 1;
        st.domains.insert(
            d,
            Domain {
                nr_vcpus: vcpus,
                hvm,
                ram: Arc::new(PageBox::new(GUEST_RAM / 4096)),
                holes: Default::default(),
                crashed: None,
                next_port: EvtchnPort(1),
                events: std::vec![false; MAX_PORTS],
            },
        );
        d
    }

    /// Destroy a domain as Xen does when the guest shuts down: its IOREQ servers go with it and
    /// the emulator's bindings to its ports are closed from the remote end.
    pub fn destroy_domain(&self, domid: DomId) {
        let mut st = self.lock();
        st.domains.remove(&domid);
        st.servers.retain(|s| s.domid != domid);
        st.bindings.retain(|_, b| b.remote_dom != domid);
    }

    /// Make the `n`-th platform call from now (dm_op, map_resource, bind; counting from 1) fail
    /// with `errno`.
    pub fn fail_call(&self, n: u32, errno: i32) {
        let mut st = self.lock();
        st.calls = 0;
        st.fail = Some((n, errno));
    }

    /// Make the next event-channel notify fail with `errno` (after the server published its
    /// answer, as a failing `IOCTL_EVTCHN_NOTIFY` would).
    pub fn fail_next_notify(&self, errno: i32) {
        self.lock().fail_notify = Some(errno);
    }

    /// Platform calls made so far, in order (e.g. `"dm_op XEN_DMOP_create_ioreq_server"`).
    pub fn call_log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// Number of live IOREQ servers for `domid`.
    pub fn servers(&self, domid: DomId) -> usize {
        self.lock()
            .servers
            .iter()
            .filter(|s| s.domid == domid)
            .count()
    }

    /// Number of bound emulator-side event channels.
    pub fn bound_ports(&self) -> usize {
        self.lock().bindings.len()
    }

    /// Why the domain was crashed, if it was.
    pub fn crashed(&self, domid: DomId) -> Option<String> {
        self.lock()
            .domains
            .get(&domid)
            .and_then(|d| d.crashed.clone())
    }

    /// IRQ level changes requested with dm_op (domid, irq, level).
    pub fn irq_log(&self) -> Vec<(DomId, u32, bool)> {
        self.lock().irqs.clone()
    }

    /// MSIs injected with dm_op, in order.
    pub fn msi_log(&self) -> Vec<Msi> {
        self.lock().msis.clone()
    }

    /// Model a dom0 kernel with privcmd irqfd (Linux 6.6 or later built with
    /// `CONFIG_XEN_PRIVCMD_EVENTFD`): from now on [`DeviceModel::irqfd`] binds eventfds, and
    /// a thread consumes their signals and issues their dm_ops (an MSI shows in
    /// [`msi_log`](Self::msi_log)). Without it the ioctl is refused as an older kernel does.
    #[cfg(target_os = "linux")]
    pub fn enable_irqfd(&self) {
        self.lock().irqfd = true;
    }

    /// How many irqfd bindings the modelled kernel holds.
    #[cfg(target_os = "linux")]
    pub fn irqfd_count(&self) -> usize {
        self.lock().irqfds.len()
    }

    /// PCI INTx level changes requested with dm_op (domid, device, pin, level).
    pub fn intx_log(&self) -> Vec<(DomId, u8, u8, bool)> {
        self.lock().intx.clone()
    }

    /// Wake a blocked `wait_pending` of this handle without an event (it returns 0).
    pub fn wake(&self) {
        self.lock().wake |= 1 << self.channel;
        self.inner.cv.notify_all();
    }

    /// Close this event channel handle, as the death of the process holding it would: every
    /// port it bound is unbound and its queued events dropped (the servers it served stay, as
    /// Xen keeps them).
    pub fn close_channel(&self) {
        let mut st = self.lock();
        let ch = self.channel;
        let gone: Vec<EvtchnPort> = st
            .bindings
            .iter()
            .filter(|(_, b)| b.channel == ch)
            .map(|(l, _)| *l)
            .collect();
        for l in gone {
            st.bindings.remove(&l);
            st.queue.retain(|p| *p != l);
            st.masked[l.0 as usize] = false;
            st.raised_while_masked[l.0 as usize] = false;
        }
    }

    /// Play an emulator that takes the request waiting on `vcpu` (READY to INPROCESS) and
    /// then dies before answering it. Whether there was one to take.
    pub fn take_and_die(&self, domid: DomId, vcpu: u32) -> bool {
        let st = self.lock();
        let Some((slot, _)) = Self::slot_of(&st, domid, vcpu) else {
            return false;
        };
        // SAFETY: inside the live page (held by `st`).
        let w3 = unsafe { slot_word(slot, 3) };
        let v = w3.load(Ordering::Acquire);
        if state_of(v) != STATE_IOREQ_READY {
            return false;
        }
        let inprocess = (v & !(0x0f << 48)) | (u64::from(STATE_IOREQ_INPROCESS) << 48);
        w3.compare_exchange(v, inprocess, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The same hypervisor through another event channel handle (as a second open of
    /// `/dev/xen/evtchn`): ports it binds deliver their events to it alone. (At most 64.)
    pub fn open_channel(&self) -> Sim {
        let mut st = self.lock();
        st.channels += 1;
        assert!(
            st.channels < 64,
            "the simulator has at most 64 event channel handles"
        );
        Sim {
            inner: Arc::clone(&self.inner),
            channel: st.channels,
        }
    }

    /// Guest RAM access for tests (guest-physical address).
    pub fn guest_ram_write(&self, domid: DomId, gpa: u64, data: &[u8]) {
        let mut st = self.lock();
        let d = st.domains.get_mut(&domid).expect("domain");
        d.ram_write(gpa as usize, data).expect("inside guest RAM");
    }

    /// Take guest frame `gfn` out of the guest's physmap (as ballooning does): mappings of it
    /// fail per page with EINVAL from now on.
    pub fn unpopulate(&self, domid: DomId, gfn: Gfn) {
        let mut st = self.lock();
        st.domains
            .get_mut(&domid)
            .expect("domain")
            .holes
            .insert(gfn.0);
    }

    /// Read guest RAM (tests).
    pub fn guest_ram_read(&self, domid: DomId, gpa: u64, len: usize) -> Vec<u8> {
        let st = self.lock();
        let mut out = std::vec![0; len];
        st.domains[&domid]
            .ram_read(gpa as usize, &mut out)
            .expect("inside guest RAM");
        out
    }

    fn enter(&self, st: &mut State, what: &str) -> Result<(), Error> {
        st.calls += 1;
        st.log.push(String::from(what));
        if let Some((n, errno)) = st.fail {
            if st.calls == n {
                st.fail = None;
                return Err(Error::Os {
                    op: "simulated failure",
                    errno,
                });
            }
        }
        Ok(())
    }

    // --- the guest side ------------------------------------------------------------------------

    /// Select the server that claims an access (most recently created first), as Xen does.
    fn select(st: &State, domid: DomId, kind: usize, first: u64, last: u64) -> Option<usize> {
        st.servers.iter().enumerate().rev().find_map(|(i, s)| {
            (s.domid == domid
                && s.enabled
                && s.ranges[kind].iter().any(|&(a, b)| a <= first && last <= b))
            .then_some(i)
        })
    }

    /// Post a raw request on `vcpu` as Xen would: route it, fill the slot, set READY and notify
    /// the server. Returns `Ok(Some(value))` when no server claims it (all-ones for reads).
    pub fn post(&self, domid: DomId, vcpu: u32, req: Ioreq) -> Result<Option<u64>, GuestError> {
        let st = self.lock();
        let dom = st.domains.get(&domid).ok_or(GuestError::NoSuchVcpu)?;
        if vcpu >= dom.nr_vcpus {
            return Err(GuestError::NoSuchVcpu);
        }
        if let Some(c) = &dom.crashed {
            return Err(GuestError::DomainCrashed(c.clone()));
        }
        let size = u64::from(req.size.max(1));
        let count = u64::from(req.count.max(1));
        let (kind, first, last) = match req.r#type {
            IoreqType::PIO => (0, req.addr, req.addr.wrapping_add(size - 1)),
            IoreqType::PCI_CONFIG => (2, req.addr >> 32, req.addr >> 32),
            _ => {
                let span = size.wrapping_mul(count);
                if req.flags.df() != 0 {
                    (
                        1,
                        req.addr.wrapping_sub(span - size),
                        req.addr.wrapping_add(size - 1),
                    )
                } else {
                    (1, req.addr, req.addr.wrapping_add(span - 1))
                }
            }
        };
        // Invalidate and time-offset requests are not routed by address: Xen broadcasts them
        // to every enabled server (the model delivers them to the newest one).
        let broadcast = matches!(req.r#type, IoreqType::INVALIDATE | IoreqType::TIMEOFFSET);
        let chosen = if broadcast {
            st.servers
                .iter()
                .rposition(|s| s.domid == domid && s.enabled)
        } else {
            Self::select(&st, domid, kind, first, last)
        };
        let Some(i) = chosen else {
            // Xen's null handler: reads all-ones, writes dropped.
            let ones = if size >= 8 {
                u64::MAX
            } else {
                (1u64 << (size * 8)) - 1
            };
            return Ok(Some(ones));
        };
        Self::deliver(self, st, domid, vcpu, i, req)
    }

    /// Post a raw request on `vcpu` straight into the slot of server `id`, without routing: what
    /// a server sees when a request was in flight as its range was released, or when the
    /// hypervisor (or, in legacy mode, the guest) is hostile. The server must still answer it,
    /// and must not hand the device an address outside its claimed ranges.
    pub fn post_unrouted(
        &self,
        domid: DomId,
        vcpu: u32,
        id: Ioservid,
        req: Ioreq,
    ) -> Result<(), GuestError> {
        let st = self.lock();
        let dom = st.domains.get(&domid).ok_or(GuestError::NoSuchVcpu)?;
        if vcpu >= dom.nr_vcpus {
            return Err(GuestError::NoSuchVcpu);
        }
        let i = st
            .servers
            .iter()
            .position(|s| s.domid == domid && s.id == id && s.enabled)
            .ok_or(GuestError::NothingPosted)?;
        Self::deliver(self, st, domid, vcpu, i, req).map(drop)
    }

    /// Fill vCPU `vcpu`'s slot of server `i` with `req`, set READY and notify the server.
    fn deliver(
        &self,
        mut st: MutexGuard<'_, State>,
        domid: DomId,
        vcpu: u32,
        i: usize,
        req: Ioreq,
    ) -> Result<Option<u64>, GuestError> {
        let s = &st.servers[i];
        let slot = s.slot(vcpu);
        // SAFETY: the slot is inside the server's live page (held by `st`).
        let w = |i| unsafe { slot_word(slot, i) };
        let w3 = w(3).load(Ordering::Acquire);
        if state_of(w3) != STATE_IOREQ_NONE {
            return Err(GuestError::Busy);
        }
        let words: [u64; 4] = zerocopy::transmute!(req.with_state_none());
        for (k, word) in words.iter().take(3).enumerate() {
            w(k).store(*word, Ordering::Relaxed);
        }
        // vp_eport (the low half of word 3) is Xen's: keep it; the state goes out last.
        let ready = u64::from(req.flags.with_state(STATE_IOREQ_READY).0);
        let word3 = (words[3] & !0x00ff_0000_ffff_ffff) | (w3 & 0xffff_ffff) | ready << 48;
        w(3).store(word3, Ordering::Release);
        let remote = s.vcpu_ports[vcpu as usize];
        Self::raise(&mut st, domid, remote);
        drop(st);
        self.inner.cv.notify_all();
        Ok(None)
    }

    /// Deliver an event from target port (`domid`, `remote`) to whichever local port is bound
    /// to it.
    fn raise(st: &mut State, domid: DomId, remote: EvtchnPort) {
        let local = st
            .bindings
            .iter()
            .find(|(_, b)| b.remote_dom == domid && b.remote_port == remote)
            .map(|(l, _)| *l);
        if let Some(l) = local {
            let i = l.0 as usize;
            if st.masked[i] {
                st.raised_while_masked[i] = true;
            } else {
                st.masked[i] = true;
                st.queue.push_back(l);
            }
        }
    }

    /// After a server answered on `vcpu`, consume the answer as Xen's `wait_for_io` does: the
    /// slot must be IORESP_READY; then `data` is read once and the slot freed.
    pub fn collect(&self, domid: DomId, vcpu: u32) -> Result<u64, GuestError> {
        let mut st = self.lock();
        if let Some(d) = st.orphans.remove(&(domid, vcpu)) {
            return Ok(d);
        }
        let (slot, _) = Self::slot_of(&st, domid, vcpu).ok_or(GuestError::NothingPosted)?;
        // SAFETY: inside the live page (held by `st`).
        let w = |i| unsafe { slot_word(slot, i) };
        let w3 = w(3).load(Ordering::Acquire);
        if state_of(w3) != STATE_IORESP_READY {
            return Err(GuestError::NothingPosted);
        }
        let data = w(1).load(Ordering::Relaxed);
        w(3).store(w3 & !(0x0f << 48), Ordering::Relaxed); // state NONE
        Ok(data)
    }

    fn slot_of(st: &State, domid: DomId, vcpu: u32) -> Option<(*mut u8, usize)> {
        // The slot in use is the one of the server the last request went to: find a server whose
        // slot is not NONE.
        st.servers.iter().enumerate().rev().find_map(|(i, s)| {
            if s.domid != domid || vcpu as usize >= s.vcpu_ports.len() {
                return None;
            }
            let p = s.slot(vcpu);
            // SAFETY: inside the live page.
            let state = state_of(unsafe { slot_word(p, 3) }.load(Ordering::Acquire));
            (state != STATE_IOREQ_NONE).then_some((p, i))
        })
    }

    /// Post `req`, then wait (as the vCPU does) for the answer: IORESP_READY returns `data`;
    /// a state moving backwards crashes the domain (XSA-262); no answer within `timeout` fails.
    pub fn request(
        &self,
        domid: DomId,
        vcpu: u32,
        req: Ioreq,
        timeout: Duration,
    ) -> Result<u64, GuestError> {
        if let Some(v) = self.post(domid, vcpu, req)? {
            return Ok(v);
        }
        let deadline = Instant::now() + timeout;
        let mut last = STATE_IOREQ_READY;
        let mut st = self.lock();
        loop {
            if let Some(d) = st.orphans.remove(&(domid, vcpu)) {
                return Ok(d);
            }
            let Some((slot, _)) = Self::slot_of(&st, domid, vcpu) else {
                // The slot went back to NONE without IORESP_READY: the server broke the protocol.
                let why = String::from("ioreq state moved backwards to NONE");
                if let Some(d) = st.domains.get_mut(&domid) {
                    d.crashed = Some(why.clone());
                }
                return Err(GuestError::DomainCrashed(why));
            };
            // SAFETY: inside the live page; read once per check.
            let state = state_of(unsafe { slot_word(slot, 3) }.load(Ordering::Acquire));
            if state < last || state > STATE_IORESP_READY {
                let why = format!("ioreq state moved from {last} to {state}");
                if let Some(d) = st.domains.get_mut(&domid) {
                    d.crashed = Some(why.clone());
                }
                return Err(GuestError::DomainCrashed(why));
            }
            last = state;
            if state == STATE_IORESP_READY {
                drop(st);
                return self.collect(domid, vcpu);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(GuestError::Timeout);
            }
            let (g, _) = self
                .inner
                .cv
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(2)))
                .unwrap_or_else(|p| p.into_inner());
            st = g;
        }
    }

    /// Post an MMIO access (`value`: Some for a write) without waiting (single-threaded tests).
    pub fn post_mmio(
        &self,
        domid: DomId,
        vcpu: u32,
        addr: u64,
        size: u32,
        value: Option<u64>,
    ) -> Result<Option<u64>, GuestError> {
        self.post(
            domid,
            vcpu,
            ioreq(IoreqType::COPY, addr, size, 1, value, false, false),
        )
    }

    /// A handle that performs guest accesses on one vCPU and waits for the answers.
    pub fn vcpu(&self, domid: DomId, vcpu: u32) -> Vcpu {
        Vcpu {
            sim: self.clone(),
            domid,
            vcpu,
            timeout: Duration::from_secs(5),
        }
    }

    /// A writer that scribbles over the non-state fields of `vcpu`'s slot of the newest server
    /// of `domid` (a hostile guest in legacy gfn mode), for concurrent use from another thread.
    pub fn hostile_writer(&self, domid: DomId, vcpu: u32) -> Option<HostileWriter> {
        let st = self.lock();
        let s = st.servers.iter().rev().find(|s| s.domid == domid)?;
        (vcpu < s.vcpu_ports.len() as u32).then(|| HostileWriter {
            slot: s.slot(vcpu),
            _mem: s.mem.clone(),
            x: 0x9e37_79b9_7f4a_7c15,
        })
    }

    /// The buffered ioreq page of the newest server of `domid`, to play Xen's producer side.
    pub fn bufioreq_producer(&self, domid: DomId) -> Option<BufProducer> {
        let st = self.lock();
        let s = st
            .servers
            .iter()
            .rev()
            .find(|s| s.domid == domid && s.bufioreq)?;
        Some(BufProducer {
            sim: self.clone(),
            domid,
            page: s.mem.ptr,
            port: s.buf_port,
            _mem: s.mem.clone(),
        })
    }
}

/// Builds a raw ioreq (state NONE) for the simulator's guest side.
pub fn ioreq(
    ty: IoreqType,
    addr: u64,
    size: u32,
    count: u32,
    write: Option<u64>,
    data_is_ptr: bool,
    df: bool,
) -> Ioreq {
    let dir = if write.is_some() {
        IOREQ_WRITE
    } else {
        IOREQ_READ
    };
    Ioreq {
        addr,
        data: write.unwrap_or(0),
        count,
        size,
        r#type: ty,
        flags: IoreqFlags::default()
            .with_dir(dir)
            .with_data_is_ptr(u8::from(data_is_ptr))
            .with_df(u8::from(df)),
        ..Default::default()
    }
}

trait WithStateNone {
    fn with_state_none(self) -> Self;
}

impl WithStateNone for Ioreq {
    fn with_state_none(mut self) -> Self {
        self.flags = self.flags.with_state(STATE_IOREQ_NONE);
        self
    }
}

/// A simulated vCPU issuing accesses and waiting for their answers.
pub struct Vcpu {
    sim: Sim,
    domid: DomId,
    vcpu: u32,
    timeout: Duration,
}

impl core::fmt::Debug for Vcpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vcpu")
            .field("domid", &self.domid)
            .field("vcpu", &self.vcpu)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Vcpu {
    /// Set how long to wait for an answer.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn go(&self, r: Ioreq) -> Result<u64, GuestError> {
        self.sim.request(self.domid, self.vcpu, r, self.timeout)
    }

    /// MMIO read of `size` bytes.
    pub fn mmio_read(&self, addr: u64, size: u32) -> Result<u64, GuestError> {
        self.go(ioreq(IoreqType::COPY, addr, size, 1, None, false, false))
    }
    /// MMIO write.
    pub fn mmio_write(&self, addr: u64, size: u32, value: u64) -> Result<(), GuestError> {
        self.go(ioreq(
            IoreqType::COPY,
            addr,
            size,
            1,
            Some(value),
            false,
            false,
        ))
        .map(drop)
    }
    /// Port read (`in`).
    pub fn pio_in(&self, port: u16, size: u32) -> Result<u64, GuestError> {
        self.go(ioreq(
            IoreqType::PIO,
            u64::from(port),
            size,
            1,
            None,
            false,
            false,
        ))
    }
    /// Port write (`out`).
    pub fn pio_out(&self, port: u16, size: u32, value: u64) -> Result<(), GuestError> {
        self.go(ioreq(
            IoreqType::PIO,
            u64::from(port),
            size,
            1,
            Some(value),
            false,
            false,
        ))
        .map(drop)
    }
    /// `rep outs`: `count` elements from guest RAM at `gpa` to `port`.
    pub fn rep_outs(
        &self,
        port: u16,
        size: u32,
        gpa: u64,
        count: u32,
        df: bool,
    ) -> Result<(), GuestError> {
        self.go(ioreq(
            IoreqType::PIO,
            u64::from(port),
            size,
            count,
            Some(gpa),
            true,
            df,
        ))
        .map(drop)
    }
    /// `rep ins`: `count` elements from `port` to guest RAM at `gpa`.
    pub fn rep_ins(
        &self,
        port: u16,
        size: u32,
        gpa: u64,
        count: u32,
        df: bool,
    ) -> Result<(), GuestError> {
        let mut r = ioreq(IoreqType::PIO, u64::from(port), size, count, None, true, df);
        r.data = gpa;
        self.go(r).map(drop)
    }
    /// `rep movs` from MMIO at `addr` to guest RAM at `gpa` (MMIO read).
    pub fn rep_mmio_to_ram(
        &self,
        addr: u64,
        size: u32,
        gpa: u64,
        count: u32,
        df: bool,
    ) -> Result<(), GuestError> {
        let mut r = ioreq(IoreqType::COPY, addr, size, count, None, true, df);
        r.data = gpa;
        self.go(r).map(drop)
    }
    /// PCI config read of a claimed SBDF.
    pub fn pci_config_read(&self, sbdf: u32, reg: u32, size: u32) -> Result<u64, GuestError> {
        self.go(ioreq(
            IoreqType::PCI_CONFIG,
            (u64::from(sbdf) << 32) | u64::from(reg),
            size,
            1,
            None,
            false,
            false,
        ))
    }
    /// PCI config write.
    pub fn pci_config_write(
        &self,
        sbdf: u32,
        reg: u32,
        size: u32,
        value: u64,
    ) -> Result<(), GuestError> {
        self.go(ioreq(
            IoreqType::PCI_CONFIG,
            (u64::from(sbdf) << 32) | u64::from(reg),
            size,
            1,
            Some(value),
            false,
            false,
        ))
        .map(drop)
    }
    /// Any raw request (invalid ones included).
    pub fn raw(&self, r: Ioreq) -> Result<u64, GuestError> {
        self.go(r)
    }
}

/// Scribbles over a slot's non-state bytes (bytes 0..24 and 31: addr, data, count, size, type).
pub struct HostileWriter {
    slot: *mut u8,
    _mem: Arc<PageBox>,
    x: u64,
}

impl core::fmt::Debug for HostileWriter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostileWriter").finish_non_exhaustive()
    }
}

// SAFETY: the writer only performs atomic stores into the shared page, which it keeps alive.
unsafe impl Send for HostileWriter {}

impl HostileWriter {
    /// One round of rewriting: new pseudo-random addr, data, count, size and type.
    pub fn scribble(&mut self) {
        // xorshift64*
        self.x ^= self.x >> 12;
        self.x ^= self.x << 25;
        self.x ^= self.x >> 27;
        let r = self.x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // SAFETY: inside the live page (held by `_mem`).
        let w = |i| unsafe { slot_word(self.slot, i) };
        // Atomic whole-word stores of fields the guest may write in legacy mode: addr, data,
        // count and size (low and high half of word 2), then `type` (byte 7 of word 3) by a
        // compare-and-swap that keeps the rest of the word, never the state.
        w(0).store(r, Ordering::Relaxed);
        w(1).store(r.rotate_left(17), Ordering::Relaxed);
        w(2).store((r >> 40) & 0xffff_ffff | (r & 0xf) << 32, Ordering::Relaxed);
        let ty = u64::from((r >> 8) as u8 & 0xf) << 56;
        let _ = w(3).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| {
            Some(x & !(0xff << 56) | ty)
        });
    }
}

/// Plays Xen's producer side of the buffered ring.
pub struct BufProducer {
    sim: Sim,
    domid: DomId,
    page: *mut u8,
    port: EvtchnPort,
    _mem: Arc<PageBox>,
}

impl core::fmt::Debug for BufProducer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BufProducer")
            .field("domid", &self.domid)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl BufProducer {
    fn ptrs(&self) -> (&std::sync::atomic::AtomicU32, &std::sync::atomic::AtomicU32) {
        // SAFETY: the page is alive (held by `_mem`); the pointers are aligned u32s shared
        // with the consumer, accessed atomically by both.
        unsafe {
            (
                std::sync::atomic::AtomicU32::from_ptr(self.page.cast()),
                std::sync::atomic::AtomicU32::from_ptr(self.page.add(4).cast()),
            )
        }
    }

    /// Set both pointers (e.g. near 2^32 to test wrap-around).
    pub fn set_pointers(&self, read: u32, write: u32) {
        let (r, w) = self.ptrs();
        r.store(read, std::sync::atomic::Ordering::SeqCst);
        w.store(write, std::sync::atomic::Ordering::SeqCst);
    }

    /// The current (read, write) pointers.
    pub fn pointers(&self) -> (u32, u32) {
        let (r, w) = self.ptrs();
        (
            r.load(std::sync::atomic::Ordering::SeqCst),
            w.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    /// Queue a buffered write of `size` (1, 2, 4 or 8) bytes at `addr` (< 1 MiB); returns false
    /// when the ring is full (Xen then falls back to a synchronous request).
    pub fn push(&self, addr: u32, size: u32, value: u64) -> bool {
        let (r, w) = self.ptrs();
        let rp = r.load(std::sync::atomic::Ordering::Acquire);
        let wp = w.load(std::sync::atomic::Ordering::Acquire);
        let slots = if size == 8 { 2 } else { 1 };
        if wp.wrapping_sub(rp) + slots > IOREQ_BUFFER_SLOT_NUM {
            return false;
        }
        let sz = match size {
            1 => 0,
            2 => 1,
            4 => 2,
            _ => 3,
        };
        let lo = BufIoreqLo(0)
            .with_type(u32::from(IoreqType::COPY.0))
            .with_size(sz)
            .with_addr(addr);
        let write_slot = |i: u32, data: u32| {
            let off = 8 + (i % IOREQ_BUFFER_SLOT_NUM) as usize * 8;
            // SAFETY: an aligned u64 inside the page, which `_mem` keeps alive; the consumer
            // loads slots atomically too.
            unsafe { AtomicU64::from_ptr(self.page.add(off).cast::<u64>()) }
                .store(u64::from(lo.0) | (u64::from(data) << 32), Ordering::Relaxed);
        };
        write_slot(wp, value as u32);
        if size == 8 {
            write_slot(wp.wrapping_add(1), (value >> 32) as u32);
        }
        // Release: the consumer's acquire load of the write pointer sees the slots.
        w.store(wp.wrapping_add(slots), std::sync::atomic::Ordering::Release);
        true
    }

    /// Notify the server's buffered port.
    pub fn notify(&self) {
        let mut st = self.sim.lock();
        Sim::raise(&mut st, self.domid, self.port);
        drop(st);
        self.sim.inner.cv.notify_all();
    }
}

// --- platform implementation ---------------------------------------------------------------------

fn os(op: &'static str, errno: i32) -> Error {
    Error::Os { op, errno }
}

/// Payload sizes per op, as `xen/common/dm.c` and `xen/arch/x86/hvm/dm.c` check them.
fn op_size(op: u32) -> Option<usize> {
    use core::mem::size_of;
    Some(match op {
        1 => size_of::<XenDmOpCreateIoreqServer>(),
        2 => size_of::<XenDmOpGetIoreqServerInfo>(),
        3 | 4 => size_of::<XenDmOpIoreqServerRange>(),
        5 => size_of::<XenDmOpSetIoreqServerState>(),
        6 => size_of::<XenDmOpDestroyIoreqServer>(),
        7 => size_of::<XenDmOpTrackDirtyVram>(),
        8 => size_of::<XenDmOpSetPciIntxLevel>(),
        9 => size_of::<XenDmOpSetIsaIrqLevel>(),
        10 => size_of::<XenDmOpSetPciLinkRoute>(),
        11 => size_of::<XenDmOpModifiedMemory>(),
        12 => size_of::<XenDmOpSetMemType>(),
        13 => size_of::<XenDmOpInjectEvent>(),
        14 => size_of::<XenDmOpInjectMsi>(),
        15 => size_of::<XenDmOpMapMemTypeToIoreqServer>(),
        16 => size_of::<XenDmOpRemoteShutdown>(),
        17 => size_of::<XenDmOpRelocateMemory>(),
        18 => size_of::<XenDmOpPinMemoryCacheattr>(),
        19 => size_of::<XenDmOpSetIrqLevel>(),
        20 => size_of::<XenDmOpNrVcpus>(),
        _ => return None,
    })
}

fn payload<T: zerocopy::FromBytes>(buf: &[u8]) -> T {
    T::read_from_prefix(&buf[8..])
        .map(|(v, _)| v)
        .unwrap_or_else(|_| T::new_zeroed())
}

fn put<T: zerocopy::IntoBytes + zerocopy::Immutable>(buf: &mut [u8], v: &T) {
    let b = v.as_bytes();
    buf[8..8 + b.len()].copy_from_slice(b);
}

impl Sim {
    fn dm(&self, st: &mut State, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        const OP: &str = "dm_op";
        if bufs.len() > 2 {
            return Err(os(OP, E2BIG));
        }
        if bufs.is_empty() {
            return Err(os(OP, ENODATA));
        }
        let dom = st.domains.get(&domid).ok_or(os(OP, ESRCH))?;
        if domid == EMULATOR {
            return Err(os(OP, EPERM));
        }
        if !dom.hvm {
            return Err(os(OP, EINVAL));
        }
        let buf = &mut *bufs[0];
        if buf.len() < 8 {
            return Err(os(OP, EFAULT));
        }
        let op = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let pad = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let size = op_size(op).ok_or(os(OP, EOPNOTSUPP))?;
        if buf.len() < 8 + size {
            return Err(os(OP, EFAULT));
        }
        if pad != 0 {
            return Err(os(OP, EINVAL));
        }
        let nr_vcpus = dom.nr_vcpus;
        match XenDmop(op) {
            XenDmop::NR_VCPUS => put(buf, &XenDmOpNrVcpus { vcpus: nr_vcpus }),
            XenDmop::CREATE_IOREQ_SERVER => {
                let mut p: XenDmOpCreateIoreqServer = payload(buf);
                if p.handle_bufioreq.0 > 2 || p.pad != [0; 3] {
                    return Err(os(OP, EINVAL));
                }
                if st.servers.iter().filter(|s| s.domid == domid).count() >= MAX_SERVERS {
                    return Err(os(OP, ENOSPC));
                }
                let id = (0..MAX_SERVERS as u16)
                    .find(|i| !st.servers.iter().any(|s| s.domid == domid && s.id == *i))
                    .ok_or(os(OP, ENOSPC))?;
                let ioreq_pages = (nr_vcpus as usize * 32).div_ceil(4096);
                let dom = st.domains.get_mut(&domid).ok_or(os(OP, ESRCH))?;
                let mut vcpu_ports = Vec::with_capacity(nr_vcpus as usize);
                for _ in 0..nr_vcpus {
                    vcpu_ports.push(dom.next_port);
                    dom.next_port.0 += 1;
                }
                let buf_port = dom.next_port;
                dom.next_port.0 += 1;
                st.servers.push(Server {
                    domid,
                    id,
                    enabled: false,
                    bufioreq: p.handle_bufioreq.0 != 0,
                    mem: Arc::new(PageBox::new(1 + ioreq_pages)),
                    ioreq_pages,
                    ranges: Default::default(),
                    vcpu_ports,
                    buf_port,
                });
                p.id = id;
                put(buf, &p);
            }
            op => {
                let id = u16::from_ne_bytes([buf[8], buf[9]]);
                let i = st
                    .servers
                    .iter()
                    .position(|s| s.domid == domid && s.id == id);
                match op {
                    XenDmop::GET_IOREQ_SERVER_INFO => {
                        let mut p: XenDmOpGetIoreqServerInfo = payload(buf);
                        if p.flags.unknown_bits() != 0 {
                            return Err(os(OP, EINVAL));
                        }
                        let i = i.ok_or(os(OP, ENOENT))?;
                        if !p.flags.contains(XenDmopIoreqServerInfoFlags::NO_GFNS) {
                            // The model implements acquire_resource only.
                            return Err(os(OP, EOPNOTSUPP));
                        }
                        p.bufioreq_port = if st.servers[i].bufioreq {
                            st.servers[i].buf_port.0
                        } else {
                            0
                        };
                        put(buf, &p);
                    }
                    XenDmop::MAP_IO_RANGE_TO_IOREQ_SERVER
                    | XenDmop::UNMAP_IO_RANGE_FROM_IOREQ_SERVER => {
                        let p: XenDmOpIoreqServerRange = payload(buf);
                        let i = i.ok_or(os(OP, ENOENT))?;
                        let t = p.r#type.0 as usize;
                        if t > 2 || p.start > p.end || p.pad != 0 {
                            return Err(os(OP, EINVAL));
                        }
                        let ranges = &mut st.servers[i].ranges[t];
                        if op == XenDmop::MAP_IO_RANGE_TO_IOREQ_SERVER {
                            if ranges.iter().any(|&(a, b)| p.start <= b && a <= p.end) {
                                return Err(os(OP, EEXIST));
                            }
                            if ranges.len() >= MAX_RANGES {
                                return Err(os(OP, ENOSPC));
                            }
                            ranges.push((p.start, p.end));
                        } else {
                            let k = ranges
                                .iter()
                                .position(|&(a, b)| a <= p.start && p.end <= b)
                                .ok_or(os(OP, ENOENT))?;
                            let (a, b) = ranges.remove(k);
                            if a < p.start {
                                ranges.push((a, p.start - 1));
                            }
                            if p.end < b {
                                ranges.push((p.end + 1, b));
                            }
                        }
                    }
                    XenDmop::SET_IOREQ_SERVER_STATE => {
                        let p: XenDmOpSetIoreqServerState = payload(buf);
                        let i = i.ok_or(os(OP, ENOENT))?;
                        if p.pad != 0 {
                            return Err(os(OP, EINVAL));
                        }
                        let s = &mut st.servers[i];
                        s.enabled = p.enabled != 0;
                        if s.enabled {
                            // Xen writes each vCPU's event channel into its slot when enabling.
                            for v in 0..s.vcpu_ports.len() {
                                // SAFETY: inside the live page.
                                let w3 = unsafe { slot_word(s.slot(v as u32), 3) };
                                let port = u64::from(s.vcpu_ports[v].0);
                                let _ =
                                    w3.fetch_update(Ordering::Release, Ordering::Relaxed, |x| {
                                        Some(x & !0xffff_ffff | port)
                                    });
                            }
                        }
                    }
                    XenDmop::DESTROY_IOREQ_SERVER => {
                        let i = i.ok_or(os(OP, ENOENT))?;
                        let s = st.servers.remove(i);
                        // A vCPU woken by an answer published just before the destroy still
                        // gets it.
                        for v in 0..s.vcpu_ports.len() as u32 {
                            let p = s.slot(v);
                            // SAFETY: the page is alive until `s` is dropped below.
                            let w = |i| unsafe { slot_word(p, i) };
                            if state_of(w(3).load(Ordering::Acquire)) == STATE_IORESP_READY {
                                let data = w(1).load(Ordering::Relaxed);
                                st.orphans.insert((domid, v), data);
                            }
                        }
                        // Its target-side ports close: unbind whatever pointed at them.
                        st.bindings.retain(|_, b| {
                            !(b.remote_dom == domid
                                && (s.vcpu_ports.contains(&b.remote_port)
                                    || b.remote_port == s.buf_port))
                        });
                    }
                    XenDmop::SET_IRQ_LEVEL => {
                        let p: XenDmOpSetIrqLevel = payload(buf);
                        if p.level > 1 || p.pad != [0; 3] || p.irq < 32 {
                            return Err(os(OP, EINVAL));
                        }
                        st.irqs.push((domid, p.irq, p.level != 0));
                    }
                    XenDmop::SET_ISA_IRQ_LEVEL => {
                        let p: XenDmOpSetIsaIrqLevel = payload(buf);
                        if p.isa_irq > 15 || p.level > 1 {
                            return Err(os(OP, EINVAL));
                        }
                        st.irqs.push((domid, u32::from(p.isa_irq), p.level != 0));
                    }
                    XenDmop::INJECT_MSI => {
                        let p: XenDmOpInjectMsi = payload(buf);
                        // Xen refuses what is not an MSI address.
                        if p.pad != 0 || p.addr >> 20 != 0xfee {
                            return Err(os(OP, EINVAL));
                        }
                        st.msis.push(Msi {
                            domid,
                            addr: p.addr,
                            data: p.data,
                        });
                    }
                    XenDmop::SET_PCI_INTX_LEVEL => {
                        let p: XenDmOpSetPciIntxLevel = payload(buf);
                        if p.domain != 0 || p.bus != 0 || p.device > 31 || p.intx > 3 || p.level > 1
                        {
                            return Err(os(OP, EINVAL));
                        }
                        st.intx.push((domid, p.device, p.intx, p.level != 0));
                    }
                    // Not modelled.
                    _ => return Err(os(OP, EOPNOTSUPP)),
                }
            }
        }
        Ok(())
    }
}

impl Version for Sim {
    fn xen_version(&self) -> Result<XenVersion, Error> {
        self.lock().version.ok_or(os("XENVER_version", ENOENT))
    }
}

impl DeviceModel for Sim {
    fn dm_op(&self, domid: DomId, bufs: &mut [&mut [u8]]) -> Result<(), Error> {
        let mut st = self.lock();
        let name = if bufs.first().is_some_and(|b| b.len() >= 4) {
            let op = u32::from_ne_bytes([bufs[0][0], bufs[0][1], bufs[0][2], bufs[0][3]]);
            XenDmop(op).name().unwrap_or("XEN_DMOP_?")
        } else {
            "XEN_DMOP_?"
        };
        self.enter(&mut st, &format!("dm_op {name}"))?;
        self.dm(&mut st, domid, bufs)
    }

    #[cfg(target_os = "linux")]
    fn irqfd(
        &self,
        domid: DomId,
        eventfd: std::os::fd::BorrowedFd<'_>,
        dm_op: Option<&[u8]>,
    ) -> Result<(), Error> {
        use std::os::fd::AsRawFd;
        const OP: &str = "IOCTL_PRIVCMD_IRQFD";
        const EBUSY: i32 = 16;
        let mut st = self.lock();
        self.enter(&mut st, OP)?;
        if !st.irqfd {
            // What a kernel without the ioctl answers.
            return Err(Error::NotSupportedByKernel {
                op: OP,
                linux: "6.6",
                errno: 25,
            });
        }
        let fd = eventfd.as_raw_fd();
        let Some(op) = dm_op else {
            let before = st.irqfds.len();
            st.irqfds.retain(|b| !(b.fd == fd && b.domid == domid));
            return if st.irqfds.len() < before {
                Ok(())
            } else {
                Err(os(OP, ENOENT))
            };
        };
        if op.is_empty() {
            return Err(os(OP, EINVAL));
        }
        if st.irqfds.iter().any(|b| b.fd == fd) {
            return Err(os(OP, EBUSY));
        }
        let eventfd = eventfd
            .try_clone_to_owned()
            .map_err(|e| os(OP, e.raw_os_error().unwrap_or(EINVAL)))?;
        st.irqfds.push(Irqfd {
            domid,
            fd,
            eventfd,
            dm_op: op.to_vec(),
        });
        if !core::mem::replace(&mut st.irqfd_worker, true) {
            let shared = Arc::downgrade(&self.inner);
            std::thread::Builder::new()
                .name(String::from("sim-irqfd"))
                .spawn(move || irqfd_worker(shared))
                .map_err(|e| os(OP, e.raw_os_error().unwrap_or(EINVAL)))?;
        }
        Ok(())
    }
}

/// The modelled kernel's irqfd wake-ups: each signal of a bound eventfd is consumed and its
/// dm_op issued, until the simulator is dropped.
#[cfg(target_os = "linux")]
fn irqfd_worker(shared: std::sync::Weak<Shared>) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 2_000_000,
    };
    loop {
        let Some(inner) = shared.upgrade() else {
            return;
        };
        let sim = Sim { inner, channel: 0 };
        let bound: Vec<(DomId, i32, std::os::fd::OwnedFd, Vec<u8>)> = {
            let st = sim.lock();
            st.irqfds
                .iter()
                .filter_map(|b| {
                    let fd = b.eventfd.try_clone().ok()?;
                    Some((b.domid, b.fd, fd, b.dm_op.clone()))
                })
                .collect()
        };
        if bound.is_empty() {
            drop(sim);
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let mut fds: Vec<PollFd<'_>> = bound
            .iter()
            .map(|(_, _, fd, _)| PollFd::new(fd, PollFlags::IN))
            .collect();
        if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().contains(PollFlags::IN))
            .collect();
        drop(fds);
        for ((domid, number, fd, op), ready) in bound.iter().zip(ready) {
            if !ready {
                continue;
            }
            // Under the lock that deassign takes: a signal after the binding is gone is the
            // signaller's to read, as with the kernel.
            let mut st = sim.lock();
            let still = st
                .irqfds
                .iter()
                .any(|b| b.domid == *domid && b.fd == *number);
            let mut count = [0u8; 8];
            if still && rustix::io::read(fd, &mut count).is_ok() {
                let mut buf = op.clone();
                // An error is the kernel's log line, not the signaller's.
                let _ = sim.dm(&mut st, *domid, &mut [&mut buf]);
            }
        }
    }
}

impl ForeignMemory for Sim {
    type Pages = SimPages;

    fn map_resource(
        &self,
        domid: DomId,
        ty: XenMemResourceType,
        id: u32,
        frame: u32,
        nr: u32,
    ) -> Result<SimPages, Error> {
        const OP: &str = "XENMEM_acquire_resource";
        let mut st = self.lock();
        self.enter(&mut st, "map_resource")?;
        if ty != XenMemResourceType::IOREQ_SERVER {
            return Err(os(OP, EOPNOTSUPP));
        }
        let id = u16::try_from(id).map_err(|_| os(OP, EINVAL))?;
        if !st.domains.contains_key(&domid) {
            return Err(os(OP, ESRCH));
        }
        let s = st
            .servers
            .iter()
            .find(|s| s.domid == domid && s.id == id)
            .ok_or(os(OP, ENOENT))?;
        if frame == 0 && !s.bufioreq {
            return Err(os(OP, ENOENT));
        }
        if nr == 0 || frame as usize + nr as usize > 1 + s.ioreq_pages {
            return Err(os(OP, EINVAL));
        }
        Ok(SimPages {
            mem: s.mem.clone(),
            offset: frame as usize * 4096,
            len: nr as usize * 4096,
        })
    }

    fn read_guest(&self, domid: DomId, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        let st = self.lock();
        let d = st.domains.get(&domid).ok_or(os("read guest RAM", ESRCH))?;
        let a = usize::try_from(gpa).map_err(|_| os("read guest RAM", EFAULT))?;
        d.ram_read(a, buf).ok_or(os("read guest RAM", EFAULT))?;
        Ok(())
    }

    fn write_guest(&self, domid: DomId, gpa: u64, buf: &[u8]) -> Result<(), Error> {
        let mut st = self.lock();
        let d = st
            .domains
            .get_mut(&domid)
            .ok_or(os("write guest RAM", ESRCH))?;
        let a = usize::try_from(gpa).map_err(|_| os("write guest RAM", EFAULT))?;
        d.ram_write(a, buf).ok_or(os("write guest RAM", EFAULT))?;
        Ok(())
    }
}

impl MapGuest for Sim {
    type Mapping = SimPages;

    fn map_guest(&self, domid: DomId, gfn: Gfn, n: usize) -> Result<(SimPages, Vec<i32>), Error> {
        const OP: &str = "IOCTL_PRIVCMD_MMAPBATCH_V2";
        let st = self.lock();
        let d = st.domains.get(&domid).ok_or(os(OP, ESRCH))?;
        let pages = (GUEST_RAM / 4096) as u64;
        if n == 0 || gfn.0 >= pages || n as u64 > pages - gfn.0 {
            return Err(os(OP, EINVAL));
        }
        let errs = (gfn.0..gfn.0 + n as u64)
            .map(|g| if d.holes.contains(&g) { -EINVAL } else { 0 })
            .collect();
        Ok((
            SimPages {
                mem: Arc::clone(&d.ram),
                offset: gfn.0 as usize * 4096,
                len: n * 4096,
            },
            errs,
        ))
    }
}

impl EventChannels for Sim {
    fn bind_interdomain(&self, remote: DomId, port: EvtchnPort) -> Result<EvtchnPort, Error> {
        const OP: &str = "EVTCHNOP_bind_interdomain";
        let mut st = self.lock();
        self.enter(&mut st, "bind_interdomain")?;
        let exists = st.servers.iter().any(|s| {
            s.domid == remote
                && (s.vcpu_ports.contains(&port) || (s.bufioreq && s.buf_port == port))
        });
        if !exists {
            return Err(os(OP, EINVAL));
        }
        if st
            .bindings
            .values()
            .any(|b| b.remote_dom == remote && b.remote_port == port)
        {
            return Err(os(OP, EINVAL));
        }
        let local = st.next_local;
        if local.0 as usize >= MAX_PORTS {
            return Err(os(OP, ENOSPC));
        }
        st.next_local.0 += 1;
        st.bindings.insert(
            local,
            Binding {
                remote_dom: remote,
                remote_port: port,
                channel: self.channel,
            },
        );
        // Xen marks a freshly bound port pending.
        st.queue.push_back(local);
        st.masked[local.0 as usize] = true;
        drop(st);
        self.inner.cv.notify_all();
        Ok(local)
    }

    fn unbind(&self, port: EvtchnPort) -> Result<(), Error> {
        let mut st = self.lock();
        st.log.push(String::from("unbind"));
        st.bindings
            .remove(&port)
            .ok_or(os("IOCTL_EVTCHN_UNBIND", ENOTCONN))?;
        st.queue.retain(|p| *p != port);
        st.masked[port.0 as usize] = false;
        st.raised_while_masked[port.0 as usize] = false;
        Ok(())
    }

    fn notify(&self, port: EvtchnPort) -> Result<(), Error> {
        let mut st = self.lock();
        if let Some(errno) = st.fail_notify.take() {
            return Err(os("EVTCHNOP_send", errno));
        }
        let b = st
            .bindings
            .get(&port)
            .ok_or(os("EVTCHNOP_send", ENOTCONN))?;
        let (d, p) = (b.remote_dom, b.remote_port);
        if let Some(flag) = st
            .domains
            .get_mut(&d)
            .and_then(|dom| dom.events.get_mut(p.0 as usize))
        {
            *flag = true;
        }
        drop(st);
        self.inner.cv.notify_all();
        Ok(())
    }

    fn wait_pending(&self, out: &mut [EvtchnPort]) -> Result<usize, Error> {
        let mut st = self.lock();
        loop {
            // This handle's events only (as the evtchn device delivers them).
            let ch = self.channel;
            let State {
                queue, bindings, ..
            } = &mut *st;
            let mut n = 0;
            queue.retain(|p| {
                let mine = bindings.get(p).is_some_and(|b| b.channel == ch);
                if mine && n < out.len() {
                    out[n] = *p;
                    n += 1;
                    false
                } else {
                    true
                }
            });
            if n > 0 {
                return Ok(n);
            }
            if st.wake & (1 << ch) != 0 {
                st.wake &= !(1 << ch);
                return Ok(0);
            }
            st = self
                .inner
                .cv
                .wait_timeout(st, Duration::from_millis(50))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    fn unmask(&self, ports: &[EvtchnPort]) -> Result<(), Error> {
        let mut st = self.lock();
        for &p in ports {
            let i = p.0 as usize;
            if i >= MAX_PORTS {
                continue; // not a port: ignored, as the evtchn device does
            }
            st.masked[i] = false;
            if core::mem::take(&mut st.raised_while_masked[i]) {
                st.masked[i] = true;
                st.queue.push_back(p);
            }
        }
        Ok(())
    }
}

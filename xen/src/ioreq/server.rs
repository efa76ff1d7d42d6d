//! The IOREQ server: setup in Xen's order, serving, teardown in reverse.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_sys::*;

use super::handler::{Handler, RangeChange, Space};
use super::request::{decode, fallback_size, single, Access, Data, Dir, Invalid, Request, Size};
use super::slot::Slot;
use crate::dm::{RangeKind, RangeOp, Xen, XenRef};
use crate::platform::{EventChannels, Pages, Platform};
use crate::{DomId, Error, EvtchnPort};

/// Whether Xen may send a server buffered ioreqs: x86 writes that need no answer (such as a
/// VGA frame buffer's), queued on a ring Xen fills without waiting for the server.
///
/// Only the modes this library drains correctly are offered: Xen's legacy mode
/// (`HVM_IOREQSRV_BUFIOREQ_LEGACY`) publishes the ring's two pointers in separate words, which a
/// reader cannot take as one consistent pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Buffered {
    /// Every request is synchronous (the default).
    #[default]
    Off,
    /// Buffered requests on, with the ring's pointers read as one atomic pair
    /// (`HVM_IOREQSRV_BUFIOREQ_ATOMIC`).
    Atomic,
}

impl Buffered {
    fn to_xen(self) -> HvmIoreqsrvBufioreq {
        match self {
            Buffered::Off => HvmIoreqsrvBufioreq::OFF,
            Buffered::Atomic => HvmIoreqsrvBufioreq::ATOMIC,
        }
    }
}

/// Options of a server.
///
/// ```
/// use xen::ioreq::{Buffered, ServerOptions};
/// let opts = ServerOptions { buffered: Buffered::Atomic };
/// assert_eq!(ServerOptions::default().buffered, Buffered::Off);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerOptions {
    /// Buffered ioreqs (x86).
    pub buffered: Buffered,
}

/// How far setup got; teardown undoes exactly these steps, in reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Created,
    Mapped,
    Enabled,
    Bound,
}

/// A claimed range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    kind: RangeKind,
    start: u64,
    end: u64,
}

/// Counters of a server (what it did, for tests and monitoring).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Requests completed.
    pub requests: u64,
    /// Requests refused by validation.
    pub invalid: u64,
    /// Events for a slot that was not READY (spurious or duplicate).
    pub spurious: u64,
    /// Requests a predecessor had taken and not answered, served again by
    /// [`IoreqServer::adopt`].
    pub requeued: u64,
    /// Buffered ioreqs handled.
    pub buffered: u64,
    /// Times the buffered ring's write pointer was more than a ring ahead of its read pointer
    /// (impossible for Xen; a corrupted page): what was in the ring was dropped, never replayed,
    /// and the read pointer moved to the write pointer.
    pub buffered_resyncs: u64,
}

/// A request taken from its slot (now INPROCESS) and not answered yet. Dropped without an
/// answer (a handler panicked, and the stack unwinds), it answers the request as an invalid one
/// (reads all-ones, writes dropped) and notifies the vCPU: neither a server that unwinds nor one
/// whose caller catches the panic and goes on leaves a vCPU waiting.
struct InFlight<'p, P: EventChannels> {
    platform: &'p P,
    slot: Slot,
    /// The state word the request came with (its flags say what an invalid answer is).
    w3: u64,
    size: u32,
    port: EvtchnPort,
}

impl<P: EventChannels> InFlight<'_, P> {
    /// Publish the answer and notify the vCPU.
    #[inline]
    fn answer(self, data: Option<u64>) -> Result<(), Error> {
        let me = core::mem::ManuallyDrop::new(self);
        if let Some(d) = data {
            me.slot.store_data(d);
        }
        me.slot.store_state(me.w3, STATE_IORESP_READY);
        me.platform.notify(me.port)
    }
}

impl<P: EventChannels> Drop for InFlight<'_, P> {
    #[cold]
    fn drop(&mut self) {
        let flags = IoreqFlags((self.w3 >> 48) as u8);
        let read = flags.dir() == IOREQ_READ && flags.data_is_ptr() == 0;
        if read {
            self.slot.store_data(fallback_size(self.size).mask());
        }
        self.slot.store_state(self.w3, STATE_IORESP_READY);
        let _ = self.platform.notify(self.port);
    }
}

/// The claimed port or MMIO range the last single access fell in, as a test on the raw slot
/// copy: a device's requests come in runs on one range, so most requests are accepted here
/// without decoding (the same checks as `single` and `claims`, folded together), and everything
/// else takes the full path.
#[derive(Clone, Copy, Debug)]
struct Hot {
    /// The request type it serves (`IOREQ_TYPE_PIO` or `IOREQ_TYPE_COPY`).
    ty: IoreqType,
    /// Bit `n` set: an access of `n` bytes is allowed (1, 2, 4, and 8 for MMIO); 0 when there
    /// is no hot range, so nothing is accepted.
    sizes: u16,
    space: Space,
    /// The range's last address (ports: at most 0xffff).
    end: u64,
    /// `end - start`.
    span: u64,
}

impl Hot {
    const NONE: Hot = Hot {
        ty: IoreqType::PIO,
        sizes: 0,
        space: Space::Port,
        end: 0,
        span: 0,
    };

    /// The hot test for a claimed range of `kind` (ports and MMIO; PCI config requests always
    /// take the full path).
    fn of(r: Range) -> Hot {
        let (ty, sizes, space, end) = match r.kind {
            RangeKind::Port => (IoreqType::PIO, 0b1_0110, Space::Port, r.end.min(0xffff)),
            RangeKind::Mmio => (IoreqType::COPY, 0b1_0001_0110, Space::Mmio, r.end),
            RangeKind::Pci => return Hot::NONE,
        };
        if r.start > end {
            return Hot::NONE;
        }
        Hot {
            ty,
            sizes,
            space,
            end,
            span: end - r.start,
        }
    }

    /// The size of `raw` if it is a single access with an immediate value, of a valid size,
    /// whose bytes all lie in this range (what `single` then `claims` would accept).
    #[inline(always)]
    fn admits(&self, raw: &Ioreq) -> Option<Size> {
        let n = raw.size;
        // `end - addr`: at most `span` exactly when start <= addr <= end (it wraps past `span`
        // otherwise); at least `n - 1` when the last byte is in the range too.
        let room = self.end.wrapping_sub(raw.addr);
        let ok = raw.r#type == self.ty
            && raw.count == 1
            && raw.flags.data_is_ptr() == 0
            && n < 9
            && (self.sizes >> n) & 1 != 0
            && room <= self.span
            && room >= u64::from(n) - 1;
        // `n` is 1, 2, 4 or 8 when `ok` (a set bit of `sizes`).
        const SIZES: [Size; 9] = [
            Size::B1,
            Size::B1,
            Size::B2,
            Size::B1,
            Size::B4,
            Size::B1,
            Size::B1,
            Size::B1,
            Size::B8,
        ];
        ok.then(|| SIZES[n as usize])
    }
}

/// Whether one claimed range of `kind` holds the bytes of accesses of `size` from `first` to
/// `last` (`first ..= last + size - 1`); an access running past the end of the address space is
/// never claimed.
#[inline]
fn claimed(ranges: &[Range], kind: RangeKind, first: u64, last: u64, size: Size) -> bool {
    last.checked_add(u64::from(size.bytes()) - 1)
        .and_then(|end| claim(ranges, kind, first, end))
        .is_some()
}

/// The claimed range of `kind` that holds the bytes `first ..= end`, if any.
#[inline]
fn claim(ranges: &[Range], kind: RangeKind, first: u64, end: u64) -> Option<Range> {
    ranges
        .iter()
        .find(|r| r.start <= first && end <= r.end && r.kind == kind)
        .copied()
}

/// Keep `e` unless an earlier error is kept (out of line: the serving loop only tests for an
/// error).
#[cold]
#[inline(never)]
fn keep_first(first: &mut Option<Error>, e: Error) {
    first.get_or_insert(e);
}

/// The answer to a request that is refused or cannot be served: all-ones of its (clamped) size
/// for a read with an immediate value, nothing otherwise (writes dropped).
fn invalid_answer(raw: &Ioreq) -> Option<u64> {
    let read = raw.flags.dir() == IOREQ_READ && raw.flags.data_is_ptr() == 0;
    read.then(|| fallback_size(raw.size).mask())
}

/// An IOREQ server for one guest.
///
/// ```no_run
/// # #[cfg(feature = "sim")] {
/// use xen::ioreq::{IoreqServer, ServerOptions, Handler, Space, Size};
/// use xen::dm::{Xen, RangeKind};
/// struct Echo(u64);
/// impl Handler for Echo {
///     fn read(&mut self, _: Space, _: u64, _: Size) -> u64 { self.0 }
///     fn write(&mut self, _: Space, _: u64, _: Size, v: u64) { self.0 = v }
/// }
/// let sim = xen::sim::Sim::new();
/// let guest = sim.create_guest(2);
/// let xen = Xen::new(sim.clone()).unwrap();
/// let mut server = IoreqServer::create(&xen, guest, ServerOptions::default()).unwrap();
/// server.map_range(RangeKind::Mmio, 0xfe00_0000, 0xfe00_0fff).unwrap();
/// # }
/// ```
pub struct IoreqServer<'x, P: Platform> {
    /// The handle's one server slot (see [`Xen`]), and the handle.
    slot: crate::dm::ServerSlot<'x, P>,
    domid: DomId,
    id: Ioservid,
    stage: Stage,
    pages: Option<P::Pages>,
    /// vCPU 0's slot while the ioreq pages are mapped.
    first_slot: Option<Slot>,
    /// Local port per vCPU (index = vCPU id).
    ports: Vec<EvtchnPort>,
    /// (local port, vCPU) sorted by port, for dispatch.
    by_port: Vec<(EvtchnPort, u32)>,
    buf_port: Option<EvtchnPort>,
    ranges: Vec<Range>,
    /// vCPUs whose request a predecessor took and never answered (see `adopt`).
    orphans: Vec<u32>,
    /// The claimed port/MMIO range the last single access fell in (see [`Hot`]).
    hot: Hot,
    /// The mapping starts with the buffered page.
    buffered: bool,
    /// Not yet torn down.
    live: bool,
    pending: [EvtchnPort; 64],
    /// The batch in `pending`: ports `next..len` are still to be handled (a handler panicked
    /// part-way and the caller went on) and `..len` to be unmasked.
    batch_next: usize,
    batch_len: usize,
    stats: Stats,
    scratch: [u8; 64],
}

impl<P: Platform> core::fmt::Debug for IoreqServer<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoreqServer")
            .field("domid", &self.domid)
            .field("id", &self.id)
            .field("vcpus", &self.ports.len())
            .field("ranges", &self.ranges)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<'x, P: Platform> IoreqServer<'x, P> {
    /// Set up a server for `domid` in the order Xen requires: nr_vcpus → create → map the ioreq
    /// page(s) → enable → read each vCPU's vp_eport → bind. Any failure undoes what was done.
    /// The server borrows `xen`; [`create_shared`](Self::create_shared) makes one that owns a
    /// share of it instead.
    pub fn create(xen: &'x Xen<P>, domid: DomId, opts: ServerOptions) -> Result<Self, Error> {
        Self::create_in(XenRef::Borrowed(xen), domid, opts)
    }

    /// [`create`](Self::create) on a shared handle: the server keeps the `Arc`, so it has no
    /// borrow to outlive and can live next to its handle, in a struct, or move to a thread
    /// (`IoreqServer<'static, P>`).
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// use std::sync::Arc;
    /// use xen::ioreq::{IoreqServer, ServerOptions};
    /// use xen::Xen;
    ///
    /// /// A device model that owns its server (no lifetime to carry around).
    /// struct Model {
    ///     server: IoreqServer<'static, xen::sim::Sim>,
    /// }
    ///
    /// let sim = xen::sim::Sim::new();
    /// let guest = sim.create_guest(1);
    /// let xen = Arc::new(Xen::new(sim.clone()).unwrap());
    /// let model = Model { server: IoreqServer::create_shared(xen.clone(), guest, ServerOptions::default()).unwrap() };
    /// let t = std::thread::spawn(move || model.server.vcpus());
    /// assert_eq!(t.join().unwrap(), 1);
    /// # }
    /// ```
    pub fn create_shared(
        xen: alloc::sync::Arc<Xen<P>>,
        domid: DomId,
        opts: ServerOptions,
    ) -> Result<Self, Error> {
        Self::create_in(XenRef::Shared(xen), domid, opts)
    }

    fn create_in(xen: XenRef<'x, P>, domid: DomId, opts: ServerOptions) -> Result<Self, Error> {
        let slot = xen.claim_server().ok_or(Error::InvalidArgument {
            op: "IoreqServer::create",
            what: "this Xen handle already has an IoreqServer (they would share its event channel and take each other's events): put the devices on one server (PciBus) or open another Xen handle",
        })?;
        let nr = vcpus(slot.xen(), domid)?;
        let id = slot
            .xen()
            .create_ioreq_server(domid, opts.buffered.to_xen())?;
        let mut s = Self::created(slot, domid, id, nr, opts, Vec::new());
        // On error, `s` is dropped and tears down what `stage` says.
        s.setup(nr, opts)?;
        Ok(s)
    }

    /// Server `id` as it exists in Xen, not set up here yet (dropping it tears down what
    /// `stage` says).
    fn created(
        slot: crate::dm::ServerSlot<'x, P>,
        domid: DomId,
        id: Ioservid,
        nr: u32,
        opts: ServerOptions,
        ranges: Vec<Range>,
    ) -> Self {
        IoreqServer {
            slot,
            domid,
            id,
            stage: Stage::Created,
            pages: None,
            first_slot: None,
            ports: Vec::with_capacity(nr as usize),
            by_port: Vec::with_capacity(nr as usize + 1),
            buf_port: None,
            ranges,
            orphans: Vec::new(),
            hot: Hot::NONE,
            buffered: opts.buffered != Buffered::Off,
            live: true,
            pending: [EvtchnPort(0); 64],
            batch_next: 0,
            batch_len: 0,
            stats: Stats::default(),
            scratch: [0; 64],
        }
    }

    /// Take over IOREQ server `id` of `domid`, which another process of this domain created
    /// and can no longer serve (it was killed): a restarted device model carries on with the
    /// guest's devices where its predecessor stopped, instead of leaving the server orphaned
    /// (Xen keeps it until it is destroyed; destroying it would not wake a vCPU blocked on it).
    ///
    /// Maps its pages, binds its vCPUs' event channels anew (the predecessor's ends closed with
    /// it) and serves what is pending: a request the predecessor had taken but not answered is
    /// served again (the access repeats; virtio-pci's are safe to repeat). `opts` must be those
    /// it was created with; `claimed` are the ranges it claimed (Xen does not report them),
    /// recorded as this server's and released at teardown. If taking over fails part-way, the
    /// server is destroyed like a failed [`create`](Self::create).
    pub fn adopt(
        xen: &'x Xen<P>,
        domid: DomId,
        id: Ioservid,
        opts: ServerOptions,
        claimed: &[(RangeKind, u64, u64)],
    ) -> Result<Self, Error> {
        Self::adopt_in(XenRef::Borrowed(xen), domid, id, opts, claimed)
    }

    /// [`adopt`](Self::adopt) on a shared handle (see [`create_shared`](Self::create_shared)).
    pub fn adopt_shared(
        xen: alloc::sync::Arc<Xen<P>>,
        domid: DomId,
        id: Ioservid,
        opts: ServerOptions,
        claimed: &[(RangeKind, u64, u64)],
    ) -> Result<Self, Error> {
        Self::adopt_in(XenRef::Shared(xen), domid, id, opts, claimed)
    }

    fn adopt_in(
        xen: XenRef<'x, P>,
        domid: DomId,
        id: Ioservid,
        opts: ServerOptions,
        claimed: &[(RangeKind, u64, u64)],
    ) -> Result<Self, Error> {
        let slot = xen.claim_server().ok_or(Error::InvalidArgument {
            op: "IoreqServer::adopt",
            what: "this Xen handle already has an IoreqServer: open another Xen handle",
        })?;
        let xen = slot.xen();
        let nr = vcpus(xen, domid)?;
        // It exists (ENOENT otherwise), and is ours to serve (EPERM otherwise).
        xen.ioreq_server_info(domid, id)?;
        let ranges = claimed
            .iter()
            .map(|&(kind, start, end)| Range { kind, start, end })
            .collect();
        let mut s = Self::created(slot, domid, id, nr, opts, ranges);
        s.setup(nr, opts)?;
        // Requests the predecessor took and never answered: served at the next event (binding
        // a port leaves an event pending on it).
        for v in 0..nr {
            if s.slot(v)
                .is_some_and(|slot| slot.state() == STATE_IOREQ_INPROCESS)
            {
                s.orphans.push(v);
            }
        }
        Ok(s)
    }

    fn setup(&mut self, nr: u32, opts: ServerOptions) -> Result<(), Error> {
        let buffered = opts.buffered != Buffered::Off;
        let ioreq_pages = (nr as usize * core::mem::size_of::<Ioreq>()).div_ceil(4096) as u32;
        // Frame 0 is the buffered page, 1 + n the ioreq pages: map them in one go.
        let (first, count) = if buffered {
            (0, 1 + ioreq_pages)
        } else {
            (1, ioreq_pages)
        };
        let pages = self.slot.xen().platform().map_resource(
            self.domid,
            XenMemResourceType::IOREQ_SERVER,
            u32::from(self.id),
            first,
            count,
        )?;
        if pages.len() < count as usize * 4096 {
            return Err(Error::Protocol {
                op: "XENMEM_acquire_resource",
                what: "mapping shorter than requested",
            });
        }
        // The buffered page (if any) comes first, then the ioreq page(s).
        let ioreq_page = if buffered { 4096 } else { 0 };
        // SAFETY: the mapping holds `count` pages (checked above), so the first ioreq page starts
        // inside it and holds nr 32-byte slots.
        let first_slot = unsafe { Slot::new(pages.base().add(ioreq_page)) };
        self.first_slot = Some(first_slot);
        self.pages = Some(pages);
        self.stage = Stage::Mapped;
        self.slot
            .xen()
            .set_ioreq_server_state(self.domid, self.id, true)?;
        self.stage = Stage::Enabled;
        let buf_remote = if buffered {
            Some(
                self.slot
                    .xen()
                    .ioreq_server_info(self.domid, self.id)?
                    .bufioreq_port,
            )
        } else {
            None
        };
        self.stage = Stage::Bound;
        for v in 0..nr {
            // SAFETY: v < nr, and the ioreq pages just mapped hold nr slots.
            let remote = unsafe { first_slot.nth(v as usize) }.vp_eport();
            let local = self
                .slot
                .xen()
                .platform()
                .bind_interdomain(self.domid, remote)?;
            self.ports.push(local);
            self.by_port.push((local, v));
        }
        if let Some(r) = buf_remote {
            let local = self.slot.xen().platform().bind_interdomain(self.domid, r)?;
            self.buf_port = Some(local);
        }
        self.by_port.sort_unstable();
        Ok(())
    }

    /// The hypervisor handle the server was created on.
    pub fn xen(&self) -> &Xen<P> {
        self.slot.xen()
    }

    /// The handle, for a loop that borrows the server mutably while it polls the handle.
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub(crate) fn xen_ref(&self) -> XenRef<'x, P> {
        self.slot.xen().clone()
    }

    /// The server id.
    pub fn id(&self) -> Ioservid {
        self.id
    }

    /// The target domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Number of vCPUs served.
    pub fn vcpus(&self) -> u32 {
        self.ports.len() as u32
    }

    /// The local event-channel ports (per vCPU, then the buffered one).
    pub fn local_ports(&self) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.ports.iter().copied().chain(self.buf_port)
    }

    /// What the server has done.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// vCPU `vcpu`'s slot. Only called while the pages are mapped (`first_slot` is set with the
    /// mapping and cleared before it is dropped) and with `vcpu` < the number of vCPUs.
    fn slot(&self, vcpu: u32) -> Option<Slot> {
        // SAFETY: the ioreq pages hold one 32-byte slot per vCPU and vcpu < nr_vcpus.
        self.first_slot.map(|s| unsafe { s.nth(vcpu as usize) })
    }

    /// Claim an inclusive range (ports, MMIO addresses or SBDFs). Allowed at any time. A range
    /// that is not one of its kind (start after end, I/O ports past 0xffff, SBDFs past
    /// 0xffffffff) is refused with [`Error::Range`] (errno 0) before Xen sees it:
    ///
    /// ```
    /// # #[cfg(feature = "sim")] {
    /// use xen::dm::RangeKind;
    /// use xen::ioreq::{IoreqServer, ServerOptions};
    /// let sim = xen::sim::Sim::new();
    /// let guest = sim.create_guest(1);
    /// let xen = xen::Xen::new(sim.clone()).unwrap();
    /// let mut server = IoreqServer::create(&xen, guest, ServerOptions::default()).unwrap();
    /// let e = server.map_range(RangeKind::Port, 0x10000, 0x10007).unwrap_err();
    /// assert_eq!(
    ///     e.to_string(),
    ///     "claiming the Port range 0x10000-0x10007: not a range of its kind: I/O ports end at 0xffff"
    /// );
    /// # }
    /// ```
    pub fn map_range(&mut self, kind: RangeKind, start: u64, end: u64) -> Result<(), Error> {
        self.slot
            .xen()
            .io_range(self.domid, self.id, kind, start, end, RangeOp::Claim)?;
        self.ranges.push(Range { kind, start, end });
        Ok(())
    }

    /// Release a claimed range, or a part of one: Xen accepts any sub-range of a claimed range
    /// and keeps claiming what is left on either side, so the record is split the same way
    /// (teardown then releases exactly what Xen still holds).
    pub fn unmap_range(&mut self, kind: RangeKind, start: u64, end: u64) -> Result<(), Error> {
        self.slot
            .xen()
            .io_range(self.domid, self.id, kind, start, end, RangeOp::Release)?;
        self.hot = Hot::NONE;
        // Claimed ranges of one kind are disjoint (Xen refuses overlaps), so at most one
        // contains [start, end].
        if let Some(k) = self
            .ranges
            .iter()
            .position(|r| r.kind == kind && r.start <= start && end <= r.end)
        {
            let r = self.ranges.remove(k);
            if r.start < start {
                self.ranges.push(Range {
                    kind,
                    start: r.start,
                    end: start - 1,
                });
            }
            if end < r.end {
                self.ranges.push(Range {
                    kind,
                    start: end + 1,
                    end: r.end,
                });
            }
        }
        Ok(())
    }

    /// Handle every pending event once: wait for events, process each port (answering and
    /// notifying its vCPU), then unmask them all. Returns the number of events handled (0 when
    /// woken without events).
    ///
    /// The answer goes out before the unmask: the vCPU is blocked on it, so the unmask system
    /// call is kept off the path the guest waits on. Nothing is lost by unmasking late: a port
    /// the guest signals while it is masked stays pending, and the unmask delivers it (Xen's
    /// `EVTCHNOP_unmask` and Linux's late EOI both re-raise a pending port), so the next wait
    /// returns at once instead of sleeping.
    ///
    /// Every event taken is handled whatever fails: a failed notify is reported after the rest
    /// of the batch (the first error wins), and if a handler panics the request it was serving
    /// is answered as invalid while the stack unwinds; a caller that catches the panic and calls
    /// again gets the rest of the batch handled before anything new is waited for.
    #[inline]
    pub fn serve_once(&mut self, handler: &mut (impl Handler + ?Sized)) -> Result<usize, Error> {
        if self.batch_next >= self.batch_len {
            let n = self.slot.xen().platform().wait_pending(&mut self.pending)?;
            self.batch_next = 0;
            self.batch_len = n.min(self.pending.len());
        }
        // (`min`: lets the compiler drop the bounds check on `pending` in the loop.)
        let n = self.batch_len.min(self.pending.len());
        let mut first: Option<Error> = None;
        for i in self.batch_next..n {
            // Counted as handled before it is: if the handler panics, the request is answered
            // by its guard, and a later call must not take the port again.
            self.batch_next = i + 1;
            if let Err(e) = self.handle_port(self.pending[i], handler) {
                keep_first(&mut first, e);
            }
        }
        // Unmask even after a failed notify: a port left masked would never fire again.
        let unmasked = self.slot.xen().platform().unmask(&self.pending[..n]);
        match first {
            Some(e) => Err(e),
            None => unmasked.map(|()| n),
        }
    }

    /// Serve until `stop` is set (check it from another thread or a signal handler, then wake the
    /// loop with an event or the platform's wake-up). This loop relies on `serve_once` blocking:
    /// on a non-blocking platform (`Linux::open_nonblocking`) wait for the descriptor to be
    /// readable and call [`serve_once`](Self::serve_once) instead, or it spins.
    pub fn run(
        &mut self,
        handler: &mut (impl Handler + ?Sized),
        stop: &AtomicBool,
    ) -> Result<(), Error> {
        while !stop.load(Ordering::Acquire) {
            self.serve_once(handler)?;
        }
        Ok(())
    }

    /// Process the event for local `port` (a vCPU's or the buffered ring's).
    #[inline]
    pub fn handle_port(
        &mut self,
        port: EvtchnPort,
        handler: &mut (impl Handler + ?Sized),
    ) -> Result<(), Error> {
        let Ok(i) = self.by_port.binary_search_by_key(&port, |e| e.0) else {
            if Some(port) == self.buf_port {
                self.drain_buffered(handler);
            } else {
                // Not ours (a stale event after unbinding): nothing to do.
                self.stats.spurious += 1;
            }
            return Ok(());
        };
        let vcpu = self.by_port[i].1;
        // Buffered writes come before the synchronous request they may precede.
        if self.buf_port.is_some() {
            self.drain_buffered(handler);
        }
        self.process_slot(vcpu, port, handler)
    }

    /// A request in state INPROCESS on `vcpu` that a predecessor took and never answered
    /// ([`adopt`](Self::adopt)): taken, once.
    #[inline(never)]
    fn take_orphan(&mut self, vcpu: u32, state: u8) -> Option<(Ioreq, u64)> {
        if state != STATE_IOREQ_INPROCESS {
            return None;
        }
        let i = self.orphans.iter().position(|&v| v == vcpu)?;
        self.orphans.swap_remove(i);
        let taken = self.slot(vcpu)?.take_inprocess_word()?;
        self.stats.requeued += 1;
        Some(taken)
    }

    /// Process one vCPU's slot: take the request, answer it, notify `port`.
    #[inline]
    fn process_slot(
        &mut self,
        vcpu: u32,
        port: EvtchnPort,
        handler: &mut (impl Handler + ?Sized),
    ) -> Result<(), Error> {
        let Some(slot) = self.slot(vcpu) else {
            return Ok(());
        };
        let (raw, w3) = match slot.take_word() {
            Ok(taken) => {
                slot.store_state(taken.1, STATE_IOREQ_INPROCESS);
                taken
            }
            Err(state) => match self.take_orphan(vcpu, state) {
                Some(taken) => taken,
                None => {
                    self.stats.spurious += 1;
                    return Ok(());
                }
            },
        };
        // From here on the request is answered whatever happens (the guard's drop).
        // A handle the guard can hold while `self` is borrowed mutably below: a copy of the
        // reference, or of the `Arc` for a shared server (one atomic increment per request).
        let xen = self.slot.xen().clone();
        let flight = InFlight {
            platform: xen.platform(),
            slot,
            w3,
            size: raw.size,
            port,
        };
        #[cfg(xen_fetch_audit)]
        let raw = {
            let mut r = raw;
            if super::slot::audit::mutant() {
                r.size = slot.refetch_size();
            }
            r
        };
        let hot = self.hot;
        let data = match hot.admits(&raw) {
            Some(size) if raw.flags.dir() == IOREQ_READ => {
                Some(handler.read(hot.space, raw.addr, size) & size.mask())
            }
            Some(size) => {
                handler.write(hot.space, raw.addr, size, raw.data & size.mask());
                if let Some(c) = handler.range_change() {
                    self.change_ranges(c, handler);
                }
                None
            }
            None => {
                let data = self.process_cold(vcpu, raw, handler);
                if let Some(c) = handler.range_change() {
                    self.change_ranges(c, handler);
                }
                data
            }
        };
        self.stats.requests += 1;
        flight.answer(data)
    }

    /// Apply the range changes a handler asked for while handling a write (before the write
    /// is answered), telling it how each went; at most 16 per request.
    #[cold]
    #[inline(never)]
    fn change_ranges(&mut self, first: RangeChange, handler: &mut (impl Handler + ?Sized)) {
        let mut next = Some(first);
        for _ in 0..16 {
            let Some(c) = next else {
                return;
            };
            let r = match c {
                RangeChange::Claim { kind, start, end } => self.map_range(kind, start, end),
                RangeChange::Release { kind, start, end } => self.unmap_range(kind, start, end),
            };
            handler.range_change_done(c, r);
            next = handler.range_change();
        }
    }

    /// A request the hot range does not admit: validate it against every claimed range, then
    /// execute or refuse it; a single access that is served makes its range the hot one.
    #[inline(never)]
    fn process_cold(
        &mut self,
        vcpu: u32,
        raw: Ioreq,
        handler: &mut (impl Handler + ?Sized),
    ) -> Option<u64> {
        let Some(s) = single(&raw) else {
            return self.decode_and_execute(vcpu, raw, handler);
        };
        let kind = match s.space {
            Space::Port => RangeKind::Port,
            _ => RangeKind::Mmio,
        };
        let range = u64::from(s.size.bytes() - 1)
            .checked_add(s.addr)
            .and_then(|end| claim(&self.ranges, kind, s.addr, end));
        let Some(range) = range else {
            return self.refuse(vcpu, &raw, Invalid::Unclaimed(s.addr), handler);
        };
        self.hot = Hot::of(range);
        match s.write {
            None => Some(handler.read(s.space, s.addr, s.size) & s.size.mask()),
            Some(v) => {
                handler.write(s.space, s.addr, s.size, v);
                None
            }
        }
    }

    /// Whether one claimed range of `space`'s kind holds `first ..= last + size - 1` (the bytes
    /// of the accesses from `first` to `last`). Xen routes a request here by the ranges it was
    /// told, but the slot is not trusted: whatever the handler is given lies in a claimed range.
    fn claims(&self, space: Space, first: u64, last: u64, size: Size) -> bool {
        let (kind, first, last, size) = match space {
            Space::Port => (RangeKind::Port, first, last, size),
            Space::Mmio => (RangeKind::Mmio, first, last, size),
            // PCI ranges are SBDFs: the whole config space of a claimed device is its own.
            Space::PciConfig { sbdf } => {
                (RangeKind::Pci, u64::from(sbdf), u64::from(sbdf), Size::B1)
            }
        };
        claimed(&self.ranges, kind, first, last, size)
    }

    /// Refuse a request: count it, tell the handler, and give the answer of an invalid request.
    #[cold]
    fn refuse(
        &mut self,
        vcpu: u32,
        raw: &Ioreq,
        why: Invalid,
        handler: &mut (impl Handler + ?Sized),
    ) -> Option<u64> {
        self.stats.invalid += 1;
        handler.invalid(vcpu, why);
        invalid_answer(raw)
    }

    /// Everything but a single access with an immediate value: decode, then execute or refuse.
    #[inline(never)]
    fn decode_and_execute(
        &mut self,
        vcpu: u32,
        raw: Ioreq,
        handler: &mut (impl Handler + ?Sized),
    ) -> Option<u64> {
        match decode(&raw) {
            Ok(req) => match self.unclaimed(&req) {
                None => self.execute(vcpu, req, handler),
                Some(addr) => self.refuse(vcpu, &raw, Invalid::Unclaimed(addr), handler),
            },
            Err(why) => self.refuse(vcpu, &raw, why, handler),
        }
    }

    /// The first address of a decoded request outside every claimed range, if any: every
    /// element of a repeated access counts (MMIO addresses move by `size`, down with `df`;
    /// a port stays put).
    fn unclaimed(&mut self, req: &Request) -> Option<u64> {
        let (space, a) = match *req {
            Request::Invalidate | Request::TimeOffset(_) => return None,
            Request::PciConfig(p) => {
                let space = Space::PciConfig { sbdf: p.sbdf };
                return (!self.claims(space, 0, 0, p.size)).then_some(u64::from(p.reg));
            }
            Request::Pio(a) => (Space::Port, a),
            Request::Mmio(a) => (Space::Mmio, a),
        };
        let span = if space == Space::Mmio {
            u64::from(a.count - 1) * u64::from(a.size.bytes())
        } else {
            0
        };
        let (first, last) = if a.df {
            (a.addr.checked_sub(span), Some(a.addr))
        } else {
            (Some(a.addr), a.addr.checked_add(span))
        };
        match (first, last) {
            (Some(f), Some(l)) if self.claims(space, f, l, a.size) => None,
            _ => Some(a.addr),
        }
    }

    fn execute(
        &mut self,
        vcpu: u32,
        req: Request,
        handler: &mut (impl Handler + ?Sized),
    ) -> Option<u64> {
        match req {
            Request::Invalidate => {
                handler.invalidate();
                None
            }
            Request::TimeOffset(o) => {
                handler.time_offset(o);
                None
            }
            Request::PciConfig(p) => {
                let space = Space::PciConfig { sbdf: p.sbdf };
                match p.dir {
                    Dir::Read => {
                        Some(handler.read(space, u64::from(p.reg), p.size) & p.size.mask())
                    }
                    Dir::Write => {
                        handler.write(space, u64::from(p.reg), p.size, p.data);
                        None
                    }
                }
            }
            Request::Pio(a) => self.access(vcpu, Space::Port, a, false, handler),
            Request::Mmio(a) => self.access(vcpu, Space::Mmio, a, true, handler),
        }
    }

    /// A port/MMIO access with repetitions or a guest-RAM buffer. The device address moves for
    /// MMIO only; the RAM address (data_is_ptr) always moves; `df` makes both move down.
    /// Wrapping arithmetic: overflow only reaches other guest addresses, which is the guest's
    /// business.
    fn access(
        &mut self,
        vcpu: u32,
        space: Space,
        a: Access,
        moves: bool,
        handler: &mut (impl Handler + ?Sized),
    ) -> Option<u64> {
        let step = u64::from(a.size.bytes());
        let at = |base: u64, i: u64| {
            if a.df {
                base.wrapping_sub(i.wrapping_mul(step))
            } else {
                base.wrapping_add(i.wrapping_mul(step))
            }
        };
        let dev = |i: u64| if moves { at(a.addr, i) } else { a.addr };
        match a.data {
            Data::Value(v) => match a.dir {
                Dir::Read => {
                    // A rep read without a RAM buffer: the last value is the answer.
                    let mut last = 0;
                    for i in 0..u64::from(a.count) {
                        last = handler.read(space, dev(i), a.size) & a.size.mask();
                        if !moves {
                            break;
                        }
                    }
                    Some(last)
                }
                Dir::Write => {
                    for i in 0..u64::from(a.count) {
                        handler.write(space, dev(i), a.size, v);
                        if !moves {
                            break;
                        }
                    }
                    None
                }
            },
            Data::GuestPtr(gpa) => {
                let n = a.size.bytes() as usize;
                for i in 0..u64::from(a.count) {
                    let ram = at(gpa, i);
                    match a.dir {
                        Dir::Read => {
                            let v = handler.read(space, dev(i), a.size) & a.size.mask();
                            let bytes = v.to_le_bytes();
                            if self
                                .slot
                                .xen()
                                .platform()
                                .write_guest(self.domid, ram, &bytes[..n])
                                .is_err()
                            {
                                handler.guest_memory_error(vcpu, ram);
                            }
                        }
                        Dir::Write => {
                            let buf = &mut self.scratch[..8];
                            buf.fill(0);
                            if self
                                .slot
                                .xen()
                                .platform()
                                .read_guest(self.domid, ram, &mut buf[..n])
                                .is_err()
                            {
                                handler.guest_memory_error(vcpu, ram);
                                continue;
                            }
                            let v = u64::from_le_bytes([
                                buf[0], buf[1], buf[2], buf[3], buf[4], buf[5], buf[6], buf[7],
                            ]);
                            handler.write(space, dev(i), a.size, v & a.size.mask());
                        }
                    }
                }
                None
            }
        }
    }

    /// Drain the buffered ring (ATOMIC mode): every slot is a write of 1/2/4/8 bytes; an 8-byte
    /// write takes two slots (see `bufioreq::drain`: consumed before delivered, never replayed,
    /// resynchronised after an impossible write pointer).
    fn drain_buffered(&mut self, handler: &mut (impl Handler + ?Sized)) {
        let Some(pages) = self.pages.as_ref().filter(|_| self.buffered) else {
            return;
        };
        let page = pages.base();
        // Buffered writes are MMIO writes Xen chose to post without waiting; like every request
        // they reach the handler only inside a claimed range.
        // (Refused ones are counted as invalid; the handler's hook is per vCPU, and a buffered
        // write has none.)
        let ranges = &self.ranges;
        let mut refused = 0;
        let d = super::bufioreq::drain(page, |addr, size, value| {
            if claimed(ranges, RangeKind::Mmio, addr, addr, size) {
                handler.write(Space::Mmio, addr, size, value);
            } else {
                refused += 1;
            }
        });
        self.stats.buffered += d.handled;
        self.stats.invalid += refused;
        self.stats.buffered_resyncs += d.resyncs;
    }

    /// Tear down now (also done on drop): unmap ranges, unbind, disable, unmap pages, destroy.
    /// Returns the first error; every step is attempted.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), Error> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let mut first: Option<Error> = None;
        let mut keep = |r: Result<(), Error>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        self.hot = Hot::NONE;
        for r in core::mem::take(&mut self.ranges).into_iter().rev() {
            keep(self.slot.xen().io_range(
                self.domid,
                self.id,
                r.kind,
                r.start,
                r.end,
                RangeOp::Release,
            ));
        }
        // With the ranges gone no new request reaches us, but one may be in flight (posted
        // before the unmap): answer it as an unclaimed access would be answered, or the vCPU
        // would wait forever on a server that no longer exists.
        // (No slots when the pages were never mapped.)
        for (v, &port) in self.ports.iter().enumerate() {
            let Some(slot) = self.slot(v as u32) else {
                break;
            };
            if let Ok(raw) = slot.take() {
                slot.complete(&raw, invalid_answer(&raw));
                keep(self.slot.xen().platform().notify(port));
            } else if self.orphans.contains(&(v as u32)) {
                // A predecessor's request never served: answered the same way.
                if let Some((raw, _)) = slot.take_inprocess_word() {
                    slot.complete(&raw, invalid_answer(&raw));
                    keep(self.slot.xen().platform().notify(port));
                }
            }
        }
        self.orphans.clear();
        if let Some(p) = self.buf_port.take() {
            keep(self.slot.xen().platform().unbind(p));
        }
        for p in core::mem::take(&mut self.ports).into_iter().rev() {
            keep(self.slot.xen().platform().unbind(p));
        }
        self.by_port.clear();
        if self.stage >= Stage::Enabled {
            keep(
                self.slot
                    .xen()
                    .set_ioreq_server_state(self.domid, self.id, false),
            );
        }
        self.first_slot = None;
        self.pages = None;
        match self.slot.xen().destroy_ioreq_server(self.domid, self.id) {
            // The server is already gone: Xen destroyed it with its domain (the guest shut
            // down or was destroyed first). The dm_ops above then failed for the same reason
            // (ENOENT: no such server; ESRCH: no such domain); nothing is left to undo.
            Err(e) if matches!(e.errno(), Some(2) | Some(3)) => {
                let gone = |e: &Error| matches!(e.errno(), Some(2) | Some(3));
                match first {
                    Some(e) if !gone(&e) => Err(e),
                    _ => Ok(()),
                }
            }
            r => {
                keep(r);
                match first {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `XEN_DMOP_nr_vcpus` of `domid`, refused outside 1..=4096.
fn vcpus<P: Platform>(xen: &Xen<P>, domid: DomId) -> Result<u32, Error> {
    let nr = xen.nr_vcpus(domid)?;
    if nr == 0 || nr > 4096 {
        return Err(Error::Protocol {
            op: "XEN_DMOP_nr_vcpus",
            what: "vCPU count out of range",
        });
    }
    Ok(nr)
}

impl<P: Platform> Drop for IoreqServer<'_, P> {
    fn drop(&mut self) {
        // Also runs when setup failed part-way and when a handler panicked (unwinding).
        let _ = self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Single-looking requests with every field free, addresses near `start`/`end`.
    fn request_near(start: u64, end: u64) -> impl Strategy<Value = Ioreq> {
        (
            any::<[u8; 32]>(),
            0u8..4,
            0u32..3,
            0u32..12,
            0u8..16,
            0u8..3,
            0u64..17,
            any::<u64>(),
        )
            .prop_map(
                move |(bytes, ty, count, size, flags, near, off, anywhere)| {
                    let mut r: Ioreq = zerocopy::transmute!(bytes);
                    r.r#type = IoreqType(ty);
                    r.count = count;
                    r.size = size;
                    r.flags = IoreqFlags(flags << 4);
                    // Within 8 of either end of the range (wrapping below 0 and past MAX), or
                    // anywhere.
                    r.addr = match near {
                        0 => start.wrapping_add(off).wrapping_sub(8),
                        1 => end.wrapping_add(off).wrapping_sub(8),
                        _ => anywhere,
                    };
                    r
                },
            )
    }

    fn range() -> impl Strategy<Value = Range> {
        (
            prop_oneof![
                Just(RangeKind::Port),
                Just(RangeKind::Mmio),
                Just(RangeKind::Pci)
            ],
            prop_oneof![0u64..0x20000, any::<u64>(), Just(u64::MAX - 3)],
            prop_oneof![0u64..16, 0u64..0x20000, any::<u64>()],
        )
            .prop_map(|(kind, start, len)| Range {
                kind,
                start,
                end: start.saturating_add(len),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]

        /// The folded hot test accepts exactly what the full path (`single`, then the claimed
        /// ranges) accepts for that range, with the same size.
        #[test]
        fn hot_admits_exactly_what_single_and_claimed_accept(
            (r, raw) in range().prop_flat_map(|r| (Just(r), request_near(r.start, r.end)))
        ) {
            let full = single(&raw).and_then(|s| {
                let kind = match s.space {
                    Space::Port => RangeKind::Port,
                    _ => RangeKind::Mmio,
                };
                claimed(&[r], kind, s.addr, s.addr, s.size).then_some(s.size)
            });
            prop_assert_eq!(Hot::of(r).admits(&raw), full);
        }
    }

    #[test]
    fn no_hot_range_admits_nothing() {
        let mut raw: Ioreq = zerocopy::transmute!([0u8; 32]);
        raw.count = 1;
        raw.size = 1;
        for ty in [IoreqType::PIO, IoreqType::COPY] {
            raw.r#type = ty;
            assert_eq!(Hot::NONE.admits(&raw), None);
        }
    }
}

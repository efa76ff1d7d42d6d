//! Xen's shared I/O rings (`io/ring.h`), the request/response rings of PV devices (blkif,
//! netif, ...): a back end's [`BackRing`] and a front end's [`FrontRing`] over shared memory.
//!
//! The shared ring: a 64-byte header (`req_prod`, `req_event`, `rsp_prod`, `rsp_event`, four
//! `u32` at offsets 0, 4, 8 and 12, then padding), then slots, each a union of one request and
//! one response ([`entry_size`]); as many slots as fit, rounded down to a power of two
//! ([`ring_size`], `__CONST_RING_SIZE`). Indices run freely (wrapping `u32`); slot `i` is
//! `i % size`. Each end keeps its private indices (the back end `req_cons` and
//! `rsp_prod_pvt`, the front end `req_prod_pvt` and `rsp_cons`) and publishes with
//! `RING_PUSH_*_AND_CHECK_NOTIFY`, which also says whether the other end asked to be
//! notified; `RING_FINAL_CHECK_FOR_*` re-arms the notification and looks once more, so a
//! request that comes meanwhile is not missed.
//!
//! Requests and responses are plain-data types (`zerocopy`'s [`FromBytes`] and [`IntoBytes`],
//! as the `xen_sys` structures derive them) copied in and out of the slots with atomic byte
//! accesses: never a reference into the shared memory, so a request is one private copy the
//! other end cannot change while it is used. Barriers as `io/ring.h` has them: an acquire after
//! reading the other end's producer index (`xen_rmb`), a release before publishing ours
//! (`xen_wmb`), a full fence (`xen_mb`) between publishing and reading the other end's event
//! index.
//!
//! The other end is not trusted: a producer index that claims more than the ring holds beyond
//! what was answered, or one that moved backwards, is [`Error::BadIndex`] and marks the ring
//! broken (as Linux's back ends do, `RING_REQUEST_PROD_OVERFLOW`); a back end never takes more
//! than [`size`](BackRing::size) requests it has not answered, so whatever the front end
//! writes, each call does bounded work and nothing panics.
//!
//! Both ends in one process, over an ordinary page:
//!
//! ```
//! use xen::ring::{BackRing, FrontRing};
//! use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
//! #[repr(C)]
//! struct Req { id: u64, value: u32, _pad: u32 }
//! #[derive(Clone, Copy, Debug, PartialEq, FromBytes, IntoBytes, Immutable, KnownLayout)]
//! #[repr(C)]
//! struct Rsp { id: u64, status: i32, _pad: u32 }
//!
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//! let page = Box::into_raw(Box::new(Page([0; 4096]))).cast::<u8>();
//!
//! // SAFETY: the page is ours, page-aligned, and outlives both rings (freed below); no
//! // reference to it exists while they use it.
//! let (mut front, mut back) = unsafe {
//!     (FrontRing::<Req, Rsp, _>::from_raw(page, 4096)?, BackRing::<Req, Rsp, _>::from_raw(page, 4096)?)
//! };
//! assert_eq!(back.size(), 128); // (4096 - 64) / 16, rounded down to a power of two
//!
//! front.push_request(Req { id: 1, value: 20, _pad: 0 })?;
//! let notify_back = front.push_requests(); // RING_PUSH_REQUESTS_AND_CHECK_NOTIFY
//! assert!(notify_back);
//!
//! while let Some(req) = back.next_request()? {
//!     back.push_response(Rsp { id: req.id, status: req.value as i32 * 2, _pad: 0 })?;
//! }
//! let notify_front = back.push_responses();
//! assert!(notify_front);
//! assert!(!back.final_check_for_requests()?); // nothing more: req_event re-armed
//!
//! assert_eq!(front.next_response()?, Some(Rsp { id: 1, status: 40, _pad: 0 }));
//! drop((front, back));
//! // SAFETY: made by Box::into_raw above; the rings are gone.
//! drop(unsafe { Box::from_raw(page.cast::<Page>()) });
//! # Ok::<(), xen::ring::Error>(())
//! ```
//!
//! On Linux a back end owns the front end's granted page: `BackRing::new(gntdev.map(...)?)`
//! (`xen::grant::GrantMap`, feature `std`, is [`Pages`]).

use core::marker::PhantomData;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use zerocopy::{FromBytes, IntoBytes};

use crate::platform::Pages;

/// Bytes of the shared ring's header: the four indices and padding (`__pad[48]`).
pub const HEADER_LEN: usize = 64;
/// Offset of `req_prod`.
const REQ_PROD: usize = 0;
/// Offset of `req_event`.
const REQ_EVENT: usize = 4;
/// Offset of `rsp_prod`.
const RSP_PROD: usize = 8;
/// Offset of `rsp_event`.
const RSP_EVENT: usize = 12;
/// The alignment the ring's memory must have.
const PAGE: usize = 4096;

/// Bytes of one slot: the C union of `Req` and `Rsp` (the larger size, rounded up to the
/// larger alignment).
///
/// ```
/// assert_eq!(xen::ring::entry_size::<[u8; 112], u64>(), 112);
/// assert_eq!(xen::ring::entry_size::<u32, [u8; 6]>(), 8);
/// ```
pub const fn entry_size<Req, Rsp>() -> usize {
    let size = max(size_of::<Req>(), size_of::<Rsp>());
    let align = max(align_of::<Req>(), align_of::<Rsp>());
    size.next_multiple_of(align)
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Slots of a ring of `Req`/`Rsp` in `bytes` of shared memory (`__CONST_RING_SIZE`): what fits
/// after the header, rounded down to a power of two; 0 when not one slot fits (or the types
/// are empty).
///
/// ```
/// use xen::ring::ring_size;
/// // blkif: 112-byte requests, 16-byte responses: 32 slots in a page.
/// assert_eq!(ring_size::<[u64; 14], [u64; 2]>(4096), 32);
/// // netif tx: 12-byte requests, 4-byte responses: 256.
/// assert_eq!(ring_size::<[u32; 3], u32>(4096), 256);
/// ```
pub const fn ring_size<Req, Rsp>(bytes: usize) -> u32 {
    let entry = entry_size::<Req, Rsp>();
    if entry == 0 || bytes < HEADER_LEN + entry {
        return 0;
    }
    let n = (bytes - HEADER_LEN) / entry;
    let pow2 = 1usize << (usize::BITS - 1 - n.leading_zeros());
    if pow2 > 1 << 31 {
        1 << 31
    } else {
        pow2 as u32
    }
}

/// A ring operation refused, or the other end broke the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The memory cannot hold a ring of these types.
    #[error("{op}: {len} bytes cannot hold a ring of {entry}-byte entries: {why}")]
    Layout {
        /// The operation.
        op: &'static str,
        /// Bytes of memory given.
        len: usize,
        /// Bytes per slot ([`entry_size`]).
        entry: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The memory does not start on a page boundary.
    #[error("{op}: the ring's memory at {addr:#x} is not aligned to 4096 bytes")]
    Misaligned {
        /// The operation.
        op: &'static str,
        /// Its address.
        addr: usize,
    },
    /// The other end wrote a producer index no honest end writes: more than the ring's size
    /// ahead of what was answered, or behind what was already taken. The ring is broken after
    /// it.
    #[error("{op}: the other end's {index} is {value}, outside {low}..={high} for a ring of {size} slots; the ring is broken")]
    BadIndex {
        /// The operation.
        op: &'static str,
        /// Which index (`req_prod`, `rsp_prod`).
        index: &'static str,
        /// What it held.
        value: u32,
        /// The lowest value it could have (wrapping).
        low: u32,
        /// The highest value it could have (wrapping).
        high: u32,
        /// Slots of the ring.
        size: u32,
    },
    /// An earlier [`Error::BadIndex`] broke the ring: nothing more is taken from it.
    #[error("{op}: the ring is unusable after the other end broke it")]
    Broken {
        /// The operation.
        op: &'static str,
    },
    /// Every slot holds a request not answered yet.
    #[error("{op}: the ring is full ({size} requests outstanding)")]
    Full {
        /// The operation.
        op: &'static str,
        /// Slots of the ring.
        size: u32,
    },
    /// A response without a request taken to answer (it would overwrite a request the back end
    /// has not read).
    #[error("{op}: every request taken is answered already")]
    NoRequest {
        /// The operation.
        op: &'static str,
    },
}

/// As one error type for a whole back end.
impl From<Error> for crate::Error {
    fn from(e: Error) -> crate::Error {
        match e {
            Error::Layout { op, why, .. } => crate::Error::InvalidArgument { op, what: why },
            Error::Misaligned { op, .. } => crate::Error::InvalidArgument {
                op,
                what: "the ring's memory is not aligned to 4096 bytes",
            },
            Error::BadIndex { op, .. } => crate::Error::Protocol {
                op,
                what: "the other end wrote an impossible ring index",
            },
            Error::Broken { op } => crate::Error::Protocol {
                op,
                what: "the ring is unusable after the other end broke it",
            },
            Error::Full { op, .. } => crate::Error::InvalidArgument {
                op,
                what: "the ring is full",
            },
            Error::NoRequest { op } => crate::Error::InvalidArgument {
                op,
                what: "every request taken is answered already",
            },
        }
    }
}

/// Memory given by address and length ([`BackRing::from_raw`], [`FrontRing::from_raw`]),
/// valid by the caller's promise, which covers this value for as long as it exists (a ring's
/// `into_memory` gives it back, and safe code may make a new ring on it).
#[derive(Debug)]
pub struct RawMemory {
    base: *mut u8,
    len: usize,
}

// SAFETY: `from_raw`'s contract: the memory is valid, page-aligned (checked before a
// `RawMemory` is made), reached through no Rust reference, for as long as the ring lives.
unsafe impl Pages for RawMemory {
    fn base(&self) -> *mut u8 {
        self.base
    }
    fn len(&self) -> usize {
        self.len
    }
}

// SAFETY: `from_raw`'s contract makes the memory valid from whichever thread the ring is
// moved to; `RawMemory` only hands out the pointer.
unsafe impl Send for RawMemory {}

/// The memory checked for a ring of `Req`/`Rsp`; its number of slots.
fn check<Req, Rsp>(op: &'static str, base: *mut u8, len: usize) -> Result<u32, Error> {
    let entry = entry_size::<Req, Rsp>();
    let layout = |why| Error::Layout {
        op,
        len,
        entry,
        why,
    };
    if (base as usize) % PAGE != 0 {
        return Err(Error::Misaligned {
            op,
            addr: base as usize,
        });
    }
    if entry == 0 {
        return Err(layout("requests and responses are both empty types"));
    }
    if max(align_of::<Req>(), align_of::<Rsp>()) > HEADER_LEN {
        return Err(layout(
            "entries aligned to more than 64 bytes (the header would not be 64 bytes)",
        ));
    }
    match ring_size::<Req, Rsp>(len) {
        0 => Err(layout("not even one slot after the 64-byte header")),
        n => Ok(n),
    }
}

/// The shared indices and slots of a ring in `mem`, reached by atomic accesses only.
struct Shared<M> {
    mem: M,
    size: u32,
}

impl<M: Pages> Shared<M> {
    fn index(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off <= RSP_EVENT);
        // SAFETY: one of the header's four u32 (offset 0..16, 4-aligned, inside the mapping,
        // which `check` found at least 64 bytes long and page-aligned); `Pages` promises the
        // mapping lives as long as `self.mem` and that no Rust reference to it exists, and an
        // atomic view of a word the other end writes concurrently is the right access.
        unsafe { AtomicU32::from_ptr(self.mem.base().add(off).cast::<u32>()) }
    }

    /// The other end's producer index: an acquire load (`xen_rmb` after reading it), so the
    /// slots it covers are read after it.
    fn load_producer(&self, off: usize) -> u32 {
        self.index(off).load(Ordering::Acquire)
    }

    /// Publish our producer index: a release store (`xen_wmb` before it), so the slots it
    /// covers are written before it.
    fn store_producer(&self, off: usize, v: u32) {
        self.index(off).store(v, Ordering::Release);
    }

    /// The byte offset of slot `i % size`.
    fn slot(&self, i: u32, entry: usize) -> usize {
        HEADER_LEN + (i & (self.size - 1)) as usize * entry
    }

    /// Copy slot `i` out.
    fn read<T: FromBytes + IntoBytes>(&self, i: u32, entry: usize) -> T {
        let mut v = T::new_zeroed();
        let off = self.slot(i, entry);
        // SAFETY: `off + size_of::<T>() <= HEADER_LEN + size * entry <= len` (`ring_size`
        // counts only whole slots, and `T` is no larger than one); the mapping is valid for
        // reads (`Pages`), copied with atomic byte loads, never referenced.
        unsafe { crate::shared::copy_from(self.mem.base().add(off), v.as_mut_bytes()) };
        v
    }

    /// Copy `v` into slot `i`.
    fn write<T: FromBytes + IntoBytes>(&self, i: u32, entry: usize, mut v: T) {
        let off = self.slot(i, entry);
        // SAFETY: as in `read`, for writes (`Pages` mappings are writable).
        unsafe { crate::shared::copy_to(self.mem.base().add(off), v.as_mut_bytes()) };
    }

    /// `RING_PUSH_*_AND_CHECK_NOTIFY`: publish `new` at `prod` (after `old`), then whether the
    /// other end's event index at `event` asks for a notification.
    fn push(&self, prod: usize, event: usize, old: u32, new: u32) -> bool {
        self.store_producer(prod, new);
        fence(Ordering::SeqCst); // xen_mb: the event index is read after the producer is seen
        let ev = self.index(event).load(Ordering::Relaxed);
        new.wrapping_sub(ev) < new.wrapping_sub(old)
    }
}

/// The back end of a ring: takes requests, answers them.
///
/// `M` holds the memory ([`Pages`]: a grant mapping, or [`RawMemory`] from
/// [`from_raw`](Self::from_raw)); `Req` and `Rsp` are the protocol's request and response
/// structures. See the [module](self) for an example.
pub struct BackRing<Req, Rsp, M = RawMemory> {
    ring: Shared<M>,
    /// Requests taken (`req_cons`).
    req_cons: u32,
    /// Responses written (`rsp_prod_pvt`).
    rsp_prod_pvt: u32,
    /// Responses published (`rsp_prod` as this end last wrote it).
    rsp_published: u32,
    broken: bool,
    _types: PhantomData<fn(Rsp) -> Req>,
}

impl<Req, Rsp, M> core::fmt::Debug for BackRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackRing")
            .field("size", &self.ring.size)
            .field("req_cons", &self.req_cons)
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<Req: FromBytes + IntoBytes, Rsp: FromBytes + IntoBytes> BackRing<Req, Rsp, RawMemory> {
    /// The back end of the ring at `base`, `len` bytes (`BACK_RING_INIT`: the front end has
    /// initialised the shared header; this end starts at index 0).
    ///
    /// Refused ([`Error::Misaligned`], [`Error::Layout`]) unless `base` is page-aligned and
    /// `len` holds the header and at least one slot.
    ///
    /// # Safety
    ///
    /// For as long as the ring lives (it may be moved to another thread), and after it any
    /// [`RawMemory`] that [`into_memory`](Self::into_memory) gives back (a new ring can be made
    /// on it in safe code): `base .. base + len`
    /// is valid for reads and writes by atomic accesses of 1 and 4 bytes; no Rust reference
    /// (`&`/`&mut`) to any of it exists; whoever else writes it (the front end, another
    /// domain) does so with atomic or volatile accesses or from outside this program.
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Result<Self, Error> {
        check::<Req, Rsp>("attach the back end of a ring", base, len)?;
        Self::new(RawMemory { base, len })
    }
}

impl<Req: FromBytes + IntoBytes, Rsp: FromBytes + IntoBytes, M: Pages> BackRing<Req, Rsp, M> {
    /// The back end of the ring in `mem`, which it owns (`BACK_RING_INIT`: the front end has
    /// initialised the shared header; this end starts at index 0). Refused
    /// ([`Error::Layout`]) unless `mem` holds the header and at least one slot.
    pub fn new(mem: M) -> Result<Self, Error> {
        let size = check::<Req, Rsp>("attach the back end of a ring", mem.base(), mem.len())?;
        Ok(BackRing {
            ring: Shared { mem, size },
            req_cons: 0,
            rsp_prod_pvt: 0,
            rsp_published: 0,
            broken: false,
            _types: PhantomData,
        })
    }

    /// Slots of the ring ([`ring_size`]): at most this many requests are taken and not yet
    /// answered.
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.ring.mem
    }

    /// The memory, giving up the ring.
    pub fn into_memory(self) -> M {
        self.ring.mem
    }

    /// Whether the front end broke the ring ([`Error::BadIndex`]).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Requests taken and not answered yet.
    pub fn outstanding(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// Requests published and not taken yet (`RING_HAS_UNCONSUMED_REQUESTS`): at most the
    /// slots not holding a request taken and not answered. A `req_prod` no honest front end
    /// writes breaks the ring ([`Error::BadIndex`]).
    pub fn unconsumed_requests(&mut self) -> Result<u32, Error> {
        self.available("RING_HAS_UNCONSUMED_REQUESTS")
    }

    fn available(&mut self, op: &'static str) -> Result<u32, Error> {
        if self.broken {
            return Err(Error::Broken { op });
        }
        let prod = self.ring.load_producer(REQ_PROD);
        // How far the front end says it is ahead of our responses, and how far we have taken.
        let ahead = prod.wrapping_sub(self.rsp_prod_pvt);
        let taken = self.outstanding();
        if ahead > self.ring.size || ahead < taken {
            self.broken = true;
            return Err(Error::BadIndex {
                op,
                index: "req_prod",
                value: prod,
                low: self.req_cons,
                high: self.rsp_prod_pvt.wrapping_add(self.ring.size),
                size: self.ring.size,
            });
        }
        // ahead <= size: never more than the free slots.
        Ok(ahead - taken)
    }

    /// The next request, copied out of its slot (`RING_COPY_REQUEST`), or `None` when none is
    /// published or every slot holds a request not answered yet.
    pub fn next_request(&mut self) -> Result<Option<Req>, Error> {
        if self.available("take a request")? == 0 {
            return Ok(None);
        }
        let r = self.ring.read(self.req_cons, entry_size::<Req, Rsp>());
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(r))
    }

    /// Write the response to the oldest request not answered yet into its slot (private
    /// until [`push_responses`](Self::push_responses)). Refused ([`Error::NoRequest`]) when
    /// every request taken is answered.
    pub fn push_response(&mut self, rsp: Rsp) -> Result<(), Error> {
        if self.outstanding() == 0 {
            return Err(Error::NoRequest {
                op: "write a response",
            });
        }
        self.ring
            .write(self.rsp_prod_pvt, entry_size::<Req, Rsp>(), rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish the responses written (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`): whether the
    /// front end asked to be notified of them (its `rsp_event`); if so, notify its event
    /// channel.
    pub fn push_responses(&mut self) -> bool {
        let (old, new) = (self.rsp_published, self.rsp_prod_pvt);
        self.rsp_published = new;
        self.ring.push(RSP_PROD, RSP_EVENT, old, new)
    }

    /// Before waiting for the next notification (`RING_FINAL_CHECK_FOR_REQUESTS`): whether
    /// requests are waiting; if none, ask the front end to notify the next one (`req_event`)
    /// and look once more, so one published meanwhile is not missed.
    pub fn final_check_for_requests(&mut self) -> Result<bool, Error> {
        const OP: &str = "RING_FINAL_CHECK_FOR_REQUESTS";
        if self.available(OP)? > 0 {
            return Ok(true);
        }
        self.ring
            .index(REQ_EVENT)
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst); // xen_mb: req_prod is read again after req_event is seen
        Ok(self.available(OP)? > 0)
    }
}

/// The front end of a ring: sends requests, takes responses. See the [module](self).
pub struct FrontRing<Req, Rsp, M = RawMemory> {
    ring: Shared<M>,
    /// Requests written (`req_prod_pvt`).
    req_prod_pvt: u32,
    /// Requests published (`req_prod` as this end last wrote it).
    req_published: u32,
    /// Responses taken (`rsp_cons`).
    rsp_cons: u32,
    broken: bool,
    _types: PhantomData<fn(Req) -> Rsp>,
}

impl<Req, Rsp, M> core::fmt::Debug for FrontRing<Req, Rsp, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrontRing")
            .field("size", &self.ring.size)
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("rsp_cons", &self.rsp_cons)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<Req: FromBytes + IntoBytes, Rsp: FromBytes + IntoBytes> FrontRing<Req, Rsp, RawMemory> {
    /// A new ring at `base`, `len` bytes, with this end as its front end: the shared header
    /// initialised (`SHARED_RING_INIT`: indices 0, event indices 1, padding zeroed) and this
    /// end's indices at 0 (`FRONT_RING_INIT`).
    ///
    /// Refused as [`BackRing::from_raw`] is.
    ///
    /// # Safety
    ///
    /// As [`BackRing::from_raw`].
    pub unsafe fn from_raw(base: *mut u8, len: usize) -> Result<Self, Error> {
        check::<Req, Rsp>("initialise a ring", base, len)?;
        Self::new(RawMemory { base, len })
    }
}

impl<Req: FromBytes + IntoBytes, Rsp: FromBytes + IntoBytes, M: Pages> FrontRing<Req, Rsp, M> {
    /// A new ring in `mem`, which it owns, with this end as its front end (`SHARED_RING_INIT`,
    /// `FRONT_RING_INIT`). Grant `mem` to the back end after this.
    pub fn new(mem: M) -> Result<Self, Error> {
        let size = check::<Req, Rsp>("initialise a ring", mem.base(), mem.len())?;
        let ring = Shared { mem, size };
        for (off, v) in [(REQ_PROD, 0), (REQ_EVENT, 1), (RSP_PROD, 0), (RSP_EVENT, 1)] {
            ring.index(off).store(v, Ordering::Relaxed);
        }
        // SAFETY: the header's padding, 16..64, inside the mapping (`check`).
        unsafe { crate::shared::copy_to(ring.mem.base().add(16), &[0; HEADER_LEN - 16]) };
        fence(Ordering::Release);
        Ok(FrontRing {
            ring,
            req_prod_pvt: 0,
            req_published: 0,
            rsp_cons: 0,
            broken: false,
            _types: PhantomData,
        })
    }

    /// Slots of the ring ([`ring_size`]).
    pub fn size(&self) -> u32 {
        self.ring.size
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.ring.mem
    }

    /// Whether the back end broke the ring ([`Error::BadIndex`]).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Slots free for requests (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        self.ring.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Write a request into the next slot (private until
    /// [`push_requests`](Self::push_requests)); [`Error::Full`] when no slot is free.
    pub fn push_request(&mut self, req: Req) -> Result<(), Error> {
        if self.free_requests() == 0 {
            return Err(Error::Full {
                op: "write a request",
                size: self.ring.size,
            });
        }
        self.ring
            .write(self.req_prod_pvt, entry_size::<Req, Rsp>(), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publish the requests written (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`): whether the back
    /// end asked to be notified of them (its `req_event`).
    pub fn push_requests(&mut self) -> bool {
        let (old, new) = (self.req_published, self.req_prod_pvt);
        self.req_published = new;
        self.ring.push(REQ_PROD, REQ_EVENT, old, new)
    }

    fn available(&mut self, op: &'static str) -> Result<u32, Error> {
        if self.broken {
            return Err(Error::Broken { op });
        }
        let prod = self.ring.load_producer(RSP_PROD);
        // Responses only to published requests, never behind what was taken.
        let ahead = prod.wrapping_sub(self.rsp_cons);
        if ahead > self.req_published.wrapping_sub(self.rsp_cons) {
            self.broken = true;
            return Err(Error::BadIndex {
                op,
                index: "rsp_prod",
                value: prod,
                low: self.rsp_cons,
                high: self.req_published,
                size: self.ring.size,
            });
        }
        Ok(ahead)
    }

    /// Responses published and not taken yet (`RING_HAS_UNCONSUMED_RESPONSES`); an
    /// `rsp_prod` answering requests never published breaks the ring.
    pub fn unconsumed_responses(&mut self) -> Result<u32, Error> {
        self.available("RING_HAS_UNCONSUMED_RESPONSES")
    }

    /// The next response, copied out of its slot, or `None`.
    pub fn next_response(&mut self) -> Result<Option<Rsp>, Error> {
        if self.available("take a response")? == 0 {
            return Ok(None);
        }
        let r = self.ring.read(self.rsp_cons, entry_size::<Req, Rsp>());
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(r))
    }

    /// Before waiting for the next notification (`RING_FINAL_CHECK_FOR_RESPONSES`): whether
    /// responses are waiting; if none, ask the back end to notify the next one (`rsp_event`)
    /// and look once more.
    pub fn final_check_for_responses(&mut self) -> Result<bool, Error> {
        const OP: &str = "RING_FINAL_CHECK_FOR_RESPONSES";
        if self.available(OP)? > 0 {
            return Ok(true);
        }
        self.ring
            .index(RSP_EVENT)
            .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        Ok(self.available(OP)? > 0)
    }
}

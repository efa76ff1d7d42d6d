//! The one place that touches shared ioreq memory: raw pointers and atomic accesses only, no
//! reference into memory Xen (or, in legacy gfn mode, the guest) may write concurrently.
//!
//! The slot is four 64-bit words, and every access to it, here and in the simulator, is an
//! atomic access to one whole word: so racing accesses (Xen's side, a hostile scribbler) are
//! never of mixed sizes, which Rust's memory model does not allow, and the hostile tests are
//! data-race-free. Word 3 holds `vp_eport`, the flags byte with the state, and `type`.
//!
//! Protocol (reference §5.4): load word 3 once (acquire); if its state is READY, load words
//! 0..3 once: with word 3 that is the whole slot, copied once into private memory. Answer by
//! storing `data` (word 1), then word 3 with the new state (release), built from the private
//! copy (Xen does not change the other bytes of word 3 while a request is in flight).

use core::sync::atomic::{AtomicU64, Ordering};

use xen_sys::{Ioreq, IoreqFlags, STATE_IOREQ_INPROCESS, STATE_IORESP_READY};

/// The word of `data`, and the word holding `vp_eport`, the flags byte (state) and `type`.
const DATA_WORD: usize = 1;
const STATE_WORD: usize = 3;
/// Where the flags byte sits in the state word (little-endian, as on every Xen architecture).
const FLAGS_SHIFT: u32 = 48;
const _: () = assert!(core::mem::offset_of!(Ioreq, data) == DATA_WORD * 8);
const _: () = assert!(core::mem::offset_of!(Ioreq, vp_eport) == STATE_WORD * 8);
const _: () = assert!(core::mem::offset_of!(Ioreq, flags) == STATE_WORD * 8 + 6);
const _: () = assert!(core::mem::size_of::<Ioreq>() == 32);

/// Counters for the fetch audit (`--cfg xen_fetch_audit`, tests only; a compiler flag of the
/// final build, not a Cargo feature, so no dependency can turn it, or its double-fetch mutation,
/// on through feature unification): every byte read from a
/// shared slot is counted, by kind, and every state written, so a test (on the simulator or
/// in a stub domain on real Xen) can prove each request is fetched exactly once and each state
/// write moves the slot forward.
#[cfg(xen_fetch_audit)]
pub mod audit {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Bytes read from shared slots, of every kind.
    pub static SLOT_BYTES_READ: AtomicU64 = AtomicU64::new(0);
    /// Loads of a slot's state word (8 bytes: `vp_eport`, flags and state, `type`).
    pub static STATE_READS: AtomicU64 = AtomicU64::new(0);
    /// Copies of the rest of a slot (words 0..3, 24 bytes): with the state word loaded just
    /// before, the whole 32-byte slot.
    pub static SLOT_COPIES: AtomicU64 = AtomicU64::new(0);
    /// State bytes written: INPROCESS.
    pub static WRITES_INPROCESS: AtomicU64 = AtomicU64::new(0);
    /// State bytes written: IORESP_READY.
    pub static WRITES_RESPONSE: AtomicU64 = AtomicU64::new(0);
    /// State writes that did not move the state forward from the value the slot held (read by
    /// the audit itself, uncounted). Only meaningful without a concurrent scribbler.
    pub static WRITES_BACKWARD: AtomicU64 = AtomicU64::new(0);
    /// Test-only mutation: re-read `size` from the shared slot after validating the copy (a
    /// double fetch), to show that the hostile-guest test catches it.
    pub static MUTANT_REFETCH_SIZE: AtomicBool = AtomicBool::new(false);

    pub(crate) fn count(n: u64) {
        SLOT_BYTES_READ.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the mutation is on.
    pub fn mutant() -> bool {
        MUTANT_REFETCH_SIZE.load(Ordering::Relaxed)
    }

    /// The counters at one moment.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Snapshot {
        /// [`SLOT_BYTES_READ`].
        pub bytes_read: u64,
        /// [`STATE_READS`].
        pub state_reads: u64,
        /// [`SLOT_COPIES`].
        pub copies: u64,
        /// [`WRITES_INPROCESS`].
        pub inprocess: u64,
        /// [`WRITES_RESPONSE`].
        pub responses: u64,
        /// [`WRITES_BACKWARD`].
        pub backward: u64,
    }

    impl Snapshot {
        /// Bytes read that were neither a state word nor a copy of the rest (the event-channel
        /// port words at set-up, 8 per vCPU; anything more is a double fetch).
        pub fn other_bytes(&self) -> u64 {
            self.bytes_read - 8 * self.state_reads - 24 * self.copies
        }
    }

    /// Read every counter.
    pub fn snapshot() -> Snapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            bytes_read: l(&SLOT_BYTES_READ),
            state_reads: l(&STATE_READS),
            copies: l(&SLOT_COPIES),
            inprocess: l(&WRITES_INPROCESS),
            responses: l(&WRITES_RESPONSE),
            backward: l(&WRITES_BACKWARD),
        }
    }
}

/// One vCPU's slot in the shared ioreq page.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    ptr: *mut u8,
}

// SAFETY: a slot is an address in a mapping shared with Xen; every access is an atomic access
// through the raw pointer, so moving the handle between threads adds no aliasing.
unsafe impl Send for Slot {}

impl Slot {
    /// The slot at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to 32 bytes of a live ioreq page mapping, 8-aligned, valid for reads and
    /// writes for as long as the `Slot` is used, and accessed by everyone else with atomic
    /// accesses of whole 64-bit words only.
    pub unsafe fn new(ptr: *mut u8) -> Self {
        Slot { ptr }
    }

    /// The slot `n` places after this one.
    ///
    /// # Safety
    ///
    /// The result must lie inside the same live ioreq page mapping (see [`Slot::new`]).
    #[inline]
    pub(crate) unsafe fn nth(self, n: usize) -> Slot {
        Slot {
            // SAFETY: inside the same mapping (this function's contract).
            ptr: unsafe { self.ptr.add(n * 32) },
        }
    }

    /// Word `i` (0..4) of the slot.
    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < 4);
        // SAFETY: word i of the 32 8-aligned bytes `new`'s contract makes valid, which everyone
        // accesses atomically as whole words: an atomic view makes no plain reference to shared
        // memory. The borrow of `self` cannot outlive the mapping's use (`new`'s contract).
        unsafe { AtomicU64::from_ptr(self.ptr.cast::<u64>().add(i)) }
    }

    /// The state word, loaded once with acquire ordering (so a READY state orders the loads
    /// of the rest of the slot after Xen's stores to it).
    #[inline]
    fn state_word(&self) -> u64 {
        #[cfg(xen_fetch_audit)]
        {
            audit::count(8);
            audit::bump(&audit::STATE_READS);
        }
        self.word(STATE_WORD).load(Ordering::Acquire)
    }

    /// `state`, read once.
    #[inline]
    pub fn state(&self) -> u8 {
        (self.state_word() >> FLAGS_SHIFT) as u8 & IoreqFlags::STATE_MASK
    }

    /// The whole slot if its state is READY (one load of the state word, then one of each other
    /// word), else the state it holds. What the server uses: every byte is fetched once.
    #[inline]
    pub fn take(&self) -> Result<Ioreq, u8> {
        self.take_word().map(|(raw, _)| raw)
    }

    /// [`take`](Slot::take), also returning the state word the copy holds (for
    /// [`store_state`](Slot::store_state), which then needs no rebuilding of it).
    #[inline]
    pub(crate) fn take_word(&self) -> Result<(Ioreq, u64), u8> {
        let w3 = self.state_word();
        let state = (w3 >> FLAGS_SHIFT) as u8 & IoreqFlags::STATE_MASK;
        if state != xen_sys::STATE_IOREQ_READY {
            return Err(state);
        }
        Ok((self.rest(w3), w3))
    }

    /// Store state word `w3` (as [`take_word`](Slot::take_word) returned it: state READY) with
    /// its state set to `state` (INPROCESS or IORESP_READY): relaxed for INPROCESS, release
    /// for IORESP_READY (after the data).
    #[inline]
    pub(crate) fn store_state(&self, w3: u64, state: u8) {
        #[cfg(xen_fetch_audit)]
        self.audit_write(
            if state == STATE_IORESP_READY {
                &audit::WRITES_RESPONSE
            } else {
                &audit::WRITES_INPROCESS
            },
            state,
        );
        // `w3` came from `take_word`, so its state is READY (1), and INPROCESS (2) and
        // IORESP_READY (3) are one addition away: no masking on the hot path.
        debug_assert_eq!(
            (w3 >> FLAGS_SHIFT) as u8 & IoreqFlags::STATE_MASK,
            xen_sys::STATE_IOREQ_READY
        );
        let w = w3 + (u64::from(state - xen_sys::STATE_IOREQ_READY) << FLAGS_SHIFT);
        let order = if state == STATE_IORESP_READY {
            Ordering::Release
        } else {
            Ordering::Relaxed
        };
        self.word(STATE_WORD).store(w, order);
    }

    /// The whole slot if its state is INPROCESS (a request a dead server took and never
    /// answered), with the state word as [`take_word`](Slot::take_word) would have returned it
    /// when the slot was READY (for [`store_state`](Slot::store_state)). The state is left
    /// INPROCESS: Xen takes a state moving backwards for an attack and crashes the guest.
    pub(crate) fn take_inprocess_word(&self) -> Option<(Ioreq, u64)> {
        let w3 = self.state_word();
        let state = (w3 >> FLAGS_SHIFT) as u8 & IoreqFlags::STATE_MASK;
        if state != STATE_IOREQ_INPROCESS {
            return None;
        }
        // INPROCESS (2) is READY (1) plus one.
        let ready = w3 - (1u64 << FLAGS_SHIFT);
        Some((self.rest(ready), ready))
    }

    /// Store `data` (word 1), the answer to a read; publish it with
    /// [`store_state`](Slot::store_state)`(.., IORESP_READY)`.
    #[inline]
    pub(crate) fn store_data(&self, data: u64) {
        self.word(DATA_WORD).store(data, Ordering::Relaxed);
    }

    /// Words 0..3 copied once after the state word `w3` was loaded; the slot as one value.
    #[inline]
    fn rest(&self, w3: u64) -> Ioreq {
        #[cfg(xen_fetch_audit)]
        {
            audit::count(24);
            audit::bump(&audit::SLOT_COPIES);
        }
        let w = [
            self.word(0).load(Ordering::Relaxed),
            self.word(1).load(Ordering::Relaxed),
            self.word(2).load(Ordering::Relaxed),
            w3,
        ];
        zerocopy::transmute!(w)
    }

    /// The whole slot, copied once: the state word (acquire), then the rest. For callers that
    /// checked `state()` first (that check is a load of its own; the server uses [`take`]).
    ///
    /// [`take`]: Slot::take
    #[inline]
    pub fn copy(&self) -> Ioreq {
        let w3 = self.state_word();
        self.rest(w3)
    }

    /// Test-only double fetch of `size` (`--cfg xen_fetch_audit`, when the mutation is on).
    #[cfg(xen_fetch_audit)]
    pub(crate) fn refetch_size(&self) -> u32 {
        audit::count(8);
        // `size` is the high half of word 2.
        (self.word(2).load(Ordering::Relaxed) >> 32) as u32
    }

    /// The state word to store: the private copy's bytes with `flags` set to `state`.
    #[inline]
    fn word3_with(raw: &Ioreq, state: u8) -> u64 {
        let w: [u64; 4] = zerocopy::transmute!(*raw);
        let flags = u64::from(raw.flags.with_state(state).0);
        (w[STATE_WORD] & !(0xff << FLAGS_SHIFT)) | flags << FLAGS_SHIFT
    }

    /// Move to INPROCESS (forward only), storing the state word of the private copy `raw`.
    #[inline]
    pub fn set_inprocess(&self, raw: &Ioreq) {
        #[cfg(xen_fetch_audit)]
        self.audit_write(&audit::WRITES_INPROCESS, STATE_IOREQ_INPROCESS);
        self.word(STATE_WORD).store(
            Self::word3_with(raw, STATE_IOREQ_INPROCESS),
            Ordering::Relaxed,
        );
    }

    /// Publish the answer: `data` (for reads), then the state word with IORESP_READY (release:
    /// Xen sees the data once it sees the state).
    #[inline]
    pub fn complete(&self, raw: &Ioreq, data: Option<u64>) {
        if let Some(d) = data {
            self.word(DATA_WORD).store(d, Ordering::Relaxed);
        }
        #[cfg(xen_fetch_audit)]
        self.audit_write(&audit::WRITES_RESPONSE, STATE_IORESP_READY);
        self.word(STATE_WORD)
            .store(Self::word3_with(raw, STATE_IORESP_READY), Ordering::Release);
    }

    /// Audit a state write of `to`: count it, and count it as backward unless it moves the
    /// state the slot holds now forward.
    #[cfg(xen_fetch_audit)]
    fn audit_write(&self, counter: &core::sync::atomic::AtomicU64, to: u8) {
        audit::bump(counter);
        // The audit's own load, not counted as a server read.
        let now = (self.word(STATE_WORD).load(Ordering::Relaxed) >> FLAGS_SHIFT) as u8
            & IoreqFlags::STATE_MASK;
        if to <= now {
            audit::bump(&audit::WRITES_BACKWARD);
        }
    }

    /// The event channel Xen wrote for this vCPU, read once (valid after the server is enabled).
    pub fn vp_eport(&self) -> crate::EvtchnPort {
        #[cfg(xen_fetch_audit)]
        audit::count(8);
        crate::EvtchnPort(self.word(STATE_WORD).load(Ordering::Acquire) as u32)
    }
}

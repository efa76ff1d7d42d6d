//! The one place that touches shared ioreq memory: raw pointers and volatile accesses only, no
//! reference into memory Xen (or, in legacy gfn mode, the guest) may write concurrently.
//!
//! Protocol (reference §5.4): read `state` once; if READY, acquire fence, copy the 32-byte slot
//! once into private memory; answer by writing `data`, release fence, then the state byte.

use core::sync::atomic::{fence, Ordering};

use xen_sys::{Ioreq, IoreqFlags, STATE_IOREQ_INPROCESS, STATE_IORESP_READY};

/// Offsets inside `struct ioreq` (checked against the generated layout below).
const DATA: usize = 8;
const FLAGS: usize = 30;
const _: () = assert!(core::mem::offset_of!(Ioreq, data) == DATA);
const _: () = assert!(core::mem::offset_of!(Ioreq, flags) == FLAGS);
const _: () = assert!(core::mem::size_of::<Ioreq>() == 32);

/// Counters for the fetch audit (feature `fetch-audit`, tests only): every byte read from a
/// shared slot is counted, by kind, and every state byte written, so a test (on the simulator or
/// in a stub domain on real Xen) can prove each request is fetched exactly once and each state
/// write moves the slot forward.
#[cfg(feature = "fetch-audit")]
pub mod audit {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Bytes read from shared slots, of every kind.
    pub static SLOT_BYTES_READ: AtomicU64 = AtomicU64::new(0);
    /// Reads of a slot's state byte.
    pub static STATE_READS: AtomicU64 = AtomicU64::new(0);
    /// Copies of a whole 32-byte slot.
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
        /// Bytes read that were neither a state byte nor a whole-slot copy (the event-channel
        /// ports at set-up, 4 per vCPU; anything more is a double fetch).
        pub fn other_bytes(&self) -> u64 {
            self.bytes_read - self.state_reads - 32 * self.copies
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

// SAFETY: a slot is an address in a mapping shared with Xen; every access is a volatile access
// through the raw pointer, so moving the handle between threads adds no aliasing.
unsafe impl Send for Slot {}

impl Slot {
    /// The slot at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point to 32 bytes of a live ioreq page mapping, 8-aligned, valid for reads and
    /// writes for as long as the `Slot` is used.
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
        // SAFETY: forwarded from this function's contract.
        Slot {
            ptr: unsafe { self.ptr.add(n * 32) },
        }
    }

    /// `state`, read once.
    #[inline]
    pub fn state(&self) -> u8 {
        #[cfg(feature = "fetch-audit")]
        {
            audit::count(1);
            audit::bump(&audit::STATE_READS);
        }
        // SAFETY: in bounds of the slot (new's contract); a byte load cannot tear.
        let b = unsafe { self.ptr.add(FLAGS).read_volatile() };
        b & IoreqFlags::STATE_MASK
    }

    /// The whole slot, copied once after an acquire fence. Call only after `state()` said READY.
    #[inline]
    pub fn copy(&self) -> Ioreq {
        fence(Ordering::Acquire);
        #[cfg(feature = "fetch-audit")]
        {
            audit::count(32);
            audit::bump(&audit::SLOT_COPIES);
        }
        let mut w = [0u64; 4];
        for (i, word) in w.iter_mut().enumerate() {
            // SAFETY: four aligned u64 loads covering the 32-byte slot, each exactly once.
            *word = unsafe { self.ptr.cast::<u64>().add(i).read_volatile() };
        }
        zerocopy::transmute!(w)
    }

    /// Test-only double fetch of `size` (feature `fetch-audit`, when the mutation is on).
    #[cfg(feature = "fetch-audit")]
    pub(crate) fn refetch_size(&self) -> u32 {
        audit::count(4);
        // SAFETY: in bounds of the slot.
        unsafe { self.ptr.add(20).cast::<u32>().read_volatile() }
    }

    /// Move to INPROCESS (forward only), writing our private copy of the flag bits.
    #[inline]
    pub fn set_inprocess(&self, flags: IoreqFlags) {
        #[cfg(feature = "fetch-audit")]
        self.audit_write(&audit::WRITES_INPROCESS, STATE_IOREQ_INPROCESS);
        // SAFETY: in bounds; a byte store.
        unsafe {
            self.ptr
                .add(FLAGS)
                .write_volatile(flags.with_state(STATE_IOREQ_INPROCESS).0)
        };
    }

    /// Publish the answer: `data` (for reads), release fence, then `state = IORESP_READY`.
    #[inline]
    pub fn complete(&self, flags: IoreqFlags, data: Option<u64>) {
        if let Some(d) = data {
            // SAFETY: in bounds; an aligned u64 store.
            unsafe { self.ptr.add(DATA).cast::<u64>().write_volatile(d) };
        }
        fence(Ordering::Release);
        #[cfg(feature = "fetch-audit")]
        self.audit_write(&audit::WRITES_RESPONSE, STATE_IORESP_READY);
        // SAFETY: in bounds; a byte store, after the data is visible.
        unsafe {
            self.ptr
                .add(FLAGS)
                .write_volatile(flags.with_state(STATE_IORESP_READY).0)
        };
    }

    /// Audit a state write of `to`: count it, and count it as backward unless it moves the
    /// state the slot holds now forward.
    #[cfg(feature = "fetch-audit")]
    fn audit_write(&self, counter: &core::sync::atomic::AtomicU64, to: u8) {
        audit::bump(counter);
        // SAFETY: in bounds; a byte load (the audit's own, not counted as a server read).
        let now = unsafe { self.ptr.add(FLAGS).read_volatile() } & IoreqFlags::STATE_MASK;
        if to <= now {
            audit::bump(&audit::WRITES_BACKWARD);
        }
    }

    /// The event channel Xen wrote for this vCPU, read once (valid after the server is enabled).
    pub fn vp_eport(&self) -> u32 {
        #[cfg(feature = "fetch-audit")]
        audit::count(4);
        // SAFETY: in bounds; an aligned u32 load.
        unsafe { self.ptr.add(24).cast::<u32>().read_volatile() }
    }
}

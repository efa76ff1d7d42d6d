//! The buffered ioreq ring (x86, `HVM_IOREQSRV_BUFIOREQ_ATOMIC`): one page shared with Xen,
//! `read_pointer@0`, `write_pointer@4`, 511 slots of 8 bytes from offset 8.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use xen_sys::{BufIoreqLo, IOREQ_BUFFER_SLOT_NUM};

use super::request::Size;

/// What one drain did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Buffered writes handed to the device.
    pub handled: u64,
    /// Times the write pointer was more than a ring ahead and the ring was skipped.
    pub resyncs: u64,
}

/// Drain the ring at `page`, calling `write(addr, size, value)` per buffered write.
///
/// Xen may rebase both pointers at any time (subtracting a multiple of 511 with a 64-bit
/// cmpxchg on the pair), so the consumer reads `read_pointer`, then `write_pointer`, re-checks
/// `read_pointer`, and advances it with a compare-and-swap; slot indices are taken modulo 511.
/// A slot is consumed (the read pointer moved past it) before the device sees it, so a write is
/// never replayed, even if the device panics. A write pointer more than a ring ahead (no sane
/// producer does that) makes the consumer skip to it: what the ring held is dropped, not
/// replayed, and buffered delivery goes on. An 8-byte write whose second half is not published
/// yet ends the batch.
pub(crate) fn drain(page: *mut u8, mut write: impl FnMut(u64, Size, u64)) -> Drained {
    // SAFETY: the buffered page is a live, 4 KiB-aligned mapping owned by the server; the two
    // pointers are 4-aligned u32 words that Xen updates atomically, so atomic views of them are
    // the right access (the page is never in the guest's physmap: it was acquired, not mapped
    // from guest memory).
    let (rp, wp) = unsafe {
        (
            AtomicU32::from_ptr(page.cast::<u32>()),
            AtomicU32::from_ptr(page.add(4).cast::<u32>()),
        )
    };
    let slot = |i: u32| -> u64 {
        let off = 8 + (i % IOREQ_BUFFER_SLOT_NUM) as usize * 8;
        // SAFETY: an aligned u64 inside the page (8 + 510 * 8 + 8 = 4096), written by Xen as a
        // whole; loaded once, atomically (the write pointer's acquire load orders it).
        unsafe { AtomicU64::from_ptr(page.add(off).cast::<u64>()) }.load(Ordering::Relaxed)
    };
    let mut done = Drained::default();
    loop {
        let r = rp.load(Ordering::Acquire);
        let w = wp.load(Ordering::Acquire);
        if rp.load(Ordering::Acquire) != r {
            continue; // Xen rebased the pair between the two loads.
        }
        if r == w {
            return done;
        }
        let avail = w.wrapping_sub(r);
        if avail > IOREQ_BUFFER_SLOT_NUM {
            // Impossible for a sane producer: never trust the slots, skip to the producer. (If
            // Xen rebased meanwhile the swap fails and the pointers are read again.)
            if rp
                .compare_exchange(r, w, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                done.resyncs += 1;
            }
            continue;
        }
        let s = slot(r);
        let lo = BufIoreqLo(s as u32);
        let size = match lo.size() {
            0 => Size::B1,
            1 => Size::B2,
            2 => Size::B4,
            _ => Size::B8,
        };
        let mut value = s >> 32;
        let mut used = 1;
        if size == Size::B8 {
            if avail < 2 {
                return done; // second half not published yet
            }
            // The second slot's data word carries the high 32 bits.
            value |= (slot(r.wrapping_add(1)) >> 32) << 32;
            used = 2;
        }
        // Consume, then deliver: a compare-and-swap, since Xen may rebase the pair meanwhile
        // (then the slot is read again at its new index: nothing was delivered yet).
        if rp
            .compare_exchange(r, r.wrapping_add(used), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        done.handled += 1;
        write(u64::from(lo.addr()), size, value & size.mask());
    }
}

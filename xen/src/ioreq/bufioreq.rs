//! The buffered ioreq ring (x86, `HVM_IOREQSRV_BUFIOREQ_ATOMIC`): one page shared with Xen,
//! `read_pointer@0`, `write_pointer@4`, 511 slots of 8 bytes from offset 8.

use core::sync::atomic::{fence, AtomicU32, Ordering};

use xen_sys::{BufIoreqLo, IOREQ_BUFFER_SLOT_NUM};

use super::request::Size;

/// Drain the ring at `page`, calling `write(addr, size, value)` per buffered write; returns how
/// many writes were handled.
///
/// Xen may rebase both pointers at any time (subtracting a multiple of 511 with a 64-bit
/// cmpxchg on the pair), so the consumer reads `read_pointer`, then `write_pointer`, re-checks
/// `read_pointer`, and advances it with an atomic add of 1 or 2; slot indices are taken modulo
/// 511. A malformed slot (an 8-byte write whose second half is not there yet) stops the batch.
pub(crate) fn drain(page: *mut u8, mut write: impl FnMut(u64, Size, u64)) -> u64 {
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
    let mut handled = 0u64;
    loop {
        let r = rp.load(Ordering::Acquire);
        let w = wp.load(Ordering::Acquire);
        if rp.load(Ordering::Acquire) != r {
            continue; // Xen rebased the pair between the two loads.
        }
        if r == w {
            return handled;
        }
        let avail = w.wrapping_sub(r);
        if avail > IOREQ_BUFFER_SLOT_NUM {
            // Impossible for a sane producer: never trust it, stop.
            return handled;
        }
        let slot = |i: u32| -> u64 {
            let off = 8 + (i % IOREQ_BUFFER_SLOT_NUM) as usize * 8;
            // SAFETY: inside the page (8 + 510 * 8 + 8 = 4096); copied once.
            unsafe { page.add(off).cast::<u64>().read_volatile() }
        };
        fence(Ordering::Acquire);
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
                return handled; // second half not published yet
            }
            // The second slot's data word carries the high 32 bits.
            value |= (slot(r.wrapping_add(1)) >> 32) << 32;
            used = 2;
        }
        write(u64::from(lo.addr()), size, value & size.mask());
        handled += 1;
        rp.fetch_add(used, Ordering::AcqRel);
    }
}

//! A domain's own grant table and the grant hypercalls, for freestanding domains (a stub
//! domain, a PVH guest acting as a front end) over any [`Hypercall`] backend that passes
//! pointers as they are (the bare backends: `Direct`, the hypercall page, `Hvc`).
//!
//! The table is version 1 (`grant_entry_v1`, 512 entries per frame), mapped into the caller's
//! physmap with `XENMAPSPACE_grant_table` (how HVM/PVH domains reach it). Entries live in memory
//! Xen writes (GTF_reading/GTF_writing while another domain maps a page): volatile accesses,
//! and the end of access by compare-and-swap, as Linux does.

use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use xen_sys::*;

use crate::{DomId, Error, Gfn, GrantRef};

/// Entries per 4 KiB frame of a version-1 table.
pub const ENTRIES_PER_FRAME: u32 = 4096 / core::mem::size_of::<GrantEntryV1>() as u32;
/// Frames [`GrantTable::map`] maps at most (its argument arrays live on the stack).
pub const MAX_FRAMES: usize = 32;
const EBUSY: i32 = 16;

/// `GNTTABOP_query_size`: the current and the largest number of frames of `domid`'s table.
pub fn query_size<H: Hypercall + ?Sized>(h: &H, domid: DomId) -> Result<GnttabQuerySize, Error> {
    const OP: &str = "GNTTABOP_query_size";
    let mut q = GnttabQuerySize {
        dom: domid.0,
        ..Default::default()
    };
    // SAFETY: one struct of ours, `count` 1.
    unsafe { grant_table_op_query_size(h, &mut q, 1) }.map_err(|e| Error::xen(OP, e))?;
    Error::grant_status(OP, q.status)?;
    Ok(q)
}

/// `GNTTABOP_setup_table`: grow `domid`'s table to `frames.len()` frames and write the frames'
/// numbers into `frames` (machine frames for a PV caller to map; HVM/PVH callers map the table
/// with [`GrantTable::map`] instead).
pub fn setup_table<H: Hypercall + ?Sized>(
    h: &H,
    domid: DomId,
    frames: &mut [XenPfn],
) -> Result<(), Error> {
    const OP: &str = "GNTTABOP_setup_table";
    let nr_frames = u32::try_from(frames.len()).map_err(|_| Error::InvalidArgument {
        op: OP,
        what: "too many frames",
    })?;
    let mut s = GnttabSetupTable {
        dom: domid.0,
        nr_frames,
        frame_list: GuestHandle::from_ptr(frames.as_mut_ptr()),
        ..Default::default()
    };
    // SAFETY: our struct; `frame_list` points to `nr_frames` writable entries we borrow.
    unsafe { grant_table_op_setup_table(h, &mut s, 1) }.map_err(|e| Error::xen(OP, e))?;
    Error::grant_status(OP, s.status)
}

/// `GNTTABOP_copy` of every op; the first op whose status is not okay is the error (the others
/// were still attempted by Xen; their statuses are in `ops`).
///
/// # Safety
///
/// Every op's local side (a frame given by number, without `GNTCOPY_*_gref`) must be a frame
/// of the caller that may be read (source) or written (destination) for the copy's length.
pub unsafe fn copy<H: Hypercall + ?Sized>(h: &H, ops: &mut [GnttabCopy]) -> Result<(), Error> {
    const OP: &str = "GNTTABOP_copy";
    let n = u32::try_from(ops.len()).map_err(|_| Error::InvalidArgument {
        op: OP,
        what: "too many copies",
    })?;
    // SAFETY: `n` ops of ours; the local frames are the caller's contract.
    unsafe { grant_table_op_copy(h, ops.as_mut_ptr(), n) }.map_err(|e| Error::xen(OP, e))?;
    ops.iter()
        .try_for_each(|o| Error::grant_status(OP, o.status))
}

/// This domain's grant table, mapped.
pub struct GrantTable {
    entries: *mut GrantEntryV1,
    len: u32,
}

impl core::fmt::Debug for GrantTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GrantTable")
            .field("entries", &self.len)
            .finish_non_exhaustive()
    }
}

// SAFETY: the entries are reached through raw pointers with volatile and atomic accesses only.
unsafe impl Send for GrantTable {}

impl GrantTable {
    /// Map frames `0 .. gfns.len()` of this domain's table at guest frames `gfns`
    /// (`XENMAPSPACE_grant_table`; Xen grows the table as needed, up to its limit). A frame
    /// number that does not fit this target's `xen_pfn_t` is refused.
    ///
    /// # Safety
    ///
    /// `gfns` are frames of this domain's physmap used for nothing else, mapped contiguously at
    /// `va` in the caller's address space for as long as the table (and any grant made through
    /// it) is used.
    pub unsafe fn map<H: Hypercall + ?Sized>(
        h: &H,
        gfns: &[Gfn],
        va: *mut u8,
    ) -> Result<Self, Error> {
        const OP: &str = "XENMEM_add_to_physmap_batch (XENMAPSPACE_grant_table)";
        let n = gfns.len();
        if n == 0 || n > MAX_FRAMES {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "between 1 and MAX_FRAMES frames",
            });
        }
        let mut frames = [0 as XenPfn; MAX_FRAMES];
        for (f, g) in frames.iter_mut().zip(gfns) {
            *f = XenPfn::try_from(g.0).map_err(|_| Error::InvalidArgument {
                op: OP,
                what: "a frame number too large for xen_pfn_t",
            })?;
        }
        let mut idxs = [0 as XenUlong; MAX_FRAMES];
        for (i, x) in idxs.iter_mut().enumerate() {
            *x = i as XenUlong;
        }
        let mut errs = [0i32; MAX_FRAMES];
        let mut b = XenAddToPhysmapBatch {
            domid: DOMID_SELF,
            space: Xenmapspace::GRANT_TABLE,
            size: n as u16,
            u: XenAddToPhysmapBatchExtra::default(),
            idxs: GuestHandle::from_ptr(idxs.as_ptr()),
            gpfns: GuestHandle::from_ptr(frames.as_ptr()),
            errs: GuestHandle::from_ptr(errs.as_mut_ptr()),
        };
        // SAFETY: our struct; `n` indexes, frames and error slots we own or borrow.
        unsafe { memory_op_add_to_physmap_batch(h, &mut b) }.map_err(|e| Error::xen(OP, e))?;
        if let Some(&e) = errs[..n].iter().find(|&&e| e != 0) {
            return Err(Error::Os { op: OP, errno: -e });
        }
        Ok(GrantTable {
            entries: va.cast(),
            len: n as u32 * ENTRIES_PER_FRAME,
        })
    }

    /// A table the caller mapped itself, `frames` frames at `va` (a PV domain maps the frames
    /// [`setup_table`] returned).
    ///
    /// # Safety
    ///
    /// `va` must be the start of this domain's grant table, `frames` frames of it mapped there
    /// for as long as the table is used.
    pub unsafe fn from_mapped(va: *mut u8, frames: u32) -> Self {
        GrantTable {
            entries: va.cast(),
            len: frames.saturating_mul(ENTRIES_PER_FRAME),
        }
    }

    /// Entries in the mapped frames.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether there are none (never, for a mapped table).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn entry(&self, gref: GrantRef, op: &'static str) -> Result<*mut GrantEntryV1, Error> {
        if gref.0 < GNTTAB_NR_RESERVED_ENTRIES || gref.0 >= self.len {
            return Err(Error::InvalidArgument {
                op,
                what: "a reference outside the mapped table or among the reserved ones",
            });
        }
        // SAFETY: inside the mapped frames (checked).
        Ok(unsafe { self.entries.add(gref.0 as usize) })
    }

    /// The flags of entry `e` of this table, as an atomic borrowed for no longer than the table.
    fn flags(&self, e: *mut GrantEntryV1) -> &AtomicU16 {
        // SAFETY: `e` is an entry of the mapped table (from `entry`), which stays mapped while
        // `self` lives (the constructors' contract); `flags` is a 2-aligned u16 that Xen updates
        // with atomic operations, so an atomic view of it makes no plain reference to shared
        // memory.
        unsafe { AtomicU16::from_ptr(core::ptr::addr_of_mut!((*e).flags)) }
    }

    /// Let `domid` map or copy our frame `gfn` through entry `gref`, with `access`.
    /// The entry must be free, and `gfn` fit the entry's 32-bit frame field.
    ///
    /// # Safety
    ///
    /// Until the grant is ended ([`end`](Self::end) succeeds), the other domain may read frame
    /// `gfn` (and write it with [`Access::ReadWrite`](super::Access::ReadWrite)) at any time. So `gfn` must be a frame of this
    /// domain whose memory is accessed only through raw pointers with atomic or volatile
    /// accesses for that long: never memory that Rust references, the stack, the heap or code
    /// may use (as kvm-ioctls makes its memory-region call `unsafe` for the same reason).
    ///
    /// A safe call does not compile:
    ///
    /// ```compile_fail,E0133
    /// # fn f(t: &xen::grant::table::GrantTable) {
    /// use xen::{DomId, Gfn, GrantRef};
    /// let _ = t.grant(GrantRef(8), DomId(0), Gfn(0x1234), xen::grant::Access::ReadWrite);
    /// # }
    /// ```
    pub unsafe fn grant(
        &self,
        gref: GrantRef,
        domid: DomId,
        gfn: Gfn,
        access: super::Access,
    ) -> Result<(), Error> {
        const OP: &str = "grant access";
        let frame = u32::try_from(gfn.0).map_err(|_| Error::InvalidArgument {
            op: OP,
            what: "a frame number above the 32 bits of a version-1 grant entry",
        })?;
        let e = self.entry(gref, OP)?;
        if self.flags(e).load(Ordering::Acquire) & GTF_type_mask != GTF_invalid {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "the entry is in use",
            });
        }
        // SAFETY: fields of a free entry of the mapped table: Xen reads domid and frame only once
        // flags say so (the release store below orders these before it); atomic views, as for
        // every access to the table.
        unsafe {
            AtomicU16::from_ptr(core::ptr::addr_of_mut!((*e).domid))
                .store(domid.0, Ordering::Relaxed);
            AtomicU32::from_ptr(core::ptr::addr_of_mut!((*e).frame))
                .store(frame, Ordering::Relaxed);
        }
        let ro = match access {
            super::Access::ReadOnly => GTF_readonly,
            super::Access::ReadWrite => 0,
        };
        self.flags(e)
            .store(GTF_permit_access | ro, Ordering::Release);
        Ok(())
    }

    /// Whether the other domain has the page of `gref` mapped now (GTF_reading/GTF_writing).
    pub fn in_use(&self, gref: GrantRef) -> Result<bool, Error> {
        let e = self.entry(gref, "grant in use")?;
        Ok(self.flags(e).load(Ordering::Acquire) & (GTF_reading | GTF_writing) != 0)
    }

    /// End access through `gref`, unless the other domain still has it mapped (then errno
    /// EBUSY, and the grant stays: try again after it unmaps).
    pub fn end(&self, gref: GrantRef) -> Result<(), Error> {
        const OP: &str = "end grant access";
        let f = self.flags(self.entry(gref, OP)?);
        let mut cur = f.load(Ordering::Acquire);
        loop {
            if cur & (GTF_reading | GTF_writing) != 0 {
                return Err(Error::Os {
                    op: OP,
                    errno: EBUSY,
                });
            }
            match f.compare_exchange(cur, GTF_invalid, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Access;

    #[repr(C, align(4096))]
    struct Frame([u8; 4096]);

    #[test]
    fn grant_in_use_and_end() {
        let mut f = Frame([0; 4096]);
        // Everything goes through this one pointer, as Xen's side would.
        let p = f.0.as_mut_ptr();
        // SAFETY: reads and writes of the private frame, inside it.
        let byte = |i: usize| unsafe { p.add(i).read_volatile() };
        // SAFETY: as above (one thread: Xen's side, played here, never races the table's).
        let set = |i: usize, v: u8| unsafe { p.add(i).write_volatile(v) };
        let u16_at = |i: usize| u16::from_le_bytes([byte(i), byte(i + 1)]);
        // SAFETY: a private frame standing in for the table, alive for the test.
        let t = unsafe { GrantTable::from_mapped(p, 1) };
        assert_eq!(t.len(), 512);
        // Every grant below names frame numbers of no memory; nothing maps them here.
        assert!(
            matches!(
                // SAFETY: a frame number of no memory, never mapped here.
                unsafe { t.grant(GrantRef(1), DomId(0), Gfn(5), Access::ReadWrite) },
                Err(Error::InvalidArgument { .. })
            ),
            "reserved"
        );
        assert!(
            matches!(
                // SAFETY: a frame number of no memory, never mapped here.
                unsafe { t.grant(GrantRef(512), DomId(0), Gfn(5), Access::ReadWrite) },
                Err(Error::InvalidArgument { .. })
            ),
            "outside"
        );
        // SAFETY: a frame number of no memory, never mapped here.
        unsafe { t.grant(GrantRef(8), DomId(3), Gfn(0x1234), Access::ReadOnly) }.unwrap();
        assert_eq!(u16_at(64), GTF_permit_access | GTF_readonly);
        assert_eq!(u16_at(66), 3);
        assert_eq!(u32::from(u16_at(68)) | u32::from(u16_at(70)) << 16, 0x1234);
        assert!(matches!(
            // SAFETY: a frame number of no memory, never mapped here.
            unsafe { t.grant(GrantRef(8), DomId(3), Gfn(1), Access::ReadWrite) },
            Err(Error::InvalidArgument {
                what: "the entry is in use",
                ..
            })
        ));
        // The other side maps it: Xen sets GTF_reading.
        set(64, byte(64) | GTF_reading as u8);
        assert!(t.in_use(GrantRef(8)).unwrap());
        assert_eq!(
            t.end(GrantRef(8)),
            Err(Error::Os {
                op: "end grant access",
                errno: EBUSY
            })
        );
        set(64, byte(64) & !(GTF_reading as u8));
        assert!(!t.in_use(GrantRef(8)).unwrap());
        t.end(GrantRef(8)).unwrap();
        assert_eq!(u16_at(64), GTF_invalid);
        // SAFETY: a frame number of no memory, never mapped here.
        unsafe { t.grant(GrantRef(8), DomId(3), Gfn(1), Access::ReadWrite) }.unwrap();
        // A frame the entry's 32-bit field cannot hold is refused, the entry left alone.
        assert!(matches!(
            // SAFETY: a frame number of no memory, never mapped here.
            unsafe { t.grant(GrantRef(9), DomId(3), Gfn(1 << 32), Access::ReadWrite) },
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(u16_at(72), GTF_invalid);
    }
}

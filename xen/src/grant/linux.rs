//! Grants from Linux user space, on the kernel's devices (no libxengnttab).
//!
//! ```no_run
//! use xen::grant::{Gntdev, Shared};
//! let dev = Gntdev::open()?;
//! // Grant 8 of domain 3, writable.
//! let page = dev.map(xen::DomId(3), &[xen::GrantRef(8)], xen::grant::Access::ReadWrite)?;
//! let mut hdr = [0u8; 16];
//! page.read_at(0, &mut hdr)?;
//! page.write_at(16, b"answer")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::dev::{Gntdev, GrantMap, SharedPages};
use xen_sys::{
    GNTCOPY_dest_gref, GNTCOPY_source_gref, GntdevGrantCopySegment, GntdevGrantCopySegmentBuf,
    GntdevGrantCopySegmentForeign, GnttabCopyFlags,
};

use crate::memory::GuestRam;
use crate::platform::Pages;
use crate::{DomId, Error, Gfn, GrantRef};

/// Bit 63 of a DMA address: what Linux's grant DMA ops (virtio on Xen with grants) set to
/// say the address is a grant reference, `addr = GRANT_DMA_ADDR_OFF | gref << 12 | offset`.
pub const GRANT_DMA_ADDR_OFF: u64 = 1 << 63;

/// The DMA address of byte 0 of grant `gref` (`GRANT_DMA_ADDR_OFF | gref << 12`).
pub const fn grant_dma_address(gref: GrantRef) -> u64 {
    GRANT_DMA_ADDR_OFF | (gref.0 as u64) << 12
}

// SAFETY: a `GrantMap` owns its mmap of `len()` bytes (page-aligned, unmapped on drop) and
// hands out only its raw pointer.
unsafe impl Pages for GrantMap {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn len(&self) -> usize {
        GrantMap::len(self)
    }
}

/// The pages of a writable grant mapping of `refs` as guest memory at their grant DMA
/// addresses ([`grant_dma_address`]): what a virtio device on Xen with grants sees in its
/// descriptors. With the feature `vm-memory`, `GuestRam::vm_memory` then hands it to
/// `virtio-queue`.
pub fn grant_dma_ram(
    domid: DomId,
    map: GrantMap,
    refs: &[GrantRef],
) -> Result<GuestRam<GrantMap>, Error> {
    if !map.is_writable() {
        return Err(Error::InvalidArgument {
            op: "guest memory from grants",
            what: "the grants are mapped read-only",
        });
    }
    let gfns: alloc::vec::Vec<Gfn> = refs
        .iter()
        .map(|&r| Gfn::containing(grant_dma_address(r)))
        .collect();
    GuestRam::from_mapping(domid, map, &gfns)
}

const PAGE: usize = 4096;

/// Pages shared with another domain: copies in and out, bounds-checked, atomic.
///
/// The provided methods access `base() .. base() + size()` on the strength of this trait, so it
/// is an `unsafe trait`.
///
/// # Safety
///
/// For as long as the value lives, `base() .. base() + size()` is one mapping valid for reads
/// (and for writes when `writable()`), the three methods return the same values on every call,
/// and no Rust reference to that memory exists (the other domain writes it at any time). A safe
/// implementation does not compile:
///
/// ```compile_fail,E0200
/// struct Wild;
/// impl xen::grant::Shared for Wild {
///     fn base(&self) -> *mut u8 { 0x10 as *mut u8 }
///     fn size(&self) -> usize { 1 << 20 }
///     fn writable(&self) -> bool { true }
/// }
/// ```
pub unsafe trait Shared {
    /// Start of the pages.
    fn base(&self) -> *mut u8;
    /// Bytes.
    fn size(&self) -> usize;
    /// Whether this side may write them.
    fn writable(&self) -> bool;

    /// Copy bytes at `off` into `buf`.
    fn read_at(&self, off: usize, buf: &mut [u8]) -> Result<(), Error> {
        check(self.size(), off, buf.len(), "read shared pages")?;
        // SAFETY: `off .. off + len` is inside the mapping (checked), which the trait's contract
        // makes valid for reads.
        unsafe { crate::shared::copy_from(self.base().add(off), buf) };
        Ok(())
    }

    /// Copy `buf` to `off`.
    fn write_at(&self, off: usize, buf: &[u8]) -> Result<(), Error> {
        check(self.size(), off, buf.len(), "write shared pages")?;
        if !self.writable() {
            return Err(Error::InvalidArgument {
                op: "write shared pages",
                what: "the pages are mapped read-only",
            });
        }
        // SAFETY: as in `read_at`; the mapping is writable (checked).
        unsafe { crate::shared::copy_to(self.base().add(off), buf) };
        Ok(())
    }
}

fn check(size: usize, off: usize, len: usize, op: &'static str) -> Result<(), Error> {
    if off.checked_add(len).is_none_or(|e| e > size) {
        return Err(Error::BadAddress {
            op,
            addr: off as u64,
            len: len as u64,
        });
    }
    Ok(())
}

// SAFETY: a `GrantMap` owns its mmap of `len()` bytes, writable exactly when it was mapped so.
unsafe impl Shared for GrantMap {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn size(&self) -> usize {
        self.len()
    }
    fn writable(&self) -> bool {
        self.is_writable()
    }
}

// SAFETY: `SharedPages` owns its gntalloc mmap of `len()` bytes, always writable.
unsafe impl Shared for SharedPages {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
    fn size(&self) -> usize {
        self.len()
    }
    fn writable(&self) -> bool {
        true
    }
}

/// One grant-copy segment between the grant `foreign` names and local memory at `local` (`len`
/// bytes), into the grant if `to_grant`.
///
/// # Safety
///
/// `local` must be valid for `len` bytes: readable when it is the source, writable when it is
/// the destination, for the whole call.
unsafe fn copy_one(
    op: &'static str,
    dev: &Gntdev,
    foreign: GntdevGrantCopySegmentForeign,
    local: *mut u8,
    len: usize,
    to_grant: bool,
) -> Result<(), Error> {
    if usize::from(foreign.offset) + len > PAGE {
        return Err(Error::InvalidArgument {
            op,
            what: "a grant copy must stay inside one page",
        });
    }
    let foreign = GntdevGrantCopySegmentBuf::from_foreign(foreign);
    let local = GntdevGrantCopySegmentBuf::from_virt(local as usize);
    let (source, dest, flags) = if to_grant {
        (local, foreign, GNTCOPY_dest_gref)
    } else {
        (foreign, local, GNTCOPY_source_gref)
    };
    let mut seg = [GntdevGrantCopySegment {
        source,
        dest,
        len: len as u16,
        flags: GnttabCopyFlags(flags),
        ..Default::default()
    }];
    // SAFETY: the local side is the caller's contract; the grant side is the kernel's to check.
    unsafe { dev.grant_copy(&mut seg) }?;
    Error::grant_status(op, seg[0].status)
}

/// Grant copy (`IOCTL_GNTDEV_GRANT_COPY`) of `buf.len()` bytes from grant `gref` of `domid`,
/// starting at `offset` in the granted page, into `buf`.
pub fn copy_from_grant(
    dev: &Gntdev,
    domid: DomId,
    gref: GrantRef,
    offset: u16,
    buf: &mut [u8],
) -> Result<(), Error> {
    // SAFETY: `buf` is writable for its length and exclusively borrowed.
    unsafe {
        copy_one(
            "IOCTL_GNTDEV_GRANT_COPY from a grant",
            dev,
            GntdevGrantCopySegmentForeign {
                r#ref: gref.0,
                offset,
                domid: domid.0,
            },
            buf.as_mut_ptr(),
            buf.len(),
            false,
        )
    }
}

/// Grant copy of `buf` into grant `gref` of `domid` at `offset` (the grant must allow writes).
pub fn copy_to_grant(
    dev: &Gntdev,
    domid: DomId,
    gref: GrantRef,
    offset: u16,
    buf: &[u8],
) -> Result<(), Error> {
    // SAFETY: `buf` is readable for its length; the kernel only reads a copy's source.
    unsafe {
        copy_one(
            "IOCTL_GNTDEV_GRANT_COPY to a grant",
            dev,
            GntdevGrantCopySegmentForeign {
                r#ref: gref.0,
                offset,
                domid: domid.0,
            },
            buf.as_ptr().cast_mut(),
            buf.len(),
            true,
        )
    }
}

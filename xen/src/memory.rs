//! A guest's RAM mapped into this domain: ranges mapped once (through privcmd's
//! `IOCTL_PRIVCMD_MMAPBATCH_V2` on Linux, or any [`MapGuest`] platform) and then read and written
//! in place, for virtqueues and other rings a back end walks on every request.
//!
//! Pages Xen would not map (unpopulated, paged out, ballooned) are reported per page
//! ([`GuestRam::failed_pages`]) and left out: the mapped regions stop before them, so an address
//! a guest points at a hole is an [`Error::BadAddress`], never a fault. The guest may write its
//! memory at any time, so [`GuestRam`] touches it only with relaxed atomic byte accesses through
//! raw pointers (`AtomicU8::from_ptr`), which keep such sharing free of data races in Rust's
//! memory model; no other Rust reference to it exists. With the feature `vm-memory` the regions
//! implement rust-vmm's `GuestMemoryRegion`, so `virtio-queue` and other rust-vmm device code
//! run over them unchanged ([`GuestRam::vm_memory`]; its `VolatileSlice`s make volatile
//! accesses).
//!
//! ```no_run
//! # #[cfg(all(feature = "std", target_os = "linux"))] {
//! use xen::memory::GuestRam;
//! let platform = xen::linux::Linux::open()?;
//! // The first 16 MiB of domain 5.
//! let ram = GuestRam::map(&platform, xen::DomId(5), &[(0, 16 << 20)])?;
//! for e in ram.failed_pages() {
//!     eprintln!("gfn {:#x} not mapped: errno {}", e.gfn, e.errno);
//! }
//! let mut hdr = [0u8; 16];
//! ram.read(0x1000, &mut hdr)?;
//! # }
//! # Ok::<(), xen::Error>(())
//! ```

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::platform::{MapGuest, Pages};
use crate::{DomId, Error, Gfn};

const PAGE: u64 = 4096;

/// A page that could not be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageError {
    /// The guest frame.
    pub gfn: Gfn,
    /// The errno the kernel or Xen gave for it (ENOENT: paged out, retry later; EINVAL: not
    /// populated).
    pub errno: i32,
}

/// A run of consecutive mapped guest pages.
pub struct RamRegion<M> {
    gpa: u64,
    len: u64,
    map: Arc<M>,
    /// Where the region starts in the mapping.
    offset: usize,
}

impl<M> Clone for RamRegion<M> {
    fn clone(&self) -> Self {
        RamRegion {
            gpa: self.gpa,
            len: self.len,
            map: Arc::clone(&self.map),
            offset: self.offset,
        }
    }
}

impl<M> core::fmt::Debug for RamRegion<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The last address, not the end: a region on the last page ends at 2^64.
        let last = self
            .len
            .checked_sub(1)
            .and_then(|l| self.gpa.checked_add(l));
        match last {
            Some(last) => write!(f, "RamRegion({:#x}..={last:#x})", self.gpa),
            None => write!(f, "RamRegion({:#x}, {:#x} bytes)", self.gpa, self.len),
        }
    }
}

impl<M: Pages> RamRegion<M> {
    /// The guest-physical address of the first byte.
    pub fn gpa(&self) -> u64 {
        self.gpa
    }

    /// Bytes in the region (whole pages).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the region is empty (never, for regions of a [`GuestRam`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The host address of byte `off` of the region, or `None` if `off > len`.
    ///
    /// The pointer is valid for volatile (or atomic) reads and writes of the `len - off` bytes
    /// from it (none when `off == len`) for as long as this region or a clone of it lives:
    /// each holds the mapping. The guest may change those bytes at any time, so make no Rust
    /// reference to them other than atomic views (`AtomicU8::from_ptr`).
    pub fn host_ptr(&self, off: u64) -> Option<*mut u8> {
        if off > self.len {
            return None;
        }
        let at = self.offset.checked_add(usize::try_from(off).ok()?)?;
        // SAFETY: `at <= offset + len <= map.len()`: the region was cut from the mapping
        // (`map` and `from_mapping` check the mapping's length) and `off <= len`. So the result
        // is inside the mapping or one past its end.
        Some(unsafe { self.map.base().add(at) })
    }
}

/// RAM of one guest, mapped.
pub struct GuestRam<M> {
    domid: DomId,
    regions: Vec<RamRegion<M>>,
    failed: Vec<PageError>,
}

impl<M> core::fmt::Debug for GuestRam<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestRam")
            .field("domid", &self.domid)
            .field("regions", &self.regions)
            .field("failed", &self.failed)
            .finish()
    }
}

impl<M: Pages + Send + Sync + 'static> GuestRam<M> {
    /// Map the guest-physical ranges `(start, length)` of `domid` (each widened to whole
    /// pages; a range may end on the last byte of the address space, not beyond it). Ranges
    /// must not overlap. Pages that fail to map are listed in
    /// [`failed_pages`](Self::failed_pages) and left out of the regions; the call itself fails
    /// only if a whole mapping does.
    pub fn map<P: MapGuest<Mapping = M>>(
        platform: &P,
        domid: DomId,
        ranges: &[(u64, u64)],
    ) -> Result<Self, Error> {
        const OP: &str = "map guest RAM";
        let mut pages: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for &(start, len) in ranges {
            if len == 0 {
                return Err(Error::InvalidArgument {
                    op: OP,
                    what: "an empty range",
                });
            }
            // By the last byte: a range may end on the last page, whose end (2^64) is no u64.
            let last = start.checked_add(len - 1).ok_or(Error::InvalidArgument {
                op: OP,
                what: "a range that wraps around the address space",
            })?;
            pages.push((start / PAGE, last / PAGE + 1));
        }
        pages.sort_unstable();
        if pages.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "overlapping ranges",
            });
        }
        let mut regions = Vec::new();
        let mut failed = Vec::new();
        for (first, end) in pages {
            // Pages and bytes, both counted in usize.
            let size = usize::try_from(end - first)
                .ok()
                .and_then(|n| Some((n, n.checked_mul(PAGE as usize)?)));
            let (n, bytes) = size.ok_or(Error::InvalidArgument {
                op: OP,
                what: "a range too large for this address space",
            })?;
            let (map, errs) = platform.map_guest(domid, Gfn(first), n)?;
            if errs.len() != n || map.len() < bytes {
                return Err(Error::Protocol {
                    op: OP,
                    what: "the mapping or its per-page results are shorter than asked",
                });
            }
            let map = Arc::new(map);
            // Runs of mapped pages become regions; a sentinel error ends the last run.
            let mut run: Option<usize> = None;
            for (i, &e) in errs.iter().chain([&-1]).enumerate() {
                match (e == 0, run) {
                    (true, None) => run = Some(i),
                    (false, Some(s)) => {
                        regions.push(RamRegion {
                            gpa: (first + s as u64) * PAGE,
                            len: (i - s) as u64 * PAGE,
                            map: Arc::clone(&map),
                            offset: s * PAGE as usize,
                        });
                        run = None;
                    }
                    _ => {}
                }
                if i < n && e != 0 {
                    failed.push(PageError {
                        gfn: Gfn(first + i as u64),
                        errno: e.saturating_neg(),
                    });
                }
            }
        }
        Ok(GuestRam {
            domid,
            regions,
            failed,
        })
    }
}

impl<M: Pages + Send + Sync + 'static> GuestRam<M> {
    /// Guest memory made of an existing mapping: page `i` of `map` appears at guest frame
    /// `gfns[i]` (a grant mapping at the frames virtio's grant DMA addresses name, see
    /// `xen::grant::grant_dma_ram`). The mapping must be readable and writable; frames must be
    /// distinct. Consecutive frames of consecutive pages form one region. Every frame up to
    /// the last page of the address space (`u64::MAX >> 12`) is accepted, as by
    /// [`map`](Self::map).
    pub fn from_mapping(domid: DomId, map: M, gfns: &[Gfn]) -> Result<Self, Error> {
        const OP: &str = "guest memory from a mapping";
        let bytes = gfns.len().checked_mul(PAGE as usize);
        if gfns.is_empty() || bytes.is_none_or(|b| map.len() < b) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "no frames, or more frames than the mapping has pages",
            });
        }
        if gfns.iter().any(|&g| g.0 > u64::MAX / PAGE) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "a frame number beyond the address space",
            });
        }
        let mut order: Vec<usize> = (0..gfns.len()).collect();
        order.sort_unstable_by_key(|&i| gfns[i]);
        if order.windows(2).any(|w| gfns[w[0]] == gfns[w[1]]) {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "a frame given twice",
            });
        }
        let map = Arc::new(map);
        let mut regions: Vec<RamRegion<M>> = Vec::new();
        for i in order {
            let gpa = gfns[i].addr();
            let offset = i * PAGE as usize;
            if let Some(r) = regions.last_mut() {
                // Measured from `r.gpa` (`gpa > r.gpa`: sorted, distinct), so no sum can
                // overflow at the top of the address space.
                if gpa - r.gpa == r.len && r.offset + r.len as usize == offset {
                    r.len += PAGE;
                    continue;
                }
            }
            regions.push(RamRegion {
                gpa,
                len: PAGE,
                map: Arc::clone(&map),
                offset,
            });
        }
        Ok(GuestRam {
            domid,
            regions,
            failed: Vec::new(),
        })
    }
}

impl<M: Pages> GuestRam<M> {
    /// The guest.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// The mapped regions, in address order (a failed page splits a range in two).
    pub fn regions(&self) -> &[RamRegion<M>] {
        &self.regions
    }

    /// The pages that could not be mapped.
    pub fn failed_pages(&self) -> &[PageError] {
        &self.failed
    }

    /// The region holding `gpa` and the offset in it.
    fn find(&self, gpa: u64) -> Option<(&RamRegion<M>, u64)> {
        let i = self
            .regions
            .partition_point(|r| r.gpa <= gpa)
            .checked_sub(1)?;
        let r = &self.regions[i];
        let off = gpa - r.gpa;
        (off < r.len).then_some((r, off))
    }

    /// Walk `len` bytes from `gpa` in mapped pieces: `f(host pointer, offset in the buffer,
    /// bytes)`, the pointer valid for those bytes (`host_ptr`). Fails, before touching
    /// anything, if any byte is not mapped or lies past the end of the address space.
    fn walk(
        &self,
        op: &'static str,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), Error> {
        // Two passes over the same pieces, so a failed access has no partial effect and no
        // allocation is needed: the first only checks.
        for pass_copies in [false, true] {
            let mut done = 0usize;
            while done < len {
                let Some(a) = gpa.checked_add(done as u64) else {
                    // Past the end of the address space: the first missing address, 2^64, is
                    // no u64, so the whole access is named.
                    return Err(Error::BadAddress {
                        op,
                        addr: gpa,
                        len: len as u64,
                    });
                };
                // The mapped piece at `a`: its host pointer and the bytes to its end.
                let piece = self.find(a).and_then(|(r, off)| {
                    let avail = usize::try_from(r.len - off).unwrap_or(usize::MAX);
                    Some((r.host_ptr(off)?, avail))
                });
                let Some((p, avail)) = piece else {
                    return Err(Error::BadAddress {
                        op,
                        addr: a,
                        len: (len - done) as u64,
                    });
                };
                let n = avail.min(len - done);
                if pass_copies {
                    f(p, done, n);
                }
                done += n;
            }
        }
        Ok(())
    }

    /// Copy guest RAM at `gpa` into `buf`. An [`Error::BadAddress`] if any of those bytes is
    /// not mapped (or lies past the end of the address space); `buf` is then left as it was.
    ///
    /// Each byte is one relaxed atomic load: bytes the guest writes meanwhile may come out
    /// mixed, and ordering against other accesses takes a fence (read a ring's index,
    /// `fence(Acquire)`, then its entries).
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.walk("read guest RAM", gpa, buf.len(), |p, at, n| {
            // SAFETY: `p .. p + n` are the bytes `walk` handed over: mapped, readable and
            // writable while `self` holds the mapping, which outlives this use.
            unsafe { crate::shared::copy_from(p, &mut buf[at..at + n]) }
        })
    }

    /// Copy `buf` into guest RAM at `gpa`. An [`Error::BadAddress`] if any of those bytes is
    /// not mapped (or lies past the end of the address space); guest RAM is then untouched.
    ///
    /// Each byte is one relaxed atomic store: to publish the bytes before, say, a ring index,
    /// put a `fence(Release)` between.
    pub fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), Error> {
        self.walk("write guest RAM", gpa, buf.len(), |p, at, n| {
            // SAFETY: as in `read`: mapped, writable bytes.
            unsafe { crate::shared::copy_to(p, &buf[at..at + n]) }
        })
    }
}

#[cfg(feature = "vm-memory")]
mod vm {
    //! rust-vmm's `vm-memory` traits over the mapped regions.

    use vm_memory::bitmap::BS;
    use vm_memory::{
        GuestAddress, GuestMemoryError, GuestMemoryRegion, GuestMemoryRegionBytes,
        GuestRegionCollection, GuestUsize, MemoryRegionAddress, VolatileSlice,
    };

    use super::{GuestRam, RamRegion};
    use crate::platform::Pages;
    use crate::Error;

    impl<M: Pages + Send + Sync> GuestMemoryRegion for RamRegion<M> {
        type B = ();

        fn len(&self) -> GuestUsize {
            self.len
        }

        fn start_addr(&self) -> GuestAddress {
            GuestAddress(self.gpa)
        }

        fn bitmap(&self) -> BS<'_, ()> {}

        fn get_host_address(
            &self,
            addr: MemoryRegionAddress,
        ) -> vm_memory::guest_memory::Result<*mut u8> {
            self.check_address(addr)
                .and_then(|a| self.host_ptr(a.0))
                .ok_or(GuestMemoryError::InvalidBackendAddress)
        }

        fn get_slice(
            &self,
            offset: MemoryRegionAddress,
            count: usize,
        ) -> vm_memory::guest_memory::Result<VolatileSlice<'_, BS<'_, ()>>> {
            let end = offset.0.checked_add(count as u64);
            if end.is_none_or(|e| e > self.len) {
                return Err(GuestMemoryError::InvalidBackendAddress);
            }
            let ptr = self
                .host_ptr(offset.0)
                .ok_or(GuestMemoryError::InvalidBackendAddress)?;
            // SAFETY: `ptr` is valid for volatile accesses to `len - offset >= count` bytes
            // while `self` (which the slice borrows) lives (`host_ptr`); VolatileSlice only
            // makes volatile accesses.
            Ok(unsafe { VolatileSlice::with_bitmap(ptr, count, (), None) })
        }
    }

    impl<M: Pages + Send + Sync> GuestMemoryRegionBytes for RamRegion<M> {}

    impl<M: Pages + Send + Sync> GuestRam<M> {
        /// The mapped regions as a `vm-memory` guest memory (`GuestMemory` for
        /// `virtio-queue`). Each region keeps its mapping alive.
        pub fn vm_memory(&self) -> Result<GuestRegionCollection<RamRegion<M>>, Error> {
            GuestRegionCollection::from_regions(self.regions.clone()).map_err(|_| {
                Error::InvalidArgument {
                    op: "vm-memory over guest RAM",
                    what: "no mapped region",
                }
            })
        }
    }
}

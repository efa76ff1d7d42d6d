//! `/dev/xen/gntdev` (map another domain's grants, grant copy) and `/dev/xen/gntalloc` (grant
//! pages of this process to another domain): the ioctls of the spec's `linux/gntdev.toml` and
//! `linux/gntalloc.toml`, with mappings that are unmapped and released on drop.
//!
//! Mapped pages are shared with the other domain, which may write them at any time: reach them
//! only through the raw pointers given here, with volatile accesses.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::vec::Vec;

use rustix::fs::OFlags;

use xen_sys::backend::privcmd::open_dev;
use xen_sys::backend::privcmd::sys::{self, Mapping};
use xen_sys::*;

use crate::{DomId, Error, GrantRef};

const PAGE: usize = 4096;

/// `/dev/xen/gntdev` (cloning shares the descriptor: mappings keep a clone, so they may
/// outlive the handle they came from).
#[derive(Clone, Debug)]
pub struct Gntdev {
    fd: Arc<OwnedFd>,
}

/// Pages of another domain mapped through [`Gntdev::map`]: unmapped, and the grants released,
/// on drop.
#[derive(Debug)]
pub struct GrantMap {
    dev: Gntdev,
    index: u64,
    count: u32,
    writable: bool,
    map: Option<Mapping>,
}

impl GrantMap {
    /// Whether it was mapped writable (a write to a read-only mapping faults).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Start of the mapping (raw, volatile access only: the granting domain shares it).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map
            .as_ref()
            .map_or(core::ptr::null_mut(), Mapping::as_ptr)
    }

    /// Length in bytes (`count` pages).
    pub fn len(&self) -> usize {
        self.count as usize * PAGE
    }

    /// Whether it maps no page (never).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Drop for GrantMap {
    fn drop(&mut self) {
        // munmap first (the grants stay mapped while a VMA holds them), then release the slot.
        drop(self.map.take());
        let mut u = IoctlGntdevUnmapGrantRef {
            index: self.index,
            count: self.count,
            ..Default::default()
        };
        // SAFETY: our struct; the index and count the map ioctl returned.
        let _ = unsafe { sys::ioctl(&*self.dev.fd, IOCTL_GNTDEV_UNMAP_GRANT_REF, &mut u) };
    }
}

impl Gntdev {
    /// Open `/dev/xen/gntdev`.
    pub fn open() -> Result<Self, Error> {
        let (fd, _) = open_dev(&["/dev/xen/gntdev"], OFlags::RDWR)
            .map_err(|e| crate::linux::os("open /dev/xen/gntdev", e))?;
        Ok(Gntdev { fd: Arc::new(fd) })
    }

    /// `IOCTL_GNTDEV_MAP_GRANT_REF` of `refs` granted by `domid`, then the mmap that maps them
    /// with `access` (the granting domain must have granted write access for a
    /// [`Access::ReadWrite`](super::Access::ReadWrite) mapping, else the mmap fails).
    pub fn map(
        &self,
        domid: DomId,
        refs: &[GrantRef],
        access: super::Access,
    ) -> Result<GrantMap, Error> {
        let writable = access == super::Access::ReadWrite;
        const OP: &str = "IOCTL_GNTDEV_MAP_GRANT_REF";
        let count = u32::try_from(refs.len())
            .ok()
            .filter(|&c| c > 0 && c <= 1 << 20)
            .ok_or(Error::InvalidArgument {
                op: OP,
                what: "between 1 and 2^20 grant references",
            })?;
        // struct ioctl_gntdev_map_grant_ref ends in a flexible array of `count` entries: the
        // header, then the entries, in one 8-aligned buffer.
        const HEAD: usize = core::mem::offset_of!(IoctlGntdevMapGrantRef, refs);
        const ENTRY: usize = core::mem::size_of::<IoctlGntdevGrantRef>();
        let words = (HEAD + ENTRY * refs.len()).div_ceil(8);
        let mut buf: Vec<u64> = std::vec![0; words];
        let bytes = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: the buffer holds HEAD + count entries; writes of plain integers at their
        // offsets (the header's `count` at 0, `index` is OUT).
        unsafe {
            bytes.cast::<u32>().write(count);
            for (i, &r) in refs.iter().enumerate() {
                let e = bytes.add(HEAD + i * ENTRY).cast::<IoctlGntdevGrantRef>();
                e.write_unaligned(IoctlGntdevGrantRef {
                    domid: u32::from(domid.0),
                    r#ref: r.0,
                });
            }
        }
        // SAFETY: the buffer is the struct with its `count` entries; the kernel writes `index`.
        unsafe { sys::ioctl(&*self.fd, IOCTL_GNTDEV_MAP_GRANT_REF, bytes) }
            .map_err(|errno| Error::os(OP, errno))?;
        let off = core::mem::offset_of!(IoctlGntdevMapGrantRef, index);
        // SAFETY: inside the buffer, 8-aligned.
        let index = unsafe { bytes.add(off).cast::<u64>().read() };
        let mut m = GrantMap {
            dev: self.clone(),
            index,
            count,
            writable,
            map: None,
        };
        let map = Mapping::shared_at(&*self.fd, m.len(), index, writable)
            .map_err(|errno| Error::os("mmap of gntdev", errno))?;
        m.map = Some(map);
        Ok(m)
    }

    /// `IOCTL_GNTDEV_SET_MAX_GRANTS`: how many grants this descriptor may map at once.
    pub fn set_max_grants(&self, count: u32) -> Result<(), Error> {
        let mut a = IoctlGntdevSetMaxGrants { count };
        // SAFETY: our struct.
        unsafe { sys::ioctl(&*self.fd, IOCTL_GNTDEV_SET_MAX_GRANTS, &mut a) }
            .map(drop)
            .map_err(|errno| Error::os("IOCTL_GNTDEV_SET_MAX_GRANTS", errno))
    }

    /// `IOCTL_GNTDEV_GRANT_COPY`: the segments' copies, each with its own `status` (a
    /// `GNTST_*` code) written back; the ioctl fails only for a problem with the call itself.
    ///
    /// # Safety
    ///
    /// Every segment's local side (`virt`) must be valid for the copy's direction and length
    /// (readable for a source, writable for a destination) for the whole call.
    pub unsafe fn grant_copy(&self, segments: &mut [GntdevGrantCopySegment]) -> Result<(), Error> {
        const OP: &str = "IOCTL_GNTDEV_GRANT_COPY";
        let count = u32::try_from(segments.len()).map_err(|_| Error::InvalidArgument {
            op: OP,
            what: "too many segments",
        })?;
        let mut a = IoctlGntdevGrantCopy {
            count,
            segments: segments.as_mut_ptr() as usize,
            ..Default::default()
        };
        // SAFETY: our struct pointing at `count` segments we borrow exclusively; the local
        // buffers are the caller's contract.
        unsafe { sys::ioctl(&*self.fd, IOCTL_GNTDEV_GRANT_COPY, &mut a) }
            .map(drop)
            .map_err(|errno| Error::os(OP, errno))
    }
}

/// `/dev/xen/gntalloc` (cloning shares the descriptor, as for [`Gntdev`]).
#[derive(Clone, Debug)]
pub struct Gntalloc {
    fd: Arc<OwnedFd>,
}

/// Pages of this process granted to another domain ([`Gntalloc::share`]): unmapped, and the
/// grants ended, on drop (the kernel keeps a page until the other side has unmapped it).
#[derive(Debug)]
pub struct SharedPages {
    dev: Gntalloc,
    index: u64,
    refs: Vec<GrantRef>,
    map: Option<Mapping>,
}

impl SharedPages {
    /// The grant references, one per page, for the other domain.
    pub fn refs(&self) -> &[GrantRef] {
        &self.refs
    }

    /// Start of the pages (raw, volatile access only: the other domain may write them).
    pub fn as_ptr(&self) -> *mut u8 {
        self.map
            .as_ref()
            .map_or(core::ptr::null_mut(), Mapping::as_ptr)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.refs.len() * PAGE
    }

    /// Whether there are no pages (never).
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        drop(self.map.take());
        let mut d = IoctlGntallocDeallocGref {
            index: self.index,
            count: self.refs.len() as u32,
            ..Default::default()
        };
        // SAFETY: our struct; the index and count the alloc ioctl returned.
        let _ = unsafe { sys::ioctl(&*self.dev.fd, IOCTL_GNTALLOC_DEALLOC_GREF, &mut d) };
    }
}

impl Gntalloc {
    /// Open `/dev/xen/gntalloc`.
    pub fn open() -> Result<Self, Error> {
        let (fd, _) = open_dev(&["/dev/xen/gntalloc"], OFlags::RDWR)
            .map_err(|e| crate::linux::os("open /dev/xen/gntalloc", e))?;
        Ok(Gntalloc { fd: Arc::new(fd) })
    }

    /// `IOCTL_GNTALLOC_ALLOC_GREF`: `count` zeroed pages granted to `domid` with `access`,
    /// mapped here.
    pub fn share(
        &self,
        domid: DomId,
        count: u32,
        access: super::Access,
    ) -> Result<SharedPages, Error> {
        let writable = access == super::Access::ReadWrite;
        const OP: &str = "IOCTL_GNTALLOC_ALLOC_GREF";
        if count == 0 || count > 1 << 20 {
            return Err(Error::InvalidArgument {
                op: OP,
                what: "between 1 and 2^20 pages",
            });
        }
        const HEAD: usize = core::mem::offset_of!(IoctlGntallocAllocGref, gref_ids);
        let words = (HEAD + 4 * count as usize).div_ceil(8);
        let mut buf: Vec<u64> = std::vec![0; words];
        let bytes = buf.as_mut_ptr().cast::<u8>();
        let a = IoctlGntallocAllocGref {
            domid: domid.0,
            flags: GntallocFlags(if writable { GNTALLOC_FLAG_WRITABLE } else { 0 }),
            count,
            ..Default::default()
        };
        // SAFETY: the header fits the buffer (HEAD plus at least one entry).
        unsafe {
            core::ptr::copy_nonoverlapping(zerocopy::IntoBytes::as_bytes(&a).as_ptr(), bytes, HEAD)
        };
        // SAFETY: the buffer is the struct with room for `count` references, which the kernel
        // writes, with `index`.
        unsafe { sys::ioctl(&*self.fd, IOCTL_GNTALLOC_ALLOC_GREF, bytes) }
            .map_err(|errno| Error::os(OP, errno))?;
        let off = core::mem::offset_of!(IoctlGntallocAllocGref, index);
        // SAFETY: inside the buffer, 8-aligned; then `count` u32s from HEAD.
        let (index, refs) = unsafe {
            (
                bytes.add(off).cast::<u64>().read(),
                (0..count as usize)
                    .map(|i| GrantRef(bytes.add(HEAD + 4 * i).cast::<u32>().read()))
                    .collect(),
            )
        };
        let mut s = SharedPages {
            dev: self.clone(),
            index,
            refs,
            map: None,
        };
        let map = Mapping::shared_at(&*self.fd, s.len(), index, true)
            .map_err(|errno| Error::os("mmap of gntalloc", errno))?;
        s.map = Some(map);
        Ok(s)
    }
}

//! Hypercall argument memory: pages from `/dev/xen/hypercall` (never migrated or compacted, so
//! Xen can always access them), or locked anonymous memory when that device is absent, shared
//! out by a small first-fit allocator.

use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::sys::Mapping;
use super::Error;

/// A first-fit allocator over `[0, len)`, handing out aligned ranges and merging freed ones.
#[derive(Debug)]
pub struct Arena {
    len: usize,
    /// Free ranges (offset, length), sorted by offset, never adjacent.
    free: Vec<(usize, usize)>,
}

impl Arena {
    /// An arena of `len` bytes, all free.
    pub fn new(len: usize) -> Self {
        Arena {
            len,
            free: if len > 0 { vec![(0, len)] } else { vec![] },
        }
    }

    /// Total size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the arena has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes (possibly fragmented).
    pub fn available(&self) -> usize {
        self.free.iter().map(|f| f.1).sum()
    }

    /// Allocate `size` bytes aligned to `align` (a power of two); `None` when no free range fits.
    pub fn alloc(&mut self, size: usize, align: usize) -> Option<usize> {
        if size == 0 || !align.is_power_of_two() {
            return None;
        }
        for i in 0..self.free.len() {
            let (off, len) = self.free[i];
            let start = off.checked_add(align - 1)? & !(align - 1);
            let end = start.checked_add(size)?;
            if end > off + len {
                continue;
            }
            // Split into the head before `start` and the tail after `end`.
            let mut pieces = Vec::with_capacity(2);
            if start > off {
                pieces.push((off, start - off));
            }
            if off + len > end {
                pieces.push((end, off + len - end));
            }
            self.free.splice(i..=i, pieces);
            return Some(start);
        }
        None
    }

    /// Return `[off, off + size)`, merging with neighbours.
    pub fn free(&mut self, off: usize, size: usize) {
        let i = self.free.partition_point(|f| f.0 < off);
        self.free.insert(i, (off, size));
        // Merge with the next, then with the previous.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

/// Minimum alignment of every buffer (enough for any ABI struct).
pub const BUF_ALIGN: usize = 16;

/// Where the buffer memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferSource {
    /// `/dev/xen/hypercall`: kernel pages Xen can always access.
    HypercallDevice,
    /// `mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED)` + `MADV_DONTFORK`, as libxencall's fallback.
    LockedAnonymous,
}

/// A pool of hypercall-safe memory.
#[derive(Debug)]
pub struct HypercallBuffers {
    map: Mapping,
    arena: Mutex<Arena>,
    source: BufferSource,
}

impl HypercallBuffers {
    /// Map `pages` pages from `/dev/xen/hypercall`, or locked anonymous memory if the device does
    /// not exist.
    pub fn open(pages: usize) -> Result<Self, Error> {
        let len = pages.max(1) * 4096;
        match rustix::fs::open(
            "/dev/xen/hypercall",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(fd) => {
                let map = Mapping::shared(&fd, len).map_err(|errno| Error::Mmap {
                    op: "mmap /dev/xen/hypercall",
                    errno,
                })?;
                Ok(Self::from_mapping(map, BufferSource::HypercallDevice))
            }
            Err(rustix::io::Errno::NOENT)
            | Err(rustix::io::Errno::NXIO)
            | Err(rustix::io::Errno::NODEV) => Self::locked_anonymous(pages),
            Err(errno) => Err(Error::Open {
                path: "/dev/xen/hypercall",
                errno,
            }),
        }
    }

    /// Locked anonymous memory only (the fallback; also what tests use on machines without Xen).
    pub fn locked_anonymous(pages: usize) -> Result<Self, Error> {
        let map = Mapping::locked_anonymous(pages.max(1) * 4096).map_err(|errno| Error::Mmap {
            op: "mmap locked anonymous hypercall buffers",
            errno,
        })?;
        Ok(Self::from_mapping(map, BufferSource::LockedAnonymous))
    }

    fn from_mapping(map: Mapping, source: BufferSource) -> Self {
        HypercallBuffers {
            arena: Mutex::new(Arena::new(map.len())),
            map,
            source,
        }
    }

    /// Where the memory came from.
    pub fn source(&self) -> BufferSource {
        self.source
    }

    /// Total bytes in the pool.
    pub fn capacity(&self) -> usize {
        self.map.len()
    }

    /// Allocate `size` zeroed bytes, aligned to [`BUF_ALIGN`].
    pub fn alloc(&self, size: usize) -> Result<HypercallBuf<'_>, Error> {
        let mut arena = self.arena.lock().unwrap_or_else(|p| p.into_inner());
        let off = arena
            .alloc(size, BUF_ALIGN)
            .ok_or(Error::BuffersExhausted {
                requested: size,
                available: arena.available(),
            })?;
        drop(arena);
        let buf = HypercallBuf {
            pool: self,
            off,
            len: size,
        };
        // SAFETY: [off, off+size) is inside the mapping and now exclusively ours.
        unsafe { core::ptr::write_bytes(buf.as_mut_ptr(), 0, size) };
        Ok(buf)
    }

    /// Allocate a buffer holding a copy of `value`.
    pub fn alloc_obj<T: IntoBytes + Immutable>(
        &self,
        value: &T,
    ) -> Result<HypercallBuf<'_>, Error> {
        let buf = self.alloc(core::mem::size_of::<T>())?;
        buf.write_bytes(0, value.as_bytes());
        Ok(buf)
    }
}

/// A range of hypercall memory; freed on drop. Accessed only by copying in and out: Xen writes it
/// during hypercalls, so no Rust reference into it is ever handed out.
#[derive(Debug)]
pub struct HypercallBuf<'a> {
    pool: &'a HypercallBuffers,
    off: usize,
    len: usize,
}

impl HypercallBuf<'_> {
    /// Address to pass to Xen.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        // SAFETY: `off` is within the mapping (allocated from its arena).
        unsafe { self.pool.map.as_ptr().add(self.off) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: zero-size allocations are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copy `data` in at `at`; bytes past the end are not written.
    pub fn write_bytes(&self, at: usize, data: &[u8]) {
        let n = data.len().min(self.len.saturating_sub(at));
        for (i, b) in data[..n].iter().enumerate() {
            // SAFETY: [at, at+n) is inside this buffer; volatile because Xen shares the memory.
            unsafe { self.as_mut_ptr().add(at + i).write_volatile(*b) };
        }
    }

    /// Copy `out.len()` bytes out from `at` (zeros past the end).
    pub fn read_bytes(&self, at: usize, out: &mut [u8]) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = if at + i < self.len {
                // SAFETY: inside this buffer; volatile for the same reason as writes.
                unsafe { self.as_mut_ptr().add(at + i).read_volatile() }
            } else {
                0
            };
        }
    }

    /// Copy a `T` out of the start of the buffer.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self) -> T {
        let mut v = T::new_zeroed();
        self.read_bytes(0, v.as_mut_bytes());
        v
    }
}

impl Drop for HypercallBuf<'_> {
    fn drop(&mut self) {
        let mut arena = self.pool.arena.lock().unwrap_or_else(|p| p.into_inner());
        arena.free(self.off, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_aligns_splits_and_merges() {
        let mut a = Arena::new(256);
        let x = a.alloc(10, 16).unwrap();
        let y = a.alloc(10, 64).unwrap();
        assert_eq!(x, 0);
        assert_eq!(y, 64);
        assert_eq!(y % 64, 0);
        // The gap [10, 64) is reused for a small aligned allocation.
        assert_eq!(a.alloc(16, 16), Some(16));
        assert_eq!(a.available(), 256 - 10 - 10 - 16);
        a.free(16, 16);
        a.free(y, 10);
        a.free(x, 10);
        assert_eq!(a.available(), 256);
        assert_eq!(a.free, vec![(0, 256)]);
    }

    #[test]
    fn arena_exhausts_and_refuses_bad_requests() {
        let mut a = Arena::new(64);
        assert_eq!(a.alloc(65, 1), None);
        assert_eq!(a.alloc(0, 16), None);
        assert_eq!(a.alloc(8, 3), None);
        assert_eq!(a.alloc(usize::MAX, 16), None);
        let p = a.alloc(48, 16).unwrap();
        assert_eq!(a.alloc(32, 16), None, "only 16 bytes left");
        assert_eq!(a.alloc(16, 16), Some(48));
        assert_eq!(a.alloc(1, 1), None);
        a.free(p, 48);
        assert_eq!(a.alloc(32, 32), Some(0));
    }

    #[test]
    fn arena_fragmentation_is_repaired_by_merging_in_any_order() {
        let mut a = Arena::new(4096);
        let offs: Vec<usize> = (0..64).map(|_| a.alloc(64, 16).unwrap()).collect();
        assert_eq!(a.alloc(1, 1), None);
        for (i, o) in offs.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            let _ = i;
            a.free(*o, 64);
        }
        assert_eq!(a.alloc(128, 16), None, "free space is fragmented");
        for (i, o) in offs.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            let _ = i;
            a.free(*o, 64);
        }
        assert_eq!(a.free, vec![(0, 4096)]);
        assert_eq!(a.alloc(4096, 4096), Some(0));
    }

    #[test]
    fn locked_anonymous_pool_hands_out_aligned_zeroed_buffers_and_reuses_them() {
        let pool = HypercallBuffers::locked_anonymous(1).unwrap();
        assert_eq!(pool.source(), BufferSource::LockedAnonymous);
        assert_eq!(pool.capacity(), 4096);
        let a = pool.alloc(24).unwrap();
        assert_eq!(a.as_mut_ptr() as usize % BUF_ALIGN, 0);
        a.write_bytes(0, &[1, 2, 3]);
        let mut out = [0u8; 4];
        a.read_bytes(0, &mut out);
        assert_eq!(out, [1, 2, 3, 0]);
        let b = pool.alloc(4010).unwrap();
        let err = pool.alloc(64).unwrap_err();
        assert!(
            matches!(err, Error::BuffersExhausted { requested: 64, .. }),
            "{err}"
        );
        drop(b);
        let c = pool.alloc(64).unwrap();
        let mut z = [0xffu8; 64];
        c.read_bytes(0, &mut z);
        assert!(z.iter().all(|b| *b == 0), "allocations are zeroed");
        let v = pool.alloc_obj(&0x1122_3344u32).unwrap();
        assert_eq!(v.read_obj::<u32>(), 0x1122_3344);
        drop(a);
    }
}

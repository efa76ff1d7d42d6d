//! A fixed heap for freestanding kernels (feature `heap`): a bump allocator over an array inside
//! the allocator itself. Nothing is ever freed (set-up allocates a few small vectors once); the
//! counters let a kernel prove that its steady state allocates nothing, and report how much of
//! the heap set-up used.
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: freestanding_mem::heap::Bump<{ 64 * 1024 }> = freestanding_mem::heap::Bump::new();
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// A bump allocator over `N` bytes.
#[repr(C, align(4096))]
pub struct Bump<const N: usize> {
    arena: UnsafeCell<[u8; N]>,
    next: AtomicUsize,
    allocations: AtomicUsize,
}

// SAFETY: the arena is only handed out in disjoint pieces by `alloc`, reserved with a
// compare-and-swap; the counters are atomics.
unsafe impl<const N: usize> Sync for Bump<N> {}

impl<const N: usize> Bump<N> {
    /// An empty heap.
    pub const fn new() -> Self {
        Bump {
            arena: UnsafeCell::new([0; N]),
            next: AtomicUsize::new(0),
            allocations: AtomicUsize::new(0),
        }
    }

    /// Its size.
    pub const fn size(&self) -> usize {
        N
    }

    /// Bytes handed out so far (alignment padding included).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// Allocations so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for Bump<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every allocation is a distinct, suitably aligned piece of the arena (a compare-and-swap
// reserves it), or null when the arena is exhausted.
unsafe impl<const N: usize> GlobalAlloc for Bump<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= N) else {
                return core::ptr::null_mut();
            };
            match self
                .next
                .compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.allocations.fetch_add(1, Ordering::Relaxed);
                    return (base + start) as *mut u8;
                }
                Err(now) => cur = now,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

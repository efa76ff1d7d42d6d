//! The stub domain's fixed heap: a bump allocator over a static array. Nothing is ever freed
//! (set-up allocates a few small vectors once); the counters let `kmain` prove that serving
//! allocates nothing and report how much of the heap set-up used.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of the heap.
pub const HEAP_SIZE: usize = 64 * 1024;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);
// SAFETY: the arena is only handed out in disjoint pieces by `Bump::alloc`.
unsafe impl Sync for Arena {}
static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

/// The bump allocator.
pub struct Bump {
    next: AtomicUsize,
    allocations: AtomicUsize,
}

impl Bump {
    /// Bytes handed out so far (alignment padding included).
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }
    /// Allocations so far.
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

// SAFETY: every allocation is a distinct, suitably aligned piece of the arena (a compare-and-swap
// reserves it), or null when the arena is exhausted.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = ARENA.0.get() as usize;
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + cur).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()).filter(|&e| e <= HEAP_SIZE) else {
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

/// The global allocator.
#[global_allocator]
pub static HEAP: Bump = Bump {
    next: AtomicUsize::new(0),
    allocations: AtomicUsize::new(0),
};

//! The one way this crate touches memory another domain (or Xen) may write at any time: atomic
//! accesses through raw pointers, never a Rust reference to the memory itself. Atomics, not
//! volatile: a concurrent writer makes plain or volatile accesses a data race under Rust's memory
//! model, and atomics are what race checkers (and the model) accept; a relaxed atomic load or
//! store compiles to the same instruction as a volatile one on every target here.

use core::sync::atomic::{AtomicU8, Ordering};

/// Copy `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
///
/// `src .. src + dst.len()` must lie in one live mapping, valid for reads, for the whole call.
#[inline]
pub(crate) unsafe fn copy_from(src: *const u8, dst: &mut [u8]) {
    for (i, b) in dst.iter_mut().enumerate() {
        // SAFETY: inside the mapping (the caller's contract); an atomic view of one byte of
        // shared memory makes no reference to anything another domain can write non-atomically
        // from Rust's point of view.
        *b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
    }
}

/// Copy `src` into shared memory at `dst`.
///
/// # Safety
///
/// `dst .. dst + src.len()` must lie in one live mapping, valid for writes, for the whole call.
#[inline]
pub(crate) unsafe fn copy_to(dst: *mut u8, src: &[u8]) {
    for (i, &b) in src.iter().enumerate() {
        // SAFETY: as in `copy_from`, for writes.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(b, Ordering::Relaxed);
    }
}

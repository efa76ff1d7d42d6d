//! A deliberate data race, of the kind the hostile suite once had: one thread stores plain
//! (volatile, non-atomic) words into memory another thread loads atomically, as a server loads
//! a slot. Built and run exactly as the race check builds the suites, ThreadSanitizer must
//! report it; if it does not, a clean suite proves nothing.

use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    // A leaked word: shared by address, as a mapped page is.
    let word = Box::into_raw(Box::new(0u64)) as usize;
    let writer = std::thread::spawn(move || {
        for i in 0..10_000u64 {
            // SAFETY: the word is leaked, so it stays valid; racing on it is the point.
            unsafe { (word as *mut u64).write_volatile(i) };
        }
    });
    let mut seen = 0;
    for _ in 0..10_000 {
        // SAFETY: as above; an atomic view of the same word.
        seen |= unsafe { AtomicU64::from_ptr(word as *mut u64) }.load(Ordering::Acquire);
    }
    writer.join().expect("writer thread");
    println!("control ran ({seen})");
}

//! The memory functions LLVM may call (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`) and the
//! `rust_eh_personality` stub the prebuilt `core` references even with `panic = "abort"`, for the
//! project's freestanding test kernels. Volatile byte accesses keep LLVM from turning the loops
//! back into calls to these very functions, and bytes suit the arm64 kernel, which runs with the
//! MMU off (no unaligned wide accesses); on x86_64 (the PV dom0 kernel) `rep movsb/stosb`.
//! A kernel links them with `use freestanding_mem as _;`. With the feature `heap`, also a fixed
//! bump allocator (`heap::Bump`) for kernels that use `alloc`.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "heap")]
pub mod heap;

#[cfg(target_arch = "x86_64")]
use core::arch::asm;

/// # Safety
/// As C's memcpy.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    // SAFETY: rep movsb copies n bytes forward; the caller guarantees the ranges.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") d => _, inout("rsi") s => _, options(nostack, preserves_flags))
    };
    d
}

/// # Safety
/// As C's memcpy.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: within the caller's ranges; volatile keeps LLVM from calling memcpy here.
        unsafe { d.add(i).write_volatile(s.add(i).read_volatile()) };
    }
    d
}

/// # Safety
/// As C's memmove.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    if (d as usize) <= (s as usize) || (d as usize) >= (s as usize + n) {
        // SAFETY: forward copy is safe for these overlaps.
        return unsafe { memcpy(d, s, n) };
    }
    // SAFETY: backward copy with the direction flag set, restored afterwards.
    unsafe {
        asm!("std", "rep movsb", "cld",
            inout("rcx") n => _, inout("rdi") d.add(n - 1) => _, inout("rsi") s.add(n - 1) => _,
            options(nostack))
    };
    d
}

/// # Safety
/// As C's memmove.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    if (d as usize) <= (s as usize) {
        // SAFETY: forward copy is safe when the destination starts first.
        return unsafe { memcpy(d, s, n) };
    }
    for i in (0..n).rev() {
        // SAFETY: within the caller's ranges.
        unsafe { d.add(i).write_volatile(s.add(i).read_volatile()) };
    }
    d
}

/// # Safety
/// As C's memset.
#[cfg(target_arch = "x86_64")]
#[no_mangle]
pub unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: rep stosb fills n bytes; the caller guarantees the range.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") d => _, in("al") c as u8, options(nostack, preserves_flags))
    };
    d
}

/// # Safety
/// As C's memset.
#[cfg(not(target_arch = "x86_64"))]
#[no_mangle]
pub unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: within the caller's range.
        unsafe { d.add(i).write_volatile(c as u8) };
    }
    d
}

/// # Safety
/// As C's memcmp.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: within the caller's ranges.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As C's bcmp.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: forwarded.
    unsafe { memcmp(a, b, n) }
}

/// The prebuilt `core` references the unwinding personality even with panic=abort.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

//! Call backends: the only part of a Xen program that depends on where it runs.
//!
//! This module is the one place where backends are chosen:
//!
//! | backend | where | selected by |
//! |---|---|---|
//! | `Privcmd` | Linux dom0 / driver-domain userspace | feature `privcmd` (implies `std`), `target_os = "linux"` |
//! | `HypercallPage` | x86 PV/PVH kernels and stub domains | `target_arch = "x86"` or `"x86_64"` |
//! | `Direct` (`vmcall`/`vmmcall`/`syscall`/`int $0x82`) | x86 HVM/PVH, 64-bit and 32-bit PV | `target_arch = "x86"` or `"x86_64"` |
//! | `Hvc` | Arm kernels and stub domains | `target_arch = "arm"` or `"aarch64"` |
//!
//! (Each is documented on the targets it exists on: build the documentation with
//! `--target aarch64-unknown-linux-gnu` for `Hvc`.)
//!
//! Each implements [`Hypercall`](crate::Hypercall), so the generated typed wrappers
//! (`event_channel_op_send(&backend, ...)`) are the same code on every platform.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
mod x86;
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
pub use x86::{install_hypercall_page, xen_cpuid_base, Direct, DirectKind, HypercallPage};

#[cfg(any(target_arch = "arm", target_arch = "aarch64"))]
mod arm;
#[cfg(any(target_arch = "arm", target_arch = "aarch64"))]
pub use arm::Hvc;

#[cfg(all(feature = "privcmd", target_os = "linux"))]
pub mod privcmd;
#[cfg(all(feature = "privcmd", target_os = "linux"))]
pub use privcmd::{Error, HypercallBuf, HypercallBuffers, Privcmd};

#[cfg(feature = "asm-probe")]
#[doc(hidden)]
pub mod asm_probe;

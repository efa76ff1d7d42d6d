//! Parses, validates and lays out the Xen stable-ABI spec (`abi-spec/*.toml`), and generates the
//! Rust bindings of `xen-sys` from it.
//!
//! ```no_run
//! use std::path::Path;
//! let spec = xen_abi_gen::spec::load(Path::new("abi-spec")).expect("valid spec");
//! let engine = xen_abi_gen::layout::Engine::new(&spec);
//! let l = engine
//!     .item("xen_dm_op_buf", xen_abi_gen::Arch::X86_32, xen_abi_gen::View::Guest)
//!     .unwrap();
//! assert_eq!(l.size, 8);
//! ```
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod arch;
pub mod diag;
pub mod diff;
pub mod emit;
#[doc(hidden)]
pub mod fuzzing;
pub mod layout;
pub mod model;
pub mod names;
pub mod probe_errors;
pub mod probe_run;
pub mod spec;
pub mod ty;
pub mod workflow;

pub use arch::{Arch, View};
pub use diag::{Diagnostic, Diagnostics};

//! Emitters: Rust modules for xen-sys, and the one-screen summary.

pub mod c_probe;
pub mod rust;
pub mod summary;

use sha2::{Digest, Sha256};

use crate::spec::Source;

/// Hex SHA-256 over the spec sources (path and text of each, in path order).
pub fn spec_hash(sources: &[Source]) -> String {
    let mut h = Sha256::new();
    for s in sources {
        h.update(s.rel_path.as_bytes());
        h.update([0]);
        h.update(s.text.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

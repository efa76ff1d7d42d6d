//! The one-screen summary printed by `generate`.

use std::fmt::Write as _;

use crate::arch::Arch;
use crate::model::{ItemKind, Spec};

/// Counts of items per module and kind, and the architectures laid out.
pub fn summary(spec: &Spec) -> String {
    const KINDS: [&str; 9] = [
        "const",
        "typedef",
        "struct",
        "union",
        "values",
        "flags",
        "bitfield",
        "hypercall",
        "ioctl",
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Xen {} stable ABI, __XEN_INTERFACE_VERSION__ {:#010x}",
        spec.xen, spec.interface_version
    );
    let _ = write!(out, "{:<20}", "module");
    for k in KINDS {
        let _ = write!(out, "{:>10}", k);
    }
    let _ = writeln!(out, "{:>8}", "items");
    let mut totals = [0usize; 9];
    for f in &spec.files {
        let mut counts = [0usize; 9];
        for i in &f.items {
            let k = KINDS
                .iter()
                .position(|k| *k == i.kind.keyword())
                .unwrap_or(0);
            counts[k] += 1;
            totals[k] += 1;
        }
        let _ = write!(out, "{:<20}", f.module);
        for c in counts {
            let _ = write!(out, "{:>10}", c);
        }
        let _ = writeln!(out, "{:>8}", counts.iter().sum::<usize>());
    }
    let _ = write!(out, "{:<20}", "total");
    for c in totals {
        let _ = write!(out, "{:>10}", c);
    }
    let _ = writeln!(out, "{:>8}", totals.iter().sum::<usize>());
    let members: usize = spec
        .items()
        .map(|(_, i)| match &i.kind {
            ItemKind::Values(v) | ItemKind::Flags(v) => v.members.len(),
            ItemKind::Hypercall(h) => h.subops.len(),
            _ => 0,
        })
        .sum();
    let _ = writeln!(
        out,
        "plus {members} set members and sub-ops; laid out for {}",
        Arch::ALL.map(|a| a.name()).join(", ")
    );
    out
}

/// Total number of items.
pub fn item_count(spec: &Spec) -> usize {
    spec.items().count()
}

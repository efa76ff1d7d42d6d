//! ABI compatibility between two versions of the spec: what was added, and what changed in a way
//! that breaks programs built against the old one (layout, value, number or `since`).

use std::collections::BTreeMap;
use std::fmt;

use crate::arch::{Arch, View};
use crate::layout::Engine;
use crate::model::{Item, ItemKind, Spec};
use crate::ty::Ty;

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A new item (or set member / sub-op).
    Added(String),
    /// A change that breaks the stable ABI.
    Broken(String),
}

/// The result of comparing two specs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Additions, in spec order.
    pub added: Vec<String>,
    /// Breaking changes, in spec order.
    pub broken: Vec<String>,
}

impl Report {
    /// Whether the new spec is compatible with the old one.
    pub fn is_compatible(&self) -> bool {
        self.broken.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "added: {}", self.added.len())?;
        for a in &self.added {
            writeln!(f, "  + {a}")?;
        }
        writeln!(f, "breaking changes: {}", self.broken.len())?;
        for b in &self.broken {
            writeln!(f, "  ! {b}")?;
        }
        Ok(())
    }
}

fn layout_desc(e: &Engine<'_>, name: &str, arch: Arch) -> Option<String> {
    let l = e.item(name, arch, View::Guest).ok()?;
    let fields: Vec<String> = l
        .fields
        .iter()
        .map(|f| format!("{}@{}:{}", f.name, f.offset, f.size))
        .collect();
    Some(format!(
        "size {} align {} [{}]",
        l.size,
        l.align,
        fields.join(" ")
    ))
}

fn type_desc(t: &Option<Ty>, e: &Engine<'_>, arch: Arch) -> String {
    match t {
        None => "none".into(),
        Some(t) => match e.ty(t, arch, View::Guest) {
            Ok(l) => format!("{t} (size {}, align {})", l.size, l.align),
            Err(_) => t.to_string(),
        },
    }
}

/// Compare `old` with `new`.
pub fn diff(old: &Spec, new: &Spec) -> Report {
    let eo = Engine::new(old);
    let en = Engine::new(new);
    let mut r = Report::default();
    let new_items: BTreeMap<&str, &Item> = new.items().map(|(_, i)| (i.name.as_str(), i)).collect();
    let old_items: BTreeMap<&str, &Item> = old.items().map(|(_, i)| (i.name.as_str(), i)).collect();
    for (_, o) in old.items() {
        let Some(n) = new_items.get(o.name.as_str()) else {
            r.broken
                .push(format!("{} `{}` was removed", o.kind.keyword(), o.name));
            continue;
        };
        let what = format!("{} `{}`", o.kind.keyword(), o.name);
        if o.kind.keyword() != n.kind.keyword() {
            r.broken
                .push(format!("{what} became a {}", n.kind.keyword()));
            continue;
        }
        if o.since != n.since {
            r.broken.push(format!(
                "{what}: since changed from {} to {}",
                o.since, n.since
            ));
        }
        if o.rust_name != n.rust_name {
            r.broken.push(format!(
                "{what}: Rust name changed from `{}` to `{}`",
                o.rust_name, n.rust_name
            ));
        }
        compare_kind(&mut r, &what, o, n, &eo, &en);
    }
    for (_, n) in new.items() {
        if !old_items.contains_key(n.name.as_str()) {
            r.added.push(format!(
                "{} `{}` (since {})",
                n.kind.keyword(),
                n.name,
                n.since
            ));
        }
    }
    r
}

fn compare_kind(r: &mut Report, what: &str, o: &Item, n: &Item, eo: &Engine<'_>, en: &Engine<'_>) {
    match (&o.kind, &n.kind) {
        (ItemKind::Const(a), ItemKind::Const(b)) => {
            if a.value != b.value || a.ty != b.ty {
                r.broken.push(format!(
                    "{what}: value changed from {} ({}) to {} ({})",
                    a.value,
                    a.ty.rust(),
                    b.value,
                    b.ty.rust()
                ));
            }
        }
        (ItemKind::Values(a), ItemKind::Values(b)) | (ItemKind::Flags(a), ItemKind::Flags(b)) => {
            if a.repr != b.repr {
                r.broken.push(format!(
                    "{what}: repr changed from {} to {}",
                    a.repr.rust(),
                    b.repr.rust()
                ));
            }
            for m in &a.members {
                match b.members.iter().find(|x| x.name == m.name) {
                    None => r
                        .broken
                        .push(format!("{what}: member `{}` was removed", m.name)),
                    Some(x) if x.value != m.value => r.broken.push(format!(
                        "{what}: member `{}` changed from {} to {}",
                        m.name, m.value, x.value
                    )),
                    Some(x) if x.since != m.since => r.broken.push(format!(
                        "{what}: member `{}`: since changed from {} to {}",
                        m.name, m.since, x.since
                    )),
                    _ => {}
                }
            }
            for x in &b.members {
                if !a.members.iter().any(|m| m.name == x.name) {
                    r.added.push(format!(
                        "{what}: member `{}` = {} (since {})",
                        x.name, x.value, x.since
                    ));
                }
            }
        }
        (ItemKind::Bitfield(a), ItemKind::Bitfield(b)) => {
            let da: Vec<_> = a
                .members
                .iter()
                .map(|m| (m.name.clone(), m.lsb, m.width))
                .collect();
            let db: Vec<_> = b
                .members
                .iter()
                .map(|m| (m.name.clone(), m.lsb, m.width))
                .collect();
            if a.repr != b.repr || da != db {
                r.broken
                    .push(format!("{what}: bits changed from {da:?} to {db:?}"));
            }
        }
        (ItemKind::Hypercall(a), ItemKind::Hypercall(b)) => {
            if a.number != b.number {
                r.broken.push(format!(
                    "{what}: number changed from {} to {}",
                    a.number, b.number
                ));
            }
            let args = |h: &crate::model::Hypercall| {
                h.args
                    .iter()
                    .map(|x| format!("{}:{:?}", x.name, x.ty))
                    .collect::<Vec<_>>()
            };
            if args(a) != args(b) {
                r.broken.push(format!(
                    "{what}: arguments changed from {:?} to {:?}",
                    args(a),
                    args(b)
                ));
            }
            for s in &a.subops {
                match b.subops.iter().find(|x| x.name == s.name) {
                    None => r
                        .broken
                        .push(format!("{what}: sub-op `{}` was removed", s.name)),
                    Some(x) => {
                        if x.value != s.value {
                            r.broken.push(format!(
                                "{what}: sub-op `{}` changed from {} to {}",
                                s.name, s.value, x.value
                            ));
                        }
                        if x.since != s.since {
                            r.broken.push(format!(
                                "{what}: sub-op `{}`: since changed from {} to {}",
                                s.name, s.since, x.since
                            ));
                        }
                        if x.dir != s.dir {
                            r.broken
                                .push(format!("{what}: sub-op `{}`: direction changed", s.name));
                        }
                        for arch in Arch::ALL {
                            let (ta, tb) =
                                (type_desc(&s.arg, eo, arch), type_desc(&x.arg, en, arch));
                            if ta != tb {
                                r.broken.push(format!("{what}: sub-op `{}` argument on {arch} changed from {ta} to {tb}", s.name));
                            }
                        }
                    }
                }
            }
            for x in &b.subops {
                if !a.subops.iter().any(|s| s.name == x.name) {
                    r.added.push(format!(
                        "{what}: sub-op `{}` = {} (since {})",
                        x.name, x.value, x.since
                    ));
                }
            }
        }
        (ItemKind::Ioctl(a), ItemKind::Ioctl(b)) => {
            for arch in Arch::ALL {
                let (x, y) = (eo.ioctl_number(a, arch).ok(), en.ioctl_number(b, arch).ok());
                if x != y {
                    r.broken.push(format!(
                        "{what}: number on {arch} changed from {:#010x} to {:#010x}",
                        x.unwrap_or(0),
                        y.unwrap_or(0)
                    ));
                }
            }
        }
        _ => {
            // Types: compare the full layout per architecture.
            for arch in Arch::ALL {
                let (x, y) = (
                    layout_desc(eo, &o.name, arch),
                    layout_desc(en, &n.name, arch),
                );
                if x != y {
                    r.broken.push(format!(
                        "{what}: layout on {arch} changed from {} to {}",
                        x.unwrap_or_else(|| "?".into()),
                        y.unwrap_or_else(|| "?".into())
                    ));
                }
            }
        }
    }
}

//! ABI compatibility between two versions of the spec: what was added, and what changed in a way
//! that breaks programs built against the old one (layout, value, number or `since`).

use std::collections::BTreeMap;
use std::fmt;

use crate::arch::{Arch, View};
use crate::diag::{show_int, show_mask};
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
    let grouped = introduced_with(old, new);
    for (_, n) in new.items() {
        if old_items.contains_key(n.name.as_str()) || grouped.contains_key(n.name.as_str()) {
            continue;
        }
        let linux = n
            .linux
            .as_ref()
            .map(|l| format!(", Linux {l}"))
            .unwrap_or_default();
        let mut line = format!(
            "{} `{}` (since {}{linux})",
            n.kind.keyword(),
            n.name,
            n.since
        );
        line += &argument_types(new, &grouped, |o| o == Owner::Hypercall(&n.name));
        r.added.push(line);
    }
    // New sub-ops of existing hypercalls are listed by `compare_kind`; attach their new types.
    for line in &mut r.added {
        let suffix = argument_types(new, &grouped, |o| match o {
            Owner::Subop(h, s) => line.starts_with(&format!("hypercall `{h}`: sub-op `{s}` ")),
            Owner::Hypercall(_) => false,
        });
        line.push_str(&suffix);
    }
    r
}

/// What introduced a new type that nothing else uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner<'a> {
    /// A new hypercall.
    Hypercall(&'a str),
    /// A new sub-op (hypercall, sub-op) of an existing hypercall.
    Subop(&'a str, &'a str),
}

/// ", with its new argument struct `x`" for the types `grouped` gives to an owner, or "".
fn argument_types(
    spec: &Spec,
    grouped: &BTreeMap<&str, Owner<'_>>,
    is_owner: impl Fn(Owner<'_>) -> bool,
) -> String {
    let tys: Vec<String> = grouped
        .iter()
        .filter(|(_, o)| is_owner(**o))
        .map(|(t, _)| {
            let kind = spec.find(t).map_or("type", |i| i.kind.keyword());
            format!("{kind} `{t}`")
        })
        .collect();
    match tys.len() {
        0 => String::new(),
        1 => format!(", with its new argument {}", tys[0]),
        _ => format!(", with its new argument types {}", tys.join(", ")),
    }
}

/// Names of the items `item` refers to, each with the sub-op that refers to it (if any).
fn references(item: &Item) -> Vec<(&str, Option<&str>)> {
    match &item.kind {
        ItemKind::Typedef(t) => Arch::ALL
            .iter()
            .flat_map(|a| t.on(*a).refs())
            .map(|n| (n, None))
            .collect(),
        ItemKind::Struct(c) | ItemKind::Union(c) => c
            .fields
            .iter()
            .flat_map(|f| f.ty.refs())
            .map(|n| (n, None))
            .collect(),
        ItemKind::Hypercall(h) => {
            let mut v: Vec<(&str, Option<&str>)> = h
                .args
                .iter()
                .filter_map(|a| match &a.ty {
                    crate::model::ArgTy::Named(n) | crate::model::ArgTy::Ptr(Some(n)) => {
                        Some((n.as_str(), None))
                    }
                    _ => None,
                })
                .collect();
            for s in &h.subops {
                if let Some(t) = &s.arg {
                    v.extend(t.refs().into_iter().map(|n| (n, Some(s.name.as_str()))));
                }
            }
            v
        }
        ItemKind::Ioctl(i) => i
            .arg
            .iter()
            .flat_map(|t| t.refs())
            .map(|n| (n, None))
            .collect(),
        _ => vec![],
    }
}

/// New types (structs, unions, typedefs) used only as the argument of one new hypercall or one
/// new sub-op: they are part of that addition, so `diff` lists them on its line ("a new hypercall"
/// is one addition, not one per type it brings).
fn introduced_with<'a>(old: &Spec, new: &'a Spec) -> BTreeMap<&'a str, Owner<'a>> {
    let mut users: BTreeMap<&str, Vec<Option<Owner<'a>>>> = BTreeMap::new();
    for (_, i) in new.items() {
        let is_new = old.find(&i.name).is_none();
        let old_subops: Vec<&str> = match old.find(&i.name).map(|o| &o.kind) {
            Some(ItemKind::Hypercall(h)) => h.subops.iter().map(|s| s.name.as_str()).collect(),
            _ => vec![],
        };
        for (name, subop) in references(i) {
            let owner = match (&i.kind, subop) {
                (ItemKind::Hypercall(_), _) if is_new => Some(Owner::Hypercall(&i.name)),
                (ItemKind::Hypercall(_), Some(s)) if !old_subops.contains(&s) => {
                    Some(Owner::Subop(&i.name, s))
                }
                _ => None,
            };
            users.entry(name).or_default().push(owner);
        }
    }
    let mut out = BTreeMap::new();
    for (_, i) in new.items() {
        if old.find(&i.name).is_some() || !i.kind.is_type() {
            continue;
        }
        let Some(u) = users.get(i.name.as_str()) else {
            continue;
        };
        if let Some(Some(first)) = u.first() {
            if u.iter().all(|o| *o == Some(*first)) {
                out.insert(i.name.as_str(), *first);
            }
        }
    }
    out
}

fn compare_kind(r: &mut Report, what: &str, o: &Item, n: &Item, eo: &Engine<'_>, en: &Engine<'_>) {
    match (&o.kind, &n.kind) {
        (ItemKind::Const(a), ItemKind::Const(b)) => {
            if a.value != b.value || a.ty != b.ty {
                let show = if a.mask_of.is_some() || b.mask_of.is_some() {
                    show_mask
                } else {
                    show_int
                };
                r.broken.push(format!(
                    "{what}: value changed from {} ({}) to {} ({})",
                    show(a.value),
                    a.ty.rust(),
                    show(b.value),
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
            // Flags are masks: in hex.
            let show = if matches!(o.kind, ItemKind::Flags(_)) {
                show_mask
            } else {
                show_int
            };
            for m in &a.members {
                match b.members.iter().find(|x| x.name == m.name) {
                    None => r
                        .broken
                        .push(format!("{what}: member `{}` was removed", m.name)),
                    Some(x) if x.value != m.value => r.broken.push(format!(
                        "{what}: member `{}` changed from {} to {}",
                        m.name,
                        show(m.value),
                        show(x.value)
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
                        x.name,
                        show(x.value),
                        x.since
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

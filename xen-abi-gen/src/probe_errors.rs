//! A probe that does not compile, explained in the spec's terms: each compiler error is traced
//! back to the spec item whose check, bitfield object or header include it hit, and reported at
//! that item's file:line, instead of a wall of gcc output.

use std::collections::BTreeMap;

use crate::emit::c_probe::{Headers, Probe};
use crate::model::{ItemKind, Spec, Version};

/// One spec item the compiler choked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedItem {
    /// Where the spec declares it (`abi-spec/x.toml:12:1`), or the spec file for an include.
    pub loc: String,
    /// The item (or `#include <h>` for a header that is missing or broken).
    pub item: String,
    /// The newest release the spec dates any failing part of it to: a Xen release, or for the
    /// Linux uapi headers the kernel release (`linux`), `None` where the spec does not date it.
    pub since: Option<Version>,
    /// What was measured there (`size`, `offset of port`, ...), without repeats.
    pub what: Vec<String>,
    /// The compiler's first message about it.
    pub message: String,
    /// What to do about it, where the spec suggests something.
    pub help: Option<String>,
}

/// The compiler's errors, by spec item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explained {
    /// Items in spec order.
    pub items: Vec<FailedItem>,
    /// Errors that no item explains (the compiler's own lines).
    pub untraced: Vec<String>,
    /// A suggestion when every failing item is dated after some release.
    pub hint: Option<String>,
    /// The dates are Linux releases (a probe of the uapi headers).
    pub linux: bool,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for i in &self.items {
            let since = match (i.since, self.linux) {
                (Some(v), false) => format!(" (since Xen {v})"),
                (Some(v), true) => format!(" (since Linux {v})"),
                (None, _) => String::new(),
            };
            let what = if i.what.is_empty() {
                String::new()
            } else {
                format!(" [{}]", i.what.join(", "))
            };
            writeln!(f, "  {}: `{}`{since}{what}: {}", i.loc, i.item, i.message)?;
            if let Some(h) = &i.help {
                writeln!(f, "      help: {h}")?;
            }
        }
        const SHOWN: usize = 10;
        for u in self.untraced.iter().take(SHOWN) {
            writeln!(f, "  (not traced to the spec) {u}")?;
        }
        if self.untraced.len() > SHOWN {
            writeln!(
                f,
                "  ... and {} more untraced errors",
                self.untraced.len() - SHOWN
            )?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "hint: {h}")?;
        }
        Ok(())
    }
}

/// What line `n` (1-based) of the probe source records.
enum Owner<'a> {
    /// Check `i` of `probe.checks`.
    Check(usize),
    /// A bitfield object of `item`.
    Bits(&'a str, &'a str),
    /// `#include <header>`.
    Include(&'a str),
}

fn owner(line: &str) -> Option<Owner<'_>> {
    let t = line.trim_start();
    if let Some(h) = t
        .strip_prefix("#include <")
        .or_else(|| t.strip_prefix("#error \"missing header <"))
        .and_then(|r| r.strip_suffix('>').or_else(|| r.strip_suffix(">\"")))
    {
        return Some(Owner::Include(h));
    }
    if let Some(rest) = t.strip_prefix("/* ") {
        // "/* 12: item.field size */ XEN_ABI_PROBE(...)," or "/* item.field member m */"
        if let Some((n, _)) = rest.split_once(": ") {
            if let Ok(i) = n.parse() {
                return Some(Owner::Check(i));
            }
        }
        let body = rest.split_once(" */").map_or(rest, |(b, _)| b);
        if let Some((field, member)) = body.split_once(" member ") {
            let item = field.split_once('.').map_or(field, |(i, _)| i);
            return Some(Owner::Bits(item, member));
        }
    }
    None
}

/// A compiler diagnostic line: `path:line:col: error: message` (also `fatal error`).
fn diagnostic(l: &str) -> Option<(&str, usize, &str)> {
    let (head, msg) = l
        .split_once(": error: ")
        .or_else(|| l.split_once(": fatal error: "))?;
    let mut parts = head.rsplitn(3, ':');
    let _col = parts.next()?;
    let line = parts.next()?.parse().ok()?;
    let path = parts.next()?;
    Some((path, line, msg))
}

/// Trace the compiler's `stderr` for `probe` back to the spec. The probe's source is named by
/// `probe_file` (the file name the compiler was given, e.g. `probe.c`).
pub fn explain(spec: &Spec, probe: &Probe, probe_file: &str, stderr: &str) -> Explained {
    let source: Vec<&str> = probe.source.lines().collect();
    let mut by_item: BTreeMap<((usize, usize), Option<String>), FailedItem> = BTreeMap::new();
    let mut untraced = Vec::new();
    // Errors inside a header name the header; "In file included from probe.c:N" before them
    // names the include line of the probe that pulled it in.
    let mut included_from: Option<usize> = None;
    let order: BTreeMap<&str, (usize, usize)> = spec
        .files
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| {
            f.items
                .iter()
                .enumerate()
                .map(move |(ii, i)| (i.name.as_str(), (fi, ii)))
        })
        .collect();
    for l in stderr.lines() {
        if let Some(rest) = l
            .strip_prefix("In file included from ")
            .or_else(|| l.trim_start().strip_prefix("from "))
        {
            let rest = rest.trim_end_matches([',', ':']);
            if let Some((path, n)) = rest.rsplit_once(':') {
                if path.ends_with(probe_file) {
                    included_from = n.parse().ok();
                }
            }
            continue;
        }
        let Some((path, line, msg)) = diagnostic(l) else {
            continue;
        };
        let in_probe = path.ends_with(probe_file);
        let probe_line = if in_probe {
            Some(line)
        } else {
            included_from.take()
        };
        let traced = probe_line
            .and_then(|n| source.get(n.wrapping_sub(1)))
            .and_then(|s| owner(s))
            .and_then(|o| trace(spec, probe, &o, in_probe));
        match traced {
            Some((item, part, what, since, loc)) => {
                let at = order.get(item.as_str()).copied().unwrap_or((usize::MAX, 0));
                let name = match &part {
                    Some(p) => format!("{item}.{p}"),
                    None => item.clone(),
                };
                let e = by_item.entry((at, part)).or_insert_with(|| FailedItem {
                    loc,
                    item: name,
                    since: None,
                    what: Vec::new(),
                    message: msg.to_owned(),
                    help: help(spec, &item, msg)
                        .or_else(|| dated_too_early(probe, &item, since, msg)),
                });
                if let Some(w) = what {
                    if !e.what.contains(&w) {
                        e.what.push(w);
                    }
                }
                e.since = e.since.max(since);
            }
            None => {
                let l = l.to_owned();
                if !untraced.contains(&l) {
                    untraced.push(l);
                }
            }
        }
    }
    let items: Vec<FailedItem> = by_item.into_values().collect();
    let hint = hint(spec, probe, &items, untraced.is_empty());
    Explained {
        items,
        untraced,
        hint,
        linux: probe.headers == Headers::LinuxUapi,
    }
}

/// What a compiler error is traced to: (item, member or sub-op, what was measured, since,
/// location).
type Traced = (
    String,
    Option<String>,
    Option<String>,
    Option<Version>,
    String,
);

/// Where a set member or sub-op is declared.
fn part_loc<'a>(item: &'a crate::model::Item, part: &str) -> Option<&'a crate::diag::Loc> {
    match &item.kind {
        ItemKind::Values(v) | ItemKind::Flags(v) => {
            v.members.iter().find(|m| m.name == part).map(|m| &m.loc)
        }
        ItemKind::Hypercall(h) => h.subops.iter().find(|s| s.name == part).map(|s| &s.loc),
        _ => None,
    }
}

/// The item a probe line belongs to.
fn trace(spec: &Spec, probe: &Probe, o: &Owner<'_>, in_probe: bool) -> Option<Traced> {
    match *o {
        Owner::Check(i) => {
            let c = probe.checks.get(i)?;
            let item = spec.find(&c.item)?;
            let what = match &c.field {
                Some(f) => format!("{} {f}", c.what),
                None => c.what.to_owned(),
            };
            let since = match probe.headers {
                Headers::Xen => Some(since_of(spec, &c.item, c.field.as_deref())),
                Headers::LinuxUapi => item.linux.as_deref().and_then(Version::parse),
            };
            // A set member's or sub-op's value is reported where that member is declared.
            if let (Some(part), "value") = (&c.field, c.what) {
                if let Some(loc) = part_loc(item, part) {
                    return Some((
                        c.item.clone(),
                        Some(part.clone()),
                        Some(c.what.to_owned()),
                        since,
                        loc.to_string(),
                    ));
                }
            }
            Some((
                c.item.clone(),
                None,
                Some(what),
                since,
                item.loc.to_string(),
            ))
        }
        Owner::Bits(item, member) => {
            let it = spec.find(item)?;
            let since = match probe.headers {
                Headers::Xen => Some(it.since),
                Headers::LinuxUapi => it.linux.as_deref().and_then(Version::parse),
            };
            Some((
                item.to_owned(),
                None,
                Some(format!("bitfield {member}")),
                since,
                it.loc.to_string(),
            ))
        }
        Owner::Include(h) => {
            let f = spec.files.iter().find(|f| f.header == h);
            let loc = f.map_or_else(|| "probe".to_owned(), |f| f.path.display().to_string());
            let what = if in_probe {
                "missing"
            } else {
                "does not compile"
            };
            // A header is as old as the oldest item the spec places in it.
            let since = f.and_then(|f| match probe.headers {
                Headers::Xen => f.items.iter().map(|i| i.since).min(),
                Headers::LinuxUapi => f
                    .items
                    .iter()
                    .map(|i| i.linux.as_deref().and_then(Version::parse))
                    .min()
                    .flatten(),
            });
            Some((
                format!("#include <{h}>"),
                None,
                Some(what.to_owned()),
                since,
                loc,
            ))
        }
    }
}

/// A named struct or union that C does not have, used as another one's field: most likely C
/// declares it inline there, without a name.
fn help(spec: &Spec, item: &str, msg: &str) -> Option<String> {
    if !(msg.contains("incomplete type") || msg.contains("undefined type")) {
        return None;
    }
    let it = spec.find(item)?;
    let c_name = it.c_name.as_deref()?;
    if !matches!(it.kind, ItemKind::Struct(_) | ItemKind::Union(_)) {
        return None;
    }
    let parent = spec.items().find_map(|(_, p)| match &p.kind {
        ItemKind::Struct(c) | ItemKind::Union(c) => c
            .fields
            .iter()
            .find(|f| matches!(&f.ty, crate::ty::Ty::Named(n) if *n == it.name))
            .map(|f| format!("`{}.{}`", p.name, f.name)),
        _ => None,
    })?;
    Some(format!(
        "these headers have no `{c_name}`; if C declares the type of {parent} inline (an anonymous struct or union), add `anonymous = true` to `{item}`; if the type is newer than these headers, its `since` says so"
    ))
}

/// Against a release's headers, an item they lack that the spec dates at or before the release:
/// most likely its `since` is too early.
fn dated_too_early(probe: &Probe, item: &str, since: Option<Version>, msg: &str) -> Option<String> {
    let r = probe.release?;
    let since = since?;
    let lacks = [
        "undeclared",
        "incomplete type",
        "undefined type",
        "has no member",
    ];
    if item.starts_with('#') || !lacks.iter().any(|l| msg.contains(l)) {
        return None;
    }
    Some(format!(
        "the Xen {r} headers lack it, but the spec dates it {since}: if it appeared in a later release, its `since` should say so (the release that added it)"
    ))
}

/// The release the spec dates an item, or one of its fields, members or sub-ops, to.
fn since_of(spec: &Spec, item: &str, field: Option<&str>) -> Version {
    let Some(it) = spec.find(item) else {
        return Version { major: 0, minor: 0 };
    };
    let Some(field) = field else {
        return it.since;
    };
    let found = match &it.kind {
        ItemKind::Struct(c) | ItemKind::Union(c) => {
            c.fields.iter().find(|f| f.name == field).map(|f| f.since)
        }
        ItemKind::Values(v) | ItemKind::Flags(v) => {
            v.members.iter().find(|m| m.name == field).map(|m| m.since)
        }
        ItemKind::Hypercall(h) => h.subops.iter().find(|s| s.name == field).map(|s| s.since),
        _ => None,
    };
    found.unwrap_or(it.since).max(it.since)
}

/// When everything that fails is dated (after the headers' release, presumably), say how to
/// probe the headers as the release they are.
fn hint(spec: &Spec, probe: &Probe, items: &[FailedItem], all_traced: bool) -> Option<String> {
    // `spec` names the newest release the plain probe expects.
    if probe.release.is_some() || items.is_empty() || !all_traced {
        return None;
    }
    // Every failing item must be dated (an include that fails is no release question).
    let oldest_failing = items.iter().map(|i| i.since).min()??;
    Some(if probe.headers == Headers::LinuxUapi {
        format!(
            "every item that fails is dated Linux {oldest_failing} or later, and without --linux-release the uapi headers must have everything. If they are an older kernel's, probe them as that release: `xen-abi-gen c-probe --uapi --linux-release K` with K their kernel release, before {oldest_failing} (Debian 12's linux-libc-dev: `--linux-release 6.1`); what the spec dates later must then be absent"
        )
    } else {
        format!(
            "every item that fails is dated Xen {oldest_failing} or later, and without --release the headers must be Xen {}'s (the spec's newest). If they are an older release's, probe them as that release: `xen-abi-gen c-probe --release R` with R their Xen release, before {oldest_failing} (Debian 12's libxen-dev: `--release 4.17`); what the spec dates later must then be absent",
            spec.xen
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gcc_diagnostics() {
        assert_eq!(
            diagnostic("/tmp/p/probe.c:33:57: error: invalid application of ‘sizeof’"),
            Some(("/tmp/p/probe.c", 33, "invalid application of ‘sizeof’"))
        );
        assert_eq!(
            diagnostic("probe.c:5:10: fatal error: xen/x.h: No such file or directory"),
            Some(("probe.c", 5, "xen/x.h: No such file or directory"))
        );
        assert_eq!(diagnostic("   33 |   /* 19: x */"), None);
        assert!(matches!(
            owner("  /* 19: ioctl_evtchn_bind size */ XEN_ABI_PROBE(sizeof(struct x)),"),
            Some(Owner::Check(19))
        ));
        assert!(matches!(
            owner("#include <xen/hvm/dm_op.h>"),
            Some(Owner::Include("xen/hvm/dm_op.h"))
        ));
        assert!(matches!(
            owner("#error \"missing header <xen/trial.h>\""),
            Some(Owner::Include("xen/trial.h"))
        ));
        assert!(matches!(
            owner("/* ioreq.flags member state */"),
            Some(Owner::Bits("ioreq", "state"))
        ));
    }
}

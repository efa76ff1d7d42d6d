//! The C conformance probe: a C file that includes the real Xen (or Linux uapi) headers and
//! records, for one architecture and one view, every size, alignment, field offset and constant
//! the spec describes, so they can be compared with the layout engine's numbers.
//!
//! The probe stores each value in one `unsigned int` array (low and high halves), so reading the
//! compiler's assembly output (`-S`) is enough to get the real numbers: no target machine is
//! needed to run anything, and a mismatch can name the item, the field, the expected and the
//! actual value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::arch::{Arch, View};
use crate::layout::Engine;
use crate::model::*;

/// Which headers the probe checks against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headers {
    /// Xen's public headers (libxen-dev), including Xen's copies of the Linux device headers
    /// (`xen/sys/*.h`).
    Xen,
    /// The Linux kernel's uapi headers (`<xen/privcmd.h>`, `<xen/evtchn.h>` from
    /// linux-libc-dev), for the `linux/*` spec files only.
    LinuxUapi,
}

/// One number the probe records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Spec item.
    pub item: String,
    /// Field or member, if any.
    pub field: Option<String>,
    /// What is measured: `size`, `align`, `offset`, `value` or `count` (the entries of a
    /// `c_array` set).
    pub what: &'static str,
    /// The spec's number.
    pub expected: u64,
    /// The C expression measured.
    pub expr: String,
}

/// A generated probe.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Architecture.
    pub arch: Arch,
    /// View.
    pub view: View,
    /// Header set.
    pub headers: Headers,
    /// The C source.
    pub source: String,
    /// One entry per recorded value, in array order.
    pub checks: Vec<Check>,
    /// Bitfield members: the bytes C produces when only that member is all-ones.
    pub bit_checks: Vec<BitCheck>,
    /// The release whose headers are probed, if the probe is for one (`--release`): items and
    /// members the spec dates later are checked to be absent instead of measured.
    pub release: Option<Version>,
    /// Types the spec dates after `release`: each must fail to compile on its own.
    pub absent_types: Vec<AbsentType>,
}

/// A name, type or field the spec says appeared after the probed release, so the release's
/// headers must not declare it: `probe_source` must fail to compile. (A compile test rather
/// than `#ifdef`: some constants are enumerators, e.g. Xen's errno values.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsentType {
    /// Spec item.
    pub item: String,
    /// The field or member (of a struct, value set or hypercall) when only it is newer.
    pub field: Option<String>,
    /// The spec's `since` (for the guest view of a header that was tools-only before its
    /// `guest_since`, the later of the two).
    pub since: Version,
    /// The release the spec dates it to, for messages (`Xen 4.15`, `Linux 6.7`).
    pub dated: String,
    /// The header the spec places it in.
    pub header: String,
    /// A translation unit that compiles only if the type exists.
    pub probe_source: String,
}

impl AbsentType {
    /// A set member or sub-op (a C name) of `item` that must not compile.
    fn name(item: &Item, name: &str, since: Version, header: &str) -> AbsentType {
        AbsentType {
            item: item.name.clone(),
            field: Some(name.to_owned()),
            since,
            dated: format!("Xen {since}"),
            header: header.to_owned(),
            probe_source: format!("(long long)({name})"),
        }
    }
}

/// A bitfield member whose position is checked by initialising it to all-ones in C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitCheck {
    /// Struct containing the bitfield group.
    pub item: String,
    /// The group's field in the spec (e.g. `flags`).
    pub field: String,
    /// The C member set to all-ones (e.g. `state`).
    pub member: String,
    /// The bytes of the struct the spec expects.
    pub expected: Vec<u8>,
}

impl BitCheck {
    /// Symbol of the probe object in the C source.
    pub fn symbol(index: usize) -> String {
        format!("xen_abi_bits_{index}")
    }
}

/// A difference between the spec and C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The check.
    pub check: Check,
    /// The value C has.
    pub actual: u64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.check;
        // A value (often a mask or flag) also in hex; sizes and offsets in decimal.
        let show = |v: u64| match c.what {
            "value" => crate::diag::show_int(i128::from(v)),
            _ => v.to_string(),
        };
        let (expected, actual) = (show(c.expected), show(self.actual));
        match &c.field {
            Some(fl) => write!(
                f,
                "{}.{}: {} expected {expected} (spec), actual {actual} (C: {})",
                c.item, fl, c.what, c.expr
            ),
            None => write!(
                f,
                "{}: {} expected {expected} (spec), actual {actual} (C: {})",
                c.item, c.what, c.expr
            ),
        }
    }
}

/// The C spelling of the uapi header for a spec header (`xen/sys/privcmd.h` → `xen/privcmd.h`).
fn uapi_header(h: &str) -> String {
    h.replace("xen/sys/", "xen/")
}

/// How C reaches the object of an item: a type name (in Xen's headers, Xen's spelling of a
/// Linux type that its `xen/sys` copy names differently), or a parent's member for anonymous
/// types.
fn c_access(spec: &Spec, item: &Item, headers: Headers) -> Option<CAccess> {
    let name = match (&item.xen_sys_c_name, headers) {
        (Some(x), Headers::Xen) => Some(x),
        _ => item.c_name.as_ref(),
    };
    if let Some(c) = name {
        return Some(CAccess {
            type_name: c.clone(),
            member: None,
        });
    }
    // Anonymous: find the (first) struct/union that has a field of this type.
    for (_, parent) in spec.items() {
        if let ItemKind::Struct(c) | ItemKind::Union(c) = &parent.kind {
            for f in &c.fields {
                if matches!(&f.ty, crate::ty::Ty::Named(n) if *n == item.name) {
                    let p = c_access(spec, parent, headers)?;
                    let member = match p.member {
                        Some(m) => format!("{m}.{}", f.name),
                        None => f.name.clone(),
                    };
                    return Some(CAccess {
                        type_name: p.type_name,
                        member: Some(member),
                    });
                }
            }
        }
    }
    None
}

struct CAccess {
    type_name: String,
    member: Option<String>,
}

impl CAccess {
    fn sizeof(&self) -> String {
        match &self.member {
            None => format!("sizeof({})", self.type_name),
            Some(m) => format!("sizeof(((const {} *)0)->{m})", self.type_name),
        }
    }

    fn alignof(&self) -> String {
        match &self.member {
            None => format!("__alignof__({})", self.type_name),
            Some(m) => format!("__alignof__(((const {} *)0)->{m})", self.type_name),
        }
    }

    fn offsetof(&self, field: &str) -> String {
        match &self.member {
            None => format!("offsetof({}, {field})", self.type_name),
            Some(m) => format!(
                "(offsetof({t}, {m}.{field}) - offsetof({t}, {m}))",
                t = self.type_name
            ),
        }
    }
}

/// Build the probe for `arch`, `view` and a header set.
pub fn c_probe(spec: &Spec, arch: Arch, view: View, headers: Headers) -> Probe {
    c_probe_for(spec, arch, view, headers, None)
}

/// Build the probe for one release's headers: what the spec dates at or before `release` is
/// measured as usual; what it dates later must be absent (a macro is recorded as `defined`,
/// expected 0; a type becomes an [`AbsentType`]). `None` measures everything.
pub fn c_probe_for(
    spec: &Spec,
    arch: Arch,
    view: View,
    headers: Headers,
    release: Option<Version>,
) -> Probe {
    probe_inner(spec, arch, view, headers, release, None)
}

/// Build the uapi probe for one Linux release (`"6.12"`): ioctls whose `linux` is later must be
/// absent from its headers, the rest must match.
pub fn c_probe_linux_for(spec: &Spec, arch: Arch, view: View, kernel: &str) -> Probe {
    probe_inner(
        spec,
        arch,
        view,
        Headers::LinuxUapi,
        None,
        Some(kernel_version(kernel)),
    )
}

fn probe_inner(
    spec: &Spec,
    arch: Arch,
    view: View,
    headers: Headers,
    release: Option<Version>,
    kernel: Option<Vec<u32>>,
) -> Probe {
    let engine = Engine::new(spec);
    let kernel_later = |linux: &Option<String>| match (&kernel, linux) {
        (Some(k), Some(l)) => kernel_version(l) > *k,
        _ => false,
    };
    let later_than_release = |since: Version| release.is_some_and(|r| since > r);
    let mut absent_types: Vec<AbsentType> = Vec::new();
    let mut checks: Vec<Check> = Vec::new();
    let mut bit_checks: Vec<BitCheck> = Vec::new();
    let mut bit_types: Vec<String> = Vec::new();
    let mut includes: Vec<String> = Vec::new();
    let guarded_out = |g: Option<CGuard>| {
        g.is_some_and(|g| !g.defined(arch, view, headers == Headers::LinuxUapi))
    };
    for f in &spec.files {
        let linux = f.rel_path.starts_with("linux/");
        if headers == Headers::LinuxUapi && !linux {
            continue;
        }
        let h = if headers == Headers::LinuxUapi {
            uapi_header(&f.header)
        } else {
            f.header.clone()
        };
        if !includes.contains(&h) {
            includes.push(h);
        }
        // Before `guest_since` the header showed the file's items to tools builds only.
        let floor = match (view, headers, f.guest_since) {
            (View::Guest, Headers::Xen, Some(g)) => g,
            _ => Version { major: 0, minor: 0 },
        };
        for item in &f.items {
            if !item.in_c || guarded_out(item.c_guard) {
                continue;
            }
            let floor = match (view, headers, item.guest_since) {
                (View::Guest, Headers::Xen, Some(g)) => g,
                _ => floor,
            };
            let later = |since: Version| later_than_release(since.max(floor));
            // Hypercall numbers live in xen.h, never behind a file's tools-only guard.
            let number_later = later_than_release(item.since);
            let mut push =
                |field: Option<&str>, what: &'static str, expected: u64, expr: String| {
                    checks.push(Check {
                        item: item.name.clone(),
                        field: field.map(str::to_owned),
                        what,
                        expected,
                        expr,
                    });
                };
            let absent = match &item.kind {
                ItemKind::Hypercall(_) => number_later,
                _ => later(item.since) || kernel_later(&item.linux),
            };
            if absent {
                // Absent from this release: no name or type of it may compile.
                let mut gone = |field: Option<&str>, since: Version, expr: String| {
                    absent_types.push(AbsentType {
                        item: item.name.clone(),
                        field: field.map(str::to_owned),
                        since: since.max(floor),
                        dated: format!("Xen {}", since.max(floor)),
                        header: f.header.clone(),
                        probe_source: expr,
                    });
                };
                if kernel_later(&item.linux) {
                    // Dated by the kernel: the uapi header of a release before it lacks it (a
                    // set: each of its members' macros).
                    let sources: Vec<(Option<&str>, String)> = match &item.kind {
                        ItemKind::Struct(_) | ItemKind::Union(_) => c_access(spec, item, headers)
                            .map(|acc| (None, acc.sizeof()))
                            .into_iter()
                            .collect(),
                        ItemKind::Values(v) | ItemKind::Flags(v) => v
                            .members
                            .iter()
                            .filter(|m| !guarded_out(m.c_guard))
                            .map(|m| (Some(m.name.as_str()), format!("(long long)({})", m.name)))
                            .collect(),
                        _ => vec![(None, format!("(long long)({})", item.name))],
                    };
                    for (field, probe_source) in sources {
                        absent_types.push(AbsentType {
                            item: item.name.clone(),
                            field: field.map(str::to_owned),
                            since: item.since,
                            dated: format!("Linux {}", item.linux.as_deref().unwrap_or("?")),
                            header: uapi_header(&f.header),
                            probe_source,
                        });
                    }
                    continue;
                }
                match &item.kind {
                    ItemKind::Const(_) | ItemKind::Ioctl(_) => {
                        gone(None, item.since, format!("(long long)({})", item.name));
                    }
                    // A table's member names are other headers' macros: the table is what
                    // must be missing.
                    ItemKind::Values(v) if v.c_array => {
                        gone(None, item.since, format!("sizeof({})", item.name));
                    }
                    ItemKind::Values(v) | ItemKind::Flags(v) => {
                        for m in &v.members {
                            if !guarded_out(m.c_guard) {
                                gone(Some(&m.name), m.since, format!("(long long)({})", m.name));
                            }
                        }
                    }
                    ItemKind::Hypercall(h) => {
                        if number_later {
                            gone(
                                None,
                                item.since,
                                format!("(long long)(__HYPERVISOR_{})", item.name),
                            );
                        }
                        for sub in &h.subops {
                            gone(
                                Some(&sub.name),
                                sub.since,
                                format!("(long long)({})", sub.name),
                            );
                        }
                    }
                    ItemKind::Typedef(_) | ItemKind::Struct(_) | ItemKind::Union(_) => {
                        if headers == Headers::LinuxUapi {
                            continue;
                        }
                        if let Some(acc) = c_access(spec, item, headers) {
                            // `probe_source` holds the expression until the includes are known.
                            gone(None, item.since, acc.sizeof());
                        }
                    }
                    ItemKind::Bitfield(_) => {}
                }
                continue;
            }
            match &item.kind {
                ItemKind::Const(c) => {
                    // A mask of a flag set: in an older release, the mask of its members then.
                    let value = match (&c.mask_of, release) {
                        (Some(m), Some(_)) => match spec.find(m).map(|i| &i.kind) {
                            Some(ItemKind::Flags(v)) => v
                                .members
                                .iter()
                                .filter(|x| !later(x.since))
                                .fold(0, |acc, x| acc | x.value),
                            _ => c.value,
                        },
                        _ => c.value,
                    };
                    push(None, "value", value as u64, item.name.clone());
                }
                ItemKind::Typedef(_) => {
                    if headers == Headers::LinuxUapi {
                        continue;
                    }
                    if let Ok(l) = engine.item(&item.name, arch, view) {
                        push(None, "size", l.size, format!("sizeof({})", item.name));
                        push(
                            None,
                            "align",
                            l.align,
                            format!("__alignof__({})", item.name),
                        );
                    }
                }
                ItemKind::Struct(c) | ItemKind::Union(c) => {
                    let Some(acc) = c_access(spec, item, headers) else {
                        continue;
                    };
                    let Ok(l) = engine.item(&item.name, arch, view) else {
                        continue;
                    };
                    let (size, align) = release_layout(&l, c, |f| later(f.since));
                    push(None, "size", size, acc.sizeof());
                    push(None, "align", align, acc.alignof());
                    for fl in &l.fields {
                        let Some(field) = c.fields.iter().find(|x| x.name == fl.name) else {
                            continue;
                        };
                        let is_bits = matches!(&field.ty, crate::ty::Ty::Named(n)
                            if matches!(spec.find(n).map(|i| &i.kind), Some(ItemKind::Bitfield(_))));
                        if is_bits && field.in_c && acc.member.is_none() {
                            if let crate::ty::Ty::Named(bn) = &field.ty {
                                if let Some(ItemKind::Bitfield(b)) = spec.find(bn).map(|i| &i.kind)
                                {
                                    for m in &b.members {
                                        let mut bytes = vec![0u8; l.size as usize];
                                        let mask: u128 = ((1u128 << m.width) - 1) << m.lsb;
                                        for (i, byte) in bytes
                                            .iter_mut()
                                            .enumerate()
                                            .skip(fl.offset as usize)
                                            .take(b.repr.size() as usize)
                                        {
                                            *byte = (mask >> (8 * (i - fl.offset as usize))) as u8;
                                        }
                                        bit_checks.push(BitCheck {
                                            item: item.name.clone(),
                                            field: fl.name.clone(),
                                            member: m.name.clone(),
                                            expected: bytes,
                                        });
                                        bit_types.push(acc.type_name.clone());
                                    }
                                }
                            }
                        }
                        if !field.in_c || is_bits {
                            continue;
                        }
                        if later(field.since) {
                            absent_types.push(AbsentType {
                                item: item.name.clone(),
                                field: Some(fl.name.clone()),
                                since: field.since.max(floor),
                                dated: format!("Xen {}", field.since.max(floor)),
                                header: f.header.clone(),
                                probe_source: acc.offsetof(&fl.name),
                            });
                            continue;
                        }
                        push(Some(&fl.name), "offset", fl.offset, acc.offsetof(&fl.name));
                    }
                }
                ItemKind::Values(v) | ItemKind::Flags(v) => {
                    if v.c_array {
                        // One entry per member the release has (a later one is only counted:
                        // its name is still defined, by another header).
                        let entries = v
                            .members
                            .iter()
                            .filter(|m| !guarded_out(m.c_guard) && !later(m.since))
                            .count();
                        push(
                            None,
                            "count",
                            entries as u64,
                            format!("sizeof({n}) / sizeof(({n})[0])", n = item.name),
                        );
                    }
                    for m in &v.members {
                        if guarded_out(m.c_guard) {
                            continue;
                        }
                        if v.c_array && later(m.since) {
                            continue;
                        }
                        if later(m.since) {
                            absent_types.push(AbsentType::name(
                                item,
                                &m.name,
                                m.since.max(floor),
                                &f.header,
                            ));
                            continue;
                        }
                        push(Some(&m.name), "value", m.value as u64, m.name.clone());
                    }
                }
                ItemKind::Bitfield(_) => {}
                ItemKind::Hypercall(h) => {
                    push(
                        None,
                        "value",
                        u64::from(h.number),
                        format!("__HYPERVISOR_{}", item.name),
                    );
                    for s in &h.subops {
                        if later(s.since) {
                            absent_types.push(AbsentType::name(
                                item,
                                &s.name,
                                s.since.max(floor),
                                &f.header,
                            ));
                            continue;
                        }
                        push(Some(&s.name), "value", s.value as u64, s.name.clone());
                    }
                }
                ItemKind::Ioctl(i) => {
                    if let Ok(v) = engine.ioctl_number(i, arch) {
                        push(None, "value", u64::from(v), item.name.clone());
                    }
                }
            }
        }
    }
    let mut src = String::new();
    let _ = writeln!(
        src,
        "/* @generated by xen-abi-gen c-probe: {arch}, {} view, {} headers. */",
        match view {
            View::Guest => "guest",
            View::Tools => "tools",
        },
        match headers {
            Headers::Xen => "Xen",
            Headers::LinuxUapi => "Linux uapi",
        }
    );
    if let Some(r) = release {
        let _ = writeln!(
            src,
            "/* Against the Xen {r} headers: later items must be absent. */"
        );
    }
    let prelude_start = src.len();
    // <errno.h>: Xenstore's xs_wire.h defines its error table only `#ifdef EINVAL`.
    let _ = writeln!(
        src,
        "#include <errno.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <sys/ioctl.h>"
    );
    match headers {
        Headers::Xen => {
            let _ = writeln!(src, "#include <xen/xen.h>");
        }
        Headers::LinuxUapi => {
            // The uapi headers use domid_t and xen_pfn_t from <xen/interface/xen.h>, a
            // kernel-internal header (evtchn.h without including it): the probe's include shim
            // provides it.
            let _ = writeln!(src, "#include <xen/interface/xen.h>");
        }
    }
    for h in &includes {
        let _ = writeln!(src, "#include <{h}>");
    }
    // Each absent type gets the probe's includes and one use of the type.
    let prelude = src[prelude_start..].to_owned();
    for t in &mut absent_types {
        t.probe_source = format!(
            "/* @generated by xen-abi-gen c-probe: {} must be absent from these headers. */\n{prelude}\nunsigned long xen_abi_absent = {};\n",
            t.item, t.probe_source
        );
    }
    let _ = writeln!(src, "\n#define XEN_ABI_PROBE(v) (unsigned int)((unsigned long long)(v) & 0xffffffffu), (unsigned int)((unsigned long long)(v) >> 32)");
    let _ = writeln!(
        src,
        "const unsigned int xen_abi_probe[] __attribute__((used)) = {{"
    );
    for (i, c) in checks.iter().enumerate() {
        let label = match &c.field {
            Some(f) => format!("{}.{f} {}", c.item, c.what),
            None => format!("{} {}", c.item, c.what),
        };
        let _ = writeln!(src, "  /* {i}: {label} */ XEN_ABI_PROBE({}),", c.expr);
    }
    let _ = writeln!(src, "}};");
    // Bitfield positions: each member set to all-ones, everything else zero; the object's bytes
    // appear in the assembly.
    for (i, (b, t)) in bit_checks.iter().zip(&bit_types).enumerate() {
        let _ = writeln!(
            src,
            "/* {}.{} member {} */\nstatic const union {{ {t} s; unsigned char b[sizeof({t})]; }} {} __attribute__((used)) = {{ .s = {{ .{} = -1 }} }};",
            b.item,
            b.field,
            b.member,
            BitCheck::symbol(i),
            b.member
        );
    }
    Probe {
        arch,
        view,
        headers,
        source: src,
        checks,
        bit_checks,
        release,
        absent_types,
    }
}

/// Size and alignment of a struct or union in a release that lacks the fields `absent` picks
/// (fields added later, at the end of a struct or as union members): the extent of the fields
/// it has, rounded up to their alignment. Without such fields, the layout's own.
fn release_layout(
    l: &crate::layout::ItemLayout,
    c: &Compound,
    absent: impl Fn(&Field) -> bool,
) -> (u64, u64) {
    let present: Vec<_> = l
        .fields
        .iter()
        .filter(|fl| {
            c.fields
                .iter()
                .find(|f| f.name == fl.name)
                .is_none_or(|f| !absent(f))
        })
        .collect();
    if present.len() == l.fields.len() || present.is_empty() {
        return (l.size, l.align);
    }
    let align = present.iter().map(|f| f.align).max().unwrap_or(1);
    let end = present.iter().map(|f| f.offset + f.size).max().unwrap_or(0);
    (end.div_ceil(align) * align, align)
}

/// The include shim for the Linux uapi headers: `xen/interface/xen.h` (path, contents).
pub const UAPI_SHIM: (&str, &str) = (
    "xen/interface/xen.h",
    "/* xen-abi-gen include shim: the Linux uapi xen headers need this kernel-internal header\n * for domid_t and xen_pfn_t, and gntdev.h grant_ref_t (from the kernel's grant_table.h). */\n#ifndef XEN_ABI_SHIM_XEN_H\n#define XEN_ABI_SHIM_XEN_H\n#include <stdint.h>\ntypedef uint16_t domid_t;\ntypedef uint32_t grant_ref_t;\n#if defined(__arm__) || defined(__aarch64__)\ntypedef uint64_t xen_pfn_t;\n#else\ntypedef unsigned long xen_pfn_t;\n#endif\n#endif\n",
);

/// Read the `xen_abi_probe` array out of the compiler's assembly output.
pub fn parse_asm(asm: &str) -> Result<Vec<u64>, String> {
    let mut words: Vec<u64> = Vec::new();
    let mut inside = false;
    for line in asm.lines() {
        let t = line.trim();
        if !inside {
            if t.starts_with("xen_abi_probe:") {
                inside = true;
            }
            continue;
        }
        let mut parts = t.split_whitespace();
        let dir = parts.next().unwrap_or("");
        let arg = parts.collect::<Vec<_>>().join(" ");
        match dir {
            ".long" | ".word" | ".4byte" | ".int" => {
                let v: i64 = parse_num(&arg).ok_or_else(|| format!("cannot read `{t}`"))?;
                words.push((v as u64) & 0xffff_ffff);
            }
            ".zero" | ".space" | ".skip" => {
                let n = parse_num(&arg).ok_or_else(|| format!("cannot read `{t}`"))?;
                if n % 4 != 0 {
                    return Err(format!("unaligned `{t}`"));
                }
                words.extend(std::iter::repeat_n(0, (n / 4) as usize));
            }
            _ => break,
        }
    }
    if !inside {
        return Err("no `xen_abi_probe` symbol in the assembly".into());
    }
    if words.len() % 2 != 0 {
        return Err("odd number of probe words".into());
    }
    Ok(words.chunks(2).map(|c| c[0] | (c[1] << 32)).collect())
}

fn parse_num(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Bytes of the data object at `label` in the assembly (x86 and Arm directive sizes).
pub fn parse_object(asm: &str, label: &str, arch: Arch) -> Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::new();
    let mut inside = false;
    let head = format!("{label}:");
    for line in asm.lines() {
        let t = line.trim();
        if !inside {
            inside = t == head;
            continue;
        }
        let (dir, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let arg = arg.trim();
        let width = match dir {
            ".byte" => 1,
            ".value" | ".short" | ".hword" | ".2byte" | ".half" => 2,
            ".word" if arch.is_arm() => 4,
            ".word" => 2,
            ".long" | ".int" | ".4byte" => 4,
            ".quad" | ".xword" | ".8byte" | ".dword" => 8,
            ".zero" | ".space" | ".skip" => {
                let n = parse_num(arg).ok_or_else(|| format!("cannot read `{t}`"))?;
                out.extend(std::iter::repeat_n(0u8, n as usize));
                continue;
            }
            _ => break,
        };
        for v in arg.split(',') {
            let v = parse_num(v).ok_or_else(|| format!("cannot read `{t}`"))? as u64;
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
    }
    if !inside {
        return Err(format!("no `{label}` object in the assembly"));
    }
    Ok(out)
}

/// A bitfield position that differs between the spec and C.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitMismatch {
    /// The check.
    pub check: BitCheck,
    /// The bytes C produced.
    pub actual: Vec<u8>,
}

impl std::fmt::Display for BitMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.check;
        let show = |b: &[u8]| {
            b.iter()
                .enumerate()
                .filter(|(_, x)| **x != 0)
                .map(|(i, x)| format!("byte {i} = {x:#04x}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "{}.{}: bitfield member `{}` expected {} (spec), actual {} (C)",
            c.item,
            c.field,
            c.member,
            show(&c.expected),
            show(&self.actual)
        )
    }
}

/// Compare every bitfield check with the objects in `asm`.
pub fn compare_bits(probe: &Probe, asm: &str) -> Result<Vec<BitMismatch>, String> {
    let mut out = Vec::new();
    for (i, c) in probe.bit_checks.iter().enumerate() {
        let actual = parse_object(asm, &BitCheck::symbol(i), probe.arch)?;
        if actual != c.expected {
            out.push(BitMismatch {
                check: c.clone(),
                actual,
            });
        }
    }
    Ok(out)
}

/// Compare the probe's expectations with the values C produced.
pub fn compare(probe: &Probe, actual: &[u64]) -> Result<Vec<Mismatch>, String> {
    if actual.len() != probe.checks.len() {
        return Err(format!(
            "the probe recorded {} values but {} were expected",
            actual.len(),
            probe.checks.len()
        ));
    }
    Ok(probe
        .checks
        .iter()
        .zip(actual)
        .filter(|(c, a)| c.expected != **a)
        .map(|(c, a)| Mismatch {
            check: c.clone(),
            actual: *a,
        })
        .collect())
}

/// Count checks per kind, for the report.
pub fn tally(probe: &Probe) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for c in &probe.checks {
        *m.entry(c.what).or_default() += 1;
    }
    if !probe.bit_checks.is_empty() {
        m.insert("bitfield", probe.bit_checks.len());
    }
    if !probe.absent_types.is_empty() {
        m.insert("absent", probe.absent_types.len());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_x86_and_arm_assembly() {
        let x86 = "\t.globl\txen_abi_probe\nxen_abi_probe:\n\t.long\t32\n\t.long\t0\n\t.zero\t8\n\t.long\t-1\n\t.long\t4294967295\n\t.size\txen_abi_probe, 24\n";
        assert_eq!(parse_asm(x86).unwrap(), vec![32, 0, u64::MAX]);
        let arm = "xen_abi_probe:\n\t.word\t4\n\t.word\t1\n\t.ident\t\"GCC\"\n";
        assert_eq!(parse_asm(arm).unwrap(), vec![(1 << 32) | 4]);
        assert!(parse_asm("nothing here").is_err());
        assert!(parse_asm("xen_abi_probe:\n\t.long\t1\n").is_err());
        assert!(parse_asm("xen_abi_probe:\n\t.zero\t3\n").is_err());
    }
}

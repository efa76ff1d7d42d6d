//! Turns parsed spec files into a validated [`Spec`], or spanned diagnostics.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::raw::{self, IntLit, PerArch, S};
use super::Source;
use crate::arch::{Arch, View};
use crate::diag::{Diagnostics, Loc, Sink, SourceMap};
use crate::layout::{Engine, LayoutError};
use crate::model::*;
use crate::names;
use crate::ty::{Int, Ty};

/// Context of one file.
struct Cx<'a> {
    map: &'a SourceMap,
    xen: Option<Version>,
    /// Whether the file is a Linux device ABI (`linux/*`), the only place `linux` may date.
    linux_file: bool,
    sink: &'a mut Sink,
}

impl Cx<'_> {
    fn at<T>(&self, s: &Spanned<T>) -> Loc {
        self.map.span(&s.span())
    }

    fn err(&mut self, loc: Loc, msg: impl Into<String>, help: impl Into<String>) {
        self.sink.error(loc, msg, help);
    }

    /// A `linux = "6.7"` key: a kernel release. Ioctls may carry it in any file; other items
    /// only in a `linux/*` file, the only place the uapi probe checks it.
    fn linux(&mut self, what: &str, linux: &Option<S>, anywhere: bool) -> Option<String> {
        let l = linux.as_ref()?;
        let loc = self.at(l);
        let text = l.get_ref();
        let parts: Vec<&str> = text.split('.').collect();
        let well_formed = (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !well_formed {
            self.err(
                loc,
                format!("{what} has `linux = \"{text}\"`, which is not a Linux release"),
                "write the release that introduced it, as \"6.7\" or \"2.6.38\"",
            );
            return None;
        }
        if !self.linux_file && !anywhere {
            self.err(
                loc,
                format!("{what} has a `linux` release, but its file is not a Linux device ABI"),
                "outside the linux/* files only ioctls take `linux`; Xen's items are dated by `since`",
            );
            return None;
        }
        Some(text.clone())
    }

    fn doc(&mut self, item_loc: Loc, what: &str, doc: &Option<S>) -> String {
        match doc {
            Some(d) if !d.get_ref().trim().is_empty() => d.get_ref().trim().to_owned(),
            Some(d) => {
                let loc = self.at(d);
                self.err(
                    loc,
                    format!("{what} has an empty `doc`"),
                    "say what it is and how it is used",
                );
                String::new()
            }
            None => {
                self.err(
                    item_loc,
                    format!("{what} has no `doc`"),
                    "every item needs a `doc` string",
                );
                String::new()
            }
        }
    }

    fn since(
        &mut self,
        item_loc: Loc,
        what: &str,
        since: &Option<S>,
        inherit: Option<Version>,
    ) -> Version {
        let fallback = Version { major: 0, minor: 0 };
        match since {
            Some(s) => match Version::parse(s.get_ref()) {
                Some(v) => {
                    if let Some(x) = self.xen {
                        if v > x {
                            let loc = self.at(s);
                            self.err(
                                loc,
                                format!("{what} has `since = \"{v}\"`, newer than the Xen release {x} this spec describes"),
                                "use the release that introduced it, at most the one in [spec] xen",
                            );
                        }
                    }
                    if v.major < 2 {
                        let loc = self.at(s);
                        self.err(
                            loc,
                            format!("{what} has `since = \"{v}\"`, which is not a Xen release"),
                            "Xen releases start at 2.0",
                        );
                    }
                    v
                }
                None => {
                    let loc = self.at(s);
                    self.err(
                        loc,
                        format!("bad `since` \"{}\" in {what}", s.get_ref()),
                        "write the Xen release as \"MAJOR.MINOR\", e.g. \"4.11\"",
                    );
                    fallback
                }
            },
            None => match inherit {
                Some(v) => v,
                None => {
                    self.err(
                        item_loc,
                        format!("{what} has no `since`"),
                        "add `since = \"4.x\"`: the Xen release that introduced it",
                    );
                    fallback
                }
            },
        }
    }

    fn guard(&mut self, g: &Option<S>) -> Option<CGuard> {
        let g = g.as_ref()?;
        match g.get_ref().as_str() {
            "tools" => Some(CGuard::Tools),
            "x86" => Some(CGuard::X86),
            "arm" => Some(CGuard::Arm),
            "xen-sys" => Some(CGuard::XenSys),
            "uapi" => Some(CGuard::Uapi),
            other => {
                let loc = self.at(g);
                self.err(loc, format!("unknown c_guard `{other}`"), "use \"tools\" (defined only with __XEN__ or __XEN_TOOLS__), \"x86\", \"arm\", \"xen-sys\" (only in Xen's xen/sys copy of a Linux header) or \"uapi\" (only in Linux's uapi header, not yet in Xen's copy)");
                None
            }
        }
    }

    fn name(&mut self, s: &S, what: &str) -> String {
        let n = s.get_ref();
        let ok = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            let loc = self.at(s);
            self.err(
                loc,
                format!("`{n}` is not a valid {what} name"),
                "names are C identifiers: letters, digits and `_`",
            );
        }
        n.clone()
    }

    fn ty(&mut self, s: &S) -> Option<Ty> {
        match Ty::parse(s.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => {
                let loc = self.at(s);
                self.err(loc, e.0, "types are u8..u64, i8..i64, u64_aligned, ulong, ptr, handle<T>, [T; N] or an item name");
                None
            }
        }
    }

    fn int_ty(&mut self, s: &S, what: &str) -> Option<Int> {
        let r = Int::parse(s.get_ref());
        if r.is_none() {
            let loc = self.at(s);
            self.err(
                loc,
                format!("{what} must be an integer type, not `{}`", s.get_ref()),
                "use one of u8, u16, u32, u64, i8, i16, i32, i64",
            );
        }
        r
    }

    fn int_value(&mut self, v: &Spanned<IntLit>, ty: Option<Int>, what: &str) -> i128 {
        let val = match v.get_ref().value() {
            Ok(x) => x,
            Err(e) => {
                let loc = self.at(v);
                self.err(loc, e, "write an integer, e.g. 42 or 0x2a");
                return 0;
            }
        };
        if let Some(t) = ty {
            let (lo, hi) = t.range();
            if val < lo || val > hi {
                let loc = self.at(v);
                self.err(
                    loc,
                    format!("value {val} of {what} does not fit its type {}", t.rust()),
                    format!(
                        "{} holds {lo}..={hi}; change the value or the type",
                        t.rust()
                    ),
                );
            }
        }
        val
    }

    fn per_arch(&mut self, p: &Option<Spanned<PerArch>>, what: &str) -> BTreeMap<Arch, u64> {
        let mut out = BTreeMap::new();
        let Some(p) = p else { return out };
        match p.get_ref() {
            PerArch::All(v) => {
                if *v <= 0 {
                    let loc = self.at(p);
                    self.err(loc, format!("{what} must be positive"), "");
                } else {
                    for a in Arch::ALL {
                        out.insert(a, *v as u64);
                    }
                }
            }
            PerArch::Each(m) => {
                for (k, v) in m {
                    match k.parse::<Arch>() {
                        Ok(a) if *v > 0 => {
                            out.insert(a, *v as u64);
                        }
                        Ok(_) => {
                            let loc = self.at(p);
                            self.err(loc, format!("{what} must be positive"), "");
                        }
                        Err(e) => {
                            let loc = self.at(p);
                            self.err(loc, format!("{e} in {what}"), "");
                        }
                    }
                }
            }
        }
        out
    }
}

struct Common<'r> {
    name: &'r S,
    doc: &'r Option<S>,
    since: &'r Option<S>,
    rust_name: &'r Option<S>,
    c_name: &'r Option<S>,
    c_guard: &'r Option<S>,
}

macro_rules! common {
    ($r:expr) => {
        Common {
            name: &$r.name,
            doc: &$r.doc,
            since: &$r.since,
            rust_name: &$r.rust_name,
            c_name: &$r.c_name,
            c_guard: &$r.c_guard,
        }
    };
}

/// A name in the global namespace and where it was declared.
struct NameEntry {
    loc: Loc,
    what: &'static str,
}

/// Validate parsed files into a [`Spec`].
pub fn validate(files: &[(Source, SourceMap, raw::File)]) -> Result<Spec, Diagnostics> {
    let mut sink = Sink::default();
    let mut out_files = Vec::new();
    let mut xen: Option<(Version, Loc)> = None;
    let mut iv: Option<(u32, Loc)> = None;

    for (src, map, f) in files {
        let h = f.spec.get_ref();
        let mut cx = Cx {
            map,
            xen: None,
            linux_file: src.rel_path.starts_with("linux/"),
            sink: &mut sink,
        };
        if *h.format.get_ref() != 1 {
            let loc = cx.at(&h.format);
            cx.err(
                loc,
                format!("unsupported spec format {}", h.format.get_ref()),
                "this generator reads `format = 1`",
            );
        }
        let file_xen = Version::parse(h.xen.get_ref());
        match (file_xen, &xen) {
            (None, _) => {
                let loc = cx.at(&h.xen);
                cx.err(
                    loc,
                    format!("bad Xen release \"{}\"", h.xen.get_ref()),
                    "write it as \"4.17\"",
                );
            }
            // Each file states the newest release it describes (its `since` values may not
            // be later); a file written for an older release stays valid beside newer ones
            // (e.g. an `include_spec!` file from before the in-tree spec moved on). The spec
            // describes the newest of them.
            (Some(v), Some((newest, _))) if v <= *newest => {}
            (Some(v), _) => xen = Some((v, cx.at(&h.xen))),
        }
        let ivv = *h.interface_version.get_ref();
        match (u32::try_from(ivv), &iv) {
            (Err(_), _) => {
                let loc = cx.at(&h.interface_version);
                cx.err(
                    loc,
                    format!("interface_version {ivv:#x} does not fit 32 bits"),
                    "",
                );
            }
            (Ok(v), None) => iv = Some((v, cx.at(&h.interface_version))),
            (Ok(v), Some((first, first_loc))) if v != *first => {
                let loc = cx.at(&h.interface_version);
                cx.err(loc, format!("spec files disagree on interface_version: {v:#010x} here, {first:#010x} at {first_loc}"), "all files must pin the same __XEN_INTERFACE_VERSION__");
            }
            _ => {}
        }
        cx.xen = file_xen;
        for (s, what) in [(&h.header, "header"), (&h.doc, "doc")] {
            if s.get_ref().trim().is_empty() {
                let loc = cx.at(s);
                cx.err(loc, format!("[spec] {what} is empty"), "");
            }
        }
        let guest_since = match &h.guest_since {
            Some(g) => {
                let loc = cx.at(g);
                Some(cx.since(loc, "[spec] guest_since", &h.guest_since, None))
            }
            None => None,
        };
        let items = file_items(&mut cx, f);
        let module = src
            .rel_path
            .trim_end_matches(".toml")
            .replace(['/', '-', '.'], "_");
        out_files.push(SpecFile {
            rel_path: src.rel_path.clone(),
            path: src.path.clone(),
            module,
            header: h.header.get_ref().clone(),
            doc: h.doc.get_ref().trim().to_owned(),
            guest_since,
            items,
        });
    }
    out_files.sort_by(|a, b| a.module.cmp(&b.module));

    let spec = Spec {
        xen: xen.map(|x| x.0).unwrap_or(Version { major: 0, minor: 0 }),
        interface_version: iv.map(|x| x.0).unwrap_or(0),
        files: out_files,
    };
    check_names(&spec, &mut sink);
    // Layout only makes sense once names resolve.
    if sink.is_empty() {
        check_layouts(&spec, &mut sink);
    }
    sink.finish()?;
    Ok(spec)
}

fn mk_item(cx: &mut Cx<'_>, c: Common<'_>, table_loc: Loc, what: &str, kind: ItemKind) -> Item {
    let name = cx.name(c.name, what);
    let loc = cx.at(c.name);
    let label = format!("{what} `{name}`");
    let doc = cx.doc(table_loc.clone(), &label, c.doc);
    let since = cx.since(table_loc, &label, c.since, None);
    let c_guard = cx.guard(c.c_guard);
    let rust_name = match c.rust_name {
        Some(r) => cx.name(r, "Rust"),
        None => match kind {
            ItemKind::Const(_) | ItemKind::Ioctl(_) => name.clone(),
            ItemKind::Hypercall(_) => names::ident(&name),
            _ => names::type_name(&name),
        },
    };
    let anonymous = matches!(&kind, ItemKind::Struct(_) | ItemKind::Union(_))
        && c.c_name.as_ref().is_some_and(|s| s.get_ref().is_empty());
    let c_name = match (c.c_name, &kind) {
        _ if anonymous => None,
        (Some(s), _) => Some(s.get_ref().clone()),
        (None, ItemKind::Struct(_)) => Some(format!("struct {name}")),
        (None, ItemKind::Union(_)) => Some(format!("union {name}")),
        (None, _) => Some(name.clone()),
    };
    Item {
        name,
        rust_name,
        c_name,
        xen_sys_c_name: None,
        doc,
        since,
        loc,
        in_c: true,
        c_guard,
        guest_since: None,
        linux: None,
        kind,
    }
}

fn file_items(cx: &mut Cx<'_>, f: &raw::File) -> Vec<Item> {
    let mut items = Vec::new();
    for r in &f.consts {
        let tl = cx.at(r);
        let r = r.get_ref();
        let ty = cx.int_ty(
            &r.ty,
            &format!("the type of constant `{}`", r.name.get_ref()),
        );
        let value = cx.int_value(&r.value, ty, &format!("constant `{}`", r.name.get_ref()));
        let kind = ItemKind::Const(Const {
            ty: ty.unwrap_or(Int::U32),
            value,
            mask_of: r.mask_of.as_ref().map(|m| m.get_ref().clone()),
        });
        let mut item = mk_item(cx, common!(r), tl, "constant", kind);
        item.in_c = r.in_c.unwrap_or(true);
        item.linux = cx.linux(&format!("constant `{}`", item.name), &r.linux, false);
        items.push(item);
    }
    for r in &f.typedef {
        let tl = cx.at(r);
        let r = r.get_ref();
        let td = match (&r.ty, &r.arch) {
            (Some(t), None) => cx.ty(t).map(Typedef::Same),
            (None, Some(m)) => {
                let mut per = BTreeMap::new();
                for (k, v) in m.get_ref() {
                    match k.parse::<Arch>() {
                        Ok(a) => {
                            if let Some(t) = cx.ty(v) {
                                per.insert(a, t);
                            }
                        }
                        Err(e) => {
                            let loc = cx.at(v);
                            cx.err(loc, e.to_string(), "");
                        }
                    }
                }
                let missing: Vec<_> = Arch::ALL
                    .iter()
                    .filter(|a| !per.contains_key(a))
                    .map(|a| a.name())
                    .collect();
                if !missing.is_empty() {
                    let loc = cx.at(m);
                    cx.err(
                        loc,
                        format!(
                            "typedef `{}` gives no type for {}",
                            r.name.get_ref(),
                            missing.join(", ")
                        ),
                        "an `arch` table must name all four architectures",
                    );
                    None
                } else {
                    Some(Typedef::PerArch(per))
                }
            }
            _ => {
                let loc = cx.at(&r.name);
                cx.err(
                    loc,
                    format!(
                        "typedef `{}` needs exactly one of `type` and `arch`",
                        r.name.get_ref()
                    ),
                    "",
                );
                None
            }
        };
        let kind = ItemKind::Typedef(td.unwrap_or(Typedef::Same(Ty::Int(Int::U8))));
        items.push(mk_item(cx, common!(r), tl, "typedef", kind));
    }
    for (list, is_union) in [(&f.structs, false), (&f.union, true)] {
        for r in list {
            let tl = cx.at(r);
            let r = r.get_ref();
            let what = if is_union { "union" } else { "struct" };
            let mut fields = Vec::new();
            let mut seen: HashMap<String, Loc> = HashMap::new();
            if r.fields.get_ref().is_empty() {
                let loc = cx.at(&r.fields);
                cx.err(
                    loc,
                    format!("{what} `{}` has no fields", r.name.get_ref()),
                    "C does not allow empty structs",
                );
            }
            for fl in r.fields.get_ref() {
                let fl_loc = cx.at(fl);
                let fl = fl.get_ref();
                let fname = cx.name(&fl.name, "field");
                let floc = cx.at(&fl.name);
                if let Some(prev) = seen.insert(fname.clone(), floc.clone()) {
                    cx.err(
                        floc.clone(),
                        format!(
                            "duplicate field `{fname}` in {what} `{}` (first at {prev})",
                            r.name.get_ref()
                        ),
                        "rename one of them",
                    );
                }
                let only = fl.only.as_ref().map(|o| {
                    let mut v = Vec::new();
                    for a in o.get_ref() {
                        match a.get_ref().parse::<Arch>() {
                            Ok(x) => v.push(x),
                            Err(e) => {
                                let loc = cx.at(a);
                                cx.err(loc, e.to_string(), "");
                            }
                        }
                    }
                    v
                });
                let since_struct = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
                // Without its own `since` a field shares its struct's (whose absence is
                // reported once, for the struct).
                let since = match &fl.since {
                    Some(_) => cx.since(
                        fl_loc.clone(),
                        &format!("field `{fname}`"),
                        &fl.since,
                        since_struct,
                    ),
                    None => since_struct.unwrap_or(Version { major: 0, minor: 0 }),
                };
                if let (Some(f), Some(st)) = (&fl.since, since_struct) {
                    if since < st {
                        let loc = cx.at(f);
                        cx.err(
                            loc,
                            format!("field `{fname}` has `since = \"{since}\"`, older than its {what} ({st})"),
                            "a field cannot predate the type that holds it",
                        );
                    }
                }
                if let Some(ty) = cx.ty(&fl.ty) {
                    fields.push(Field {
                        since,
                        name: fname,
                        ty,
                        doc: fl
                            .doc
                            .as_ref()
                            .map(|d| d.get_ref().trim().to_owned())
                            .unwrap_or_default(),
                        only,
                        in_c: fl.in_c.unwrap_or(true),
                        loc: if fl.name.span().is_empty() {
                            fl_loc
                        } else {
                            floc
                        },
                    });
                }
            }
            let c = Compound {
                fields,
                expect_size: cx.per_arch(&r.size, "size"),
                expect_align: cx.per_arch(&r.align, "align"),
            };
            let kind = if is_union {
                ItemKind::Union(c)
            } else {
                ItemKind::Struct(c)
            };
            let mut item = mk_item(cx, common!(r), tl, what, kind);
            item.linux = cx.linux(&format!("{what} `{}`", item.name), &r.linux, false);
            if let Some(x) = &r.xen_sys_c_name {
                let loc = cx.at(x);
                if !cx.linux_file {
                    cx.err(
                        loc,
                        format!("{what} `{}` has a `xen_sys_c_name`, but its file is not a Linux device ABI", item.name),
                        "only the linux/* files describe a header that Xen copies into xen/sys",
                    );
                } else if r.anonymous {
                    cx.err(
                        loc,
                        format!(
                            "{what} `{}` is anonymous but has a `xen_sys_c_name`",
                            item.name
                        ),
                        "an anonymous type is reached through its parent; drop one of them",
                    );
                } else {
                    item.xen_sys_c_name = Some(x.get_ref().clone());
                }
            }
            if let Some(g) = &r.guest_since {
                let loc = cx.at(g);
                let label = format!("{what} `{}`", r.name.get_ref());
                item.guest_since = Some(cx.since(loc, &label, &r.guest_since, None));
            }
            if r.anonymous {
                if r.c_name.is_some() {
                    let loc = cx.at(&r.name);
                    cx.err(
                        loc,
                        format!(
                            "{what} `{}` is anonymous but has a `c_name`",
                            r.name.get_ref()
                        ),
                        "drop one of them",
                    );
                }
                item.c_name = None;
            }
            items.push(item);
        }
    }
    for r in &f.values {
        let tl = cx.at(r);
        let r = r.get_ref();
        let repr = cx.int_ty(
            &r.repr,
            &format!("the repr of value set `{}`", r.name.get_ref()),
        );
        let since_item = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
        let mut members = Vec::new();
        if r.members.is_empty() {
            let loc = cx.at(&r.name);
            cx.err(
                loc,
                format!("value set `{}` has no members", r.name.get_ref()),
                "",
            );
        }
        for m in &r.members {
            let ml = cx.at(m);
            let m = m.get_ref();
            let name = cx.name(&m.name, "member");
            let value = cx.int_value(&m.value, repr, &format!("member `{name}`"));
            let label = format!("member `{name}`");
            let doc = cx.doc(ml.clone(), &label, &m.doc);
            let since = cx.since(ml, &label, &m.since, since_item);
            let loc = cx.at(&m.name);
            members.push(Member {
                name,
                value,
                bit: None,
                doc,
                since,
                loc,
                c_guard: cx.guard(&m.c_guard),
            });
        }
        let prefix = r
            .prefix
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        let kind = ItemKind::Values(ValueSet {
            repr: repr.unwrap_or(Int::U32),
            prefix,
            members,
            c_array: r.c_array.unwrap_or(false),
        });
        let mut item = mk_item(cx, common!(r), tl, "value set", kind);
        item.linux = cx.linux(&format!("value set `{}`", item.name), &r.linux, false);
        items.push(item);
    }
    for r in &f.flags {
        let tl = cx.at(r);
        let r = r.get_ref();
        let repr = cx.int_ty(
            &r.repr,
            &format!("the repr of flag set `{}`", r.name.get_ref()),
        );
        let since_item = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
        let mut members = Vec::new();
        for m in &r.members {
            let ml = cx.at(m);
            let m = m.get_ref();
            let name = cx.name(&m.name, "flag");
            let bit = *m.bit.get_ref();
            let bits = repr.map(|t| t.bits()).unwrap_or(64);
            if bit < 0 || bit >= i64::from(bits) {
                let loc = cx.at(&m.bit);
                cx.err(
                    loc,
                    format!("bit {bit} of flag `{name}` is outside its {bits}-bit repr"),
                    format!("bits are numbered 0..{bits}"),
                );
            }
            let bit = bit.clamp(0, 63) as u32;
            let mloc = cx.at(&m.name);
            let label = format!("flag `{name}`");
            let doc = cx.doc(ml.clone(), &label, &m.doc);
            let since = cx.since(ml, &label, &m.since, since_item);
            members.push(Member {
                name,
                value: 1i128 << bit,
                bit: Some(bit),
                doc,
                since,
                loc: mloc,
                c_guard: None,
            });
        }
        let prefix = r
            .prefix
            .as_ref()
            .map(|p| p.get_ref().clone())
            .unwrap_or_default();
        let kind = ItemKind::Flags(ValueSet {
            repr: repr.unwrap_or(Int::U32),
            prefix,
            members,
            c_array: false,
        });
        let mut item = mk_item(cx, common!(r), tl, "flag set", kind);
        item.linux = cx.linux(&format!("flag set `{}`", item.name), &r.linux, false);
        items.push(item);
    }
    for r in &f.bitfield {
        let tl = cx.at(r);
        let r = r.get_ref();
        let repr = cx.int_ty(
            &r.repr,
            &format!("the repr of bitfield `{}`", r.name.get_ref()),
        );
        if repr.is_some_and(|t| t.signed()) {
            let loc = cx.at(&r.repr);
            cx.err(
                loc,
                format!("bitfield `{}` must have an unsigned repr", r.name.get_ref()),
                "",
            );
        }
        let bits = repr.map(|t| t.bits()).unwrap_or(64);
        let mut used = 0u128;
        let mut members = Vec::new();
        for m in &r.members {
            let ml = cx.at(m);
            let m = m.get_ref();
            let name = cx.name(&m.name, "bitfield member");
            let (lsb, width) = (*m.lsb.get_ref(), *m.width.get_ref());
            let end = i128::from(lsb) + i128::from(width);
            if width < 1 || lsb < 0 || end > i128::from(bits) {
                let loc = cx.at(&m.lsb);
                cx.err(
                    loc,
                    format!("bits {lsb}..{end} of `{name}` do not fit the {bits}-bit repr"),
                    "lsb + width must be at most the repr's width, width at least 1",
                );
            } else {
                let mask = ((1u128 << width) - 1) << lsb;
                if used & mask != 0 {
                    let loc = cx.at(&m.lsb);
                    cx.err(
                        loc,
                        format!("bits of `{name}` overlap an earlier member"),
                        "",
                    );
                }
                used |= mask;
            }
            let doc = cx.doc(ml, &format!("bitfield member `{name}`"), &m.doc);
            members.push(BitMember {
                name,
                lsb: lsb.clamp(0, 127) as u32,
                width: width.clamp(0, 64) as u32,
                doc,
            });
        }
        let kind = ItemKind::Bitfield(Bitfield {
            repr: repr.unwrap_or(Int::U8),
            members,
        });
        items.push(mk_item(cx, common!(r), tl, "bitfield", kind));
    }
    for r in &f.hypercall {
        let tl = cx.at(r);
        let r = r.get_ref();
        let hname = r.name.get_ref().clone();
        let number = *r.number.get_ref();
        if !(0..128).contains(&number) {
            let loc = cx.at(&r.number);
            cx.err(
                loc,
                format!("hypercall number {number} of `{hname}` is outside 0..128"),
                "the hypercall page has 128 slots",
            );
        }
        if r.args.len() > 5 {
            let loc = cx.at(&r.name);
            cx.err(
                loc,
                format!(
                    "hypercall `{hname}` has {} arguments; Xen takes at most 5",
                    r.args.len()
                ),
                "",
            );
        }
        let mut args = Vec::new();
        for a in &r.args {
            let a = a.get_ref();
            let aname = cx.name(&a.name, "argument");
            let ty = match a.ty.get_ref().as_str() {
                "ptr" => ArgTy::Ptr(a.points_to.as_ref().map(|p| p.get_ref().clone())),
                "ulong" => ArgTy::Ulong,
                s => match Int::parse(s) {
                    Some(i) => ArgTy::Int(i),
                    None => match Ty::parse(s) {
                        Ok(Ty::Named(n)) => ArgTy::Named(n),
                        _ => {
                            let loc = cx.at(&a.ty);
                            cx.err(loc, format!("argument `{aname}` of `{hname}` has type `{s}`, which is not a register type"), "use i32, u32, ulong, ptr or an integer typedef");
                            ArgTy::Ulong
                        }
                    },
                },
            };
            if a.points_to.is_some() && !matches!(ty, ArgTy::Ptr(_)) {
                let loc = cx.at(&a.ty);
                cx.err(
                    loc,
                    format!("argument `{aname}` has `points_to` but is not a `ptr`"),
                    "",
                );
            }
            args.push(Arg {
                name: aname,
                ty,
                doc: a
                    .doc
                    .as_ref()
                    .map(|d| d.get_ref().clone())
                    .unwrap_or_default(),
            });
        }
        let subop_arg = r.subop_arg.as_ref().and_then(|s| {
            let i = args.iter().position(|a| &a.name == s.get_ref());
            if i.is_none() {
                let loc = cx.at(s);
                cx.err(
                    loc,
                    format!(
                        "`subop_arg = \"{}\"` names no argument of `{hname}`",
                        s.get_ref()
                    ),
                    "name one of the hypercall's `args`",
                );
            }
            i
        });
        if !r.subop.is_empty() && r.subop_arg.is_none() {
            let loc = cx.at(&r.name);
            cx.err(
                loc,
                format!("hypercall `{hname}` has sub-ops but no `subop_arg`"),
                "say which argument selects the sub-op",
            );
        }
        if !r.subop.is_empty()
            && args
                .iter()
                .filter(|a| matches!(a.ty, ArgTy::Ptr(_)))
                .count()
                != 1
        {
            let loc = cx.at(&r.name);
            cx.err(
                loc,
                format!("hypercall `{hname}` has sub-ops, so it needs exactly one `ptr` argument"),
                "",
            );
        }
        let sel_ty = subop_arg.and_then(|i| match &args[i].ty {
            ArgTy::Int(t) => Some(*t),
            ArgTy::Ulong => Some(Int::U32),
            _ => None,
        });
        let since_item = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
        let mut subops = Vec::new();
        for s in &r.subop {
            let sl = cx.at(s);
            let s = s.get_ref();
            let name = cx.name(&s.name, "sub-op");
            let value = cx.int_value(&s.value, sel_ty, &format!("sub-op `{name}`"));
            let arg = if s.arg.get_ref() == "none" {
                None
            } else {
                cx.ty(&s.arg)
            };
            let dir = match s.dir.get_ref().as_str() {
                "in" => Dir::In,
                "out" => Dir::Out,
                "inout" => Dir::InOut,
                "none" => Dir::None,
                d => {
                    let loc = cx.at(&s.dir);
                    cx.err(
                        loc,
                        format!("unknown direction `{d}` of sub-op `{name}`"),
                        "use in, out, inout or none",
                    );
                    Dir::None
                }
            };
            if (dir == Dir::None) != arg.is_none() {
                let loc = cx.at(&s.dir);
                cx.err(
                    loc,
                    format!(
                        "sub-op `{name}` has `dir = \"{}\"` but `arg = \"{}\"`",
                        s.dir.get_ref(),
                        s.arg.get_ref()
                    ),
                    "`arg = \"none\"` goes with `dir = \"none\"` and only with it",
                );
            }
            let label = format!("sub-op `{name}`");
            let doc = cx.doc(sl.clone(), &label, &s.doc);
            let since = cx.since(sl, &label, &s.since, since_item);
            subops.push(Subop {
                name,
                value,
                arg,
                dir,
                doc,
                since,
                loc: cx.at(&s.name),
            });
        }
        let kind = ItemKind::Hypercall(Hypercall {
            number: number.clamp(0, 127) as u32,
            args,
            subop_arg,
            subops,
        });
        items.push(mk_item(cx, common!(r), tl, "hypercall", kind));
    }
    for r in &f.ioctl {
        let tl = cx.at(r);
        let r = r.get_ref();
        let name = r.name.get_ref().clone();
        let dir = match r.dir.get_ref().as_str() {
            "none" => IocDir::None,
            "write" => IocDir::Write,
            "read" => IocDir::Read,
            "readwrite" => IocDir::ReadWrite,
            d => {
                let loc = cx.at(&r.dir);
                cx.err(
                    loc,
                    format!("unknown ioctl direction `{d}` of `{name}`"),
                    "use none, write, read or readwrite",
                );
                IocDir::None
            }
        };
        let byte = |v: &Spanned<i64>, what: &str, cx: &mut Cx<'_>| -> u8 {
            match u8::try_from(*v.get_ref()) {
                Ok(b) => b,
                Err(_) => {
                    let loc = cx.at(v);
                    cx.err(
                        loc,
                        format!("ioctl `{name}`: {what} {} does not fit 8 bits", v.get_ref()),
                        "",
                    );
                    0
                }
            }
        };
        let ty = byte(&r.ty, "type", cx);
        let nr = byte(&r.nr, "nr", cx);
        let arg = if r.arg.get_ref() == "none" {
            None
        } else {
            cx.ty(&r.arg)
        };
        let kind = ItemKind::Ioctl(Ioctl { dir, ty, nr, arg });
        let mut item = mk_item(cx, common!(r), tl, "ioctl", kind);
        item.linux = cx.linux(&format!("ioctl `{}`", item.name), &r.linux, true);
        if r.arg.get_ref() != "none" {
            // Errors about the argument type point at it.
            item.loc = cx.at(&r.arg);
        }
        items.push(item);
    }
    // Keep the file's order (the parser groups tables by kind).
    check_masks(cx, f, &items);
    check_linux_args(cx, &items);
    items.sort_by(|a, b| a.loc.cmp(&b.loc));
    items
}

/// An ioctl is no older than the argument struct it passes: a struct dated to a later kernel
/// would make the ioctl unusable on the releases in between.
fn check_linux_args(cx: &mut Cx<'_>, items: &[Item]) {
    for item in items {
        let ItemKind::Ioctl(i) = &item.kind else {
            continue;
        };
        let Some(Ty::Named(arg)) = &i.arg else {
            continue;
        };
        let Some(struct_linux) = items
            .iter()
            .find(|s| &s.name == arg)
            .and_then(|s| s.linux.as_ref())
        else {
            continue;
        };
        let older = match &item.linux {
            Some(l) => kernel_version(l) < kernel_version(struct_linux),
            None => true,
        };
        if older {
            let dated = match &item.linux {
                Some(l) => format!("Linux {l}"),
                None => "no Linux release".to_owned(),
            };
            cx.err(
                item.loc.clone(),
                format!(
                    "ioctl `{}` is dated {dated}, but its argument `{arg}` arrived in Linux {struct_linux}",
                    item.name
                ),
                "an ioctl cannot be older than its argument struct: give it `linux` at least the struct's",
            );
        }
    }
}

/// A `mask_of` constant names a flag set of the same file and equals the mask of its members.
fn check_masks(cx: &mut Cx<'_>, f: &raw::File, items: &[Item]) {
    for r in &f.consts {
        let r = r.get_ref();
        let Some(m) = &r.mask_of else { continue };
        let loc = cx.at(m);
        let flags = items.iter().find_map(|i| match &i.kind {
            ItemKind::Flags(v) if i.name == *m.get_ref() => Some(v),
            _ => None,
        });
        let Some(flags) = flags else {
            cx.err(
                loc,
                format!(
                    "constant `{}` has `mask_of = \"{}\"`, which is not a flag set of this file",
                    r.name.get_ref(),
                    m.get_ref()
                ),
                "name a [[flags]] item declared in the same file",
            );
            continue;
        };
        let all = flags.members.iter().fold(0i128, |acc, x| acc | x.value);
        let value = r.value.get_ref().value().unwrap_or(all);
        if value != all {
            cx.err(
                loc,
                format!(
                    "constant `{}` is {value:#x}, but the members of `{}` make {all:#x}",
                    r.name.get_ref(),
                    m.get_ref()
                ),
                "a mask_of constant must equal the OR of its flag set's members",
            );
        }
    }
}

fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .map(|c| (dist(name, c), c))
        .filter(|(d, _)| *d <= 2.max(name.len() / 4))
        .min()
        .map(|(_, c)| c)
}

fn check_names(spec: &Spec, sink: &mut Sink) {
    let mut names: BTreeMap<&str, NameEntry> = BTreeMap::new();
    let declare = |name: &str,
                   loc: &Loc,
                   what: &'static str,
                   sink: &mut Sink,
                   names: &mut BTreeMap<&str, NameEntry>| {
        if let Some(prev) = names.get(name) {
            sink.error(
                loc.clone(),
                format!(
                    "duplicate name `{name}`: already declared as a {} at {}",
                    prev.what, prev.loc
                ),
                "names are global across all spec files, as in C; remove or rename one",
            );
        }
        let _ = what;
    };
    for (_, item) in spec.items() {
        declare(&item.name, &item.loc, item.kind.keyword(), sink, &mut names);
        names.entry(&item.name).or_insert(NameEntry {
            loc: item.loc.clone(),
            what: item.kind.keyword(),
        });
        let members: Vec<(&str, &Loc, &'static str)> = match &item.kind {
            ItemKind::Values(v) | ItemKind::Flags(v) => v
                .members
                .iter()
                .map(|m| (m.name.as_str(), &m.loc, "set member"))
                .collect(),
            ItemKind::Hypercall(h) => h
                .subops
                .iter()
                .map(|s| (s.name.as_str(), &s.loc, "sub-op"))
                .collect(),
            _ => vec![],
        };
        for (n, loc, what) in members {
            declare(n, loc, what, sink, &mut names);
            names.entry(n).or_insert(NameEntry {
                loc: loc.clone(),
                what,
            });
        }
    }
    // Rust names must be unique too (two C names may map to one Rust name).
    let mut rust: BTreeMap<&str, &Item> = BTreeMap::new();
    for (_, item) in spec.items() {
        if let Some(prev) = rust.insert(&item.rust_name, item) {
            if prev.name != item.name {
                sink.error(
                    item.loc.clone(),
                    format!(
                        "`{}` and `{}` both become the Rust name `{}`",
                        prev.name, item.name, item.rust_name
                    ),
                    "give one of them a `rust_name`",
                );
            }
        }
    }
    let types: BTreeMap<&str, &Item> = spec.items().map(|(_, i)| (i.name.as_str(), i)).collect();
    let check_ref = |n: &str, loc: &Loc, ctx: &str, sink: &mut Sink| match types.get(n) {
        None => {
            let hint = closest(
                n,
                types
                    .values()
                    .filter(|i| i.kind.is_type())
                    .map(|i| i.name.as_str()),
            )
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
            sink.error(
                loc.clone(),
                format!("unknown type `{n}` in {ctx}"),
                format!("{hint}declare it in a spec file or fix the spelling"),
            );
        }
        Some(i) if !i.kind.is_type() => {
            sink.error(
                loc.clone(),
                format!("`{n}` in {ctx} is a {}, not a type", i.kind.keyword()),
                "",
            );
        }
        _ => {}
    };
    for (_, item) in spec.items() {
        let ctx = format!("{} `{}`", item.kind.keyword(), item.name);
        match &item.kind {
            ItemKind::Typedef(t) => {
                for a in Arch::ALL {
                    for r in t.on(a).refs() {
                        check_ref(r, &item.loc, &ctx, sink);
                    }
                }
            }
            ItemKind::Struct(c) | ItemKind::Union(c) => {
                for f in &c.fields {
                    for r in f.ty.refs() {
                        check_ref(r, &f.loc, &format!("field `{}` of {ctx}", f.name), sink);
                    }
                }
            }
            ItemKind::Hypercall(h) => {
                for a in &h.args {
                    match &a.ty {
                        ArgTy::Named(n) | ArgTy::Ptr(Some(n)) => check_ref(
                            n,
                            &item.loc,
                            &format!("argument `{}` of {ctx}", a.name),
                            sink,
                        ),
                        _ => {}
                    }
                }
                for s in &h.subops {
                    if let Some(t) = &s.arg {
                        for r in t.refs() {
                            check_ref(r, &s.loc, &format!("sub-op `{}`", s.name), sink);
                        }
                    }
                }
                if let Some(ItemKind::Const(c)) = types
                    .get(format!("__HYPERVISOR_{}", item.name).as_str())
                    .map(|i| &i.kind)
                {
                    if c.value != i128::from(h.number) {
                        sink.error(
                            item.loc.clone(),
                            format!(
                                "hypercall `{}` has number {} but __HYPERVISOR_{} is {}",
                                item.name, h.number, item.name, c.value
                            ),
                            "make them agree",
                        );
                    }
                }
            }
            ItemKind::Ioctl(i) => {
                if let Some(t) = &i.arg {
                    for r in t.refs() {
                        check_ref(r, &item.loc, &format!("the argument of {ctx}"), sink);
                    }
                }
            }
            _ => {}
        }
    }
}

fn check_layouts(spec: &Spec, sink: &mut Sink) {
    let engine = Engine::new(spec);
    for (_, item) in spec.items() {
        match &item.kind {
            ItemKind::Typedef(_) => {
                for arch in Arch::ALL {
                    if let Err(e) = engine.item(&item.name, arch, View::Guest) {
                        sink.error(
                            item.loc.clone(),
                            format!("typedef `{}`: {e}", item.name),
                            "a typedef must resolve to a type without going through itself",
                        );
                        break;
                    }
                }
            }
            ItemKind::Struct(c) | ItemKind::Union(c) => {
                let what = item.kind.keyword();
                for arch in Arch::ALL {
                    let l = match engine.item(&item.name, arch, View::Guest) {
                        Ok(l) => l,
                        Err(e @ LayoutError::Recursive(_)) | Err(e @ LayoutError::TooLarge(_)) => {
                            sink.error(item.loc.clone(), e.to_string(), "");
                            break;
                        }
                        Err(e) => {
                            sink.error(
                                item.loc.clone(),
                                format!("{what} `{}`: {e}", item.name),
                                "",
                            );
                            break;
                        }
                    };
                    if l.fields.is_empty() {
                        sink.error(item.loc.clone(), format!("{what} `{}` has no fields on {arch}", item.name), "every field has `only`, and none names this architecture; C does not allow empty structs");
                    }
                    for p in &l.padding {
                        match p.before {
                            Some(i) => {
                                let f = &c.fields[i];
                                let prev = c.fields[..i].iter().rev().find(|f| f.present_on(arch)).map(|f| format!("after `{}`", f.name)).unwrap_or_else(|| "at the start".into());
                                sink.error(
                                    f.loc.clone(),
                                    format!("implicit padding in {what} `{}` on {arch}: {} byte{} {prev}, before `{}` (offset {})", item.name, p.bytes, if p.bytes == 1 { "" } else { "s" }, f.name, p.offset),
                                    format!("declare it: {{ name = \"_padN\", type = \"[u8; {}]\" }}{}", p.bytes, if arch_dependent(c, &engine, arch) { " with `only = [...]` for the architectures that have it" } else { "" }),
                                );
                            }
                            None => sink.error(
                                item.loc.clone(),
                                format!("implicit trailing padding in {what} `{}` on {arch}: {} byte{} after the last field (size {} rounds up to {})", item.name, p.bytes, if p.bytes == 1 { "" } else { "s" }, p.offset, l.size),
                                format!("declare it as a last field: {{ name = \"_padN\", type = \"[u8; {}]\" }}", p.bytes),
                            ),
                        }
                    }
                    if let Some(&want) = c.expect_size.get(&arch) {
                        if want != l.size {
                            sink.error(item.loc.clone(), format!("{what} `{}` is declared {want} bytes on {arch} but lays out as {} bytes", item.name, l.size), "fix the field types or the declared `size`");
                        }
                    }
                    if let Some(&want) = c.expect_align.get(&arch) {
                        if want != l.align {
                            sink.error(item.loc.clone(), format!("{what} `{}` is declared {want}-aligned on {arch} but lays out {}-aligned", item.name, l.align), "fix the field types or the declared `align`");
                        }
                    }
                }
            }
            ItemKind::Ioctl(i) => {
                if let Some(t) = &i.arg {
                    for arch in Arch::ALL {
                        match engine.ty(t, arch, View::Guest) {
                            Ok(l) if l.size >= 1 << 14 => sink.error(item.loc.clone(), format!("argument of ioctl `{}` is {} bytes on {arch}; _IOC sizes must be below 16384", item.name, l.size), ""),
                            Ok(_) => {}
                            Err(e) => sink.error(item.loc.clone(), format!("ioctl `{}`: {e}", item.name), ""),
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn arch_dependent(c: &Compound, engine: &Engine<'_>, arch: Arch) -> bool {
    let _ = arch;
    c.fields.iter().any(|f| {
        let sizes: Vec<_> = Arch::ALL
            .iter()
            .filter_map(|a| engine.ty(&f.ty, *a, View::Guest).ok())
            .collect();
        sizes.windows(2).any(|w| w[0] != w[1])
    })
}

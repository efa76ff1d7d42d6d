//! Turns parsed spec files into a validated [`Spec`], or spanned diagnostics.

use std::collections::{BTreeMap, HashMap};

use toml::Spanned;

use super::raw::{self, IntLit, PerArch, S};
use super::Source;
use crate::arch::{Arch, View};
use crate::diag::{Diagnostics, Loc, Sink, SourceMap};
use crate::layout::{Engine, ItemLayout, LayoutError};
use crate::model::*;
use crate::names;
use crate::ty::{spec_name_of_c, Int, Ty};

/// Context of one file.
struct Cx<'a> {
    map: &'a SourceMap,
    xen: Option<Version>,
    /// Whether the file is a Linux device ABI (`linux/*`), the only place `linux` may date.
    linux_file: bool,
    /// The Rust module generated from the file.
    module: String,
    sink: &'a mut Sink,
    /// What the generated code will define at the top level of its modules, checked across
    /// all files once every file is read.
    defs: &'a mut Vec<Def>,
    /// Named types of hypercall register arguments, checked once every name is known.
    named_args: &'a mut Vec<NamedArg>,
}

/// A name the generated code defines at the top level of a module.
struct Def {
    /// The identifier, without `r#`.
    name: String,
    /// The module that defines it.
    module: String,
    /// Exported (then every generated module sees it through the glob re-exports) or private
    /// to its module.
    public: bool,
    /// The namespaces it takes: [`TYPES`], [`VALUES`] or both.
    ns: u8,
    /// Whether the emitter writes it as `r#name` when it is a keyword.
    raw_ok: bool,
    /// The spec key it comes from.
    loc: Loc,
    /// What defines it, for messages: struct `foo`.
    what: String,
    /// The spec name behind it and how it is derived (`size of foo`): two definitions with
    /// the same come from a duplicate C name, which is reported as such.
    c_name: String,
    /// How to rename it, for the help of a message.
    fix: &'static str,
}

/// The help for a name a `rust_name` key can change.
const RUST_NAME: &str = "give it a `rust_name`";
/// The help for a name only the spec name changes.
const RENAME: &str = "rename it";

/// Rust's type namespace (types, modules).
const TYPES: u8 = 1;
/// Rust's value namespace (constants, functions, tuple-struct constructors).
const VALUES: u8 = 2;

/// A hypercall argument whose type is an item name: it goes into a register through
/// `u64::from`, so it must be an unsigned integer on every architecture.
struct NamedArg {
    ty: String,
    loc: Loc,
    what: String,
}

/// The names of one generated `impl` block (or of one function's parameters): two spec keys
/// that produce the same name are an error at the second.
#[derive(Default)]
struct Scope {
    /// Name (without `r#`) → where and what first produced it (no place: the generated code
    /// itself).
    seen: HashMap<String, (Option<Loc>, String)>,
}

impl Scope {
    /// Record `name`, produced by `what` at `loc`; report it when taken. `name` may be a
    /// reserved name of the scope, given with `reserve`.
    fn add(&mut self, cx: &mut Cx<'_>, name: &str, loc: &Loc, what: &str, help: &str) {
        let key = names::unraw(name);
        match self.seen.get(key) {
            Some((None, prev)) => cx.err(
                loc.clone(),
                format!("{what} is `{name}`, which is taken by {prev}"),
                help,
            ),
            Some((Some(prev_loc), prev)) => cx.err(
                loc.clone(),
                format!("{what} is `{name}`, the same as {prev} at {prev_loc}"),
                help,
            ),
            None => {
                self.seen
                    .insert(key.to_owned(), (Some(loc.clone()), what.to_owned()));
            }
        }
    }

    /// A name the generated code itself uses in this scope.
    fn reserve(&mut self, name: &str, what: &str) {
        self.seen.insert(name.to_owned(), (None, what.to_owned()));
    }
}

/// Characters a doc string may not hold: the generated code carries docs as `///` comments,
/// where rustc refuses a carriage return that does not end a line and (deny-by-default lint
/// `text_direction_codepoint_in_comment`) the Unicode controls that reorder text.
fn bad_doc_char(text: &str) -> Option<&'static str> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() != Some(&'\n') {
            return Some("a carriage return (CR) that does not end a line");
        }
        if is_bidi_control(c) {
            return Some("a Unicode control character that changes the direction of text");
        }
    }
    None
}

/// The characters of rustc's `text_direction_codepoint_in_comment` lint.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
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
        // Plain decimal numbers: `6.07` would be a second spelling of `6.7`.
        let well_formed = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.len() <= 3
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (p.len() == 1 || !p.starts_with('0'))
            });
        if !well_formed {
            self.err(
                loc,
                format!("{what} has `linux = \"{text}\"`, which is not a Linux release"),
                "write the release that introduced it, as \"6.7\" or \"2.6.38\" (plain decimal numbers, no leading zeros)",
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

    /// Refuse what a doc string cannot carry into a `///` comment.
    fn doc_chars(&mut self, d: &S, what: &str) {
        if let Some(why) = bad_doc_char(d.get_ref()) {
            let loc = self.at(d);
            self.err(
                loc,
                format!("the doc of {what} contains {why}"),
                "the doc becomes `///` comments of the generated Rust, which cannot hold it: remove it (end lines with \\n)",
            );
        }
    }

    fn doc(&mut self, item_loc: Loc, what: &str, doc: &Option<S>) -> String {
        if let Some(d) = doc {
            self.doc_chars(d, what);
        }
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
                        format!(
                            "write the Xen release as \"MAJOR.MINOR\" in plain decimal, e.g. \"4.11\"{}",
                            Version::leading_zero_hint(s.get_ref())
                        ),
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
                // `unsigned long`, or `[unsigned char; 4]`: the part that is not a type.
                let bad =
                    e.0.strip_prefix('`')
                        .and_then(|r| r.strip_suffix("` is not a type"));
                let help = match bad.and_then(|b| spec_name_of_c(b).map(|n| (b, n))) {
                    Some((b, n)) => c_name_help(b, n),
                    None => "types are u8..u64, i8..i64, u64_aligned, ulong, ptr, handle<T>, [T; N] or an item name".to_owned(),
                };
                self.err(loc, e.0, help);
                None
            }
        }
    }

    fn int_ty(&mut self, s: &S, what: &str) -> Option<Int> {
        let r = Int::parse(s.get_ref());
        if r.is_none() {
            let loc = self.at(s);
            let help = match spec_name_of_c(s.get_ref()).filter(|n| Int::parse(n).is_some()) {
                Some(n) => c_name_help(s.get_ref(), n),
                None => "use one of u8, u16, u32, u64, i8, i16, i32, i64".to_owned(),
            };
            self.err(
                loc,
                format!("{what} must be an integer type, not `{}`", s.get_ref()),
                help,
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
    let mut defs = Vec::new();
    let mut named_args = Vec::new();

    for (src, map, f) in files {
        let h = f.spec.get_ref();
        let module = names::module_name(&src.rel_path);
        let mut cx = Cx {
            map,
            xen: None,
            linux_file: src.rel_path.starts_with("linux/"),
            module: module.clone(),
            sink: &mut sink,
            defs: &mut defs,
            named_args: &mut named_args,
        };
        // `generated/mod.rs` declares `pub mod <module>;`: the file's path must make an
        // identifier, distinct from every other file's and from every item's.
        let spec_loc = cx.at(&f.spec);
        cx.defs.push(Def {
            name: module.clone(),
            module: String::new(),
            public: true,
            ns: TYPES,
            raw_ok: false,
            loc: spec_loc,
            what: format!("file `{}` (its module)", src.rel_path),
            c_name: format!("file {}", src.rel_path),
            fix: "rename the file",
        });
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
                    format!(
                        "write it as \"4.17\"{}",
                        Version::leading_zero_hint(h.xen.get_ref())
                    ),
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
        cx.doc_chars(&h.doc, "the file ([spec] doc)");
        // The header's path goes into a `//!` line of the generated module.
        if h.header
            .get_ref()
            .chars()
            .any(|c| c.is_control() || is_bidi_control(c))
        {
            let loc = cx.at(&h.header);
            cx.err(
                loc,
                "[spec] header contains a control character",
                "write the header's path below /usr/include, e.g. \"xen/hvm/ioreq.h\"",
            );
        }
        let guest_since = match &h.guest_since {
            Some(g) => {
                let loc = cx.at(g);
                Some(cx.since(loc, "[spec] guest_since", &h.guest_since, None))
            }
            None => None,
        };
        let items = file_items(&mut cx, f);
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
    check_hypercall_numbers(&spec, &mut sink);
    check_defs(defs, &mut sink);
    check_named_args(&spec, &named_args, &mut sink);
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
    // The item's own name in the generated code (a hypercall with sub-ops only reserves it:
    // its sub-ops define the functions).
    cx.defs.push(Def {
        name: names::unraw(&rust_name).to_owned(),
        module: cx.module.clone(),
        public: true,
        // A type's name is kept free in both namespaces (tuple structs take both anyway), so
        // that an item's Rust name names one item.
        ns: if kind.is_type() {
            TYPES | VALUES
        } else {
            VALUES
        },
        raw_ok: c.rust_name.is_none() && matches!(kind, ItemKind::Hypercall(_)),
        loc: c
            .rust_name
            .as_ref()
            .map_or_else(|| loc.clone(), |r| cx.at(r)),
        what: label.clone(),
        c_name: name.clone(),
        fix: RUST_NAME,
    });
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
            // A union's members become methods beside the ones every union has.
            let mut methods = Scope::default();
            for m in names::UNION_METHODS {
                methods.reserve(m, &format!("the method `{m}()` every generated union has"));
            }
            let accessor_help = "rename one of the members: member `m` gets the methods `m()`, `set_m()` and `from_m()` (leading `_` dropped), and `bytes()` and `default()` are taken";
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
                } else if names::is_not_raw(&fname) {
                    cx.err(
                        floc.clone(),
                        format!(
                            "field `{fname}` of {what} `{}` cannot be a Rust name, not even as a raw identifier (`r#{fname}`)",
                            r.name.get_ref()
                        ),
                        "rename it (other Rust keywords are fine: they are written `r#name`)",
                    );
                } else if is_union {
                    let roles = ["the getter", "the setter", "the constructor"];
                    for (role, m) in roles.iter().zip(names::union_accessors(&fname)) {
                        methods.add(
                            cx,
                            &m,
                            &floc,
                            &format!("{role} of member `{fname}` of union `{}`", r.name.get_ref()),
                            accessor_help,
                        );
                    }
                }
                if let Some(d) = &fl.doc {
                    cx.doc_chars(d, &format!("field `{fname}`"));
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
                size_loc: r.size.as_ref().map(|s| cx.at(s)),
                align_loc: r.align.as_ref().map(|s| cx.at(s)),
            };
            let kind = if is_union {
                ItemKind::Union(c)
            } else {
                ItemKind::Struct(c)
            };
            let mut item = mk_item(cx, common!(r), tl, what, kind);
            item.linux = cx.linux(&format!("{what} `{}`", item.name), &r.linux, false);
            if is_union {
                cx.defs.push(Def {
                    name: names::size_const(&item.rust_name),
                    module: cx.module.clone(),
                    public: false,
                    ns: VALUES,
                    raw_ok: false,
                    loc: item.loc.clone(),
                    what: format!("the size constant of union `{}`", item.name),
                    c_name: format!("size of {}", item.name),
                    fix: RUST_NAME,
                });
            }
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
        set_member_names(cx, "value set", r.name.get_ref(), &prefix, &members);
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
        if repr.is_some_and(|t| t.signed()) {
            // `1 << (bits - 1)` does not fit a signed repr, and flags are bits, not numbers.
            let loc = cx.at(&r.repr);
            cx.err(
                loc,
                format!("flag set `{}` must have an unsigned repr", r.name.get_ref()),
                "use u8, u16, u32 or u64",
            );
        }
        let since_item = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
        let mut members = Vec::new();
        // Bit → the flag that has it: two flags on one bit would be one flag with two names,
        // which the spec format has no way to declare.
        let mut bit_owner: HashMap<i64, (String, Loc)> = HashMap::new();
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
            } else if let Some((prev, prev_loc)) = bit_owner.get(&bit) {
                let loc = cx.at(&m.bit);
                cx.err(
                    loc,
                    format!("flag `{name}` has bit {bit}, which flag `{prev}` at {prev_loc} already has"),
                    "give each flag its own bit; the spec format has no aliases, so drop one of them",
                );
            } else {
                let loc = cx.at(&m.bit);
                bit_owner.insert(bit, (name.clone(), loc));
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
        set_member_names(cx, "flag set", r.name.get_ref(), &prefix, &members);
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
        let mut seen: HashMap<String, Loc> = HashMap::new();
        // Each member's getter, builder and constants share the one impl block.
        let mut accessors = Scope::default();
        let accessor_help = "rename one of the members: member `m` gets `m()`, `with_m()`, `M_SHIFT` and `M_MASK` (leading `_` dropped)";
        for m in &r.members {
            let ml = cx.at(m);
            let m = m.get_ref();
            let name = cx.name(&m.name, "bitfield member");
            let nloc = cx.at(&m.name);
            let bf = r.name.get_ref();
            if let Some(prev) = seen.insert(name.clone(), nloc.clone()) {
                cx.err(
                    nloc.clone(),
                    format!("duplicate member `{name}` in bitfield `{bf}` (first at {prev})"),
                    "rename one of them",
                );
            } else if names::is_not_raw(&name) {
                cx.err(
                    nloc.clone(),
                    format!("the getter of member `{name}` of bitfield `{bf}` cannot be a Rust name, not even as a raw identifier (`r#{name}`)"),
                    "rename it (other Rust keywords are fine: they are written `r#name`)",
                );
            } else {
                let roles = [
                    "the getter",
                    "the builder",
                    "the shift constant",
                    "the mask constant",
                ];
                for (role, a) in roles.iter().zip(names::bitfield_accessors(&name)) {
                    let what = format!("{role} of member `{name}` of bitfield `{bf}`");
                    if !names::is_ident_shaped(names::unraw(&a)) {
                        cx.err(
                            nloc.clone(),
                            format!("{what} would be `{a}`, which is not a Rust identifier"),
                            "start the member's name (after any leading `_`) with a letter",
                        );
                        // Its other constant has the same problem: one error per member.
                        break;
                    } else {
                        accessors.add(cx, &a, &nloc, &what, accessor_help);
                    }
                }
            }
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
        // The arguments are the parameters of the wrapper functions, beside the backend.
        let mut params = Scope::default();
        for l in names::WRAPPER_LOCALS {
            params.reserve(l, &format!("`{l}` in the body of every hypercall wrapper"));
        }
        for a in &r.args {
            let a = a.get_ref();
            let aname = cx.name(&a.name, "argument");
            let aloc = cx.at(&a.name);
            let what = format!("argument `{aname}` of hypercall `{hname}`");
            if names::is_not_raw(&aname) {
                cx.err(
                    aloc,
                    format!(
                        "{what} cannot be a Rust name, not even as a raw identifier (`r#{aname}`)"
                    ),
                    "rename it (other Rust keywords are fine: they are written `r#name`)",
                );
            } else {
                params.add(
                    cx,
                    &aname,
                    &aloc,
                    &format!("the parameter of {what}"),
                    "rename the argument: it is a parameter of the hypercall's wrapper functions",
                );
            }
            if let Some(d) = &a.doc {
                cx.doc_chars(d, &what);
            }
            let ty = match a.ty.get_ref().as_str() {
                "ptr" => ArgTy::Ptr(a.points_to.as_ref().map(|p| p.get_ref().clone())),
                "ulong" => ArgTy::Ulong,
                s => match Int::parse(s) {
                    Some(i) => ArgTy::Int(i),
                    None => match Ty::parse(s) {
                        Ok(Ty::Named(n)) => {
                            let loc = cx.at(&a.ty);
                            cx.named_args.push(NamedArg {
                                ty: n.clone(),
                                loc,
                                what: what.clone(),
                            });
                            ArgTy::Named(n)
                        }
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
        // The sub-op constants have the selector's integer type, or u32 (as the emitter writes
        // them), and the selector register gets the value as `<value>u64`.
        let sel_ty = subop_arg.map(|i| match &args[i].ty {
            ArgTy::Int(t) => *t,
            _ => Int::U32,
        });
        let since_item = r.since.as_ref().and_then(|s| Version::parse(s.get_ref()));
        let mut subops = Vec::new();
        for s in &r.subop {
            let sl = cx.at(s);
            let s = s.get_ref();
            let name = cx.name(&s.name, "sub-op");
            let value = cx.int_value(&s.value, sel_ty, &format!("sub-op `{name}`"));
            // "void": a pointer the spec does not type (an architecture-specific structure).
            let arg = match s.arg.get_ref().as_str() {
                "none" | "void" => None,
                _ => cx.ty(&s.arg),
            };
            let untyped = s.arg.get_ref() == "void";
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
            if (dir == Dir::None) != (arg.is_none() && !untyped) {
                let loc = cx.at(&s.dir);
                cx.err(
                    loc,
                    format!(
                        "sub-op `{name}` has `dir = \"{}\"` but `arg = \"{}\"`",
                        s.dir.get_ref(),
                        s.arg.get_ref()
                    ),
                    "`arg = \"none\"` goes with `dir = \"none\"` and only with it (`arg = \"void\"`, an untyped pointer, needs a direction)",
                );
            }
            let label = format!("sub-op `{name}`");
            let doc = cx.doc(sl.clone(), &label, &s.doc);
            let since = cx.since(sl, &label, &s.since, since_item);
            let nloc = cx.at(&s.name);
            if subop_arg.is_some() {
                cx.defs.push(Def {
                    name: name.clone(),
                    module: cx.module.clone(),
                    public: true,
                    ns: VALUES,
                    raw_ok: false,
                    loc: nloc.clone(),
                    what: format!("sub-op `{name}` (a constant)"),
                    c_name: name.clone(),
                    fix: RENAME,
                });
                let hrust = match &r.rust_name {
                    Some(x) => x.get_ref().clone(),
                    None => names::ident(&hname),
                };
                let f = names::subop_fn(&hrust, &name);
                cx.defs.push(Def {
                    name: names::unraw(&f).to_owned(),
                    module: cx.module.clone(),
                    public: true,
                    ns: VALUES,
                    raw_ok: true,
                    loc: nloc,
                    what: format!("the wrapper function of sub-op `{name}`"),
                    c_name: format!("wrapper of {name}"),
                    fix: RENAME,
                });
            }
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
        if item.linux.is_some() {
            let loc = cx.at(&r.name);
            cx.defs.push(Def {
                name: names::linux_const(&item.rust_name),
                module: cx.module.clone(),
                public: true,
                ns: VALUES,
                raw_ok: false,
                loc,
                what: format!("the Linux release constant of ioctl `{}`", item.name),
                c_name: format!("linux of {}", item.name),
                fix: RUST_NAME,
            });
        }
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

/// The names a value or flag set's members get: an associated constant each (prefix removed,
/// upper-cased), which must differ, and a free constant with the C name.
fn set_member_names(cx: &mut Cx<'_>, kind: &str, set: &str, prefix: &str, members: &[Member]) {
    let mut consts = Scope::default();
    let help = if prefix.is_empty() {
        "rename one of them: the associated constant is the member's name upper-cased".to_owned()
    } else {
        format!("rename one of them, or change the set's `prefix`: the associated constant is the member's name without \"{prefix}\", upper-cased")
    };
    let mut c_names = std::collections::HashSet::new();
    for m in members {
        let what = format!(
            "the associated constant of member `{}` of {kind} `{set}`",
            m.name
        );
        let c = names::member_const(&m.name, prefix);
        if !c_names.insert(m.name.as_str()) {
            // A duplicate C name, reported as such.
        } else if c == "_" {
            // `const _` is no name: an impl block refuses it.
            cx.err(
                m.loc.clone(),
                format!("{what} would be `_`: nothing is left of `{}` once the prefix \"{prefix}\" is removed", m.name),
                help.clone(),
            );
        } else {
            consts.add(cx, &c, &m.loc, &what, &help);
        }
        cx.defs.push(Def {
            name: m.name.clone(),
            module: cx.module.clone(),
            public: true,
            ns: VALUES,
            raw_ok: false,
            loc: m.loc.clone(),
            what: format!("member `{}` of {kind} `{set}` (a free constant)", m.name),
            c_name: m.name.clone(),
            fix: RENAME,
        });
    }
}

/// An ioctl is no older than the argument struct it passes: a struct dated to a later kernel
/// would make the ioctl unusable on the releases in between.
fn check_linux_args(cx: &mut Cx<'_>, items: &[Item]) {
    // The first item of each name, as a scan would find it.
    let mut by_name: HashMap<&str, &Item> = HashMap::new();
    for i in items {
        by_name.entry(i.name.as_str()).or_insert(i);
    }
    for item in items {
        let ItemKind::Ioctl(i) = &item.kind else {
            continue;
        };
        let Some(Ty::Named(arg)) = &i.arg else {
            continue;
        };
        let Some(struct_linux) = by_name.get(arg.as_str()).and_then(|s| s.linux.as_ref()) else {
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
    let mut flag_sets: HashMap<&str, &ValueSet> = HashMap::new();
    for i in items {
        if let ItemKind::Flags(v) = &i.kind {
            flag_sets.entry(i.name.as_str()).or_insert(v);
        }
    }
    for r in &f.consts {
        let r = r.get_ref();
        let Some(m) = &r.mask_of else { continue };
        let loc = cx.at(m);
        let flags = flag_sets.get(m.get_ref().as_str()).copied();
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

/// "Did you mean" for unknown type names: the known name nearest by edit distance, within
/// `max(2, len / 4)` edits. A hint must not cost more than the check it decorates (a spec
/// with a megabyte-long name, or thousands of unknown names, took minutes), so the search is
/// bounded: names longer than [`Suggester::MAX_LEN`] get no hint, candidates whose length
/// alone puts them too far are not compared, each distinct name is searched once, and after a
/// fixed budget of work the remaining names get no hint.
struct Suggester<'a> {
    /// Candidates by length in bytes (names are ASCII identifiers).
    by_len: BTreeMap<usize, Vec<&'a str>>,
    memo: HashMap<String, Option<&'a str>>,
    /// Edit-distance table cells left to compute.
    budget: usize,
}

impl<'a> Suggester<'a> {
    /// No C identifier of the spec is anywhere near this long.
    const MAX_LEN: usize = 128;
    /// About a tenth of a second of a debug build.
    const BUDGET: usize = 4_000_000;

    fn new(candidates: impl Iterator<Item = &'a str>) -> Self {
        let mut by_len: BTreeMap<usize, Vec<&'a str>> = BTreeMap::new();
        for c in candidates.filter(|c| c.len() <= Self::MAX_LEN) {
            by_len.entry(c.len()).or_default().push(c);
        }
        Suggester {
            by_len,
            memo: HashMap::new(),
            budget: Self::BUDGET,
        }
    }

    fn closest(&mut self, name: &str) -> Option<&'a str> {
        if name.len() > Self::MAX_LEN {
            return None;
        }
        if let Some(m) = self.memo.get(name) {
            return *m;
        }
        let max = 2.max(name.len() / 4);
        let mut best: Option<(usize, &'a str)> = None;
        let lens = name.len().saturating_sub(max)..=name.len() + max;
        'search: for cands in self.by_len.range(lens).map(|(_, v)| v) {
            for &c in cands {
                let cost = (name.len() + 1) * (c.len() + 1);
                if cost > self.budget {
                    break 'search;
                }
                self.budget -= cost;
                if let Some(d) = bounded_distance(name.as_bytes(), c.as_bytes(), max) {
                    if best.is_none_or(|b| (d, c) < b) {
                        best = Some((d, c));
                    }
                }
            }
        }
        let found = best.map(|(_, c)| c);
        self.memo.insert(name.to_owned(), found);
        found
    }
}

/// Levenshtein distance of `a` and `b` if it is at most `max`.
fn bounded_distance(a: &[u8], b: &[u8], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        // Distances along a row never shrink further down: stop once all are too large.
        if cur.iter().all(|&d| d > max) {
            return None;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Some(prev[b.len()]).filter(|&d| d <= max)
}

/// No two hypercalls share a number. The error is at the newer of the two (the later `since`,
/// else the later in the spec), which is most likely the one just added, and names the other
/// with its position, whichever file it is in.
fn check_hypercall_numbers(spec: &Spec, sink: &mut Sink) {
    let mut first: BTreeMap<u32, &Item> = BTreeMap::new();
    for (_, item) in spec.items() {
        let ItemKind::Hypercall(h) = &item.kind else {
            continue;
        };
        let Some(prev) = first.get(&h.number).copied() else {
            first.insert(h.number, item);
            continue;
        };
        let (old, new) = if item.since < prev.since {
            (item, prev)
        } else {
            (prev, item)
        };
        sink.error(
            new.loc.clone(),
            format!(
                "hypercall `{}` has number {}, the same as hypercall `{}` at {}",
                new.name, h.number, old.name, old.loc
            ),
            format!(
                "hypercall numbers are unique: take this one from __HYPERVISOR_{} in C",
                new.name
            ),
        );
    }
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
    // Rust names (two C names may map to one) are checked by `check_defs`.
    let types: BTreeMap<&str, &Item> = spec.items().map(|(_, i)| (i.name.as_str(), i)).collect();
    let mut suggest = Suggester::new(
        types
            .values()
            .filter(|i| i.kind.is_type())
            .map(|i| i.name.as_str()),
    );
    let mut check_ref = |n: &str, loc: &Loc, ctx: &str, sink: &mut Sink| match types.get(n) {
        None => {
            let help = match spec_name_of_c(n) {
                Some(s) => c_name_help(n, s),
                None => {
                    let hint = suggest
                        .closest(n)
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    format!("{hint}declare it in a spec file or fix the spelling")
                }
            };
            sink.error(loc.clone(), format!("unknown type `{n}` in {ctx}"), help);
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

/// Every name the generated code defines at the top level of a module is an identifier that
/// is not a keyword (unless the emitter escapes it), does not shadow a name the generated code
/// relies on, and is defined once: `generated/mod.rs` re-exports every module's items with a
/// glob and every module glob-imports them all, so the public names of all modules share one
/// namespace (and a private one that of its module).
fn check_defs(mut defs: Vec<Def>, sink: &mut Sink) {
    defs.sort_by(|a, b| a.loc.cmp(&b.loc));
    // (name, namespace) → the first definition.
    let mut public: HashMap<(&str, u8), &Def> = HashMap::new();
    let mut private: HashMap<(&str, &str, u8), &Def> = HashMap::new();
    for d in &defs {
        let n = d.name.as_str();
        if n == "_" || !names::is_ident_shaped(n) {
            sink.error(
                d.loc.clone(),
                format!(
                    "{} becomes `{n}` in Rust, which is not an identifier",
                    d.what
                ),
                format!("{}: names start with a letter and are not `_`", d.fix),
            );
            continue;
        }
        if names::is_keyword(n) && (!d.raw_ok || names::is_not_raw(n)) {
            sink.error(
                d.loc.clone(),
                format!("{} becomes `{n}` in Rust, which is a Rust keyword", d.what),
                format!(
                    "{}: the generated code uses it as it is, and a keyword cannot name an item",
                    d.fix
                ),
            );
            continue;
        }
        if let Some(why) = names::shadows(n) {
            sink.error(
                d.loc.clone(),
                format!("{} becomes `{n}` in Rust, {why}", d.what),
                format!("{}: every generated module glob-imports the others, so `{n}` would clash with what the generated code means by it", d.fix),
            );
            continue;
        }
        // A private name only meets the names of its own module (its own and, shadowed by
        // it, the glob-imported ones the module does not use); a public one meets all.
        let m = d.module.as_str();
        let prev = [TYPES, VALUES]
            .into_iter()
            .filter(|ns| d.ns & ns != 0)
            .find_map(|ns| {
                if d.public {
                    public.get(&(n, ns)).or_else(|| private.get(&(m, n, ns)))
                } else {
                    private
                        .get(&(m, n, ns))
                        .or_else(|| public.get(&(n, ns)).filter(|p| p.module == d.module))
                }
                .copied()
            });
        match prev {
            Some(p) if p.c_name == d.c_name => {} // a duplicate C name, reported as such
            Some(p) => sink.error(
                d.loc.clone(),
                format!(
                    "{} becomes `{n}` in Rust, the same as {} at {}",
                    d.what, p.what, p.loc
                ),
                format!(
                    "{} (or change the other): the public names of all generated modules share one namespace",
                    d.fix
                ),
            ),
            None => {
                for ns in [TYPES, VALUES].into_iter().filter(|ns| d.ns & ns != 0) {
                    if d.public {
                        public.insert((n, ns), d);
                    } else {
                        private.insert((m, n, ns), d);
                    }
                }
            }
        }
    }
}

/// A hypercall argument of a named type is passed as `u64::from(arg)`, which exists for the
/// unsigned integers only.
fn check_named_args(spec: &Spec, args: &[NamedArg], sink: &mut Sink) {
    let items: HashMap<&str, &Item> = spec.items().map(|(_, i)| (i.name.as_str(), i)).collect();
    for a in args {
        for arch in Arch::ALL {
            // Follow typedefs (bounded: a cycle is reported elsewhere).
            let mut ty = Ty::Named(a.ty.clone());
            let mut steps = 0;
            let ok = loop {
                steps += 1;
                match &ty {
                    Ty::Int(i) => break !i.signed(),
                    Ty::U64Aligned | Ty::Ulong => break true,
                    Ty::Named(n) if steps < 64 => match items.get(n.as_str()).map(|i| &i.kind) {
                        Some(ItemKind::Typedef(t)) => ty = t.on(arch).clone(),
                        // Unknown names and non-types are reported by the name checks.
                        None
                        | Some(ItemKind::Const(_) | ItemKind::Hypercall(_) | ItemKind::Ioctl(_)) => {
                            break true
                        }
                        Some(_) => break false,
                    },
                    Ty::Named(_) => break true,
                    _ => break false,
                }
            };
            if !ok {
                sink.error(
                    a.loc.clone(),
                    format!(
                        "{} has type `{}`, which is not an unsigned integer on {arch}",
                        a.what, a.ty
                    ),
                    "a register argument of a named type must be a typedef of u8, u16, u32, u64, u64_aligned or ulong; use i32, u32, ulong or ptr otherwise",
                );
                break;
            }
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
                        let help = match e {
                            LayoutError::TooDeep(_) => "nest fewer named types",
                            LayoutError::Recursive(_) => {
                                "a typedef must resolve to a type without going through itself"
                            }
                            _ => "",
                        };
                        sink.error(
                            item.loc.clone(),
                            format!("typedef `{}`: {e}", item.name),
                            help,
                        );
                        break;
                    }
                }
            }
            ItemKind::Struct(c) | ItemKind::Union(c) => {
                let what = item.kind.keyword();
                // The architectures with each padding (position and size), for the `only` of
                // the help: computed once, not per error (a struct with thousands of padding
                // errors took minutes), and only for a struct that has padding.
                let mut pad_archs: Option<PadArchs> = None;
                for arch in Arch::ALL {
                    let l = match engine.item(&item.name, arch, View::Guest) {
                        Ok(l) => l,
                        Err(e @ LayoutError::Recursive(_))
                        | Err(e @ LayoutError::TooLarge(_))
                        | Err(e @ LayoutError::TooDeep(_)) => {
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
                        // C has no member there: the field is `in_c = false`, and `only` names
                        // exactly the architectures with this padding when some lack it.
                        let archs = pad_archs
                            .get_or_insert_with(|| padding_archs(&item.name, &engine))
                            .get(&(p.before, p.bytes))
                            .map(Vec::as_slice)
                            .unwrap_or(&[]);
                        let decl = pad_field(p.bytes, archs);
                        match p.before {
                            Some(i) => {
                                let f = &c.fields[i];
                                let prev = c.fields[..i].iter().rev().find(|f| f.present_on(arch)).map(|f| format!("after `{}`", f.name)).unwrap_or_else(|| "at the start".into());
                                sink.error(
                                    f.loc.clone(),
                                    format!("implicit padding in {what} `{}` on {arch}: {} byte{} {prev}, before `{}` (offset {})", item.name, p.bytes, if p.bytes == 1 { "" } else { "s" }, f.name, p.offset),
                                    format!("declare it before `{}`: {decl}", f.name),
                                );
                            }
                            None => sink.error(
                                item.loc.clone(),
                                format!("implicit trailing padding in {what} `{}` on {arch}: {} byte{} after the last field (size {} rounds up to {})", item.name, p.bytes, if p.bytes == 1 { "" } else { "s" }, p.offset, l.size),
                                format!("declare it as a last field: {decl}"),
                            ),
                        }
                    }
                    if let Some(&want) = c.expect_size.get(&arch) {
                        if want != l.size {
                            sink.error(c.size_loc.clone().unwrap_or_else(|| item.loc.clone()), format!("{what} `{}` is declared {want} bytes on {arch} but lays out as {} bytes", item.name, l.size), "fix the field types or the declared `size`");
                        }
                    }
                    if let Some(&want) = c.expect_align.get(&arch) {
                        if want != l.align {
                            sink.error(c.align_loc.clone().unwrap_or_else(|| item.loc.clone()), format!("{what} `{}` is declared {want}-aligned on {arch} but lays out {}-aligned", item.name, l.align), align_help(c, &l, arch, want));
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

/// Implicit paddings, by the field they precede (`None` at the end) and their size, with the
/// architectures that have each.
type PadArchs = BTreeMap<(Option<usize>, u64), Vec<Arch>>;

/// For each implicit padding of struct `name` (the field it precedes, or `None` at the end, and
/// its size), the architectures that have it.
fn padding_archs(name: &str, engine: &Engine<'_>) -> PadArchs {
    let mut out = PadArchs::new();
    for arch in Arch::ALL {
        if let Ok(l) = engine.item(name, arch, View::Guest) {
            for p in &l.padding {
                out.entry((p.before, p.bytes)).or_default().push(arch);
            }
        }
    }
    out
}

/// The spec field that names `bytes` of padding C leaves implicit on `archs`.
fn pad_field(bytes: u64, archs: &[Arch]) -> String {
    let only = if archs.is_empty() || archs.len() == Arch::ALL.len() {
        String::new()
    } else {
        let names: Vec<String> = archs.iter().map(|a| format!("\"{}\"", a.name())).collect();
        format!(", only = [{}]", names.join(", "))
    };
    format!("{{ name = \"_padN\", type = \"[u8; {bytes}]\"{only}, in_c = false }}")
}

/// The help of a declared alignment `want` that the layout `l` on `arch` does not have: the
/// fields decide the alignment, so a field is suggested first, and `align` only when the
/// declared size (if any) already holds.
fn align_help(c: &Compound, l: &ItemLayout, arch: Arch, want: u64) -> String {
    if let Some(&size) = c.expect_size.get(&arch) {
        if size != l.size {
            return format!(
                "the size differs too (declared {size}, lays out {}): fix the missing, extra or mistyped field or padding first; the fields decide the alignment",
                l.size
            );
        }
    }
    let or_align = format!(
        "or, if C's alignment is {}, declare `align` {}",
        l.align, l.align
    );
    if want < l.align {
        let f = l.fields.iter().find(|f| f.align > want);
        return match f {
            Some(f) => format!(
                "field `{}` is {}-aligned on {arch}: check its type, {or_align}",
                f.name, f.align
            ),
            None => or_align,
        };
    }
    let plain64 = c
        .fields
        .iter()
        .find(|f| f.present_on(arch) && matches!(f.ty, Ty::Int(Int::U64) | Ty::Int(Int::I64)));
    match plain64 {
        Some(f) if arch == Arch::X86_32 && want == 8 => format!(
            "`{}` is a plain 64-bit integer, 4-aligned on x86_32: a C `uint64_aligned_t` is `u64_aligned`",
            f.name
        ),
        _ => format!("no field is {want}-aligned on {arch}: a field is missing or mistyped, {or_align}"),
    }
}

/// The help for a C type name `c` where the spec spells it `spec`.
fn c_name_help(c: &str, spec: &str) -> String {
    format!("did you mean `{spec}`? the spec spells C's `{c}` as `{spec}`")
}

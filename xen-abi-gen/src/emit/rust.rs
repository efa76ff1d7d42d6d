//! Emits one Rust module per spec file for `xen-sys/src/generated/`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use crate::arch::{Arch, View};
use crate::layout::Engine;
use crate::model::*;
use crate::names;
use crate::ty::{Int, Ty};

/// A generated file: path relative to the output directory, and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutFile {
    /// File name, e.g. `hvm_ioreq.rs`.
    pub name: String,
    /// Formatted Rust source.
    pub text: String,
}

/// Why emission failed (a generator bug, never a spec problem: the spec was validated).
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The emitted code did not parse.
    #[error("internal error: generated code for `{module}` does not parse: {err}")]
    Syntax {
        /// Module.
        module: String,
        /// Parser message.
        err: String,
    },
    /// A layout failed although validation passed.
    #[error("internal error: layout of `{0}` failed: {1}")]
    Layout(String, String),
}

const DERIVES: &str = "#[derive(Clone, Copy, PartialEq, Eq, Hash, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::KnownLayout, zerocopy::Immutable)]";

fn lit(s: &str) -> String {
    format!("{s:?}")
}

fn docs(out: &mut String, doc: &str) {
    for line in doc.lines() {
        let _ = writeln!(out, "#[doc = {}]", lit(&format!(" {line}")));
    }
}

fn since_doc(out: &mut String, since: Version) {
    docs(out, &format!("\n*Since Xen {since}.*"));
}

fn cfg(arches: &[Arch]) -> String {
    let preds: Vec<String> = arches
        .iter()
        .map(|a| format!("target_arch = {}", lit(a.target_arch())))
        .collect();
    if preds.len() == 1 {
        format!("#[cfg({})]", preds[0])
    } else {
        format!("#[cfg(any({}))]", preds.join(", "))
    }
}

struct Emitter<'a> {
    /// Items by C name (what types refer to), so a lookup does not scan the spec.
    items: HashMap<&'a str, &'a Item>,
    engine: Engine<'a>,
}

impl<'a> Emitter<'a> {
    fn new(spec: &'a Spec) -> Self {
        let mut items = HashMap::new();
        for (_, i) in spec.items() {
            // The first of a name wins, as in `Spec::find` (a validated spec has no duplicates).
            items.entry(i.name.as_str()).or_insert(i);
        }
        Emitter {
            items,
            engine: Engine::new(spec),
        }
    }

    fn item(&self, name: &str) -> &'a Item {
        self.items
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("validated spec lacks `{name}`"))
    }
}

impl Emitter<'_> {
    fn rust_ty(&self, ty: &Ty) -> String {
        match ty {
            Ty::Int(i) => i.rust().to_owned(),
            Ty::U64Aligned => "u64".into(),
            Ty::Ulong => "core::ffi::c_ulong".into(),
            Ty::Ptr => "usize".into(),
            Ty::Handle(_) => "GuestHandle".into(),
            Ty::Array(t, n) => format!("[{}; {n}]", self.rust_ty(t)),
            Ty::Named(n) => self.item(n).rust_name.clone(),
        }
    }

    fn header(&self, out: &mut String, item: &Item) {
        docs(out, &item.doc);
        since_doc(out, item.since);
        if let Some(l) = &item.linux {
            docs(out, &format!("\nLinux {l} or later."));
        }
        if item.rust_name != item.name {
            let _ = writeln!(out, "#[doc(alias = {})]", lit(&item.name));
        }
    }

    fn abi_impl(&self, out: &mut String, item: &Item) {
        let c = item.c_name.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "impl XenAbi for {} {{ const C_NAME: &'static str = {}; const SINCE: XenVersion = XenVersion::new({}, {}); }}",
            item.rust_name,
            lit(&c),
            item.since.major,
            item.since.minor
        );
    }

    fn emit_const(&self, out: &mut String, item: &Item, c: &Const) {
        self.header(out, item);
        let _ = writeln!(
            out,
            "pub const {}: {} = {};",
            item.rust_name,
            c.ty.rust(),
            int_lit(c.value, c.ty)
        );
    }

    fn emit_typedef(&self, out: &mut String, item: &Item, t: &Typedef) {
        match t {
            Typedef::Same(ty) => {
                self.header(out, item);
                let _ = writeln!(out, "pub type {} = {};", item.rust_name, self.rust_ty(ty));
            }
            Typedef::PerArch(m) => {
                // Group architectures with the same Rust type.
                let mut groups: Vec<(String, Vec<Arch>)> = Vec::new();
                for (a, ty) in m {
                    let r = self.rust_ty(ty);
                    match groups.iter_mut().find(|(t, _)| *t == r) {
                        Some((_, v)) => v.push(*a),
                        None => groups.push((r, vec![*a])),
                    }
                }
                for (r, arches) in groups {
                    self.header(out, item);
                    let on: Vec<_> = arches.iter().map(|a| a.name()).collect();
                    docs(out, &format!("\nThis is `{r}` on {}.", on.join(", ")));
                    let _ = writeln!(
                        out,
                        "{}\npub type {} = {};",
                        cfg(&arches),
                        item.rust_name,
                        r
                    );
                }
            }
        }
        for a in Arch::ALL {
            if let Ok(l) = self.engine.item(&item.name, a, View::Guest) {
                let _ = writeln!(
                    out,
                    "{} const _: () = {{ assert!(core::mem::size_of::<{n}>() == {}); assert!(core::mem::align_of::<{n}>() == {}); }};",
                    cfg(&[a]),
                    l.size,
                    l.align,
                    n = item.rust_name
                );
            }
        }
    }

    fn assertions(
        &self,
        out: &mut String,
        item: &Item,
        with_fields: bool,
    ) -> Result<(), EmitError> {
        for a in Arch::ALL {
            let l = self
                .engine
                .item(&item.name, a, View::Guest)
                .map_err(|e| EmitError::Layout(item.name.clone(), e.to_string()))?;
            let n = &item.rust_name;
            let _ = write!(
                out,
                "{} const _: () = {{ assert!(core::mem::size_of::<{n}>() == {}); assert!(core::mem::align_of::<{n}>() == {});",
                cfg(&[a]),
                l.size,
                l.align
            );
            if with_fields {
                for f in &l.fields {
                    let _ = write!(
                        out,
                        " assert!(core::mem::offset_of!({n}, {}) == {});",
                        names::ident(&f.name),
                        f.offset
                    );
                }
            }
            let _ = writeln!(out, " }};");
        }
        Ok(())
    }

    fn emit_struct(&self, out: &mut String, item: &Item, c: &Compound) -> Result<(), EmitError> {
        self.header(out, item);
        let _ = writeln!(
            out,
            "#[repr(C)]\n{DERIVES}\n#[derive(Debug)]\npub struct {} {{",
            item.rust_name
        );
        for f in &c.fields {
            if !f.doc.is_empty() {
                docs(out, &f.doc);
            }
            if f.since > item.since {
                since_doc(out, f.since);
            }
            if let Some(only) = &f.only {
                let _ = writeln!(out, "{}", cfg(only));
            }
            let _ = writeln!(
                out,
                "pub {}: {},",
                names::ident(&f.name),
                self.rust_ty(&f.ty)
            );
        }
        let _ = writeln!(out, "}}");
        let _ = writeln!(
            out,
            "impl Default for {0} {{ fn default() -> Self {{ zerocopy::FromZeros::new_zeroed() }} }}",
            item.rust_name
        );
        self.abi_impl(out, item);
        self.assertions(out, item, true)
    }

    fn emit_union(&self, out: &mut String, item: &Item, c: &Compound) -> Result<(), EmitError> {
        let n = &item.rust_name;
        let mut sizes = Vec::new();
        for a in Arch::ALL {
            let l = self
                .engine
                .item(&item.name, a, View::Guest)
                .map_err(|e| EmitError::Layout(item.name.clone(), e.to_string()))?;
            sizes.push((a, l.size, l.align));
        }
        self.header(out, item);
        docs(out, "\nC union, held as its bytes with the C alignment; read and write members with the typed accessors (a member may be shorter than the union).");
        let _ = writeln!(out, "#[repr(C)]");
        let aligns: BTreeSet<u64> = sizes.iter().map(|s| s.2).collect();
        if aligns.len() == 1 {
            let _ = writeln!(out, "#[repr(align({}))]", sizes[0].2);
        } else {
            for (a, _, al) in &sizes {
                let _ = writeln!(
                    out,
                    "#[cfg_attr(target_arch = {}, repr(align({al})))]",
                    lit(a.target_arch())
                );
            }
        }
        let _ = writeln!(
            out,
            "{DERIVES}\npub struct {n} {{ bytes: [u8; {}] }}",
            names::size_const(n)
        );
        let size_set: BTreeSet<u64> = sizes.iter().map(|s| s.1).collect();
        if size_set.len() == 1 {
            let _ = writeln!(
                out,
                "const {}: usize = {};",
                names::size_const(n),
                sizes[0].1
            );
        } else {
            for (a, s, _) in &sizes {
                let _ = writeln!(
                    out,
                    "{} const {}: usize = {s};",
                    cfg(&[*a]),
                    names::size_const(n)
                );
            }
        }
        let _ = writeln!(out, "impl Default for {n} {{ fn default() -> Self {{ zerocopy::FromZeros::new_zeroed() }} }}");
        let _ = writeln!(out, "impl core::fmt::Debug for {n} {{ fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{ f.debug_struct({}).field(\"bytes\", &self.bytes).finish() }} }}", lit(n));
        let _ = writeln!(out, "impl {n} {{");
        let _ = writeln!(
            out,
            "/// The union's raw bytes.\npub fn bytes(&self) -> &[u8] {{ &self.bytes }}"
        );
        for f in &c.fields {
            let ty = self.rust_ty(&f.ty);
            let [id, set, from] = names::union_accessors(&f.name);
            let doc = if f.doc.is_empty() {
                format!("member `{}`", f.name)
            } else {
                f.doc.clone()
            };
            docs(out, &format!("Reads {doc}"));
            if f.since > item.since {
                since_doc(out, f.since);
            }
            let _ = writeln!(
                out,
                "pub fn {id}(&self) -> {ty} {{ read_prefix(&self.bytes) }}"
            );
            docs(
                out,
                &format!("Writes member `{}`, zeroing the rest of the union.", f.name),
            );
            let _ = writeln!(out, "pub fn {set}(&mut self, value: {ty}) {{ self.bytes = [0; {}]; write_prefix(&mut self.bytes, &value); }}", names::size_const(n));
            docs(
                out,
                &format!("A union holding member `{}` (rest zeroed).", f.name),
            );
            let _ = writeln!(out, "pub fn {from}(value: {ty}) -> Self {{ let mut u = Self::default(); u.{set}(value); u }}");
        }
        let _ = writeln!(out, "}}");
        for f in &c.fields {
            let _ = writeln!(
                out,
                "const _: () = assert!(core::mem::size_of::<{}>() <= {});",
                self.rust_ty(&f.ty),
                names::size_const(n)
            );
        }
        self.abi_impl(out, item);
        self.assertions(out, item, false)
    }

    fn emit_set(&self, out: &mut String, item: &Item, v: &ValueSet, flags: bool) {
        let n = &item.rust_name;
        let r = v.repr.rust();
        self.header(out, item);
        if flags {
            docs(
                out,
                "\nA set of flag bits; unknown bits are kept as they are.",
            );
        } else {
            docs(out, "\nAny value of the underlying integer is representable: a guest or a newer Xen may use values this spec does not know.");
        }
        let _ = writeln!(out, "#[repr(transparent)]\n{DERIVES}\n#[derive(Default, PartialOrd, Ord)]\npub struct {n}(pub {r});");
        let _ = writeln!(out, "impl {n} {{");
        for m in &v.members {
            docs(out, &m.doc);
            if m.since != item.since {
                since_doc(out, m.since);
            }
            let rust = names::member_const(&m.name, &v.prefix);
            // Without a prefix to strip (`xsd_errors`) the constant already has the C name.
            if rust != m.name {
                let _ = writeln!(out, "#[doc(alias = {})]", lit(&m.name));
            }
            let _ = writeln!(
                out,
                "pub const {rust}: Self = Self({});",
                int_lit(m.value, v.repr)
            );
        }
        let mut seen = BTreeSet::new();
        if flags {
            let all = v.members.iter().fold(0i128, |acc, m| acc | m.value);
            let _ = writeln!(
                out,
                "/// No flag set.\npub const fn empty() -> Self {{ Self(0) }}"
            );
            let _ = writeln!(
                out,
                "/// Every flag this spec knows.\npub const fn all() -> Self {{ Self({}) }}",
                int_lit(all, v.repr)
            );
            let _ = writeln!(
                out,
                "/// The raw bits.\npub const fn bits(self) -> {r} {{ self.0 }}"
            );
            let _ = writeln!(out, "/// Whether every bit of `other` is set in `self`.\npub const fn contains(self, other: Self) -> bool {{ self.0 & other.0 == other.0 }}");
            let _ = writeln!(out, "/// Bits set that this spec does not know.\npub const fn unknown_bits(self) -> {r} {{ self.0 & !{} }}", int_lit(all, v.repr));
        } else {
            let _ = writeln!(out, "/// The C name of a known value, `None` for any other value.\npub const fn name(self) -> Option<&'static str> {{ match self.0 {{");
            for m in &v.members {
                if seen.insert(m.value) {
                    let _ = writeln!(
                        out,
                        "{} => Some({}),",
                        int_lit(m.value, v.repr),
                        lit(&m.name)
                    );
                }
            }
            let _ = writeln!(out, "_ => None }} }}");
        }
        let _ = writeln!(out, "}}");
        if flags {
            for (tr, m, op) in [("BitOr", "bitor", "|"), ("BitAnd", "bitand", "&")] {
                let _ = writeln!(out, "impl core::ops::{tr} for {n} {{ type Output = Self; fn {m}(self, rhs: Self) -> Self {{ Self(self.0 {op} rhs.0) }} }}");
            }
            let _ = writeln!(out, "impl core::fmt::Debug for {n} {{ fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{ write!(f, \"{n}({{:#x}})\", self.0) }} }}");
        } else {
            let _ = writeln!(out, "impl core::fmt::Debug for {n} {{ fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {{ match self.name() {{ Some(s) => f.write_str(s), None => write!(f, \"{n}({{}})\", self.0) }} }} }}");
        }
        let _ = writeln!(
            out,
            "impl From<{r}> for {n} {{ fn from(v: {r}) -> Self {{ Self(v) }} }}"
        );
        let _ = writeln!(
            out,
            "impl From<{n}> for {r} {{ fn from(v: {n}) -> Self {{ v.0 }} }}"
        );
        self.abi_impl(out, item);
        // Free constants with the C names, for code ported from C.
        for m in &v.members {
            docs(
                out,
                &format!("`{}` as a plain integer ({}).", m.name, item.name),
            );
            let _ = writeln!(
                out,
                "pub const {}: {r} = {};",
                m.name,
                int_lit(m.value, v.repr)
            );
        }
    }

    fn emit_bitfield(&self, out: &mut String, item: &Item, b: &Bitfield) {
        let n = &item.rust_name;
        let r = b.repr.rust();
        self.header(out, item);
        docs(out, "\nThe whole group is one integer: read it once (as a plain integer) and decode the copy.");
        let _ = writeln!(
            out,
            "#[repr(transparent)]\n{DERIVES}\n#[derive(Default, Debug)]\npub struct {n}(pub {r});"
        );
        let _ = writeln!(out, "impl {n} {{");
        for m in &b.members {
            let [id, with, shift, mask_const] = names::bitfield_accessors(&m.name);
            let mask = (1u128 << m.width) - 1;
            let _ = writeln!(
                out,
                "/// Bit position of `{}`.\npub const {shift}: u32 = {};",
                m.name, m.lsb
            );
            let _ = writeln!(
                out,
                "/// Mask of `{}`, in place.\npub const {mask_const}: {r} = {:#x};",
                m.name,
                mask << m.lsb
            );
            docs(out, &m.doc);
            let _ = writeln!(
                out,
                "pub const fn {id}(self) -> {r} {{ (self.0 >> {}) & {:#x} }}",
                m.lsb, mask
            );
            docs(
                out,
                &format!(
                    "A copy with `{}` replaced by the low {} bit(s) of `value`.",
                    m.name, m.width
                ),
            );
            let _ = writeln!(out, "#[must_use]\npub const fn {with}(self, value: {r}) -> Self {{ Self((self.0 & !Self::{mask_const}) | ((value & {:#x}) << {})) }}", mask, m.lsb);
        }
        let _ = writeln!(out, "}}");
        self.abi_impl(out, item);
    }

    fn arg_rust(&self, t: &ArgTy) -> String {
        match t {
            ArgTy::Int(i) => i.rust().into(),
            ArgTy::Ulong => "u64".into(),
            ArgTy::Named(n) => self.item(n).rust_name.clone(),
            ArgTy::Ptr(Some(n)) => format!("*mut {}", self.item(n).rust_name),
            ArgTy::Ptr(None) => "*mut core::ffi::c_void".into(),
        }
    }

    fn emit_hypercall(&self, out: &mut String, item: &Item, h: &Hypercall) {
        let reg = |name: &str, t: &ArgTy| -> String {
            match t {
                ArgTy::Ptr(_) => format!("{name} as usize as u64"),
                ArgTy::Int(i) if i.signed() => format!("{name} as i64 as u64"),
                _ => format!("u64::from({name})"),
            }
        };
        let wrapper = |out: &mut String,
                       fname: &str,
                       doc: &str,
                       since: Version,
                       params: Vec<(String, String)>,
                       regs: Vec<String>,
                       mem: &str| {
            docs(out, doc);
            since_doc(out, since);
            docs(out, &format!("\nIssues hypercall `{}` (number {}) through the backend `h`.\n\n# Errors\n\nXen's negative return value, as [`XenErrno`].\n\n# Safety\n\n{mem}", item.name, h.number));
            let ps: Vec<String> = params.iter().map(|(n, t)| format!("{n}: {t}")).collect();
            let _ = writeln!(out, "pub unsafe fn {fname}<H: Hypercall + ?Sized>(h: &H, {}) -> Result<u64, XenErrno> {{", ps.join(", "));
            let mut regs = regs;
            regs.resize(5, "0".into());
            let _ = writeln!(
                out,
                "let ret = unsafe {{ h.hypercall({}, [{}]) }};\nhypercall_result(ret) }}",
                h.number,
                regs.join(", ")
            );
        };
        let ptr_safety = |dir: Dir, ty: &str| {
            match dir {
            Dir::In => format!("`arg` must point to a valid `{ty}` that the backend can hand to Xen (for privcmd: hypercall-buffer memory), readable for the whole call."),
            Dir::Out => format!("`arg` must point to memory for a `{ty}` that the backend can hand to Xen, writable for the whole call."),
            Dir::InOut => format!("`arg` must point to a valid `{ty}` that the backend can hand to Xen, readable and writable for the whole call."),
            Dir::None => "No memory is passed.".into(),
        }
        };
        match h.subop_arg {
            None => {
                let params: Vec<(String, String)> = h
                    .args
                    .iter()
                    .map(|a| (names::ident(&a.name), self.arg_rust(&a.ty)))
                    .collect();
                let regs = h
                    .args
                    .iter()
                    .map(|a| reg(&names::ident(&a.name), &a.ty))
                    .collect();
                wrapper(out, &item.rust_name, &item.doc, item.since, params, regs, "Every pointer argument must be valid as Xen documents for this hypercall, in memory the backend can hand to Xen.");
            }
            Some(sel) => {
                for s in &h.subops {
                    let mut params = Vec::new();
                    let mut regs = Vec::new();
                    let mut safety = String::from("No memory is passed.");
                    for (i, a) in h.args.iter().enumerate() {
                        let id = names::ident(&a.name);
                        if i == sel {
                            let v = match &a.ty {
                                ArgTy::Int(t) if t.signed() => format!("{} as i64 as u64", s.value),
                                _ => format!("{}u64", s.value),
                            };
                            regs.push(v);
                        } else if matches!(a.ty, ArgTy::Ptr(_)) {
                            match &s.arg {
                                None if s.dir == Dir::None => regs.push("0".into()),
                                // `arg = "void"`: a pointer to what the spec does not describe.
                                None => {
                                    let p = if s.dir == Dir::In { "*const" } else { "*mut" };
                                    params.push((id.clone(), format!("{p} core::ffi::c_void")));
                                    regs.push(reg(&id, &a.ty));
                                    safety = format!("`{id}` must point to the structure Xen documents for this sub-op (the spec does not describe its layout), in memory the backend can hand to Xen, {} for the whole call.", match s.dir {
                                        Dir::In => "readable",
                                        Dir::Out => "writable",
                                        _ => "readable and writable",
                                    });
                                }
                                Some(t) => {
                                    let rt = self.rust_ty(t);
                                    let p = if s.dir == Dir::In { "*const" } else { "*mut" };
                                    params.push((id.clone(), format!("{p} {rt}")));
                                    regs.push(reg(&id, &a.ty));
                                    safety =
                                        ptr_safety(s.dir, &rt).replace("`arg`", &format!("`{id}`"));
                                }
                            }
                        } else {
                            params.push((id.clone(), self.arg_rust(&a.ty)));
                            regs.push(reg(&id, &a.ty));
                        }
                    }
                    let fname = names::subop_fn(&item.rust_name, &s.name);
                    wrapper(
                        out,
                        &fname,
                        &format!("`{}`: {}", s.name, s.doc),
                        s.since,
                        params,
                        regs,
                        &safety,
                    );
                }
                // Sub-op numbers as constants.
                let sel_ty = match &h.args[sel].ty {
                    ArgTy::Int(i) => *i,
                    _ => Int::U32,
                };
                for s in &h.subops {
                    docs(out, &s.doc);
                    since_doc(out, s.since);
                    let _ = writeln!(
                        out,
                        "pub const {}: {} = {};",
                        s.name,
                        sel_ty.rust(),
                        int_lit(s.value, sel_ty)
                    );
                }
            }
        }
    }

    fn emit_ioctl(&self, out: &mut String, item: &Item, i: &Ioctl) -> Result<(), EmitError> {
        self.header(out, item);
        let dir = match i.dir {
            IocDir::None => "IOC_NONE",
            IocDir::Write => "IOC_WRITE",
            IocDir::Read => "IOC_READ",
            IocDir::ReadWrite => "IOC_READ | IOC_WRITE",
        };
        let size = match &i.arg {
            Some(t) => format!("core::mem::size_of::<{}>()", self.rust_ty(t)),
            None => "0".into(),
        };
        let _ = writeln!(
            out,
            "pub const {}: u32 = ioc({dir}, {:#04x}, {}, {size});",
            item.rust_name, i.ty, i.nr
        );
        for a in Arch::ALL {
            let v = self
                .engine
                .ioctl_number(i, a)
                .map_err(|e| EmitError::Layout(item.name.clone(), e.to_string()))?;
            let _ = writeln!(
                out,
                "{} const _: () = assert!({} == {v:#010x});",
                cfg(&[a]),
                item.rust_name
            );
        }
        if let Some(l) = &item.linux {
            // What a backend names when the running kernel lacks the ioctl (ENOTTY).
            let _ = writeln!(
                out,
                "/// The Linux release that introduced [`{0}`].\npub const {1}: &str = {2};",
                item.rust_name,
                names::linux_const(&item.rust_name),
                lit(l)
            );
        }
        Ok(())
    }
}

/// Where generated code lives: inside `xen-sys`, or in a downstream crate (`include_spec!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    /// `xen-sys/src/generated/`: sibling modules and `crate::abi`.
    XenSys,
    /// Another crate: everything from `::xen_sys`.
    Downstream,
}

impl Emitter<'_> {
    /// The items of one spec file as a parsed Rust file.
    fn module(&self, f: &crate::model::SpecFile, ctx: Context) -> Result<syn::File, EmitError> {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            match ctx {
                Context::XenSys => "#[allow(unused_imports)]\nuse super::*;\n#[allow(unused_imports)]\nuse crate::abi::*;",
                Context::Downstream => "#[allow(unused_imports)]\nuse ::xen_sys::*;\n#[allow(unused_imports)]\nuse ::xen_sys::abi::*;",
            }
        );
        for item in &f.items {
            match &item.kind {
                ItemKind::Const(c) => self.emit_const(&mut out, item, c),
                ItemKind::Typedef(t) => self.emit_typedef(&mut out, item, t),
                ItemKind::Struct(c) => self.emit_struct(&mut out, item, c)?,
                ItemKind::Union(c) => self.emit_union(&mut out, item, c)?,
                ItemKind::Values(v) => self.emit_set(&mut out, item, v, false),
                ItemKind::Flags(v) => self.emit_set(&mut out, item, v, true),
                ItemKind::Bitfield(b) => self.emit_bitfield(&mut out, item, b),
                ItemKind::Hypercall(h) => self.emit_hypercall(&mut out, item, h),
                ItemKind::Ioctl(i) => self.emit_ioctl(&mut out, item, i)?,
            }
        }
        syn::parse_file(&out).map_err(|e| {
            let dump = std::env::temp_dir().join(format!("xen-abi-gen-{}.rs", f.module));
            let _ = std::fs::write(&dump, &out);
            EmitError::Syntax {
                module: f.module.clone(),
                err: format!("{e} (unformatted source written to {})", dump.display()),
            }
        })
    }
}

/// The code of the spec file `rel_path` for a crate other than `xen-sys` (what
/// `include_spec!` expands to): items refer to `::xen_sys` for everything else.
pub fn downstream_module(spec: &Spec, rel_path: &str) -> Result<syn::File, EmitError> {
    let em = Emitter::new(spec);
    let f = spec
        .files
        .iter()
        .find(|f| f.rel_path == rel_path)
        .ok_or_else(|| EmitError::Syntax {
            module: rel_path.to_owned(),
            err: "no such spec file".into(),
        })?;
    em.module(f, Context::Downstream)
}

/// prettyplease drops comments, so the `// SAFETY:` comment of each wrapper's unsafe block is
/// added to the formatted text.
fn add_safety_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4096);
    for line in text.lines() {
        if line.trim_start().starts_with("let ret = unsafe {") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(indent);
            out.push_str("// SAFETY: the caller upholds this function's `# Safety` contract, which is the hypercall's.\n");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn int_lit(v: i128, ty: Int) -> String {
    if v < 0 {
        format!("{v}")
    } else if ty.size() >= 4 && v > 0xff {
        format!("{v:#x}")
    } else {
        format!("{v}")
    }
}

/// Generate every module plus `mod.rs`. `banner(rel_path)` gives the `@generated` line of the
/// module generated from that spec file (`None`: `mod.rs`).
pub fn generate(
    spec: &Spec,
    banner: &dyn Fn(Option<&str>) -> String,
) -> Result<Vec<OutFile>, EmitError> {
    let em = Emitter::new(spec);
    let mut files = Vec::new();
    let mut mod_rs = String::new();
    for f in &spec.files {
        let parsed = em.module(f, Context::XenSys)?;
        let body = add_safety_comments(&prettyplease::unparse(&parsed));
        let text = format!(
            "// {}\n//! {}\n//!\n//! From `abi-spec/{}` (C header `{}`).\n\n{body}",
            banner(Some(&f.rel_path)),
            f.doc.lines().next().unwrap_or(""),
            f.rel_path,
            f.header
        );
        files.push(OutFile {
            name: format!("{}.rs", f.module),
            text,
        });
        let _ = writeln!(
            mod_rs,
            "#[doc = {}]\npub mod {};\npub use self::{}::*;",
            lit(&format!(" {}", f.doc.lines().next().unwrap_or(""))),
            f.module,
            f.module
        );
    }
    let parsed = syn::parse_file(&mod_rs).map_err(|e| EmitError::Syntax {
        module: "mod".into(),
        err: e.to_string(),
    })?;
    files.push(OutFile {
        name: "mod.rs".into(),
        text: format!(
            "// {}\n//! Generated bindings, one module per spec file; everything is re-exported here.\n\n{}",
            banner(None),
            prettyplease::unparse(&parsed)
        ),
    });
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

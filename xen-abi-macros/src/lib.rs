//! `#[xen_abi]`: the compile-time ABI guarantees of the generated `xen-sys` types, for
//! hand-written types (a hypercall being prototyped, a private interface).
//!
//! ```
//! use xen_abi_macros::xen_abi;
//!
//! #[xen_abi(since = "4.18", size(x86_32 = 16, x86_64 = 16, arm32 = 16, arm64 = 16), offsets(addr = 8))]
//! #[repr(C)]
//! pub struct MyOp {
//!     pub domid: u16,
//!     pub pad: u16,
//!     pub count: u32,
//!     pub addr: u64,
//! }
//! ```
//!
//! The attribute refuses a type that is not `#[repr(C)]`, has implicit padding (naming the field
//! after which it appears, how many bytes and on which architectures), or uses a field type whose
//! layout depends on the architecture without saying so (`usize`, `isize`, pointers, references)
//! or is no ABI type at all (`bool`, `char`, floats, enums without an integer repr, types that do
//! not implement `xen_sys::XenAbi`). Every refusal is reported in one compile, each at the field
//! or argument it concerns. It emits the declared size/alignment (per `target_arch`) and offsets
//! as const assertions, derives zerocopy's
//! `FromBytes`/`IntoBytes`/`KnownLayout`/`Immutable` (the crate must depend on `zerocopy`) and
//! implements `xen_sys::XenAbi`. The layout rules are `xen-abi-gen`'s: there is one layout
//! engine.
//!
//! ## Declared layout
//!
//! `size(...)` and `align(...)` take a value per architecture (`x86_32`, `x86_64`, `arm32`,
//! `arm64`); `offsets(field = N, ...)` one value that holds on every architecture where the
//! field exists. When every field is an integer or an array of them, the macro lays the type out
//! for all four architectures itself and a wrong declaration fails to compile on any host, saying
//! both numbers: `` `Op`: size on x86_32 is 44, declared 48 ``. Otherwise (a field of another ABI
//! type) the const assertion of the architecture being compiled for says them, in the same words.
//!
//! ## Fields that exist on some architectures only
//!
//! C adds padding on some architectures only: a `uint64_t` after a `uint32_t` is at offset 4 on
//! x86_32 and at 8 elsewhere. The Rust type names that padding with a field under `#[cfg]`:
//!
//! ```
//! use xen_abi_macros::xen_abi;
//!
//! #[xen_abi(
//!     since = "4.18",
//!     size(x86_32 = 12, x86_64 = 16, arm32 = 16, arm64 = 16),
//!     offsets(count = 0, _pad0 = 4)
//! )]
//! #[repr(C)]
//! pub struct Counted {
//!     pub count: u32,
//!     #[cfg(not(target_arch = "x86"))]
//!     pub _pad0: [u8; 4],
//!     pub total: u64,
//! }
//! ```
//!
//! The macro evaluates a field's `#[cfg]` for each architecture it lays out, so the padding and
//! the declared layout are checked on all four whatever the host, and every item it emits that
//! names a field carries that field's `#[cfg]`: the type compiles on every target. An `offsets`
//! entry for such a field is asserted where the field exists. The predicates that decide per
//! architecture are accepted: `target_arch = "x86" | "x86_64" | "arm" | "aarch64"`,
//! `target_pointer_width = "32" | "64"`, and `any`, `all` and `not` of them. Any other
//! predicate on a field (a feature, `target_os`, `unix`, ...) is refused: the layout of an ABI
//! type does not depend on it. A field that exists on none of the four architectures, a type
//! left without fields on one, and a `#[cfg]` on a field of a tuple struct (which renumbers the
//! fields after it) are refused too. Union members may carry a `#[cfg]` the same way.
#![deny(clippy::undocumented_unsafe_blocks)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Fields, Ident, ItemStruct, LitInt, LitStr, Meta, Token, Type};
use xen_abi_gen::layout::Engine;
use xen_abi_gen::ty::Int;
use xen_abi_gen::Arch;

/// Attribute arguments: `since = "4.x"`, `c_name = "..."`, `size(arch = N, ...)`,
/// `align(arch = N, ...)`, `offsets(field = N, ...)`.
#[derive(Default)]
struct Args {
    since: Option<LitStr>,
    c_name: Option<LitStr>,
    size: Vec<(Arch, u64, Span)>,
    align: Vec<(Arch, u64, Span)>,
    /// `offsets(field = N, ...)`: expected offsets, the same on every architecture where the
    /// field exists (structs only).
    offsets: Vec<(Ident, u64)>,
}

fn per_arch(input: ParseStream<'_>) -> syn::Result<Vec<(Arch, u64, Span)>> {
    let content;
    syn::parenthesized!(content in input);
    let mut out = Vec::new();
    while !content.is_empty() {
        let id: Ident = content.parse()?;
        let arch: Arch = id
            .to_string()
            .parse()
            .map_err(|e: xen_abi_gen::arch::UnknownArch| Error::new(id.span(), e.to_string()))?;
        content.parse::<Token![=]>()?;
        let n: LitInt = content.parse()?;
        out.push((arch, n.base10_parse()?, id.span()));
        if !content.is_empty() {
            content.parse::<Token![,]>()?;
        }
    }
    Ok(out)
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut a = Args::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            match key.to_string().as_str() {
                "since" => {
                    input.parse::<Token![=]>()?;
                    a.since = Some(input.parse()?);
                }
                "c_name" => {
                    input.parse::<Token![=]>()?;
                    a.c_name = Some(input.parse()?);
                }
                "size" => a.size = per_arch(input)?,
                "offsets" => {
                    let content;
                    syn::parenthesized!(content in input);
                    while !content.is_empty() {
                        let f: Ident = content.parse()?;
                        content.parse::<Token![=]>()?;
                        let n: LitInt = content.parse()?;
                        a.offsets.push((f, n.base10_parse()?));
                        if !content.is_empty() {
                            content.parse::<Token![,]>()?;
                        }
                    }
                }
                "align" => a.align = per_arch(input)?,
                other => {
                    return Err(Error::new(
                        key.span(),
                        format!(
                        "unknown xen_abi argument `{other}` (expected since, c_name, size, align, offsets)"
                    ),
                    ))
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(a)
    }
}

/// Every refusal of one expansion, reported together.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn result<T>(&mut self, r: syn::Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Position of `arch` in [`Arch::ALL`], the order of every per-architecture array here.
fn arch_index(arch: Arch) -> usize {
    match arch {
        Arch::X86_32 => 0,
        Arch::X86_64 => 1,
        Arch::Arm32 => 2,
        Arch::Arm64 => 3,
    }
}

/// `x86_32`, `x86_32 and arm32`, `x86_64, arm32 and arm64`.
fn arch_list(arches: &[Arch]) -> String {
    match arches {
        [] => String::new(),
        [a] => a.to_string(),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(|a| a.to_string()).collect();
            format!("{} and {last}", init.join(", "))
        }
    }
}

/// A `#[cfg]` predicate true on exactly `arches` (a subset of [`Arch::ALL`], in its order), for
/// the hints of the padding refusals; `None` when that is every architecture.
fn cfg_for(arches: &[Arch]) -> Option<String> {
    let ta = |a: &Arch| format!("target_arch = {:?}", a.target_arch());
    let missing: Vec<Arch> = Arch::ALL
        .into_iter()
        .filter(|a| !arches.contains(a))
        .collect();
    Some(match (arches, missing.as_slice()) {
        (_, []) => return None,
        ([Arch::X86_32, Arch::Arm32], _) => "target_pointer_width = \"32\"".into(),
        ([Arch::X86_64, Arch::Arm64], _) => "target_pointer_width = \"64\"".into(),
        ([a], _) => ta(a),
        (_, [m]) => format!("not({})", ta(m)),
        _ => format!(
            "any({})",
            arches.iter().map(ta).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// A field's `#[cfg(...)]` predicate, as far as it decides per architecture.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cfg {
    /// `target_arch = "..."`.
    Arch(Arch),
    /// `target_pointer_width = "32" | "64"`, in bytes.
    PointerWidth(u64),
    Any(Vec<Cfg>),
    All(Vec<Cfg>),
    Not(Box<Cfg>),
}

const CFG_PREDICATES: &str = "#[xen_abi] decides for each architecture of Xen's ABI (x86_32, x86_64, arm32, arm64) whether a field exists, so a field's #[cfg] may use `target_arch` (\"x86\", \"x86_64\", \"arm\", \"aarch64\"), `target_pointer_width` (\"32\", \"64\"), and `any`, `all` and `not` of them";

impl Cfg {
    /// Whether the predicate holds on `arch`.
    fn holds(&self, arch: Arch) -> bool {
        match self {
            Cfg::Arch(a) => *a == arch,
            Cfg::PointerWidth(w) => arch.word() == *w,
            Cfg::Any(v) => v.iter().any(|c| c.holds(arch)),
            Cfg::All(v) => v.iter().all(|c| c.holds(arch)),
            Cfg::Not(c) => !c.holds(arch),
        }
    }

    /// The predicate of `#[cfg(PREDICATE)]`; anything that does not decide per architecture is
    /// refused, every such part at its own span.
    fn parse(meta: &Meta) -> syn::Result<Cfg> {
        let value = |v: &syn::Expr| -> syn::Result<LitStr> {
            match v {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Ok(s.clone()),
                other => Err(Error::new(other.span(), "expected a string literal")),
            }
        };
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("target_arch") => {
                let v = value(&nv.value)?;
                Arch::ALL
                    .into_iter()
                    .find(|a| a.target_arch() == v.value())
                    .map(Cfg::Arch)
                    .ok_or_else(|| {
                        Error::new(
                            v.span(),
                            format!(
                                "target_arch = {:?}: Xen's ABI is laid out for target_arch \"x86\", \"x86_64\", \"arm\" and \"aarch64\" only",
                                v.value()
                            ),
                        )
                    })
            }
            Meta::NameValue(nv) if nv.path.is_ident("target_pointer_width") => {
                let v = value(&nv.value)?;
                match v.value().as_str() {
                    "32" => Ok(Cfg::PointerWidth(4)),
                    "64" => Ok(Cfg::PointerWidth(8)),
                    other => Err(Error::new(
                        v.span(),
                        format!("target_pointer_width = {other:?}: the architectures of Xen's ABI have 32- and 64-bit pointers only"),
                    )),
                }
            }
            Meta::List(l) if ["any", "all", "not"].iter().any(|k| l.path.is_ident(k)) => {
                let inner = l.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
                let mut errors = Errors::default();
                let parts: Vec<Cfg> = inner
                    .iter()
                    .filter_map(|m| errors.result(Cfg::parse(m)))
                    .collect();
                errors.finish()?;
                if l.path.is_ident("any") {
                    Ok(Cfg::Any(parts))
                } else if l.path.is_ident("all") {
                    Ok(Cfg::All(parts))
                } else {
                    match <[Cfg; 1]>::try_from(parts) {
                        Ok([one]) => Ok(Cfg::Not(Box::new(one))),
                        Err(_) => Err(Error::new(
                            l.span(),
                            "`not(...)` takes exactly one predicate",
                        )),
                    }
                }
            }
            other => {
                let text = quote!(#other).to_string();
                Err(Error::new(
                    other.span(),
                    format!("`{text}` cannot be evaluated per architecture: {CFG_PREDICATES}"),
                ))
            }
        }
    }
}

/// A field of a struct or a member of a union, as the expansion sees it.
struct Member<'a> {
    field: &'a syn::Field,
    /// Its name in messages: the field's, or its index in a tuple struct.
    name: String,
    /// How `offset_of!` names it.
    access: proc_macro2::TokenStream,
    /// Its type was refused (the refusal is recorded).
    refused: bool,
    /// (size, align) per architecture when its layout is known now: a primitive integer or an
    /// array of them. Otherwise it is another ABI type, checked by a trait bound and by the
    /// const assertions.
    known: Option<Vec<(u64, u64)>>,
    /// The predicates of its `#[cfg(...)]` attributes (all must hold), as written.
    cfg: Vec<proc_macro2::TokenStream>,
    /// Whether it exists, per architecture.
    present: [bool; 4],
}

impl Member<'_> {
    /// Its `#[cfg]` as one predicate: `all(...)` of its attributes; `None` when it always exists.
    fn predicate(&self) -> Option<proc_macro2::TokenStream> {
        let cfg = &self.cfg;
        (!cfg.is_empty()).then(|| quote!(all(#(#cfg),*)))
    }

    /// Where refusals about the field point: its visibility, or its name, or its type.
    fn span(&self) -> Span {
        match (&self.field.vis, &self.field.ident) {
            (syn::Visibility::Inherited, Some(id)) => id.span(),
            (syn::Visibility::Inherited, None) => self.field.ty.span(),
            (vis, _) => vis.span(),
        }
    }
}

/// The fields of a struct or the members of a union (`what` says which, for messages), with
/// every refusal about them recorded in `errors`.
fn members<'a>(
    fields: impl IntoIterator<Item = &'a syn::Field>,
    what: &str,
    errors: &mut Errors,
) -> Vec<Member<'a>> {
    let mut out = Vec::new();
    for (i, field) in fields.into_iter().enumerate() {
        let (name, access) = match &field.ident {
            Some(id) => (id.to_string(), quote!(#id)),
            None => {
                let idx = syn::Index::from(i);
                (i.to_string(), quote!(#idx))
            }
        };
        let mut refused = false;
        if let Some(why) = refuse(&field.ty) {
            errors.push(Error::new(
                field.ty.span(),
                format!("{what} `{name}`: {why}"),
            ));
            refused = true;
        }
        let mut cfg = Vec::new();
        let mut present = [true; 4];
        for attr in &field.attrs {
            if attr.path().is_ident("cfg") && field.ident.is_none() {
                errors.push(Error::new(
                    attr.span(),
                    format!("{what} `{name}`: a #[cfg] on a field of a tuple struct renumbers the fields after it where it is false; name the fields"),
                ));
                refused = true;
            } else if attr.path().is_ident("cfg") {
                let parsed = attr
                    .meta
                    .require_list()
                    .and_then(|l| Ok((l.tokens.clone(), l.parse_args::<Meta>()?)))
                    .and_then(|(tokens, m)| Ok((tokens, Cfg::parse(&m)?)));
                match parsed {
                    Ok((tokens, c)) => {
                        for (p, arch) in present.iter_mut().zip(Arch::ALL) {
                            *p &= c.holds(arch);
                        }
                        cfg.push(tokens);
                    }
                    Err(e) => {
                        for e in e {
                            errors.push(Error::new(e.span(), format!("{what} `{name}`: {e}")));
                        }
                        refused = true;
                    }
                }
            } else if attr.path().is_ident("cfg_attr") {
                // `cfg_attr(pred, cfg(...))` would decide existence behind the macro's back.
                let adds_cfg = attr
                    .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                    .is_ok_and(|l| {
                        l.iter()
                            .skip(1)
                            .any(|m| m.path().is_ident("cfg") || m.path().is_ident("cfg_attr"))
                    });
                if adds_cfg {
                    errors.push(Error::new(
                        attr.span(),
                        format!("{what} `{name}`: a #[cfg_attr] that adds a #[cfg] hides from #[xen_abi] whether the {what} exists; write the #[cfg(...)] itself"),
                    ));
                    refused = true;
                }
            }
        }
        let known = if refused { None } else { known(&field.ty) };
        let m = Member {
            field,
            name,
            access,
            refused,
            known,
            cfg,
            present,
        };
        if !m.refused && !m.present.contains(&true) {
            errors.push(Error::new(
                m.span(),
                format!("{what} `{}` exists on no architecture of Xen's ABI: its #[cfg] is false on x86_32, x86_64, arm32 and arm64", m.name),
            ));
        }
        out.push(m);
    }
    out
}

fn refuse(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Ptr(_) => Some("a raw pointer is pointer-sized, which differs between architectures; use a guest handle type (xen_sys::GuestHandle) or a fixed-width integer"),
        Type::Reference(_) => Some("a reference cannot be part of an ABI type; use a guest handle (xen_sys::GuestHandle) or a fixed-width integer"),
        Type::BareFn(_) => Some("a function pointer is not an ABI type"),
        Type::Path(p) => {
            let last = p.path.segments.last()?.ident.to_string();
            match last.as_str() {
                "usize" | "isize" => Some("`usize`/`isize` change size between 32- and 64-bit architectures; use u32/u64, or xen_sys's XenUlong if the C type is xen_ulong_t"),
                "bool" => Some("`bool` is not an ABI type (only 0 and 1 are valid, a guest may write anything); use u8"),
                "char" => Some("`char` is not an ABI type (not every u32 is a char); use u32 or u8"),
                "f32" | "f64" => Some("floating point has no place in Xen's hypercall ABI; use an integer"),
                _ => None,
            }
        }
        _ => None,
    }
}

fn known(ty: &Type) -> Option<Vec<(u64, u64)>> {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            let i = Int::parse(&p.path.segments[0].ident.to_string())?;
            Some(
                Arch::ALL
                    .iter()
                    .map(|a| {
                        let l = Engine::int(i, *a);
                        (l.size, l.align)
                    })
                    .collect(),
            )
        }
        Type::Array(a) => {
            let n: u64 = match &a.len {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(n),
                    ..
                }) => n.base10_parse().ok()?,
                _ => return None,
            };
            Some(
                known(&a.elem)?
                    .into_iter()
                    .map(|(s, al)| (s * n, al))
                    .collect(),
            )
        }
        Type::Paren(p) => known(&p.elem),
        _ => None,
    }
}

/// `#[repr(C)]` (optionally with `align(N)`, returned) is required; `packed` is refused.
fn require_repr_c(attrs: &[syn::Attribute], name: &Ident, errors: &mut Errors) -> u64 {
    let mut repr_c = false;
    let mut align = 1;
    for a in attrs {
        if a.path().is_ident("repr") {
            let parsed = a.parse_nested_meta(|m| {
                if m.path.is_ident("C") {
                    repr_c = true;
                } else if m.path.is_ident("packed") {
                    return Err(m.error("#[repr(packed)] has no place in Xen's ABI: declare the padding as named fields"));
                } else if m.path.is_ident("align") {
                    let content;
                    syn::parenthesized!(content in m.input);
                    align = content.parse::<LitInt>()?.base10_parse()?;
                }
                Ok(())
            });
            errors.result(parsed);
        }
    }
    if !repr_c {
        errors.push(Error::new(name.span(), format!("`{name}` must be #[repr(C)] to be an ABI type: Rust's default layout may reorder and pad fields")));
    }
    align
}

/// The required `since = "MAJOR.MINOR"`.
fn since(args: &Args) -> syn::Result<(u16, u16)> {
    let Some(s) = &args.since else {
        return Err(Error::new(
            Span::call_site(),
            "xen_abi needs `since = \"4.x\"`: the Xen release that introduces the type",
        ));
    };
    let v = xen_abi_gen::model::Version::parse(&s.value())
        .ok_or_else(|| Error::new(s.span(), "since must be \"MAJOR.MINOR\", e.g. \"4.18\""))?;
    Ok((v.major, v.minor))
}

/// `#[cfg(all(PREDICATES))]`, or nothing for no predicate.
fn gate(predicates: &[proc_macro2::TokenStream]) -> proc_macro2::TokenStream {
    if predicates.is_empty() {
        quote!()
    } else {
        quote!(#[cfg(all(#(#predicates),*))])
    }
}

/// A piece of the message of a [`const_check`].
enum Piece {
    Text(String),
    /// The value the compiler computed, in decimal.
    Computed,
    /// `s` unless the computed value is 1.
    PluralS,
    /// The architecture being compiled for (`x86_32`, ..., or `this target`).
    Arch,
}

/// A const item (under `gate`) that fails to compile when the `usize` expression `computed` is
/// not `expected`, with a message made of `pieces`: const evaluation cannot format numbers, so
/// the item writes the computed value into the message itself.
fn const_check(
    span: Span,
    gate: proc_macro2::TokenStream,
    computed: proc_macro2::TokenStream,
    expected: u64,
    pieces: &[Piece],
) -> proc_macro2::TokenStream {
    let expected = expected as usize;
    let (arches, names) = (
        Arch::ALL.map(|a| a.target_arch()),
        Arch::ALL.map(|a| a.name()),
    );
    const OTHER: &str = "this target";
    let mut capacity = 0;
    let mut fallback = String::new();
    let parts: Vec<proc_macro2::TokenStream> = pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => {
                capacity += t.len();
                fallback += t;
                quote!(#t)
            }
            Piece::Computed => {
                capacity += 20;
                fallback += "?";
                quote!(number)
            }
            Piece::PluralS => {
                capacity += 1;
                fallback += "(s)";
                quote!(if COMPUTED == 1 { "" } else { "s" })
            }
            Piece::Arch => {
                capacity += OTHER.len();
                fallback += "?";
                quote!(ARCH)
            }
        })
        .collect();
    let arch_const = pieces.iter().any(|p| matches!(p, Piece::Arch)).then(|| {
        quote! {
            #(#[cfg(target_arch = #arches)] const ARCH: &str = #names;)*
            #[cfg(not(any(#(target_arch = #arches),*)))]
            const ARCH: &str = #OTHER;
        }
    });
    let n = parts.len();
    // The panic has the span of what it is about, where the compiler reports it; the rest is
    // the macro's own code (which lints of the user's crate leave alone).
    let fail = quote_spanned!(span=> ::core::panic!("{}", msg));
    let fail_plain = quote_spanned!(span=> ::core::panic!(#fallback));
    quote! {
        #gate
        const _: () = {
            const COMPUTED: usize = #computed;
            if COMPUTED != #expected {
                #arch_const
                let mut digits = [0u8; 20];
                let mut used = 0;
                let mut div = 1usize;
                while COMPUTED / div >= 10 {
                    div *= 10;
                }
                while div > 0 {
                    digits[used] = b'0' + (COMPUTED / div % 10) as u8;
                    used += 1;
                    div /= 10;
                }
                let number = match ::core::str::from_utf8(digits.split_at(used).0) {
                    ::core::result::Result::Ok(s) => s,
                    ::core::result::Result::Err(_) => "?",
                };
                let parts: [&str; #n] = [#(#parts),*];
                let mut buf = [0u8; #capacity];
                let mut len = 0;
                let mut p = 0;
                while p < parts.len() {
                    let bytes = parts[p].as_bytes();
                    let mut i = 0;
                    while i < bytes.len() {
                        buf[len] = bytes[i];
                        len += 1;
                        i += 1;
                    }
                    p += 1;
                }
                match ::core::str::from_utf8(buf.split_at(len).0) {
                    ::core::result::Result::Ok(msg) => #fail,
                    ::core::result::Result::Err(_) => #fail_plain,
                }
            }
        };
    }
}

/// Const assertions of the declared `size(...)` and `align(...)`, each under its `target_arch`.
fn declared_layout(args: &Args, name: &Ident) -> Vec<proc_macro2::TokenStream> {
    let mut checks = Vec::new();
    for (list, what, f) in [
        (&args.size, "size", "size_of"),
        (&args.align, "alignment", "align_of"),
    ] {
        for (arch, n, span) in list {
            let ta = arch.target_arch();
            let f = Ident::new(f, *span);
            checks.push(const_check(
                *span,
                quote!(#[cfg(target_arch = #ta)]),
                quote_spanned!(*span=> ::core::mem::#f::<#name>()),
                *n,
                &[
                    Piece::Text(format!("`{name}`: {what} on {arch} is ")),
                    Piece::Computed,
                    Piece::Text(format!(", declared {n}")),
                ],
            ));
        }
    }
    checks
}

/// Refusals of declared `size(...)`/`align(...)` values that differ from the layout computed
/// now, where it is known (`computed[arch]` is (size, align)).
fn check_declared_now(
    args: &Args,
    name: &Ident,
    computed: &[Option<(u64, u64)>; 4],
    errors: &mut Errors,
) {
    for (list, what, pick) in [(&args.size, "size", 0usize), (&args.align, "alignment", 1)] {
        for (arch, declared, span) in list {
            if let Some((size, align)) = computed[arch_index(*arch)] {
                let got = [size, align][pick];
                if got != *declared {
                    errors.push(Error::new(
                        *span,
                        format!("`{name}`: {what} on {arch} is {got}, declared {declared}"),
                    ));
                }
            }
        }
    }
}

/// Where implicit padding is: after the member at `.0`, before the one at `.1` (`None`: at the
/// end of the struct).
type Gap = (usize, Option<usize>);

/// A struct's layout on one architecture, computed at expansion time as far as it is known: up
/// to the first field present there whose layout is not known now (another ABI type, or a
/// refused one).
struct StructLayout {
    /// (size, align), when every field present is known.
    whole: Option<(u64, u64)>,
    /// Offset of each member present on this architecture, as far as known.
    offsets: Vec<Option<u64>>,
    /// Implicit padding, as far as known: where, and how many bytes.
    padding: Vec<(Gap, u64)>,
}

/// The layout on the architecture at `ai`, as far as it is known now.
fn struct_layout(members: &[Member<'_>], ai: usize, repr_align: u64) -> StructLayout {
    let (mut off, mut align) = (0u64, repr_align.max(1));
    let mut offsets = vec![None; members.len()];
    let mut padding = Vec::new();
    let mut prev = None;
    for (i, m) in members.iter().enumerate() {
        if !m.present[ai] {
            continue;
        }
        let Some(known) = &m.known else {
            return StructLayout {
                whole: None,
                offsets,
                padding,
            };
        };
        let (size, a) = known[ai];
        align = align.max(a);
        let at = off.div_ceil(a) * a;
        if let (Some(p), true) = (prev, at > off) {
            padding.push(((p, Some(i)), at - off));
        }
        offsets[i] = Some(at);
        off = at + size;
        prev = Some(i);
    }
    let size = off.div_ceil(align) * align;
    if let (Some(p), true) = (prev, size > off) {
        padding.push(((p, None), size - off));
    }
    StructLayout {
        whole: Some((size, align)),
        offsets,
        padding,
    }
}

/// `3 bytes on x86_32, 7 bytes on x86_64, arm32 and arm64`.
fn bytes_per_arch(found: &[(Arch, u64)]) -> (String, Vec<u64>) {
    let mut groups: Vec<(u64, Vec<Arch>)> = Vec::new();
    for (arch, bytes) in found {
        match groups.iter_mut().find(|(b, _)| b == bytes) {
            Some((_, arches)) => arches.push(*arch),
            None => groups.push((*bytes, vec![*arch])),
        }
    }
    let text = groups
        .iter()
        .map(|(b, arches)| {
            format!(
                "{b} byte{} on {}",
                if *b == 1 { "" } else { "s" },
                arch_list(arches)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    (text, groups.iter().map(|(b, _)| *b).collect())
}

/// How to declare padding of `bytes` found on `arches`.
fn padding_hint(found: &[(Arch, u64)]) -> String {
    let (_, sizes) = bytes_per_arch(found);
    let arches: Vec<Arch> = found.iter().map(|(a, _)| *a).collect();
    match sizes.as_slice() {
        [bytes] => match cfg_for(&arches) {
            None => format!("declare it as a named field (e.g. `pub _pad: [u8; {bytes}]`)"),
            Some(c) => format!(
                "declare it as a named field that only {} {} (e.g. `#[cfg({c})] pub _pad: [u8; {bytes}]`)",
                arch_list(&arches),
                if arches.len() == 1 { "has" } else { "have" }
            ),
        },
        _ => "declare it as named fields, with #[cfg(...)] on those only some architectures have".into(),
    }
}

fn expand(args: Args, item: &ItemStruct) -> syn::Result<proc_macro2::TokenStream> {
    let name = &item.ident;
    let mut errors = Errors::default();
    let repr_align = require_repr_c(&item.attrs, name, &mut errors);
    let fields: Vec<&syn::Field> = match &item.fields {
        Fields::Named(f) => f.named.iter().collect(),
        Fields::Unnamed(f) => f.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    if fields.is_empty() {
        errors.push(Error::new(
            name.span(),
            "an ABI type needs at least one field (C has no empty structs)",
        ));
    }
    if !item.generics.params.is_empty() {
        errors.push(Error::new(
            item.generics.span(),
            "an ABI type cannot be generic",
        ));
    }
    let members = members(fields, "field", &mut errors);
    if !members.is_empty() && members.iter().all(|m| m.present.contains(&true)) {
        for (ai, arch) in Arch::ALL.iter().enumerate() {
            if !members.iter().any(|m| m.present[ai]) {
                errors.push(Error::new(
                    name.span(),
                    format!("`{name}` has no field on {arch} (C has no empty structs)"),
                ));
            }
        }
    }
    // The layout on every architecture, as far as it is known now.
    let layouts: Vec<StructLayout> = (0..Arch::ALL.len())
        .map(|ai| struct_layout(&members, ai, repr_align))
        .collect();
    // Implicit padding, one refusal per place (with the bytes per architecture).
    let mut padding: Vec<(Gap, Vec<(Arch, u64)>)> = Vec::new();
    for (arch, layout) in Arch::ALL.iter().zip(&layouts) {
        for (gap, bytes) in &layout.padding {
            match padding.iter_mut().find(|(g, _)| g == gap) {
                Some((_, found)) => found.push((*arch, *bytes)),
                None => padding.push((*gap, vec![(*arch, *bytes)])),
            }
        }
    }
    for ((prev, next), found) in &padding {
        let (bytes, hint) = (bytes_per_arch(found).0, padding_hint(found));
        let p = &members[*prev].name;
        errors.push(match next {
            Some(n) => Error::new(
                members[*n].span(),
                format!(
                    "implicit padding in `{name}` after field `{p}`, before `{}`: {bytes}; {hint}",
                    members[*n].name
                ),
            ),
            None => Error::new(
                members[*prev].span(),
                format!("implicit trailing padding in `{name}` after the last field `{p}`: {bytes}; {hint}"),
            ),
        });
    }
    // The declared layout, where it is known now.
    let computed: [Option<(u64, u64)>; 4] = std::array::from_fn(|ai| layouts[ai].whole);
    check_declared_now(&args, name, &computed, &mut errors);
    let mut offset_members = Vec::new();
    for (f, declared) in &args.offsets {
        let Some(i) = members
            .iter()
            .position(|m| m.field.ident.as_ref() == Some(f))
        else {
            errors.push(Error::new(f.span(), format!("`{name}` has no field `{f}`")));
            continue;
        };
        offset_members.push((f, *declared, i));
        let mut wrong: Vec<(u64, Vec<Arch>)> = Vec::new();
        for (arch, layout) in Arch::ALL.iter().zip(&layouts) {
            let Some(got) = layout.offsets[i] else {
                continue;
            };
            if got != *declared {
                match wrong.iter_mut().find(|(g, _)| *g == got) {
                    Some((_, arches)) => arches.push(*arch),
                    None => wrong.push((got, vec![*arch])),
                }
            }
        }
        for (got, arches) in wrong {
            errors.push(Error::new(
                f.span(),
                format!(
                    "`{name}`: offset of `{f}` on {} is {got}, declared {declared}",
                    arch_list(&arches)
                ),
            ));
        }
    }
    let since = since(&args);
    if let Err(e) = &since {
        errors.push(e.clone());
    }
    errors.finish()?;
    let (maj, min) = since?;

    // Everything else is checked by the compiler: ABI trait bounds and no-padding assertions,
    // each under the #[cfg] of the fields it names.
    let mut checks = Vec::new();
    for m in &members {
        if m.known.is_none() {
            let ty = &m.field.ty;
            let gate = gate(&m.cfg);
            checks.push(quote_spanned! {ty.span()=>
                #gate
                const _: fn() = || {
                    fn field_type_must_be_an_abi_type<T: ::xen_sys::XenAbi>() {}
                    field_type_must_be_an_abi_type::<#ty>();
                };
            });
        }
    }
    // Where the previous field of `members[i]` is `members[j]`: both exist and every field
    // between them does not. The walk back stops at a field that always exists.
    let follows = |j: usize, i: Option<usize>| -> Vec<proc_macro2::TokenStream> {
        let end = i.unwrap_or(members.len());
        let mut preds: Vec<_> = [Some(j), i]
            .into_iter()
            .flatten()
            .filter_map(|k| members[k].predicate())
            .collect();
        preds.extend(
            members[j + 1..end]
                .iter()
                .filter_map(|m| m.predicate().map(|p| quote!(not(#p)))),
        );
        preds
    };
    let end_of = |j: usize| {
        let (prev, pty) = (&members[j].access, &members[j].field.ty);
        quote!(::core::mem::offset_of!(#name, #prev) + ::core::mem::size_of::<#pty>())
    };
    for i in 1..members.len() {
        let cur = &members[i].access;
        for j in (0..i).rev() {
            let end = end_of(j);
            checks.push(const_check(
                Span::call_site(),
                gate(&follows(j, Some(i))),
                quote!(::core::mem::offset_of!(#name, #cur) - (#end)),
                0,
                &[
                    Piece::Text(format!(
                        "implicit padding in `{name}` after field `{}`, before `{}`: ",
                        members[j].name, members[i].name
                    )),
                    Piece::Computed,
                    Piece::Text(" byte".into()),
                    Piece::PluralS,
                    Piece::Text(" on ".into()),
                    Piece::Arch,
                ],
            ));
            if members[j].cfg.is_empty() {
                break;
            }
        }
    }
    for j in (0..members.len()).rev() {
        let end = end_of(j);
        checks.push(const_check(
            Span::call_site(),
            gate(&follows(j, None)),
            quote!(::core::mem::size_of::<#name>() - (#end)),
            0,
            &[
                Piece::Text(format!(
                    "implicit trailing padding in `{name}` after the last field `{}`: ",
                    members[j].name
                )),
                Piece::Computed,
                Piece::Text(" byte".into()),
                Piece::PluralS,
                Piece::Text(" on ".into()),
                Piece::Arch,
            ],
        ));
        if members[j].cfg.is_empty() {
            break;
        }
    }
    checks.extend(declared_layout(&args, name));
    for (f, declared, i) in offset_members {
        checks.push(const_check(
            f.span(),
            gate(&members[i].cfg),
            quote_spanned!(f.span()=> ::core::mem::offset_of!(#name, #f)),
            declared,
            &[
                Piece::Text(format!("`{name}`: offset of `{f}` on ")),
                Piece::Arch,
                Piece::Text(" is ".into()),
                Piece::Computed,
                Piece::Text(format!(", declared {declared}")),
            ],
        ));
    }
    let c_name = args
        .c_name
        .map(|c| c.value())
        .unwrap_or_else(|| format!("struct {name}"));
    Ok(quote! {
        #[derive(::zerocopy::FromBytes, ::zerocopy::IntoBytes, ::zerocopy::KnownLayout, ::zerocopy::Immutable)]
        #item
        impl ::xen_sys::XenAbi for #name {
            const C_NAME: &'static str = #c_name;
            const SINCE: ::xen_sys::XenVersion = ::xen_sys::XenVersion::new(#maj, #min);
        }
        #(#checks)*
    })
}

fn expand_union(args: Args, item: &syn::ItemUnion) -> syn::Result<proc_macro2::TokenStream> {
    let name = &item.ident;
    let mut errors = Errors::default();
    let repr_align = require_repr_c(&item.attrs, name, &mut errors);
    if let Some((f, _)) = args.offsets.first() {
        errors.push(Error::new(
            f.span(),
            format!("offsets(...) on union `{name}`: every member of a union is at offset 0, there is nothing to declare"),
        ));
    }
    let members = members(&item.fields.named, "member", &mut errors);
    // Every member known now has the size of the first one known, on each architecture: one
    // refusal per member, with its size and the first one's per architecture.
    let mut computed: [Option<(u64, u64)>; 4] = [Some((0, repr_align.max(1))); 4];
    let mut first: [Option<u64>; 4] = [None; 4];
    for m in &members {
        // (its size, the first member's, where) for each difference.
        let mut wrong: Vec<(u64, u64, Vec<Arch>)> = Vec::new();
        for (ai, arch) in Arch::ALL.iter().enumerate() {
            if !m.present[ai] {
                continue;
            }
            let Some(l) = &m.known else {
                computed[ai] = None;
                continue;
            };
            let (size, align) = l[ai];
            match first[ai] {
                None => first[ai] = Some(size),
                Some(f) if f != size => match wrong.iter_mut().find(|w| (w.0, w.1) == (size, f)) {
                    Some((_, _, arches)) => arches.push(*arch),
                    None => wrong.push((size, f, vec![*arch])),
                },
                Some(_) => {}
            }
            if let Some((s, a)) = &mut computed[ai] {
                *s = (*s).max(size);
                *a = (*a).max(align);
            }
        }
        if !wrong.is_empty() {
            let text = wrong
                .iter()
                .map(|(size, f, arches)| {
                    format!(
                        "{size} byte{} on {} but an earlier member is {f}",
                        if *size == 1 { "" } else { "s" },
                        arch_list(arches)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            errors.push(Error::new(
                m.field.ty.span(),
                format!(
                    "member `{}` of union `{name}` is {text}: a shorter member leaves padding; give every member the union's size",
                    m.name
                ),
            ));
        }
    }
    for c in computed.iter_mut().flatten() {
        c.0 = c.0.div_ceil(c.1) * c.1;
    }
    if !members.is_empty() && members.iter().all(|m| m.present.contains(&true)) {
        for (ai, arch) in Arch::ALL.iter().enumerate() {
            if !members.iter().any(|m| m.present[ai]) {
                errors.push(Error::new(
                    name.span(),
                    format!("union `{name}` has no member on {arch}"),
                ));
            }
        }
    }
    check_declared_now(&args, name, &computed, &mut errors);
    let since = since(&args);
    if let Err(e) = &since {
        errors.push(e.clone());
    }
    errors.finish()?;
    let (maj, min) = since?;
    let mut checks = Vec::new();
    for m in &members {
        let (ty, fname) = (&m.field.ty, &m.name);
        let gate = gate(&m.cfg);
        if m.known.is_none() {
            checks.push(quote_spanned! {ty.span()=>
                #gate
                const _: fn() = || {
                    fn member_type_must_be_an_abi_type<T: ::xen_sys::XenAbi>() {}
                    member_type_must_be_an_abi_type::<#ty>();
                };
            });
        }
        let msg = format!("member `{fname}` of union `{name}` is shorter than the union (padding)");
        checks.push(quote! {
            #gate
            const _: () = assert!(::core::mem::size_of::<#ty>() == ::core::mem::size_of::<#name>(), #msg);
        });
    }
    checks.extend(declared_layout(&args, name));
    let c_name = args
        .c_name
        .map(|c| c.value())
        .unwrap_or_else(|| format!("union {name}"));
    // zerocopy derives IntoBytes for unions only behind a cfg; FromBytes and the rest apply.
    Ok(quote! {
        #[derive(::zerocopy::FromBytes, ::zerocopy::KnownLayout, ::zerocopy::Immutable)]
        #item
        impl ::xen_sys::XenAbi for #name {
            const C_NAME: &'static str = #c_name;
            const SINCE: ::xen_sys::XenVersion = ::xen_sys::XenVersion::new(#maj, #min);
        }
        #(#checks)*
    })
}

/// Check and complete a hand-written ABI struct or union; see the crate documentation.
///
/// A refused type is still emitted, as written and without the derives, beside the refusals:
/// code that uses it then reports no error of its own.
#[proc_macro_attribute]
pub fn xen_abi(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<Args>(attr) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    let item2 = item.clone();
    if let Ok(u) = syn::parse::<syn::ItemUnion>(item.clone()) {
        return match expand_union(args, &u) {
            Ok(t) => t.into(),
            Err(e) => {
                let e = e.to_compile_error();
                quote!(#u #e).into()
            }
        };
    }
    let parsed = match syn::parse::<ItemStruct>(item) {
        Ok(s) => s,
        Err(_) => {
            let any: proc_macro2::TokenStream = item2.into();
            let span = any
                .clone()
                .into_iter()
                .next()
                .map(|t| t.span())
                .unwrap_or_else(Span::call_site);
            let msg = if any.to_string().contains("enum") {
                "#[xen_abi] applies to structs and unions; for a set of values use an integer newtype (a guest may write any value, a Rust enum cannot hold them)"
            } else {
                "#[xen_abi] applies to structs and unions"
            };
            return Error::new(span, msg).to_compile_error().into();
        }
    };
    match expand(args, &parsed) {
        Ok(t) => t.into(),
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#parsed #e).into()
        }
    }
}

/// Generate, at compile time, the code `xen-abi-gen generate` would write for an extra spec
/// file (path relative to the crate's `Cargo.toml`). The file may use every item of the in-tree
/// spec (`domid_t`, `evtchn_port_t`, ...); its own names must be new. Spec errors become compile
/// errors at the macro call, with the file, line and column.
///
/// ```
/// mod demo {
///     // This crate's test spec; in yours, a path relative to your Cargo.toml.
///     xen_abi_macros::include_spec!("tests/spec/demo.toml");
/// }
/// ```
///
/// The expansion uses `::xen_sys` and `zerocopy`: the crate must depend on both.
#[proc_macro]
pub fn include_spec(input: TokenStream) -> TokenStream {
    let path = match syn::parse::<LitStr>(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error().into(),
    };
    match include_spec_impl(&path) {
        Ok(t) => t.into(),
        Err(msg) => Error::new(path.span(), msg).to_compile_error().into(),
    }
}

fn include_spec_impl(path: &LitStr) -> Result<proc_macro2::TokenStream, String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| "CARGO_MANIFEST_DIR is not set".to_string())?;
    let full = std::path::Path::new(&dir).join(path.value());
    let text = std::fs::read_to_string(&full)
        .map_err(|e| format!("include_spec!: cannot read {}: {e}", full.display()))?;
    let rel = format!(
        "extra/{}",
        path.value().rsplit('/').next().unwrap_or("spec.toml")
    );
    let mut sources = xen_abi_gen::spec::builtin_sources();
    sources.push(xen_abi_gen::spec::Source {
        rel_path: rel.clone(),
        path: full.clone(),
        text,
    });
    let spec = xen_abi_gen::spec::load_sources(&sources)
        .map_err(|d| format!("include_spec!: invalid spec:\n{d}"))?;
    let file =
        xen_abi_gen::emit::rust::downstream_module(&spec, &rel).map_err(|e| e.to_string())?;
    // Rebuild when the spec file changes.
    let track = full.display().to_string();
    Ok(quote! {
        const _: &str = include_str!(#track);
        #file
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::{TokenStream as Tokens, TokenTree};
    use quote::ToTokens;
    use syn::parse_quote;

    /// Whether `predicate` holds on x86_32, x86_64, arm32, arm64.
    fn holds(predicate: Meta) -> [bool; 4] {
        let c = Cfg::parse(&predicate).expect("an accepted predicate");
        Arch::ALL.map(|a| c.holds(a))
    }

    #[test]
    fn cfg_predicates_are_evaluated_per_architecture() {
        let (t, f) = (true, false);
        assert_eq!(holds(parse_quote!(target_arch = "x86")), [t, f, f, f]);
        assert_eq!(holds(parse_quote!(target_arch = "aarch64")), [f, f, f, t]);
        assert_eq!(
            holds(parse_quote!(target_pointer_width = "64")),
            [f, t, f, t]
        );
        assert_eq!(
            holds(parse_quote!(target_pointer_width = "32")),
            [t, f, t, f]
        );
        assert_eq!(holds(parse_quote!(not(target_arch = "x86"))), [f, t, t, t]);
        assert_eq!(
            holds(parse_quote!(any(
                target_arch = "arm",
                all(target_pointer_width = "64", not(target_arch = "aarch64"))
            ))),
            [f, t, t, f]
        );
        assert_eq!(holds(parse_quote!(all())), [t; 4]);
        assert_eq!(holds(parse_quote!(any())), [f; 4]);
    }

    #[test]
    fn predicates_that_do_not_decide_per_architecture_are_refused() {
        for (predicate, says) in [
            (
                parse_quote!(feature = "x"),
                "`feature = \"x\"` cannot be evaluated per architecture",
            ),
            (
                parse_quote!(unix),
                "`unix` cannot be evaluated per architecture",
            ),
            (
                parse_quote!(target_os = "linux"),
                "cannot be evaluated per architecture",
            ),
            (parse_quote!(all(unix, target_arch = "riscv64")), "`unix`"),
            (
                parse_quote!(target_arch = "riscv64"),
                "laid out for target_arch \"x86\", \"x86_64\", \"arm\" and \"aarch64\" only",
            ),
            (
                parse_quote!(target_pointer_width = "16"),
                "32- and 64-bit pointers only",
            ),
            (
                parse_quote!(not(target_arch = "x86", target_arch = "arm")),
                "exactly one predicate",
            ),
        ] {
            let e = Cfg::parse(&predicate).expect_err("refused");
            assert!(e.to_string().contains(says), "{e}");
        }
        // Both bad parts of one predicate are reported.
        let e = Cfg::parse(&parse_quote!(any(unix, feature = "x"))).expect_err("refused");
        assert_eq!(e.into_iter().count(), 2);
    }

    /// The members and per-architecture layouts of `item`, with the refusals about it.
    fn laid_out(item: &ItemStruct) -> (Vec<StructLayout>, Errors) {
        let mut errors = Errors::default();
        let members = members(&item.fields, "field", &mut errors);
        let layouts = (0..4).map(|ai| struct_layout(&members, ai, 1)).collect();
        (layouts, errors)
    }

    #[test]
    fn a_pad_field_under_cfg_is_laid_out_per_architecture() {
        // The report's shape: padding C adds where uint64_t is 8-aligned.
        let item: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct Counted {
                pub count: u32,
                #[cfg(not(target_arch = "x86"))]
                pub _pad0: [u8; 4],
                pub total: u64,
            }
        };
        let (layouts, errors) = laid_out(&item);
        assert!(errors.finish().is_ok());
        let l = &layouts;
        // x86_32: no `_pad0`, `total` at 4, 12 bytes, 4-aligned.
        assert_eq!(l[0].whole, Some((12, 4)));
        assert_eq!(l[0].offsets, [Some(0), None, Some(4)]);
        // x86_64, arm32, arm64: `_pad0` at 4, `total` at 8, 16 bytes.
        for l in &l[1..] {
            assert_eq!(l.whole, Some((16, 8)));
            assert_eq!(l.offsets, [Some(0), Some(4), Some(8)]);
        }
        assert!(l.iter().all(|l| l.padding.is_empty()));

        // With `target_pointer_width = "64"` the pad is missing on arm32, which aligns uint64_t
        // to 8 too: 4 bytes of padding after `count`, before `total`, there only.
        let item: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct Pad64 {
                pub count: u32,
                #[cfg(target_pointer_width = "64")]
                pub _pad0: [u8; 4],
                pub total: u64,
            }
        };
        let (layouts, _) = laid_out(&item);
        let padding: Vec<_> = layouts.iter().map(|l| l.padding.clone()).collect();
        assert_eq!(padding, [vec![], vec![], vec![((0, Some(2)), 4)], vec![]]);
    }

    /// The field each `offset_of!(Type, field)` in `tokens` names.
    fn offset_of_fields(tokens: Tokens, out: &mut Vec<String>) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        for (k, tt) in tts.iter().enumerate() {
            if let TokenTree::Group(g) = tt {
                if k >= 2 && matches!(&tts[k - 2], TokenTree::Ident(i) if i == "offset_of") {
                    if let Some(TokenTree::Ident(f)) = g.stream().into_iter().last() {
                        out.push(f.to_string());
                    }
                }
                offset_of_fields(g.stream(), out);
            }
        }
    }

    /// What `offset_of!` names in the items of `expansion` that exist on `arch`, and the
    /// fields the struct has there: rustc's cfg-stripping, for one architecture.
    fn named_on(expansion: &Tokens, arch: Arch) -> (Vec<String>, Vec<String>) {
        let file: syn::File = syn::parse2(expansion.clone()).expect("the expansion is Rust");
        let on = |attrs: &[syn::Attribute]| {
            attrs.iter().filter(|a| a.path().is_ident("cfg")).all(|a| {
                let m: Meta = a.parse_args().expect("a cfg predicate");
                Cfg::parse(&m)
                    .expect("one of the accepted predicates")
                    .holds(arch)
            })
        };
        let (mut fields, mut named) = (Vec::new(), Vec::new());
        for item in &file.items {
            match item {
                syn::Item::Struct(s) => fields.extend(
                    s.fields
                        .iter()
                        .filter(|f| on(&f.attrs))
                        .filter_map(|f| f.ident.as_ref().map(|i| i.to_string())),
                ),
                syn::Item::Const(c) if on(&c.attrs) => {
                    offset_of_fields(c.to_token_stream(), &mut named)
                }
                syn::Item::Impl(i) if on(&i.attrs) => {
                    offset_of_fields(i.to_token_stream(), &mut named)
                }
                _ => {}
            }
        }
        (fields, named)
    }

    #[test]
    fn the_expansion_names_a_field_only_where_it_exists() {
        // What i686 (and armv7, aarch64) would compile, checked here on any host: every
        // `offset_of!` that survives cfg-stripping names a field the target has.
        let counted: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct Counted {
                pub count: u32,
                #[cfg(not(target_arch = "x86"))]
                pub _pad0: [u8; 4],
                pub expand: xen_sys::EvtchnExpandArray,
            }
        };
        let args: Args = parse_quote!(since = "4.18", offsets(count = 0, _pad0 = 4));
        let expansion = expand(args, &counted).expect("accepted");
        for arch in Arch::ALL {
            let (fields, named) = named_on(&expansion, arch);
            for f in &named {
                assert!(
                    fields.contains(f),
                    "on {arch} a check names `{f}`, which {arch} has not"
                );
            }
            // The padding between `count` and what follows is checked on every architecture.
            assert!(named.iter().any(|f| f == "count"), "{arch}: {named:?}");
            assert_eq!(
                named.iter().any(|f| f == "_pad0"),
                arch != Arch::X86_32,
                "{arch}: {named:?}"
            );
        }

        // Fields that exist on 32-bit architectures only, and one on 64-bit ones only.
        let split: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct Split {
                #[cfg(target_pointer_width = "64")]
                pub addr: u64,
                #[cfg(target_pointer_width = "32")]
                pub low: u32,
                #[cfg(target_pointer_width = "32")]
                pub high: u32,
            }
        };
        let args: Args = parse_quote!(since = "4.18", offsets(high = 4));
        let expansion = expand(args, &split).expect("accepted");
        for arch in Arch::ALL {
            let (fields, named) = named_on(&expansion, arch);
            assert_eq!(fields.len(), if arch.word() == 8 { 1 } else { 2 });
            for f in &named {
                assert!(
                    fields.contains(f),
                    "on {arch} a check names `{f}`, which {arch} has not"
                );
            }
            assert_eq!(
                named.contains(&"high".to_string()),
                arch.word() == 4,
                "{arch}: {named:?}"
            );
        }
    }

    #[test]
    fn every_bad_field_is_reported() {
        let item: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct TwoBad {
                pub a: u8,
                pub b: u32,
                pub on: bool,
                pub len: usize,
                #[cfg(unix)]
                pub c: u32,
            }
        };
        let e = expand(parse_quote!(since = "4.18"), &item).expect_err("refused");
        let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(all.len(), 4, "{all:#?}");
        assert!(all[0].starts_with("field `on`: `bool`"), "{all:#?}");
        assert!(all[1].starts_with("field `len`: `usize`"), "{all:#?}");
        assert!(
            all[2].starts_with("field `c`: `unix` cannot be evaluated"),
            "{all:#?}"
        );
        // The layout before the first refused field is known: its padding is reported too.
        assert!(
            all[3].starts_with("implicit padding in `TwoBad` after field `a`, before `b`: 3 bytes"),
            "{all:#?}"
        );
    }

    #[test]
    fn cfg_on_a_tuple_field_is_refused() {
        let item: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct T(pub u32, #[cfg(not(target_arch = "x86"))] pub [u8; 4], pub u64);
        };
        let e = expand(parse_quote!(since = "4.18"), &item).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "field `1`: a #[cfg] on a field of a tuple struct renumbers the fields after it where it is false; name the fields"
        );
    }

    #[test]
    fn declared_layout_mismatches_say_both_numbers() {
        // 44 bytes on x86_32, 48 elsewhere; the x86_32 size copied from x86_64 is wrong.
        let item: ItemStruct = parse_quote! {
            #[repr(C)]
            pub struct Op {
                pub n: u32,
                #[cfg(not(target_arch = "x86"))]
                pub _pad0: [u8; 4],
                pub v: [u64; 5],
            }
        };
        let args: Args = parse_quote!(
            since = "4.18",
            size(x86_32 = 48, x86_64 = 48, arm32 = 48, arm64 = 48),
            align(x86_32 = 8),
            offsets(v = 8)
        );
        let e = expand(args, &item).expect_err("refused");
        let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(
            all,
            [
                "`Op`: size on x86_32 is 44, declared 48",
                "`Op`: alignment on x86_32 is 4, declared 8",
                "`Op`: offset of `v` on x86_32 is 4, declared 8",
            ]
        );
        // Where the layout is the compiler's, the const assertion of each architecture says
        // the declared value, and writes the computed one into its message.
        let args: Args = parse_quote!(size(x86_32 = 48));
        let text = declared_layout(&args, &item.ident)
            .into_iter()
            .map(|t| t.to_string())
            .collect::<String>();
        assert!(text.contains("target_arch = \"x86\""), "{text}");
        assert!(text.contains("\"`Op`: size on x86_32 is \""), "{text}");
        assert!(text.contains("\", declared 48\""), "{text}");
    }

    #[test]
    fn padding_hints_name_the_cfg_of_the_architectures_that_have_it() {
        use Arch::*;
        assert_eq!(cfg_for(&Arch::ALL), None);
        assert_eq!(
            cfg_for(&[X86_64, Arm32, Arm64]).as_deref(),
            Some("not(target_arch = \"x86\")")
        );
        assert_eq!(
            cfg_for(&[X86_64, Arm64]).as_deref(),
            Some("target_pointer_width = \"64\"")
        );
        assert_eq!(
            cfg_for(&[X86_32, Arm32]).as_deref(),
            Some("target_pointer_width = \"32\"")
        );
        assert_eq!(cfg_for(&[Arm32]).as_deref(), Some("target_arch = \"arm\""));
        assert_eq!(
            cfg_for(&[X86_32, X86_64]).as_deref(),
            Some("any(target_arch = \"x86\", target_arch = \"x86_64\")")
        );
    }

    #[test]
    fn spec_errors_name_the_file_line_and_column() {
        let p = LitStr::new("tests/spec/bad.toml", Span::call_site());
        let e = include_spec_impl(&p).unwrap_err();
        assert!(e.contains("bad.toml:12:"), "{e}");
        assert!(e.contains("unknown type `domid`"), "{e}");
        assert!(e.contains("did you mean `domid_t`?"), "{e}");
    }

    #[test]
    fn a_missing_file_is_reported() {
        let p = LitStr::new("tests/spec/none.toml", Span::call_site());
        assert!(include_spec_impl(&p).unwrap_err().contains("cannot read"));
    }
}

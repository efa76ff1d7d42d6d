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
//! after which it appears and how many bytes, per architecture), or uses a field type whose layout
//! depends on the architecture without saying so (`usize`, `isize`, pointers, references) or is
//! no ABI type at all (`bool`, `char`, floats, enums without an integer repr, types that do not
//! implement `xen_sys::XenAbi`). It emits the declared size/alignment as const assertions per
//! `target_arch`, derives zerocopy's `FromBytes`/`IntoBytes`/`KnownLayout`/`Immutable` (the
//! crate must depend on `zerocopy`) and implements `xen_sys::XenAbi`. The layout rules are
//! `xen-abi-gen`'s: there is one layout engine.
#![deny(clippy::undocumented_unsafe_blocks)]

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Error, Fields, Ident, ItemStruct, LitInt, LitStr, Token, Type};
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
    /// `offsets(field = N, ...)`: expected offsets, the same on every architecture (structs only).
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

/// What is known about a field's type at expansion time.
enum FieldKind {
    /// A primitive or an array of them: the layout per architecture is known now.
    Known(Vec<(u64, u64)>),
    /// Another ABI type: checked by trait bound and const assertions.
    Abi,
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

/// `#[repr(C)]` (optionally with `align`) is required; `packed` is refused.
fn require_repr_c(attrs: &[syn::Attribute], name: &Ident) -> syn::Result<()> {
    let mut repr_c = false;
    for a in attrs {
        if a.path().is_ident("repr") {
            a.parse_nested_meta(|m| {
                if m.path.is_ident("C") {
                    repr_c = true;
                } else if m.path.is_ident("packed") {
                    return Err(m.error("#[repr(packed)] has no place in Xen's ABI: declare the padding as named fields"));
                }
                Ok(())
            })?;
        }
    }
    if !repr_c {
        return Err(Error::new(name.span(), format!("`{name}` must be #[repr(C)] to be an ABI type: Rust's default layout may reorder and pad fields")));
    }
    Ok(())
}

/// Const assertions of the declared `size(...)` and `align(...)`, each under its `target_arch`.
fn declared_layout(args: &Args, name: &Ident) -> Vec<proc_macro2::TokenStream> {
    let mut checks = Vec::new();
    for (list, what) in [(&args.size, "size_of"), (&args.align, "align_of")] {
        for (arch, n, span) in list {
            let ta = arch.target_arch();
            let f = Ident::new(what, *span);
            let n = *n as usize;
            let msg = format!("`{name}`: declared {what} on {arch} does not hold");
            checks.push(quote_spanned! {*span=>
                #[cfg(target_arch = #ta)]
                const _: () = assert!(::core::mem::#f::<#name>() == #n, #msg);
            });
        }
    }
    checks
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

fn expand(args: Args, item: ItemStruct) -> syn::Result<proc_macro2::TokenStream> {
    let name = &item.ident;
    require_repr_c(&item.attrs, name)?;
    let fields: Vec<&syn::Field> = match &item.fields {
        Fields::Named(f) => f.named.iter().collect(),
        Fields::Unnamed(f) => f.unnamed.iter().collect(),
        Fields::Unit => {
            return Err(Error::new(
                name.span(),
                "an ABI type needs at least one field (C has no empty structs)",
            ))
        }
    };
    if fields.is_empty() {
        return Err(Error::new(
            name.span(),
            "an ABI type needs at least one field (C has no empty structs)",
        ));
    }
    let mut kinds = Vec::new();
    for f in &fields {
        if let Some(why) = refuse(&f.ty) {
            let fname = f
                .ident
                .as_ref()
                .map(|i| i.to_string())
                .unwrap_or_else(|| "field".into());
            return Err(Error::new(f.ty.span(), format!("field `{fname}`: {why}")));
        }
        kinds.push(match known(&f.ty) {
            Some(l) => FieldKind::Known(l),
            None => FieldKind::Abi,
        });
    }
    if !item.generics.params.is_empty() {
        return Err(Error::new(
            item.generics.span(),
            "an ABI type cannot be generic",
        ));
    }
    let field_name = |i: usize| -> String {
        fields[i]
            .ident
            .as_ref()
            .map(|x| x.to_string())
            .unwrap_or_else(|| i.to_string())
    };
    // Implicit padding, computed now when every field's layout is known.
    if kinds.iter().all(|k| matches!(k, FieldKind::Known(_))) {
        for (ai, arch) in Arch::ALL.iter().enumerate() {
            let mut off = 0u64;
            let mut max_align = 1u64;
            for (i, k) in kinds.iter().enumerate() {
                let FieldKind::Known(l) = k else {
                    unreachable!()
                };
                let (size, align) = l[ai];
                max_align = max_align.max(align);
                let at = off.div_ceil(align) * align;
                if at > off {
                    return Err(Error::new(
                        fields[i].span(),
                        format!(
                            "implicit padding in `{name}` on {arch}: {} byte{} after field `{}`, before `{}`; declare it as a named field (e.g. `pub _pad: [u8; {}]`)",
                            at - off, if at - off == 1 { "" } else { "s" }, field_name(i - 1), field_name(i), at - off
                        ),
                    ));
                }
                off = at + size;
            }
            let total = off.div_ceil(max_align) * max_align;
            if total > off {
                return Err(Error::new(
                    fields[fields.len() - 1].span(),
                    format!(
                        "implicit trailing padding in `{name}` on {arch}: {} byte{} after the last field `{}`; declare it as a named field",
                        total - off, if total - off == 1 { "" } else { "s" }, field_name(fields.len() - 1)
                    ),
                ));
            }
        }
    }
    // Everything else is checked by the compiler: ABI trait bounds and no-padding assertions.
    let mut checks = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let ty = &f.ty;
        if matches!(kinds[i], FieldKind::Abi) {
            checks.push(quote_spanned! {ty.span()=>
                const _: fn() = || {
                    fn field_type_must_be_an_abi_type<T: ::xen_sys::XenAbi>() {}
                    field_type_must_be_an_abi_type::<#ty>();
                };
            });
        }
    }
    let member = |i: usize| -> proc_macro2::TokenStream {
        match &fields[i].ident {
            Some(id) => quote!(#id),
            None => {
                let idx = syn::Index::from(i);
                quote!(#idx)
            }
        }
    };
    for i in 1..fields.len() {
        let (prev, cur) = (member(i - 1), member(i));
        let pty = &fields[i - 1].ty;
        let msg = format!(
            "implicit padding in `{name}` after field `{}`",
            field_name(i - 1)
        );
        checks.push(quote! {
            const _: () = assert!(
                ::core::mem::offset_of!(#name, #cur) == ::core::mem::offset_of!(#name, #prev) + ::core::mem::size_of::<#pty>(),
                #msg
            );
        });
    }
    let last = member(fields.len() - 1);
    let lty = &fields[fields.len() - 1].ty;
    let msg = format!("implicit trailing padding in `{name}`");
    checks.push(quote! {
        const _: () = assert!(
            ::core::mem::size_of::<#name>() == ::core::mem::offset_of!(#name, #last) + ::core::mem::size_of::<#lty>(),
            #msg
        );
    });
    checks.extend(declared_layout(&args, name));
    for (f, n) in &args.offsets {
        if !fields.iter().any(|x| x.ident.as_ref() == Some(f)) {
            return Err(Error::new(f.span(), format!("`{name}` has no field `{f}`")));
        }
        let n = *n as usize;
        let msg = format!("`{name}`: declared offset of `{f}` does not hold");
        checks.push(quote_spanned! {f.span()=>
            const _: () = assert!(::core::mem::offset_of!(#name, #f) == #n, #msg);
        });
    }
    let (maj, min) = since(&args)?;
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

fn expand_union(args: Args, item: syn::ItemUnion) -> syn::Result<proc_macro2::TokenStream> {
    let name = &item.ident;
    require_repr_c(&item.attrs, name)?;
    if let Some((f, _)) = args.offsets.first() {
        return Err(Error::new(
            f.span(),
            format!("offsets(...) on union `{name}`: every member of a union is at offset 0, there is nothing to declare"),
        ));
    }
    let members: Vec<&syn::Field> = item.fields.named.iter().collect();
    let mut checks = Vec::new();
    let mut sizes: Option<Vec<(u64, u64)>> = None;
    for f in &members {
        let fname = f.ident.as_ref().map(|i| i.to_string()).unwrap_or_default();
        if let Some(why) = refuse(&f.ty) {
            return Err(Error::new(f.ty.span(), format!("member `{fname}`: {why}")));
        }
        let ty = &f.ty;
        match known(ty) {
            Some(l) => match &sizes {
                None => sizes = Some(l),
                Some(first) => {
                    for (ai, arch) in Arch::ALL.iter().enumerate() {
                        if first[ai].0 != l[ai].0 {
                            return Err(Error::new(ty.span(), format!(
                                "member `{fname}` of union `{name}` is {} bytes on {arch} but an earlier member is {}: a shorter member leaves padding; give every member the union's size",
                                l[ai].0, first[ai].0)));
                        }
                    }
                }
            },
            None => checks.push(quote_spanned! {ty.span()=>
                const _: fn() = || {
                    fn member_type_must_be_an_abi_type<T: ::xen_sys::XenAbi>() {}
                    member_type_must_be_an_abi_type::<#ty>();
                };
            }),
        }
        let msg = format!("member `{fname}` of union `{name}` is shorter than the union (padding)");
        checks.push(quote! {
            const _: () = assert!(::core::mem::size_of::<#ty>() == ::core::mem::size_of::<#name>(), #msg);
        });
    }
    checks.extend(declared_layout(&args, name));
    let (maj, min) = since(&args)?;
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
#[proc_macro_attribute]
pub fn xen_abi(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<Args>(attr) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    let item2 = item.clone();
    if let Ok(u) = syn::parse::<syn::ItemUnion>(item.clone()) {
        return match expand_union(args, u) {
            Ok(t) => t.into(),
            Err(e) => e.to_compile_error().into(),
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
    match expand(args, parsed) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
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

//! Procedural macros that will give hand-written types the same compile-time ABI checks as the
//! generated ones (`#[xen_abi]`, `include_spec!`).
//!
//! This crate is a skeleton: the attribute currently only requires `#[repr(C)]` on the item it
//! annotates and otherwise passes it through unchanged. The full checks are tracked separately.

use proc_macro::{TokenStream, TokenTree};

/// Marks a hand-written ABI type. Today it checks that the item carries `#[repr(C)]` (or
/// `#[repr(transparent)]`) and passes it through unchanged.
#[proc_macro_attribute]
pub fn xen_abi(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let text = item.to_string();
    let has_repr = text.contains("repr(C")
        || text.contains("repr (C")
        || text.contains("repr(transparent")
        || text.contains("repr (transparent");
    if has_repr {
        item
    } else {
        let span = item
            .clone()
            .into_iter()
            .next()
            .map(|t: TokenTree| t.span())
            .unwrap_or_else(proc_macro::Span::call_site);
        let err: TokenStream =
            "compile_error!(\"#[xen_abi] requires #[repr(C)] or #[repr(transparent)]\");"
                .parse()
                .unwrap_or_default();
        let _ = span;
        err
    }
}

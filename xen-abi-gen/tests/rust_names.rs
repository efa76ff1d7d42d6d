//! The names the validator keeps free for the hand-written support code are the ones that code
//! defines.

use std::collections::BTreeSet;
use std::path::Path;

/// Every public item of `xen-sys/src/abi.rs` (glob-imported by each generated module next to
/// the generated items) is in `names::ABI_NAMES`, and nothing else is.
#[test]
fn abi_names_are_what_xen_sys_abi_exports() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xen-sys/src/abi.rs");
    let text = std::fs::read_to_string(&path).expect("read xen-sys/src/abi.rs");
    let file = syn::parse_file(&text).expect("abi.rs parses");
    let public = |v: &syn::Visibility| matches!(v, syn::Visibility::Public(_));
    let mut exported = BTreeSet::new();
    for item in &file.items {
        let name = match item {
            syn::Item::Const(i) if public(&i.vis) => &i.ident,
            syn::Item::Fn(i) if public(&i.vis) => &i.sig.ident,
            syn::Item::Struct(i) if public(&i.vis) => &i.ident,
            syn::Item::Enum(i) if public(&i.vis) => &i.ident,
            syn::Item::Trait(i) if public(&i.vis) => &i.ident,
            syn::Item::Type(i) if public(&i.vis) => &i.ident,
            syn::Item::Static(i) if public(&i.vis) => &i.ident,
            syn::Item::Mod(i) if public(&i.vis) => &i.ident,
            syn::Item::Union(i) if public(&i.vis) => &i.ident,
            _ => continue,
        };
        exported.insert(name.to_string());
    }
    let reserved: BTreeSet<String> = xen_abi_gen::names::ABI_NAMES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        exported, reserved,
        "names::ABI_NAMES must list exactly what xen-sys/src/abi.rs exports"
    );
}

//! Rust names derived from C names.
//!
//! The emitter and the validator both derive every generated identifier here, so the validator
//! checks exactly the identifiers the emitter writes.

/// Every strict and reserved keyword of Rust 2015 to 2024 (`gen` is reserved from 2024 on;
/// generated code may be included by a crate of any edition).
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Identifiers that cannot be written as raw identifiers either (`r#self` is an error), and `_`,
/// which is no identifier at all.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Rust's primitive types. The generated modules glob-import each other (`use super::*`), and
/// a glob import shadows the prelude and the primitive types, so an item named `u32` or
/// `Option` would change what `u32` or `Option` means in every other module.
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64",
    "i128", "isize", "f16", "f32", "f64", "f128",
];

/// The names of Rust's 2021 prelude (core and std); see [`PRIMITIVES`].
const PRELUDE: &[&str] = &[
    "Copy",
    "Send",
    "Sized",
    "Sync",
    "Unpin",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "AsyncFn",
    "AsyncFnMut",
    "AsyncFnOnce",
    "drop",
    "size_of",
    "size_of_val",
    "align_of",
    "align_of_val",
    "Box",
    "ToOwned",
    "Clone",
    "PartialEq",
    "PartialOrd",
    "Eq",
    "Ord",
    "AsRef",
    "AsMut",
    "Into",
    "From",
    "Default",
    "Iterator",
    "Extend",
    "IntoIterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "Option",
    "Some",
    "None",
    "Result",
    "Ok",
    "Err",
    "String",
    "ToString",
    "Vec",
    "TryFrom",
    "TryInto",
    "FromIterator",
];

/// Crates the generated code (or code using it) names by path: an item of the same name would
/// hide the crate in every generated module.
const CRATES: &[&str] = &["core", "std", "alloc", "zerocopy", "xen_sys"];

/// What `xen-sys/src/abi.rs` exports; every generated module glob-imports it next to its
/// siblings (`use crate::abi::*`), so a spec item of the same name would make the name
/// ambiguous there. Kept in step with abi.rs by a test (`tests/rust_names.rs`).
pub const ABI_NAMES: &[&str] = &[
    "XenVersion",
    "XenAbi",
    "GuestHandle",
    "Hypercall",
    "hypercall_result",
    "IOC_NONE",
    "IOC_WRITE",
    "IOC_READ",
    "ioc",
    "read_prefix",
    "write_prefix",
];

/// Methods every generated union has besides its members' accessors: `bytes()`, and
/// `default()`, which the `from_*` constructors call as `Self::default()` (an inherent method of
/// that name would be called instead).
pub const UNION_METHODS: &[&str] = &["bytes", "default"];

/// Names the body of a generated hypercall wrapper uses next to its parameters: the backend
/// parameter `h` and the result conversion (a parameter of that name would hide it).
pub const WRAPPER_LOCALS: &[&str] = &["h", "hypercall_result"];

/// Whether `s` is a Rust keyword (strict or reserved, any edition).
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Whether `s` cannot be written even as a raw identifier (`self`, `Self`, `super`, `crate`,
/// `_`).
pub fn is_not_raw(s: &str) -> bool {
    NOT_RAW.contains(&s)
}

/// Whether `s` has the shape of an identifier (ASCII letters, digits and `_`, not starting
/// with a digit); keywords included.
pub fn is_ident_shaped(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why `name`, defined at the top level of a generated module, would break other generated
/// code: it names a prelude item, a primitive type, a crate, or what `xen_sys::abi` exports.
pub fn shadows(name: &str) -> Option<&'static str> {
    if PRIMITIVES.contains(&name) || PRELUDE.contains(&name) {
        Some("a name of Rust's prelude or a primitive type")
    } else if CRATES.contains(&name) {
        Some("the name of a crate the generated code uses")
    } else if ABI_NAMES.contains(&name) {
        Some("a name xen-sys's `abi` module exports next to the generated items")
    } else {
        None
    }
}

/// The module generated from a spec file: its path without `.toml`, `/`, `-`, `.` (and
/// anything else an identifier cannot hold) replaced by `_` (`hvm/dm_op.toml` → `hvm_dm_op`),
/// with a `_` in front when it would start with a digit (`04-x.toml` → `_04_x`).
pub fn module_name(rel_path: &str) -> String {
    let mut m: String = rel_path
        .trim_end_matches(".toml")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if m.is_empty() || m.starts_with(|c: char| c.is_ascii_digit()) {
        m.insert(0, '_');
    }
    m
}

/// `xen_dm_op_buf` → `XenDmOpBuf`, `domid_t` → `Domid`.
pub fn type_name(c: &str) -> String {
    let base = c.strip_suffix("_t").unwrap_or(c);
    let mut out = String::new();
    for part in base.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'T');
    }
    out
}

/// A field or function name, escaped when it is a keyword.
pub fn ident(c: &str) -> String {
    if KEYWORDS.contains(&c) {
        format!("r#{c}")
    } else {
        c.to_owned()
    }
}

/// The identifier an escaped name stands for (`r#type` → `type`), for comparing names.
pub fn unraw(s: &str) -> &str {
    s.strip_prefix("r#").unwrap_or(s)
}

/// The associated-constant name of a set member: prefix removed, upper case.
pub fn member_const(name: &str, prefix: &str) -> String {
    let stripped = name.strip_prefix(prefix).unwrap_or(name);
    let mut s = stripped.to_ascii_uppercase();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if s == "SELF" {
        s.push('_');
    }
    s
}

/// The wrapper function name of a sub-op: `event_channel_op` + `EVTCHNOP_send` → `event_channel_op_send`.
pub fn subop_fn(hypercall: &str, subop: &str) -> String {
    let tail = match subop.split_once('_') {
        Some((_, rest)) if !rest.is_empty() => rest,
        _ => subop,
    };
    ident(&format!("{hypercall}_{}", tail.to_ascii_lowercase()))
}

/// The private constant holding a union's size: `EvtchnStatusU` → `EVTCHN_STATUS_U_SIZE`.
pub fn size_const(n: &str) -> String {
    let mut s = String::new();
    for (i, c) in n.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    format!("{s}_SIZE")
}

/// The constant naming the Linux release of an ioctl: `IOCTL_X` → `IOCTL_X_LINUX`.
pub fn linux_const(rust_name: &str) -> String {
    format!("{rust_name}_LINUX")
}

/// The part of a member name its accessors are built from (`_pad1` → `pad1`).
fn plain(member: &str) -> &str {
    member.trim_start_matches('_')
}

/// The methods of a union member: getter (escaped), setter, constructor.
pub fn union_accessors(member: &str) -> [String; 3] {
    let p = plain(member);
    [ident(member), format!("set_{p}"), format!("from_{p}")]
}

/// The associated items of a bitfield member: getter (escaped), `with_` builder, shift and
/// mask constants.
pub fn bitfield_accessors(member: &str) -> [String; 4] {
    let p = plain(member);
    let upper = p.to_ascii_uppercase();
    [
        ident(member),
        format!("with_{p}"),
        format!("{upper}_SHIFT"),
        format!("{upper}_MASK"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_names() {
        assert_eq!(type_name("xen_dm_op_buf"), "XenDmOpBuf");
        assert_eq!(type_name("domid_t"), "Domid");
        assert_eq!(type_name("ioreq"), "Ioreq");
        assert_eq!(type_name("self_t"), "Self");
        assert_eq!(ident("type"), "r#type");
        assert_eq!(unraw("r#type"), "type");
        assert_eq!(member_const("IOREQ_TYPE_PIO", "IOREQ_TYPE_"), "PIO");
        assert_eq!(
            member_const("XEN_DMOP_create_ioreq_server", "XEN_DMOP_"),
            "CREATE_IOREQ_SERVER"
        );
        assert_eq!(
            subop_fn("event_channel_op", "EVTCHNOP_send"),
            "event_channel_op_send"
        );
        assert_eq!(
            subop_fn("memory_op", "XENMEM_acquire_resource"),
            "memory_op_acquire_resource"
        );
        assert_eq!(size_const("EvtchnStatusU"), "EVTCHN_STATUS_U_SIZE");
        assert_eq!(module_name("hvm/dm_op.toml"), "hvm_dm_op");
        assert_eq!(module_name("linux/evtchn.toml"), "linux_evtchn");
        assert_eq!(module_name("04-format-2.toml"), "_04_format_2");
        assert_eq!(union_accessors("ref"), ["r#ref", "set_ref", "from_ref"]);
        assert_eq!(
            bitfield_accessors("_pad1"),
            ["_pad1", "with_pad1", "PAD1_SHIFT", "PAD1_MASK"]
        );
    }

    #[test]
    fn classifies_names() {
        for k in ["self", "Self", "gen", "try", "async", "dyn", "match"] {
            assert!(is_keyword(k), "{k}");
        }
        assert!(is_not_raw("_") && is_not_raw("crate") && !is_not_raw("type"));
        assert!(!is_ident_shaped("1_SHIFT") && is_ident_shaped("_1"));
        for s in ["Option", "None", "u32", "core", "GuestHandle"] {
            assert!(shadows(s).is_some(), "{s}");
        }
        assert!(shadows("XenErrno").is_none() && shadows("option").is_none());
    }
}

//! Rust names derived from C names.

/// Rust keywords that cannot be field or function names without `r#`.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_names() {
        assert_eq!(type_name("xen_dm_op_buf"), "XenDmOpBuf");
        assert_eq!(type_name("domid_t"), "Domid");
        assert_eq!(type_name("ioreq"), "Ioreq");
        assert_eq!(ident("type"), "r#type");
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
    }
}

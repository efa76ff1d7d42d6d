//! The type grammar of the spec: `u32`, `u64_aligned`, `handle<T>`, `[T; N]`, item names.

use std::fmt;

/// A fixed-width integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int {
    /// `uint8_t`.
    U8,
    /// `uint16_t`.
    U16,
    /// `uint32_t`.
    U32,
    /// `uint64_t`.
    U64,
    /// `int8_t`.
    I8,
    /// `int16_t`.
    I16,
    /// `int32_t`.
    I32,
    /// `int64_t`.
    I64,
}

impl Int {
    /// Parse `u8` … `i64`.
    pub fn parse(s: &str) -> Option<Int> {
        Some(match s {
            "u8" => Int::U8,
            "u16" => Int::U16,
            "u32" => Int::U32,
            "u64" => Int::U64,
            "i8" => Int::I8,
            "i16" => Int::I16,
            "i32" => Int::I32,
            "i64" => Int::I64,
            _ => return None,
        })
    }

    /// Size in bytes.
    pub fn size(self) -> u64 {
        match self {
            Int::U8 | Int::I8 => 1,
            Int::U16 | Int::I16 => 2,
            Int::U32 | Int::I32 => 4,
            Int::U64 | Int::I64 => 8,
        }
    }

    /// Width in bits.
    pub fn bits(self) -> u32 {
        (self.size() * 8) as u32
    }

    /// Whether the type is signed.
    pub fn signed(self) -> bool {
        matches!(self, Int::I8 | Int::I16 | Int::I32 | Int::I64)
    }

    /// The smallest and largest value of the type.
    pub fn range(self) -> (i128, i128) {
        let bits = self.bits();
        if self.signed() {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        }
    }

    /// The Rust (and spec) spelling.
    pub fn rust(self) -> &'static str {
        match self {
            Int::U8 => "u8",
            Int::U16 => "u16",
            Int::U32 => "u32",
            Int::U64 => "u64",
            Int::I8 => "i8",
            Int::I16 => "i16",
            Int::I32 => "i32",
            Int::I64 => "i64",
        }
    }

    /// The C spelling.
    pub fn c(self) -> &'static str {
        match self {
            Int::U8 => "uint8_t",
            Int::U16 => "uint16_t",
            Int::U32 => "uint32_t",
            Int::U64 => "uint64_t",
            Int::I8 => "int8_t",
            Int::I16 => "int16_t",
            Int::I32 => "int32_t",
            Int::I64 => "int64_t",
        }
    }
}

/// A parsed type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// A fixed-width integer.
    Int(Int),
    /// `uint64_aligned_t`.
    U64Aligned,
    /// C `unsigned long` / `size_t` (Linux uapi).
    Ulong,
    /// A userspace pointer in a Linux ioctl struct.
    Ptr,
    /// `XEN_GUEST_HANDLE(T)`; `None` for `void`.
    Handle(Option<String>),
    /// `T[N]`.
    Array(Box<Ty>, u64),
    /// Another item of the spec.
    Named(String),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Int(i) => f.write_str(i.rust()),
            Ty::U64Aligned => f.write_str("u64_aligned"),
            Ty::Ulong => f.write_str("ulong"),
            Ty::Ptr => f.write_str("ptr"),
            Ty::Handle(None) => f.write_str("handle<void>"),
            Ty::Handle(Some(t)) => write!(f, "handle<{t}>"),
            Ty::Array(t, n) => write!(f, "[{t}; {n}]"),
            Ty::Named(n) => f.write_str(n),
        }
    }
}

/// Why a type string does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TyError(pub String);

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Ty {
    /// How deep arrays may nest (`[[u8; 2]; 3]` is 2): parsing is recursive, and a string of a
    /// million `[` must be an error, not a stack overflow.
    pub const MAX_ARRAY_DEPTH: usize = 16;

    /// Parse a type string of the spec.
    pub fn parse(s: &str) -> Result<Ty, TyError> {
        Self::parse_at(s, 0)
    }

    fn parse_at(s: &str, depth: usize) -> Result<Ty, TyError> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| TyError(format!("array type `{s}` is missing its closing `]`")))?;
            let (elem, len) = inner
                .rsplit_once(';')
                .ok_or_else(|| TyError(format!("array type `{s}` must be written `[T; N]`")))?;
            let len = len.trim();
            let n = if let Some(hex) = len.strip_prefix("0x") {
                u64::from_str_radix(hex, 16)
            } else {
                len.parse::<u64>()
            }
            .map_err(|_| TyError(format!("array length `{len}` is not a number")))?;
            if n == 0 {
                return Err(TyError(format!(
                    "array `{s}` has length 0 (flexible array members are not part of a fixed layout)"
                )));
            }
            if depth >= Self::MAX_ARRAY_DEPTH {
                return Err(TyError(format!(
                    "arrays nest more than {} deep",
                    Self::MAX_ARRAY_DEPTH
                )));
            }
            return Ok(Ty::Array(Box::new(Ty::parse_at(elem, depth + 1)?), n));
        }
        if let Some(inner) = s.strip_prefix("handle<") {
            let inner = inner
                .strip_suffix('>')
                .ok_or_else(|| TyError(format!("handle type `{s}` is missing its closing `>`")))?
                .trim();
            if inner == "void" {
                return Ok(Ty::Handle(None));
            }
            if !is_ident(inner) {
                return Err(TyError(format!(
                    "handle target `{inner}` must be `void` or an item name"
                )));
            }
            return Ok(Ty::Handle(Some(inner.to_owned())));
        }
        if let Some(i) = Int::parse(s) {
            return Ok(Ty::Int(i));
        }
        match s {
            "u64_aligned" => return Ok(Ty::U64Aligned),
            "ulong" => return Ok(Ty::Ulong),
            "ptr" => return Ok(Ty::Ptr),
            "" => return Err(TyError("empty type".into())),
            _ => {}
        }
        if is_ident(s) {
            Ok(Ty::Named(s.to_owned()))
        } else {
            Err(TyError(format!("`{s}` is not a type")))
        }
    }

    /// Names of items this type refers to.
    pub fn refs(&self) -> Vec<&str> {
        match self {
            // A handle to a plain integer (`handle<i32>`) refers to no item.
            Ty::Handle(Some(n)) if Int::parse(n).is_some() => vec![],
            Ty::Handle(Some(n)) | Ty::Named(n) => vec![n.as_str()],
            Ty::Array(t, _) => t.refs(),
            _ => vec![],
        }
    }
}

/// The spec's spelling of a C integer type name (`uint64_t` → `u64`, `unsigned long` → `ulong`),
/// for the hint of an unknown type. Spaces inside the name do not matter.
pub fn spec_name_of_c(c: &str) -> Option<&'static str> {
    let words: Vec<&str> = c.split_whitespace().collect();
    // `unsigned long int` is `unsigned long`: an `int` next to a size changes nothing.
    fn without_int<'a>(ws: &[&'a str]) -> Vec<&'a str> {
        ws.iter().copied().filter(|w| *w != "int").collect()
    }
    let name = match words.as_slice() {
        ["unsigned", rest @ ..] | [rest @ .., "unsigned"] if !rest.is_empty() => {
            match without_int(rest).as_slice() {
                [] => "u32",
                ["char"] => "u8",
                ["short"] => "u16",
                ["long"] => "ulong",
                ["long", "long"] => "u64",
                _ => return None,
            }
        }
        ["unsigned"] => "u32",
        ["signed", rest @ ..] => match without_int(rest).as_slice() {
            [] => "i32",
            ["char"] => "i8",
            ["short"] => "i16",
            ["long", "long"] => "i64",
            _ => return None,
        },
        [one] => match *one {
            "uint8_t" | "__u8" | "u_int8_t" | "char" => "u8",
            "uint16_t" | "__u16" | "u_int16_t" => "u16",
            "uint32_t" | "__u32" | "u_int32_t" => "u32",
            "uint64_t" | "__u64" | "u_int64_t" => "u64",
            "int8_t" | "__s8" => "i8",
            "int16_t" | "__s16" | "short" => "i16",
            "int32_t" | "__s32" | "int" => "i32",
            "int64_t" | "__s64" => "i64",
            "uint64_aligned_t" | "__aligned_u64" => "u64_aligned",
            "size_t" | "uintptr_t" => "ulong",
            "void*" => "ptr",
            _ => return None,
        },
        ["short", "int"] => "i16",
        ["long", "long"] | ["long", "long", "int"] => "i64",
        ["void", "*"] => "ptr",
        _ => return None,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_grammar() {
        assert_eq!(Ty::parse("u32"), Ok(Ty::Int(Int::U32)));
        assert_eq!(
            Ty::parse("[u8; 16]"),
            Ok(Ty::Array(Box::new(Ty::Int(Int::U8)), 16))
        );
        assert_eq!(Ty::parse("handle<void>"), Ok(Ty::Handle(None)));
        assert_eq!(
            Ty::parse("handle<xen_pfn_t>"),
            Ok(Ty::Handle(Some("xen_pfn_t".into())))
        );
        assert_eq!(
            Ty::parse("[[u8; 2]; 3]"),
            Ok(Ty::Array(
                Box::new(Ty::Array(Box::new(Ty::Int(Int::U8)), 2)),
                3
            ))
        );
        assert!(Ty::parse("[u8; 0]").is_err());
        assert!(Ty::parse("[u8 16]").is_err());
        assert!(Ty::parse("handle<a b>").is_err());
        assert!(Ty::parse("u 8").is_err());
    }

    #[test]
    fn c_integer_names_map_to_the_spec_grammar() {
        for (c, spec) in [
            ("uint8_t", "u8"),
            ("uint16_t", "u16"),
            ("uint32_t", "u32"),
            ("uint64_t", "u64"),
            ("int8_t", "i8"),
            ("int16_t", "i16"),
            ("int32_t", "i32"),
            ("int64_t", "i64"),
            ("uint64_aligned_t", "u64_aligned"),
            ("char", "u8"),
            ("unsigned char", "u8"),
            ("signed char", "i8"),
            ("unsigned short", "u16"),
            ("short", "i16"),
            ("int", "i32"),
            ("unsigned", "u32"),
            ("unsigned int", "u32"),
            ("unsigned  long", "ulong"),
            ("long long", "i64"),
            ("unsigned long long", "u64"),
            ("void *", "ptr"),
        ] {
            assert_eq!(spec_name_of_c(c), Some(spec), "{c}");
            // Every suggestion is itself a type of the grammar.
            assert!(
                !matches!(Ty::parse(spec), Ok(Ty::Named(_)) | Err(_)),
                "{spec}"
            );
        }
        assert_eq!(spec_name_of_c("long"), None);
        assert_eq!(spec_name_of_c("domid_t"), None);
    }
}

//! The spec files as written: serde types that keep the source span of every value.
#![allow(missing_docs)]

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A spanned string.
pub type S = Spanned<String>;

/// An integer literal: a TOML integer, or a string for values TOML cannot hold (`"0xffffffffffffffff"`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum IntLit {
    /// A TOML integer.
    Int(i64),
    /// A decimal or `0x` hexadecimal string.
    Str(String),
}

impl IntLit {
    /// The value as i128, or why it is not a number.
    pub fn value(&self) -> Result<i128, String> {
        match self {
            IntLit::Int(v) => Ok(i128::from(*v)),
            IntLit::Str(s) => {
                let t = s.trim().replace('_', "");
                let (neg, t) = match t.strip_prefix('-') {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, t),
                };
                let v = if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                    u64::from_str_radix(hex, 16)
                } else {
                    t.parse::<u64>()
                }
                .map_err(|_| format!("`{s}` is not an integer"))?;
                Ok(if neg { -i128::from(v) } else { i128::from(v) })
            }
        }
    }
}

/// One spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub spec: Spanned<Header>,
    #[serde(rename = "const", default)]
    pub consts: Vec<Spanned<Const>>,
    #[serde(default)]
    pub typedef: Vec<Spanned<Typedef>>,
    #[serde(rename = "struct", default)]
    pub structs: Vec<Spanned<Compound>>,
    #[serde(default)]
    pub union: Vec<Spanned<Compound>>,
    #[serde(default)]
    pub values: Vec<Spanned<Values>>,
    #[serde(default)]
    pub flags: Vec<Spanned<Flags>>,
    #[serde(default)]
    pub bitfield: Vec<Spanned<Bitfield>>,
    #[serde(default)]
    pub hypercall: Vec<Spanned<Hypercall>>,
    #[serde(default)]
    pub ioctl: Vec<Spanned<Ioctl>>,
}

/// The `[spec]` header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: Spanned<i64>,
    pub xen: S,
    pub interface_version: Spanned<i64>,
    pub header: S,
    pub doc: S,
    /// The first release whose header declares its items outside `__XEN__`/`__XEN_TOOLS__`
    /// (before it, the guest view sees none of them).
    pub guest_since: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Const {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    #[serde(rename = "type")]
    pub ty: S,
    pub value: Spanned<IntLit>,
    pub in_c: Option<bool>,
    pub c_guard: Option<S>,
    /// The mask of every member of this flag set (so each release's value is the members it
    /// has).
    pub mask_of: Option<S>,
    /// In a `linux/*` file: the Linux release that introduced it.
    pub linux: Option<S>,
}

/// A size or alignment expectation: one number, or one per architecture.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PerArch {
    All(i64),
    Each(BTreeMap<String, i64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typedef {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    #[serde(rename = "type")]
    pub ty: Option<S>,
    pub arch: Option<Spanned<BTreeMap<String, S>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: S,
    #[serde(rename = "type")]
    pub ty: S,
    pub doc: Option<S>,
    pub only: Option<Spanned<Vec<S>>>,
    pub in_c: Option<bool>,
    /// The release that added the field (default: its struct's).
    pub since: Option<S>,
}

/// A struct or a union.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compound {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    /// Overrides the file's `guest_since` (a type the header showed to guests all along).
    pub guest_since: Option<S>,
    #[serde(default)]
    pub anonymous: bool,
    /// In a `linux/*` file: the Linux release that introduced it.
    pub linux: Option<S>,
    /// In a `linux/*` file: the C spelling in Xen's `xen/sys` copy of the header, when it names
    /// the type differently from Linux's uapi header.
    pub xen_sys_c_name: Option<S>,
    pub size: Option<Spanned<PerArch>>,
    pub align: Option<Spanned<PerArch>>,
    pub fields: Spanned<Vec<Spanned<Field>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: S,
    pub value: Spanned<IntLit>,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub c_guard: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    pub repr: S,
    pub prefix: Option<S>,
    /// The set is a C array of the same name with one entry per member (Xenstore's
    /// `xsd_errors`), not a group of macros: the probe compares the entry count.
    pub c_array: Option<bool>,
    /// In a `linux/*` file: the Linux release that introduced it.
    pub linux: Option<S>,
    pub members: Vec<Spanned<Member>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagMember {
    pub name: S,
    pub bit: Spanned<i64>,
    pub doc: Option<S>,
    pub since: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    pub repr: S,
    pub prefix: Option<S>,
    /// In a `linux/*` file: the Linux release that introduced it.
    pub linux: Option<S>,
    pub members: Vec<Spanned<FlagMember>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitMember {
    pub name: S,
    pub lsb: Spanned<i64>,
    pub width: Spanned<i64>,
    pub doc: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bitfield {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    pub repr: S,
    pub members: Vec<Spanned<BitMember>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arg {
    pub name: S,
    #[serde(rename = "type")]
    pub ty: S,
    pub points_to: Option<S>,
    pub doc: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subop {
    pub name: S,
    pub value: Spanned<IntLit>,
    pub arg: S,
    pub dir: S,
    pub doc: Option<S>,
    pub since: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hypercall {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    pub number: Spanned<i64>,
    pub args: Vec<Spanned<Arg>>,
    pub subop_arg: Option<S>,
    #[serde(default)]
    pub subop: Vec<Spanned<Subop>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ioctl {
    pub name: S,
    pub doc: Option<S>,
    pub since: Option<S>,
    pub rust_name: Option<S>,
    pub c_name: Option<S>,
    pub c_guard: Option<S>,
    pub dir: S,
    #[serde(rename = "type")]
    pub ty: Spanned<i64>,
    pub nr: Spanned<i64>,
    pub arg: S,
    pub linux: Option<S>,
}

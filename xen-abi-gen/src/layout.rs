//! The one layout engine: C size, alignment and field offsets of every spec type, per architecture.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::arch::{Arch, View};
use crate::model::{Compound, Item, ItemKind, Spec};
use crate::ty::{Int, Ty};

/// Size and alignment of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `sizeof`.
    pub size: u64,
    /// `_Alignof` (inside a struct).
    pub align: u64,
}

/// Where a field sits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldLayout {
    /// C field name.
    pub name: String,
    /// `offsetof`.
    pub offset: u64,
    /// `sizeof` of the field.
    pub size: u64,
    /// Alignment of the field's type.
    #[serde(skip)]
    pub align: u64,
}

/// Bytes the C compiler would insert without a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padding {
    /// Index of the field the padding precedes; `None` for trailing padding.
    pub before: Option<usize>,
    /// Offset where the padding starts.
    pub offset: u64,
    /// Number of bytes.
    pub bytes: u64,
}

/// The full layout of a struct or union on one architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemLayout {
    /// C name.
    pub item: String,
    /// Architecture name.
    pub arch: String,
    /// `sizeof`.
    pub size: u64,
    /// `_Alignof`.
    pub align: u64,
    /// Fields present on this architecture (bitfield groups included as one field).
    pub fields: Vec<FieldLayout>,
    /// Implicit padding (empty for a valid spec).
    #[serde(skip)]
    pub padding: Vec<Padding>,
}

/// Why a layout cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A name that is not in the spec.
    #[error("unknown type `{0}`")]
    Unknown(String),
    /// A name that is not a type (e.g. a constant).
    #[error("`{0}` is a {1}, not a type")]
    NotAType(String, &'static str),
    /// A type that contains itself.
    #[error("type `{0}` contains itself")]
    Recursive(String),
    /// A layout too large to be real.
    #[error("type `{0}` is larger than 2^32 bytes")]
    TooLarge(String),
    /// Types nested deeper than [`Engine::MAX_DEPTH`] (typedef of typedef of ..., or struct
    /// in struct in ...): laying them out would exhaust the stack.
    #[error("type `{0}` nests more than {max} named types deep", max = Engine::MAX_DEPTH)]
    TooDeep(String),
}

/// A named type on an architecture, in the tools view or not.
type Key = (String, Arch, bool);

/// Computes layouts over a validated spec, caching per (item, arch, view).
#[derive(Debug)]
pub struct Engine<'a> {
    items: BTreeMap<&'a str, &'a Item>,
    /// Layouts, with how deep named types nest in each (0 for a primitive).
    cache: RefCell<BTreeMap<Key, (Layout, usize)>>,
    visiting: RefCell<HashSet<Key>>,
    /// Named types being laid out, one inside the other: the recursion stops at
    /// [`Engine::MAX_DEPTH`] before the stack runs out, and the depth kept in the cache
    /// makes the answer the same whatever was laid out before.
    depth: Cell<usize>,
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

impl<'a> Engine<'a> {
    /// An engine over `spec`.
    pub fn new(spec: &'a Spec) -> Self {
        let items = spec
            .items()
            .map(|(_, i)| (i.name.as_str(), i))
            .collect::<BTreeMap<_, _>>();
        Engine {
            items,
            cache: RefCell::default(),
            visiting: RefCell::default(),
            depth: Cell::new(0),
        }
    }

    /// How deep named types may nest: far beyond any real header, far below what exhausts a
    /// thread's stack.
    pub const MAX_DEPTH: usize = 100;

    /// Layout of a primitive integer on `arch`.
    pub fn int(i: Int, arch: Arch) -> Layout {
        let size = i.size();
        let align = if size == 8 { arch.u64_align() } else { size };
        Layout { size, align }
    }

    /// Layout of any type.
    pub fn ty(&self, ty: &Ty, arch: Arch, view: View) -> Result<Layout, LayoutError> {
        self.ty_depth(ty, arch, view).map(|(l, _)| l)
    }

    /// Layout of any type and how deep named types nest in it.
    fn ty_depth(&self, ty: &Ty, arch: Arch, view: View) -> Result<(Layout, usize), LayoutError> {
        Ok((
            match ty {
                Ty::Int(i) => Self::int(*i, arch),
                Ty::U64Aligned => Layout {
                    size: 8,
                    align: if arch == Arch::X86_32 && view == View::Guest {
                        4
                    } else {
                        8
                    },
                },
                Ty::Ulong | Ty::Ptr => Layout {
                    size: arch.word(),
                    align: arch.word(),
                },
                Ty::Handle(_) => {
                    if arch.is_arm() {
                        Layout { size: 8, align: 8 }
                    } else {
                        Layout {
                            size: arch.word(),
                            align: arch.word(),
                        }
                    }
                }
                Ty::Array(elem, n) => {
                    let (l, d) = self.ty_depth(elem, arch, view)?;
                    let size = l
                        .size
                        .checked_mul(*n)
                        .filter(|s| *s <= u64::from(u32::MAX))
                        .ok_or_else(|| LayoutError::TooLarge(ty.to_string()))?;
                    return Ok((
                        Layout {
                            size,
                            align: l.align,
                        },
                        d,
                    ));
                }
                Ty::Named(name) => return self.named(name, arch, view),
            },
            0,
        ))
    }

    fn lookup(&self, name: &str) -> Result<&'a Item, LayoutError> {
        let item = self
            .items
            .get(name)
            .copied()
            .ok_or_else(|| LayoutError::Unknown(name.to_owned()))?;
        if !item.kind.is_type() {
            return Err(LayoutError::NotAType(name.to_owned(), item.kind.keyword()));
        }
        Ok(item)
    }

    fn named(&self, name: &str, arch: Arch, view: View) -> Result<(Layout, usize), LayoutError> {
        let key = (name.to_owned(), arch, view == View::Tools);
        if let Some(l) = self.cache.borrow().get(&key) {
            return Ok(*l);
        }
        let item = self.lookup(name)?;
        if self.depth.get() >= Self::MAX_DEPTH {
            return Err(LayoutError::TooDeep(name.to_owned()));
        }
        if !self.visiting.borrow_mut().insert(key.clone()) {
            return Err(LayoutError::Recursive(name.to_owned()));
        }
        self.depth.set(self.depth.get() + 1);
        let result = match &item.kind {
            ItemKind::Typedef(t) => self.ty_depth(t.on(arch), arch, view),
            ItemKind::Values(v) | ItemKind::Flags(v) => Ok((Self::int(v.repr, arch), 0)),
            ItemKind::Bitfield(b) => Ok((Self::int(b.repr, arch), 0)),
            ItemKind::Struct(c) | ItemKind::Union(c) => {
                self.compound(item, c, arch, view).map(|(l, d)| {
                    (
                        Layout {
                            size: l.size,
                            align: l.align,
                        },
                        d,
                    )
                })
            }
            _ => unreachable!("is_type() checked above"),
        };
        self.depth.set(self.depth.get() - 1);
        self.visiting.borrow_mut().remove(&key);
        let (l, d) = result?;
        let d = d + 1;
        if d > Self::MAX_DEPTH {
            return Err(LayoutError::TooDeep(name.to_owned()));
        }
        self.cache.borrow_mut().insert(key, (l, d));
        Ok((l, d))
    }

    fn compound(
        &self,
        item: &Item,
        c: &Compound,
        arch: Arch,
        view: View,
    ) -> Result<(ItemLayout, usize), LayoutError> {
        let is_union = matches!(item.kind, ItemKind::Union(_));
        let mut fields = Vec::new();
        let mut padding = Vec::new();
        let mut cur = 0u64;
        let mut align = 1u64;
        let mut size = 0u64;
        let mut depth = 0;
        for (idx, f) in c.fields.iter().enumerate() {
            if !f.present_on(arch) {
                continue;
            }
            let (l, d) = self.ty_depth(&f.ty, arch, view)?;
            depth = depth.max(d);
            align = align.max(l.align);
            let offset = if is_union { 0 } else { align_up(cur, l.align) };
            if offset > cur {
                padding.push(Padding {
                    before: Some(idx),
                    offset: cur,
                    bytes: offset - cur,
                });
            }
            fields.push(FieldLayout {
                name: f.name.clone(),
                offset,
                size: l.size,
                align: l.align,
            });
            cur = offset + l.size;
            size = size.max(cur);
            if size > u64::from(u32::MAX) {
                return Err(LayoutError::TooLarge(item.name.clone()));
            }
        }
        let total = align_up(size, align);
        if total > size && !is_union {
            padding.push(Padding {
                before: None,
                offset: size,
                bytes: total - size,
            });
        }
        Ok((
            ItemLayout {
                item: item.name.clone(),
                arch: arch.name().to_owned(),
                size: total,
                align,
                fields,
                padding,
            },
            depth,
        ))
    }

    /// Full layout of a struct or union (C name) on `arch`.
    pub fn item(&self, name: &str, arch: Arch, view: View) -> Result<ItemLayout, LayoutError> {
        let item = self.lookup(name)?;
        match &item.kind {
            ItemKind::Struct(c) | ItemKind::Union(c) => {
                let key = (name.to_owned(), arch, view == View::Tools);
                if !self.visiting.borrow_mut().insert(key.clone()) {
                    return Err(LayoutError::Recursive(name.to_owned()));
                }
                // Counted like `named` does, so a struct is too deep here exactly when it is
                // as a field's type.
                self.depth.set(self.depth.get() + 1);
                let r = self.compound(item, c, arch, view);
                self.depth.set(self.depth.get() - 1);
                self.visiting.borrow_mut().remove(&key);
                let (l, d) = r?;
                if d + 1 > Self::MAX_DEPTH {
                    return Err(LayoutError::TooDeep(name.to_owned()));
                }
                Ok(l)
            }
            _ => {
                let (l, _) = self.named(name, arch, view)?;
                Ok(ItemLayout {
                    item: name.to_owned(),
                    arch: arch.name().to_owned(),
                    size: l.size,
                    align: l.align,
                    fields: vec![],
                    padding: vec![],
                })
            }
        }
    }

    /// The `_IOC` number of an ioctl on `arch` (asm-generic encoding).
    pub fn ioctl_number(
        &self,
        ioctl: &crate::model::Ioctl,
        arch: Arch,
    ) -> Result<u32, LayoutError> {
        let size = match &ioctl.arg {
            Some(t) => self.ty(t, arch, View::Guest)?.size,
            None => 0,
        };
        Ok(ioc(ioctl.dir as u32, ioctl.ty, ioctl.nr, size))
    }
}

/// `_IOC(dir, type, nr, size)` as on x86 and Arm. `size` must be < 2^14.
pub fn ioc(dir: u32, ty: u8, nr: u8, size: u64) -> u32 {
    (dir << 30) | ((size as u32 & 0x3fff) << 16) | (u32::from(ty) << 8) | u32::from(nr)
}

//! Decoding a private copy of an ioreq slot into an owned, validated request.
//!
//! Everything here works on a copy: the shared slot is read exactly once (see `slot`), and a
//! value that fails validation is reported, never acted upon.

use xen_sys::{Ioreq, IoreqType, IOREQ_READ};

use super::handler::Space;

/// Bytes per access. The discriminant is the log2 of the byte count, so the count and the mask
/// are shifts rather than table lookups on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Size {
    /// 1 byte.
    B1 = 0,
    /// 2 bytes.
    B2 = 1,
    /// 4 bytes.
    B4 = 2,
    /// 8 bytes.
    B8 = 3,
}

impl Size {
    /// From a byte count; only 1, 2, 4 and 8 are sizes.
    #[inline]
    pub const fn from_bytes(n: u32) -> Option<Size> {
        // A table: one load on the hot path instead of a chain of compares.
        const BY_BYTES: [Option<Size>; 9] = [
            None,
            Some(Size::B1),
            Some(Size::B2),
            None,
            Some(Size::B4),
            None,
            None,
            None,
            Some(Size::B8),
        ];
        if n < 9 {
            BY_BYTES[n as usize]
        } else {
            None
        }
    }

    /// The byte count.
    #[inline]
    pub const fn bytes(self) -> u32 {
        1 << self as u32
    }

    /// All-ones of this width (what an unclaimed read returns).
    #[inline]
    pub const fn mask(self) -> u64 {
        const MASKS: [u64; 4] = [0xff, 0xffff, 0xffff_ffff, u64::MAX];
        MASKS[self as usize]
    }
}

/// Direction of an access, from the guest's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// The guest reads: the device produces the data.
    Read,
    /// The guest writes: the device consumes the data.
    Write,
}

/// Where a request's data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Data {
    /// The value itself (writes: masked to the access size; reads: ignored).
    Value(u64),
    /// Guest-physical address of a RAM buffer of `count` elements (`rep ins/outs/movs`).
    GuestPtr(u64),
}

/// A port or MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// Port number (≤ 0xffff) or guest-physical MMIO address.
    pub addr: u64,
    /// Bytes per element.
    pub size: Size,
    /// Read or write.
    pub dir: Dir,
    /// Repetitions (≥ 1).
    pub count: u32,
    /// Addresses decrease by `size` per repetition (x86 direction flag).
    pub df: bool,
    /// Immediate value or guest buffer.
    pub data: Data,
}

/// A PCI configuration-space access to a device claimed by SBDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciAccess {
    /// Segment/bus/device/function, encoded as `XEN_DMOP_PCI_SBDF`.
    pub sbdf: u32,
    /// Register offset.
    pub reg: u32,
    /// Bytes (1, 2 or 4).
    pub size: Size,
    /// Read or write.
    pub dir: Dir,
    /// Value written (masked to `size`); 0 for reads.
    pub data: u64,
}

/// A validated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// Port I/O (`IOREQ_TYPE_PIO`).
    Pio(Access),
    /// Memory-mapped I/O (`IOREQ_TYPE_COPY`).
    Mmio(Access),
    /// PCI configuration space (`IOREQ_TYPE_PCI_CONFIG`).
    PciConfig(PciAccess),
    /// Guest RAM mappings changed: drop cached mappings (`IOREQ_TYPE_INVALIDATE`).
    Invalidate,
    /// The guest's RTC offset changed (`IOREQ_TYPE_TIMEOFFSET`).
    TimeOffset(u64),
}

/// Why a request was refused. The outcome is defined: reads are answered with all-ones of the
/// (clamped) size, writes are dropped, the hook `Handler::invalid` is told, and the request is
/// completed so the vCPU goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Invalid {
    /// `size` is not 1, 2, 4 or 8.
    Size(u32),
    /// `count` is 0.
    CountZero,
    /// `count * size` exceeds a page: Xen splits repeated accesses at page boundaries, so a
    /// larger request can only come from a corrupted slot (and would make the server loop).
    CountTooLarge(u32),
    /// A type this library does not know.
    UnknownType(u8),
    /// A port number above 0xffff (XSA-199).
    PortOutOfRange(u64),
    /// Port I/O wider than 4 bytes.
    PortSize(u32),
    /// PCI config access of 8 bytes.
    PciSize(u32),
    /// PCI config access with `count` > 1 or a guest pointer.
    PciShape,
    /// An access (any element of a repeated one) outside every range the server claims, or a
    /// PCI config access to a device it does not claim (the value: the request's address, or
    /// the register for PCI). Xen routes by the claimed ranges, but the slot is not trusted.
    Unclaimed(u64),
}

impl core::fmt::Display for Invalid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Invalid::Size(s) => write!(f, "access size {s} is not 1, 2, 4 or 8"),
            Invalid::CountZero => f.write_str("repeat count is 0"),
            Invalid::CountTooLarge(c) => write!(f, "repeat count {c} spans more than a page"),
            Invalid::UnknownType(t) => write!(f, "unknown ioreq type {t}"),
            Invalid::PortOutOfRange(a) => write!(f, "port {a:#x} is above 0xffff"),
            Invalid::PortSize(s) => write!(f, "port access of {s} bytes"),
            Invalid::PciSize(s) => write!(f, "PCI config access of {s} bytes"),
            Invalid::PciShape => f.write_str("PCI config access with repeats or a guest pointer"),
            Invalid::Unclaimed(a) => write!(f, "access at {a:#x} outside the claimed ranges"),
        }
    }
}

/// Decode a private copy of a slot.
///
/// ```
/// use xen::ioreq::{decode, Request, Size, Dir, Data};
/// let mut raw = xen_sys::Ioreq::default();
/// raw.addr = 0xfe00_0010;
/// raw.size = 4;
/// raw.count = 1;
/// raw.r#type = xen_sys::IoreqType::COPY;
/// raw.flags = xen_sys::IoreqFlags::default().with_dir(xen_sys::IOREQ_READ);
/// match decode(&raw).unwrap() {
///     Request::Mmio(a) => assert_eq!((a.addr, a.size, a.dir), (0xfe00_0010, Size::B4, Dir::Read)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[inline]
pub fn decode(raw: &Ioreq) -> Result<Request, Invalid> {
    let t = raw.r#type;
    match t {
        IoreqType::INVALIDATE => return Ok(Request::Invalidate),
        IoreqType::TIMEOFFSET => return Ok(Request::TimeOffset(raw.data)),
        IoreqType::PIO | IoreqType::COPY | IoreqType::PCI_CONFIG => {}
        other => return Err(Invalid::UnknownType(other.0)),
    }
    let size = Size::from_bytes(raw.size).ok_or(Invalid::Size(raw.size))?;
    if raw.count == 0 {
        return Err(Invalid::CountZero);
    }
    if u64::from(raw.count) * u64::from(size.bytes()) > 4096 {
        return Err(Invalid::CountTooLarge(raw.count));
    }
    let flags = raw.flags;
    let dir = if flags.dir() == IOREQ_READ {
        Dir::Read
    } else {
        Dir::Write
    };
    let is_ptr = flags.data_is_ptr() != 0;
    let data = if is_ptr {
        Data::GuestPtr(raw.data)
    } else if dir == Dir::Write {
        Data::Value(raw.data & size.mask())
    } else {
        Data::Value(0)
    };
    let access = Access {
        addr: raw.addr,
        size,
        dir,
        count: raw.count,
        df: flags.df() != 0,
        data,
    };
    match t {
        IoreqType::PIO => {
            if raw.addr > 0xffff {
                return Err(Invalid::PortOutOfRange(raw.addr));
            }
            if size == Size::B8 {
                return Err(Invalid::PortSize(8));
            }
            Ok(Request::Pio(access))
        }
        IoreqType::COPY => Ok(Request::Mmio(access)),
        _ => {
            if size == Size::B8 {
                return Err(Invalid::PciSize(8));
            }
            if raw.count != 1 || is_ptr {
                return Err(Invalid::PciShape);
            }
            Ok(Request::PciConfig(PciAccess {
                sbdf: (raw.addr >> 32) as u32,
                reg: raw.addr as u32,
                size,
                dir,
                data: if dir == Dir::Write {
                    raw.data & size.mask()
                } else {
                    0
                },
            }))
        }
    }
}

/// The shape of nearly every request: one port or MMIO access with its value in the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Single {
    pub space: Space,
    pub addr: u64,
    pub size: Size,
    /// The value written (masked to `size`), or `None` for a read.
    pub write: Option<u64>,
}

/// Recognise a [`Single`] access in a private copy of a slot, or `None` for anything else
/// (including anything invalid), which then goes through [`decode`]. Accepts exactly the
/// requests `decode` turns into a port/MMIO access with `count == 1` and an immediate value,
/// with the same fields (a unit test checks the two against each other); it exists so the hot
/// path does not build and match a whole [`Request`].
#[inline(always)]
pub(crate) fn single(raw: &Ioreq) -> Option<Single> {
    let space = match raw.r#type {
        IoreqType::COPY => Space::Mmio,
        IoreqType::PIO => Space::Port,
        _ => return None,
    };
    if raw.count != 1 || raw.flags.data_is_ptr() != 0 {
        return None;
    }
    let size = Size::from_bytes(raw.size)?;
    if space == Space::Port && (raw.addr > 0xffff || size == Size::B8) {
        return None;
    }
    let write = (raw.flags.dir() != IOREQ_READ).then(|| raw.data & size.mask());
    Some(Single {
        space,
        addr: raw.addr,
        size,
        write,
    })
}

/// The size to answer an invalid read with: the request's size clamped to 1..=8 bytes and
/// rounded up to a power of two.
pub fn fallback_size(raw_size: u32) -> Size {
    match raw_size {
        0 | 1 => Size::B1,
        2 => Size::B2,
        3 | 4 => Size::B4,
        _ => Size::B8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xen_sys::IoreqFlags;

    /// Mostly well-formed single accesses, with every field also free to be anything.
    fn near_single() -> impl Strategy<Value = Ioreq> {
        (
            any::<[u8; 32]>(),
            0u8..4,
            0u32..3,
            0u32..10,
            0u8..16,
            any::<bool>(),
        )
            .prop_map(|(bytes, ty, count, size, flags, wide)| {
                let mut r: Ioreq = zerocopy::transmute!(bytes);
                r.r#type = IoreqType(ty);
                r.count = count;
                r.size = size;
                r.flags = IoreqFlags(flags << 4);
                if !wide {
                    r.addr &= 0x1_ffff;
                }
                r
            })
    }

    #[test]
    fn sizes_count_bytes_and_mask_them() {
        let all = [Size::B1, Size::B2, Size::B4, Size::B8];
        assert_eq!(all.map(Size::bytes), [1, 2, 4, 8]);
        assert_eq!(all.map(Size::mask), [0xff, 0xffff, 0xffff_ffff, u64::MAX]);
        for s in all {
            assert_eq!(Size::from_bytes(s.bytes()), Some(s));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn single_agrees_with_decode(r in near_single()) {
            let expected = match decode(&r) {
                Ok(Request::Pio(a)) | Ok(Request::Mmio(a)) if a.count == 1 => match a.data {
                    Data::Value(v) => Some(Single {
                        space: if r.r#type == IoreqType::PIO { Space::Port } else { Space::Mmio },
                        addr: a.addr,
                        size: a.size,
                        write: (a.dir == Dir::Write).then_some(v),
                    }),
                    Data::GuestPtr(_) => None,
                },
                _ => None,
            };
            prop_assert_eq!(single(&r), expected);
        }
    }
}

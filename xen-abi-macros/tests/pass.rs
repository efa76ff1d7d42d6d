//! Hand-written types that satisfy #[xen_abi] get the same guarantees as generated ones.

use xen_abi_macros::xen_abi;
use xen_sys::{EvtchnSend, XenAbi, XenVersion};

/// A prototype hypercall argument.
#[xen_abi(
    since = "4.18",
    c_name = "struct xen_demo_op",
    size(x86_32 = 24, x86_64 = 24, arm32 = 24, arm64 = 24),
    align(x86_32 = 4, x86_64 = 8, arm32 = 8, arm64 = 8)
)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DemoOp {
    pub domid: u16,
    pub pad: [u8; 2],
    pub count: u32,
    pub addr: u64,
    pub port: EvtchnSend,
    pub pad2: u32,
}

#[xen_abi(since = "4.18")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Tuple(pub u32, pub [u16; 2]);

#[test]
fn the_attribute_adds_metadata_and_zerocopy() {
    assert_eq!(<DemoOp as XenAbi>::C_NAME, "struct xen_demo_op");
    assert_eq!(<DemoOp as XenAbi>::SINCE, XenVersion::new(4, 18));
    assert_eq!(<Tuple as XenAbi>::C_NAME, "struct Tuple");
    let op = DemoOp {
        domid: 7,
        count: 2,
        addr: 0x1000,
        port: EvtchnSend { port: 3 },
        ..Default::default()
    };
    let bytes = zerocopy::IntoBytes::as_bytes(&op);
    assert_eq!(bytes.len(), 24);
    assert_eq!(&bytes[0..2], &7u16.to_le_bytes());
    let back: DemoOp = zerocopy::FromBytes::read_from_bytes(bytes).unwrap();
    assert_eq!(back, op);
}

/// A union whose members all have the union's size.
#[xen_abi(since = "4.18", size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8))]
#[repr(C)]
#[derive(Clone, Copy)]
pub union Either {
    pub word: u64,
    pub halves: [u32; 2],
}

#[test]
fn unions_get_metadata_and_from_bytes() {
    assert_eq!(<Either as XenAbi>::C_NAME, "union Either");
    let u: Either = zerocopy::FromBytes::read_from_bytes(&[1u8, 0, 0, 0, 2, 0, 0, 0][..]).unwrap();
    // SAFETY: every member is plain integers of the union's size.
    assert_eq!(unsafe { u.halves }, [1, 2]);
}

/// C's `struct { uint32_t count; uint64_t total; }`: on x86_32 `total` is 4-aligned and follows
/// `count`; elsewhere 4 bytes of padding precede it, named by a field those architectures have.
/// Every field is an integer: the macro checks the layout of all four architectures itself.
#[xen_abi(
    since = "4.18",
    size(x86_32 = 12, x86_64 = 16, arm32 = 16, arm64 = 16),
    align(x86_32 = 4, x86_64 = 8, arm32 = 8, arm64 = 8),
    offsets(count = 0, _pad0 = 4)
)]
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub count: u32,
    #[cfg(not(target_arch = "x86"))]
    pub _pad0: [u8; 4],
    pub total: u64,
}

/// C's `struct { uint32_t nr; struct evtchn_expand_array a; }`: that struct (one `uint64_t`) is
/// 4-aligned on x86_32 and 8-aligned elsewhere. It is another ABI type, so the compiler checks
/// this layout (the const assertions name `_pad0` only where it exists).
#[xen_abi(
    since = "4.18",
    size(x86_32 = 12, x86_64 = 16, arm32 = 16, arm64 = 16),
    align(x86_32 = 4, x86_64 = 8, arm32 = 8, arm64 = 8),
    offsets(nr = 0, _pad0 = 4)
)]
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct ExpandOp {
    pub nr: u32,
    #[cfg(not(target_arch = "x86"))]
    pub _pad0: [u8; 4],
    pub expand: xen_sys::EvtchnExpandArray,
}

/// Fields that exist only on 32-bit architectures, i.e. not on the x86_64 host that runs these
/// tests: every check naming `low` or `high` is compiled out here, and the type still compiles.
#[xen_abi(
    since = "4.18",
    size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8),
    align(x86_32 = 4, x86_64 = 8, arm32 = 4, arm64 = 8),
    offsets(high = 4)
)]
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Split {
    #[cfg(target_pointer_width = "64")]
    pub addr: u64,
    #[cfg(target_pointer_width = "32")]
    pub low: u32,
    #[cfg(target_pointer_width = "32")]
    pub high: u32,
}

/// A union member under `#[cfg]`: its size is checked where it exists.
#[xen_abi(since = "4.18", size(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8))]
#[repr(C)]
#[derive(Clone, Copy)]
pub union Word {
    pub halves: [u32; 2],
    #[cfg(target_pointer_width = "64")]
    pub word: u64,
}

#[test]
fn fields_under_cfg_are_laid_out_for_the_target() {
    use core::mem::{offset_of, size_of};
    let expect_pad = cfg!(not(target_arch = "x86"));
    assert_eq!(size_of::<Counted>(), if expect_pad { 16 } else { 12 });
    assert_eq!(offset_of!(Counted, total), if expect_pad { 8 } else { 4 });
    assert_eq!(size_of::<ExpandOp>(), if expect_pad { 16 } else { 12 });
    assert_eq!(size_of::<Split>(), 8);
    assert_eq!(size_of::<Word>(), 8);
    // zerocopy's derives see the fields this target has.
    let c = Counted {
        count: 1,
        total: 2,
        ..Default::default()
    };
    let bytes = zerocopy::IntoBytes::as_bytes(&c);
    assert_eq!(bytes.len(), size_of::<Counted>());
    assert_eq!(&bytes[offset_of!(Counted, total)..], &2u64.to_le_bytes());
    assert_eq!(<Counted as XenAbi>::C_NAME, "struct Counted");
    let s: Split = zerocopy::FromBytes::read_from_bytes(&[0u8; 8][..]).unwrap();
    let _ = s;
}

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

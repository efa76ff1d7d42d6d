//! `include_spec!` generates, in this crate, what the CLI would generate for an extra spec file,
//! with references to the in-tree spec resolved to `xen_sys`.

use std::cell::RefCell;

use xen_sys::{Hypercall, XenAbi};

mod demo {
    xen_abi_macros::include_spec!("tests/spec/demo.toml");
}

struct Rec(RefCell<Vec<(u32, [u64; 5])>>);
// SAFETY: a recording test double; never dereferences.
unsafe impl Hypercall for Rec {
    unsafe fn hypercall(&self, op: u32, args: [u64; 5]) -> i64 {
        self.0.borrow_mut().push((op, args));
        0
    }
}

#[test]
fn the_included_spec_generates_types_constants_and_wrappers() {
    let q = demo::XenDemoQuery {
        domid: 3,
        pad: 0,
        port: 9,
    };
    assert_eq!(core::mem::size_of::<demo::XenDemoQuery>(), 8);
    assert_eq!(
        <demo::XenDemoQuery as XenAbi>::C_NAME,
        "struct xen_demo_query"
    );
    assert_eq!(demo::__HYPERVISOR_demo_op, 56);
    assert_eq!(demo::DEMOOP_query, 1);
    let r = Rec(RefCell::new(Vec::new()));
    let mut q2 = q;
    // SAFETY: the recorder does not dereference.
    unsafe { demo::demo_op_query(&r, &mut q2) }.unwrap();
    assert_eq!(r.0.borrow()[0].0, 56);
    assert_eq!(r.0.borrow()[0].1[0], 1);
}

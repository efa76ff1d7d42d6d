#[xen_abi_macros::xen_abi]
#[repr(C)]
pub struct Undated {
    pub a: u32,
}
fn main() {}

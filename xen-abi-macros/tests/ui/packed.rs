#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C, packed)]
pub struct Packed {
    pub a: u8,
    pub b: u32,
}
fn main() {}

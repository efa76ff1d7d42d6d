#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Trailing {
    pub a: u32,
    pub b: u8,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Padded {
    pub a: u8,
    pub b: u32,
}
fn main() {}

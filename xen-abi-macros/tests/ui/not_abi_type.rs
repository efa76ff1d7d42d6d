pub struct Plain {
    pub x: u32,
}
#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Holder {
    pub p: Plain,
}
fn main() {}

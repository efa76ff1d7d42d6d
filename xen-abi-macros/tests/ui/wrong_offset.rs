#[xen_abi_macros::xen_abi(since = "4.18", offsets(b = 2))]
#[repr(C)]
pub struct Off {
    pub a: u32,
    pub b: u32,
}
fn main() {}

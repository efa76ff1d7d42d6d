#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct TwoGaps {
    pub a: u8,
    pub b: u32,
    pub c: u16,
    pub d: u64,
}
fn main() {}

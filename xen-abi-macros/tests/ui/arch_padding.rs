#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct OnlyOn64 {
    pub a: u32,
    pub b: u64,
}
fn main() {}

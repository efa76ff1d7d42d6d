#[xen_abi_macros::xen_abi(since = "4.18", sise(x86_64 = 4))]
#[repr(C)]
pub struct Typo {
    pub x: u32,
}
fn main() {}

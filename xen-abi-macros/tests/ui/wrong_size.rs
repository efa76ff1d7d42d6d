#[xen_abi_macros::xen_abi(since = "4.18", size(x86_64 = 12))]
#[repr(C)]
pub struct Sized8 {
    pub a: u32,
    pub b: u32,
}
fn main() {}

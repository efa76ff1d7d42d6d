#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Ref<'a> {
    pub buf: &'a u8,
}
fn main() {}

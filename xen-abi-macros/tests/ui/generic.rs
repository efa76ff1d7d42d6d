#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Gen<T> {
    pub x: T,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Ptr {
    pub buf: *mut u8,
}
fn main() {}

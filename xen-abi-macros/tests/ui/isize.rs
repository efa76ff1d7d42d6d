#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Offset {
    pub delta: isize,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Flag {
    pub on: bool,
}
fn main() {}

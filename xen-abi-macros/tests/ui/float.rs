#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Real {
    pub x: f64,
}
fn main() {}

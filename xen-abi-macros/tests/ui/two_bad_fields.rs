#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct TwoBad {
    pub on: bool,
    pub len: usize,
    pub ok: u32,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Nested {
    pub a: u8,
    pub send: xen_sys::EvtchnSend,
}
fn main() {}

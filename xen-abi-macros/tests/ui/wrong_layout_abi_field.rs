// `port` is another ABI type: the layout is the compiler's, and the const assertion of the
// architecture being compiled for (x86_64 here) says both numbers.
#[xen_abi_macros::xen_abi(since = "4.18", size(x86_64 = 12), align(x86_64 = 8), offsets(b = 2))]
#[repr(C)]
pub struct WithPort {
    pub port: xen_sys::EvtchnSend,
    pub b: u32,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18", offsets(word = 0))]
#[repr(C)]
pub union Either {
    pub word: u32,
    pub bytes: [u8; 4],
}
fn main() {}

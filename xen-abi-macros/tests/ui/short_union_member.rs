#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub union Short {
    pub word: u64,
    pub byte: u8,
}
fn main() {}

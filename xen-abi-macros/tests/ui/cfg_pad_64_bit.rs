// The pad is right for x86_64 and arm64, but arm32 aligns uint64_t to 8 too: the macro
// evaluates the #[cfg] for every architecture and finds the padding there.
#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Pad64 {
    pub count: u32,
    #[cfg(target_pointer_width = "64")]
    pub _pad0: [u8; 4],
    pub total: u64,
}
fn main() {}

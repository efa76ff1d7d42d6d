// `_pad0` exists on x86_64, arm32 and arm64 only: its declared offset is checked there.
#[xen_abi_macros::xen_abi(since = "4.18", offsets(_pad0 = 8, total = 8))]
#[repr(C)]
pub struct Counted {
    pub count: u32,
    #[cfg(not(target_arch = "x86"))]
    pub _pad0: [u8; 4],
    pub total: u64,
}
fn main() {}

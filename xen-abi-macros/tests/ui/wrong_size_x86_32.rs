// The C struct is 12 bytes on x86_32 (its uint64_t is 4-aligned there): a declared 16 is
// refused on any host, not only when compiling for i686.
#[xen_abi_macros::xen_abi(
    since = "4.18",
    size(x86_32 = 16, x86_64 = 16, arm32 = 16, arm64 = 16),
    align(x86_32 = 8, x86_64 = 8, arm32 = 8, arm64 = 8)
)]
#[repr(C)]
pub struct Counted {
    pub count: u32,
    #[cfg(not(target_arch = "x86"))]
    pub _pad0: [u8; 4],
    pub total: u64,
}
fn main() {}

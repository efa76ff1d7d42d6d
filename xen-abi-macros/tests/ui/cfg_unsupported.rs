#[xen_abi_macros::xen_abi(since = "4.18")]
#[repr(C)]
pub struct Features {
    pub a: u32,
    #[cfg(feature = "wide")]
    pub b: u32,
    #[cfg(any(unix, target_arch = "riscv64"))]
    pub c: u32,
    #[cfg_attr(target_arch = "x86", cfg(target_pointer_width = "32"))]
    pub d: u32,
    #[cfg(all(target_arch = "x86", target_pointer_width = "64"))]
    pub e: u32,
}
fn main() {}

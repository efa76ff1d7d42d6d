#[xen_abi_macros::xen_abi(since = "4.18")]
pub struct NotReprC {
    pub a: u32,
}
fn main() {}

#[xen_abi_macros::xen_abi(since = "4.18")]
pub enum Kind {
    A,
    B,
}
fn main() {}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    for a in [
        format!("-T{dir}/link.ld"),
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        "-Wl,--build-id=none".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={a}");
    }
    println!("cargo:rerun-if-changed=link.ld");
}

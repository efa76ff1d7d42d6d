//! Golden tests of the generator's output on a fixture spec that uses every item kind.
//! Snapshots live in tests/snapshots/; CI runs with INSTA_UPDATE=no, so they never change
//! there. Bless an intended change with `INSTA_UPDATE=always cargo test -p xen-abi-gen`.

use std::path::Path;

use xen_abi_gen::workflow;
use xen_abi_gen::{Arch, View};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/basic")
}

#[test]
fn generated_modules_match_snapshots() {
    let g = workflow::generate(&fixture()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = g.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["demo.rs", "mod.rs", "sub_calls.rs"]);
    for f in &g.files {
        insta::assert_snapshot!(f.name.clone(), f.text);
    }
}

#[test]
fn generation_is_deterministic() {
    let a = workflow::generate(&fixture()).unwrap();
    let b = workflow::generate(&fixture()).unwrap();
    assert_eq!(a.files, b.files);
}

#[test]
fn layout_json_matches_snapshot() {
    let spec = xen_abi_gen::spec::load(&fixture()).unwrap();
    let mut out = String::new();
    for n in workflow::compound_names(&spec) {
        for l in workflow::layouts(&spec, &n, &Arch::ALL, View::Guest).unwrap() {
            out.push_str(&serde_json::to_string(&l).unwrap());
            out.push('\n');
        }
    }
    insta::assert_snapshot!("layout_all_json", out);
}

#[test]
fn summary_matches_snapshot() {
    let spec = xen_abi_gen::spec::load(&fixture()).unwrap();
    insta::assert_snapshot!("summary", xen_abi_gen::emit::summary::summary(&spec));
}

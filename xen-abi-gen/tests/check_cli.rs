//! The CLI: `check` passes on fresh output and fails, naming the file and the fix, on stale
//! output; `layout` prints the reference numbers.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xen-abi-gen"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/basic")
        .display()
        .to_string()
}

#[test]
fn check_fails_on_stale_output_and_names_the_fix() {
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display().to_string();
    let gen = bin()
        .args(["generate", "--spec", &fixture(), "--out", &o])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let summary = String::from_utf8_lossy(&gen.stdout);
    assert!(summary.contains("demo"), "{summary}");
    assert!(
        summary.contains("x86_32, x86_64, arm32, arm64"),
        "{summary}"
    );

    let ok = bin()
        .args(["check", "--spec", &fixture(), "--out", &o])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Hand-edit one file, add a stray one, remove another.
    let demo = out.path().join("demo.rs");
    let text = std::fs::read_to_string(&demo).unwrap();
    std::fs::write(&demo, text.replace("0xdeadbeef", "0xdeadbeee")).unwrap();
    std::fs::write(out.path().join("old.rs"), "// stale\n").unwrap();
    std::fs::remove_file(out.path().join("mod.rs")).unwrap();

    let bad = bin()
        .args(["check", "--spec", &fixture(), "--out", &o])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("demo.rs differs from the spec"), "{err}");
    assert!(err.contains("mod.rs is missing"), "{err}");
    assert!(err.contains("old.rs is not generated"), "{err}");
    assert!(
        err.contains("cargo run -p xen-abi-gen -- generate"),
        "{err}"
    );

    // generate repairs it and removes the stray file.
    let gen = bin()
        .args(["generate", "--spec", &fixture(), "--out", &o])
        .output()
        .unwrap();
    assert!(gen.status.success());
    assert!(!out.path().join("old.rs").exists());
    let ok = bin()
        .args(["check", "--spec", &fixture(), "--out", &o])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

#[test]
fn committed_bindings_are_up_to_date() {
    let ok = bin().arg("check").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn layout_prints_the_reference_numbers() {
    let o = bin().args(["layout", "ioreq", "--json"]).output().unwrap();
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for l in &lines {
        assert_eq!(l["item"], "ioreq");
        assert_eq!(l["size"], 32);
        let want_align = if l["arch"] == "x86_32" { 4 } else { 8 };
        assert_eq!(l["align"], want_align, "{l}");
        assert_eq!(l["fields"][0]["name"], "addr");
        assert_eq!(l["fields"][0]["offset"], 0);
        assert_eq!(l["fields"][0]["size"], 8);
    }
    let o = bin()
        .args(["layout", "xen_dm_op_buf", "--arch", "x86_32"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("xen_dm_op_buf on x86_32: size 8, align 4"),
        "{text}"
    );
    // Rust names work too; unknown names fail with a message.
    assert!(bin()
        .args(["layout", "XenDmOpBuf"])
        .output()
        .unwrap()
        .status
        .success());
    let o = bin().args(["layout", "no_such_thing"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no item named `no_such_thing`"));
    // --all --json covers every struct and union.
    let o = bin().args(["layout", "--all", "--json"]).output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() > 250);
}

#[test]
fn malformed_spec_fails_with_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[spec]\nformat = 1\nxen = \"4.17\"\ninterface_version = 0x00040e00\nheader = \"x.h\"\ndoc = \"d\"\n\n[[struct]]\nname = \"s\"\ndoc = \"d\"\nsince = \"4.9\"\nfields = [ { name = \"a\", type = \"u33\" } ]\n",
    )
    .unwrap();
    let o = bin()
        .args([
            "layout",
            "--all",
            "--spec",
            &dir.path().display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:12:"), "{err}");
    assert!(err.contains("unknown type `u33`"), "{err}");
}

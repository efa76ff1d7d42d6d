//! `diff` lists additions and fails on any change to an existing stable item.

use std::path::{Path, PathBuf};
use std::process::Command;

fn copy_spec() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    let dst = tempfile::tempdir().unwrap();
    copy_dir(&src, dst.path());
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let p: PathBuf = dir.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{from} not in {file}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// A hypercall number no spec file under `dir` takes (hypercall numbers are unique, and the
/// in-tree spec may hold a trial hypercall of its own, as tests/stabilise-workflow.sh adds).
fn free_hypercall_number(dir: &Path) -> u32 {
    let mut used = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                for line in std::fs::read_to_string(&p).unwrap().lines() {
                    if let Some(n) = line.trim().strip_prefix("number = ") {
                        used.extend(n.trim().parse::<u32>().ok());
                    }
                }
            }
        }
    }
    (56..64)
        .find(|n| !used.contains(n))
        .expect("a free hypercall number below 64")
}

fn run_diff(old: &Path, new: &Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_xen-abi-gen"))
        .arg("diff")
        .arg(old)
        .arg(new)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn load(p: &Path) -> xen_abi_gen::model::Spec {
    xen_abi_gen::spec::load(p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn identical_specs_are_compatible() {
    let a = copy_spec();
    let r = xen_abi_gen::diff::diff(&load(a.path()), &load(a.path()));
    assert!(r.added.is_empty() && r.broken.is_empty(), "{r}");
}

#[test]
fn additions_are_listed_and_compatible() {
    let old = copy_spec();
    let new = copy_spec();
    let mut text = std::fs::read_to_string(new.path().join("hvm/dm_op.toml")).unwrap();
    text.push_str(
        "\n[[const]]\nname = \"XEN_DMOP_DEMO_NEW\"\ntype = \"u32\"\nvalue = 7\ndoc = \"A new stable constant.\"\nsince = \"4.17\"\n",
    );
    std::fs::write(new.path().join("hvm/dm_op.toml"), text).unwrap();
    edit(
        new.path(),
        "errno.toml",
        "members = [",
        "members = [\n  { name = \"XEN_EDEMO\", value = 200, doc = \"Demo.\", since = \"4.17\" },",
    );
    let (ok, out) = run_diff(old.path(), new.path());
    assert!(ok, "{out}");
    assert!(out.contains("added: 2"), "{out}");
    assert!(
        out.contains("+ const `XEN_DMOP_DEMO_NEW` (since 4.17)"),
        "{out}"
    );
    assert!(out.contains("member `XEN_EDEMO` = 200"), "{out}");
    assert!(out.contains("breaking changes: 0"), "{out}");
}

#[test]
fn changes_to_stable_items_fail_with_a_readable_report() {
    let old = copy_spec();
    let new = copy_spec();
    // Layout (x86_32 only), a value, a hypercall number, a since, a removed member.
    edit(
        new.path(),
        "hvm/dm_op.toml",
        "{ name = \"size\", type = \"xen_ulong_t\"",
        "{ name = \"size\", type = \"u64\"",
    );
    let text = std::fs::read_to_string(new.path().join("hvm/dm_op.toml")).unwrap();
    let text = text.replace(
        "size = { x86_32 = 8, x86_64 = 16, arm32 = 16, arm64 = 16 }\nalign = { x86_32 = 4, x86_64 = 8, arm32 = 8, arm64 = 8 }\nfields = [\n  { name = \"h\"",
        "fields = [\n  { name = \"h\"",
    );
    std::fs::write(new.path().join("hvm/dm_op.toml"), text).unwrap();
    edit(new.path(), "xen_h.toml", "value = 0x7FF0", "value = 0x7FF9");
    edit(
        new.path(),
        "event_channel.toml",
        // 35 is no other hypercall's number (33 is physdev_op's: the new spec would be refused).
        "number = 32",
        "number = 35",
    );
    edit(
        new.path(),
        "xen_h.toml",
        "name = \"__HYPERVISOR_event_channel_op\"\ntype = \"u32\"\nvalue = 32",
        "name = \"__HYPERVISOR_event_channel_op\"\ntype = \"u32\"\nvalue = 35",
    );
    edit(
        new.path(),
        "hvm/ioreq.toml",
        "since = \"3.2\"",
        "since = \"3.3\"",
    );
    let (ok, out) = run_diff(old.path(), new.path());
    assert!(!ok, "{out}");
    assert!(out.contains("struct `xen_dm_op_buf`: layout on x86_32 changed from size 8 align 4 [h@0:4 size@4:4] to size 12 align 4 [h@0:4 size@4:8]"), "{out}");
    assert!(!out.contains("`xen_dm_op_buf`: layout on x86_64"), "{out}");
    assert!(
        out.contains("value changed from 32752 = 0x7ff0 (u16) to 32761 = 0x7ff9 (u16)"),
        "{out}"
    );
    assert!(
        out.contains("hypercall `event_channel_op`: number changed from 32 to 35"),
        "{out}"
    );
    assert!(out.contains("since changed from 3.2 to 3.3"), "{out}");
    assert!(
        out.contains(
            "const `__HYPERVISOR_event_channel_op`: value changed from 32 (u32) to 35 (u32)"
        ),
        "{out}"
    );
    assert!(out.contains("INCOMPATIBLE"), "{out}");
}

#[test]
fn removals_fail() {
    let old = copy_spec();
    let new = copy_spec();
    edit(
        new.path(),
        "hvm/ioreq.toml",
        "  { name = \"IOREQ_TYPE_TIMEOFFSET\"",
        "#  { name = \"IOREQ_TYPE_TIMEOFFSET\"",
    );
    let r = xen_abi_gen::diff::diff(&load(old.path()), &load(new.path()));
    assert_eq!(
        r.broken,
        vec!["values `ioreq_type`: member `IOREQ_TYPE_TIMEOFFSET` was removed".to_string()]
    );
}

const DEMO_STRUCT: &str = r#"
[[struct]]
name = "xen_demo_query"
doc = "Argument of the new sub-op."
since = "4.17"
fields = [ { name = "port", type = "evtchn_port_t", doc = "A port." } ]
"#;

#[test]
fn a_new_hypercall_with_its_argument_struct_is_one_addition() {
    let old = copy_spec();
    let new = copy_spec();
    let number = free_hypercall_number(new.path());
    std::fs::write(
        new.path().join("demo.toml"),
        format!(
            "[spec]\nformat = 1\nxen = \"4.20\"\ninterface_version = 0x00040e00\nheader = \"xen/demo.h\"\ndoc = \"Demo.\"\n{DEMO_STRUCT}\n[[hypercall]]\nname = \"demo_op\"\nnumber = {number}\ndoc = \"New.\"\nsince = \"4.17\"\nargs = [ {{ name = \"cmd\", type = \"i32\" }}, {{ name = \"arg\", type = \"ptr\" }} ]\nsubop_arg = \"cmd\"\n\n[[hypercall.subop]]\nname = \"DEMOOP_query\"\nvalue = 1\narg = \"xen_demo_query\"\ndir = \"inout\"\ndoc = \"Ask.\"\n"
        ),
    )
    .unwrap();
    let (ok, out) = run_diff(old.path(), new.path());
    assert!(ok, "{out}");
    assert!(out.contains("added: 1\n"), "{out}");
    assert!(
        out.contains(
            "+ hypercall `demo_op` (since 4.17), with its new argument struct `xen_demo_query`"
        ),
        "{out}"
    );
}

#[test]
fn a_new_subop_with_its_argument_struct_is_one_addition() {
    let old = copy_spec();
    let new = copy_spec();
    let mut text = std::fs::read_to_string(new.path().join("sched.toml")).unwrap();
    text.push_str(DEMO_STRUCT);
    // TOML: this sub-op belongs to the file's last `[[hypercall]]` (sched_op).
    text.push_str("\n[[hypercall.subop]]\nname = \"SCHEDOP_demo\"\nvalue = 99\narg = \"xen_demo_query\"\ndir = \"in\"\ndoc = \"New.\"\nsince = \"4.17\"\n");
    std::fs::write(new.path().join("sched.toml"), text).unwrap();
    let (ok, out) = run_diff(old.path(), new.path());
    assert!(ok, "{out}");
    assert!(out.contains("added: 1\n"), "{out}");
    assert!(
        out.contains("sub-op `SCHEDOP_demo` = 99 (since 4.17), with its new argument struct `xen_demo_query`"),
        "{out}"
    );
}

#[test]
fn a_new_type_used_elsewhere_is_its_own_addition() {
    let old = copy_spec();
    let new = copy_spec();
    let mut text = std::fs::read_to_string(new.path().join("sched.toml")).unwrap();
    text.push_str(DEMO_STRUCT);
    text.push_str("\n[[struct]]\nname = \"xen_demo_outer\"\ndoc = \"Uses the other.\"\nsince = \"4.17\"\nfields = [ { name = \"q\", type = \"xen_demo_query\", doc = \"Inner.\" } ]\n");
    text.push_str("\n[[hypercall.subop]]\nname = \"SCHEDOP_demo\"\nvalue = 99\narg = \"xen_demo_query\"\ndir = \"in\"\ndoc = \"New.\"\nsince = \"4.17\"\n");
    std::fs::write(new.path().join("sched.toml"), text).unwrap();
    let (ok, out) = run_diff(old.path(), new.path());
    assert!(ok, "{out}");
    assert!(out.contains("added: 3\n"), "{out}");
    assert!(
        out.contains("+ struct `xen_demo_query` (since 4.17)"),
        "{out}"
    );
    assert!(!out.contains("with its new argument"), "{out}");
}

//! Corpus of malformed spec files: each one must be rejected with the diagnostics it announces.
//!
//! Every file in `tests/malformed/` is a self-contained spec with exactly one mistake. Its leading
//! comment lines say what the loader must report, in order:
//!
//! ```text
//! # expect: LINE:COL: substring of the message
//! # expect-help: substring of the help of the diagnostic above   (optional)
//! ```
//!
//! The file is copied alone into a fresh directory and loaded with `spec::load`; the load must fail
//! with exactly the expected diagnostics, all located in the copied file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use xen_abi_gen::{Diagnostic, Diagnostics};

/// Fewer files than this means the corpus was lost or the glob broke.
const MIN_CORPUS: usize = 18;

/// One expected diagnostic.
#[derive(Debug)]
struct Expect {
    line: usize,
    col: usize,
    message: String,
    help: Option<String>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read tests/malformed")
        .map(|e| e.expect("read tests/malformed entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// Parse the `# expect:` / `# expect-help:` lines of a corpus file.
fn expectations(path: &Path, text: &str) -> Vec<Expect> {
    let mut out: Vec<Expect> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        if let Some(rest) = line.strip_prefix("# expect-help:") {
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("{}: `# expect-help:` before any `# expect:`", at()));
            assert!(
                last.help.is_none(),
                "{}: two `# expect-help:` lines for one diagnostic",
                at()
            );
            last.help = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("# expect:") {
            let mut parts = rest.trim_start().splitn(3, ':');
            let mut num = |what: &str| -> usize {
                parts
                    .next()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or_else(|| {
                        panic!("{}: `# expect:` needs `LINE:COL: MESSAGE` ({what})", at())
                    })
            };
            let line_no = num("line");
            let col = num("column");
            let message = parts.next().unwrap_or("").trim().to_owned();
            assert!(
                !message.is_empty(),
                "{}: `# expect:` has an empty message substring",
                at()
            );
            out.push(Expect {
                line: line_no,
                col,
                message,
                help: None,
            });
        }
    }
    out
}

fn list(diags: &[Diagnostic]) -> String {
    let mut s = String::new();
    for d in diags {
        let _ = writeln!(s, "    {d}");
    }
    s
}

/// Check one corpus file; `Err` says what went wrong.
fn check(path: &Path) -> Result<(), String> {
    let name = path.file_name().expect("file name");
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    if !text.starts_with("# expect:") {
        return Err("the first line must be a `# expect:` comment".into());
    }
    let expects = expectations(path, &text);

    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let copy = dir.path().join(name);
    std::fs::copy(path, &copy).map_err(|e| format!("cannot copy: {e}"))?;

    let diags = match xen_abi_gen::spec::load(dir.path()) {
        Ok(_) => return Err("the malformed spec was accepted".into()),
        Err(Diagnostics(d)) => d,
    };
    let all = list(&diags);

    let mut problems = Vec::new();
    for d in &diags {
        if d.loc.file != copy {
            problems.push(format!(
                "diagnostic points at {} instead of {}: {d}",
                d.loc.file.display(),
                copy.display()
            ));
        }
        if d.loc.line == 0 || d.loc.col == 0 {
            problems.push(format!("diagnostic has no real position: {d}"));
        }
    }
    if diags.len() != expects.len() {
        problems.push(format!(
            "expected {} diagnostic(s), got {}",
            expects.len(),
            diags.len()
        ));
    }
    for (i, (e, d)) in expects.iter().zip(&diags).enumerate() {
        let n = i + 1;
        if (d.loc.line, d.loc.col) != (e.line, e.col) {
            problems.push(format!(
                "diagnostic {n}: expected at {}:{}, got {}:{}",
                e.line, e.col, d.loc.line, d.loc.col
            ));
        }
        if !d.message.contains(&e.message) {
            problems.push(format!(
                "diagnostic {n}: message {:?} does not contain {:?}",
                d.message, e.message
            ));
        }
        if let Some(h) = &e.help {
            if !d.help.as_deref().is_some_and(|x| x.contains(h.as_str())) {
                problems.push(format!(
                    "diagnostic {n}: help {:?} does not contain {h:?}",
                    d.help
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n  all diagnostics:\n{all}",
            problems
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

#[test]
fn corpus_is_large_enough() {
    let files = corpus();
    assert!(
        files.len() >= MIN_CORPUS,
        "tests/malformed has {} spec files, expected at least {MIN_CORPUS}",
        files.len()
    );
}

#[test]
fn every_malformed_spec_is_rejected_as_announced() {
    let files = corpus();
    assert!(!files.is_empty(), "no files in tests/malformed");
    let mut failures = String::new();
    for path in &files {
        // `spec::load` is a plain call: a panic inside it fails this test with its message.
        if let Err(why) = check(path) {
            let _ = writeln!(failures, "{}:\n{why}", path.display());
        }
    }
    assert!(
        failures.is_empty(),
        "malformed specs not rejected as announced:\n{failures}"
    );
}

/// A Linux ioctl may not be dated before its argument struct (that check needs a `linux/*`
/// file, which the one-file corpus above cannot be).
#[test]
fn an_ioctl_older_than_its_argument_struct_is_refused() {
    let text = r#"[spec]
format = 1
xen = "4.20"
interface_version = 0x00040e00
header = "xen/sys/demo.h"
doc = "A Linux device ABI."

[[struct]]
name = "demo_arg"
doc = "The argument."
since = "4.9"
linux = "6.7"
fields = [ { name = "fd", type = "u32", doc = "A descriptor." } ]

[[ioctl]]
name = "IOCTL_DEMO"
dir = "write"
type = 0x50
nr = 1
arg = "demo_arg"
doc = "Uses it."
since = "4.9"
linux = "6.6"
"#;
    let source = |text: &str| xen_abi_gen::spec::Source {
        rel_path: "linux/demo.toml".into(),
        path: "linux/demo.toml".into(),
        text: text.into(),
    };
    let e = match xen_abi_gen::spec::load_sources(&[source(text)]) {
        Ok(_) => panic!("the older ioctl must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("ioctl `IOCTL_DEMO` is dated Linux 6.6, but its argument `demo_arg` arrived in Linux 6.7"),
        "{e}"
    );
    // Dated with its argument, or later, it is accepted.
    let ok = text.replace("linux = \"6.6\"", "linux = \"6.7\"");
    xen_abi_gen::spec::load_sources(&[source(&ok)]).unwrap_or_else(|e| panic!("{e}"));
}

/// Load one corpus file alone, after `edit`, from a fresh directory.
fn load_corpus_file(
    name: &str,
    edit: impl FnOnce(String) -> String,
) -> Result<xen_abi_gen::model::Spec, Diagnostics> {
    let text = std::fs::read_to_string(corpus_dir().join(name)).expect("read corpus file");
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(name), edit(text)).expect("write spec");
    xen_abi_gen::spec::load(dir.path())
}

/// The help of the first diagnostic, after `prefix`.
fn help_after(e: &Diagnostics, prefix: &str) -> String {
    let help = e.0[0].help.clone().expect("a help");
    help.strip_prefix(prefix)
        .unwrap_or_else(|| panic!("help {help:?} does not start with {prefix:?}"))
        .to_owned()
}

/// Following the help of a too-large TOML integer literally gives a spec that loads, with the
/// value intended: `value = "0x..."` strings are accepted.
#[test]
fn a_too_large_constant_written_as_the_help_says_is_accepted() {
    let name = "75-const-too-large-for-toml.toml";
    let Err(e) = load_corpus_file(name, |t| t) else {
        panic!("{name} was accepted as written")
    };
    let fix = help_after(&e, "write it as a string: ");
    assert_eq!(fix, "value = \"0x8000000000000000\"");
    let spec = load_corpus_file(name, |t| t.replace("value = 0x8000000000000000", &fix))
        .unwrap_or_else(|e| panic!("{e}"));
    match &spec.find("XEN_TOP_BIT").expect("the constant").kind {
        xen_abi_gen::model::ItemKind::Const(c) => assert_eq!(c.value, 1i128 << 63),
        k => panic!("not a constant: {k:?}"),
    }
}

/// Following the help of arch-specific trailing padding literally gives a spec that loads, and
/// the struct keeps C's size on every architecture (12 on x86_32, 16 elsewhere).
#[test]
fn arch_specific_padding_declared_as_the_help_says_keeps_c_sizes() {
    use xen_abi_gen::{Arch, View};
    let name = "71-trailing-padding-not-on-x86_32.toml";
    let Err(e) = load_corpus_file(name, |t| t) else {
        panic!("{name} was accepted as written")
    };
    let field = help_after(&e, "declare it as a last field: ");
    let spec = load_corpus_file(name, |t| {
        t.replace(
            "  { name = \"count\", type = \"u32\" },\n",
            &format!(
                "  {{ name = \"count\", type = \"u32\" }},\n  {},\n",
                field.replace("_padN", "_pad0")
            ),
        )
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = xen_abi_gen::layout::Engine::new(&spec);
    for (arch, size) in [
        (Arch::X86_32, 12),
        (Arch::X86_64, 16),
        (Arch::Arm32, 16),
        (Arch::Arm64, 16),
    ] {
        let l = engine
            .item("demo_range", arch, View::Guest)
            .expect("layout");
        assert_eq!(l.size, size, "{arch:?}");
    }
}

/// A hypercall number already taken in another file: the error is at the newly added (newer)
/// hypercall and names the other one with its file and position.
#[test]
fn a_duplicate_hypercall_number_names_both_files() {
    let file = |rel: &str, name: &str, since: &str| xen_abi_gen::spec::Source {
        rel_path: rel.into(),
        path: rel.into(),
        text: format!(
            r#"[spec]
format = 1
xen = "4.17"
interface_version = 0x00040e00
header = "xen/demo.h"
doc = "Demo."

[[hypercall]]
name = "{name}"
number = 32
doc = "A hypercall."
since = "{since}"
args = [ {{ name = "cmd", type = "i32" }} ]
"#
        ),
    };
    // The new file sorts first, the old one second: the position still picks the new one.
    let Err(e) = xen_abi_gen::spec::load_sources(&[
        file("a_new.toml", "demo_op", "4.17"),
        file("event_channel.toml", "event_channel_op", "3.0"),
    ]) else {
        panic!("a second hypercall number 32 was accepted")
    };
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(
        e.0[0].to_string(),
        "a_new.toml:9:8: error: hypercall `demo_op` has number 32, the same as hypercall `event_channel_op` at event_channel.toml:9:8\n  help: hypercall numbers are unique: take this one from __HYPERVISOR_demo_op in C"
    );
}

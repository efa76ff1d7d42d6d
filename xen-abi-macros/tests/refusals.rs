//! Every type in `tests/ui/*.rs` is refused at compile time, with exactly the errors its
//! `tests/ui/*.errors` file lists.
//!
//! A line of an `.errors` file is `CODE LINE:COLUMN TEXT`: the error code (`error` for one
//! without a code, i.e. the macro's own `compile_error!`), where the diagnostic points in the
//! `.rs` file, and text its rendering must contain (our message, or the compiler's primary
//! message). That is what is stable across compilers: the wording of rustc's notes and help
//! lines changes between releases (Debian's 1.85 and rustup's 1.95 differ), so a comparison of
//! whole stderr snapshots would tie the suite to one toolchain. The set of errors is compared
//! exactly: a missing refusal, a moved span or an extra error fails the test.
//!
//! The files are compiled as the binaries of a scratch package that depends on this crate,
//! `xen-sys` and `zerocopy` (the versions this workspace's Cargo.lock pins), with the `cargo`
//! that runs the tests.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One error diagnostic: what an `.errors` line states, or what rustc emitted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Refusal {
    code: String,
    line: u32,
    column: u32,
    text: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} {}",
            self.code, self.line, self.column, self.text
        )
    }
}

/// A diagnostic rustc emitted for one ui file, as the human-readable rendering shows it.
struct Emitted {
    code: String,
    /// `file:line:column` of the first `-->` line.
    location: Option<(String, u32, u32)>,
    rendered: String,
}

fn parse_expected(path: &Path) -> Vec<Refusal> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            panic!(
                "{}:{}: expected `CODE LINE:COLUMN TEXT`",
                path.display(),
                n + 1
            )
        };
        let mut parts = line.splitn(3, ' ');
        let (Some(code), Some(at), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            bad()
        };
        let Some((l, c)) = at.split_once(':') else {
            bad()
        };
        let (Ok(line), Ok(column)) = (l.parse(), c.parse()) else {
            bad()
        };
        out.push(Refusal {
            code: code.into(),
            line,
            column,
            text: text.into(),
        });
    }
    assert!(
        !out.is_empty(),
        "{}: lists no error, so the file would not prove a refusal",
        path.display()
    );
    out
}

/// Writes the scratch package whose binaries are the ui files.
fn scratch_package(ui: &[PathBuf]) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir
        .parent()
        .expect("the crate lives in the workspace");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xen-abi-macros-refusals");
    fs::create_dir_all(&dir).expect("create the scratch package directory");
    let mut manifest = format!(
        "[package]\nname = \"xen-abi-macros-refusals\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[workspace]\n\n[dependencies]\n\
         xen-abi-macros = {{ path = {:?} }}\nxen-sys = {{ path = {:?} }}\n\
         zerocopy = {{ version = \"0.8\", features = [\"derive\"] }}\n",
        crate_dir,
        root.join("xen-sys"),
    );
    for file in ui {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("ui file names are UTF-8");
        manifest += &format!("\n[[bin]]\nname = {name:?}\npath = {file:?}\ntest = false\n");
    }
    fs::write(dir.join("Cargo.toml"), manifest).expect("write the scratch manifest");
    // The workspace's lock file, so the scratch build uses the crates (and versions) the
    // workspace already fetched; cargo adds the scratch package itself to it.
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    dir
}

/// Builds every ui file and returns the error diagnostics per file stem.
fn compile(dir: &Path) -> BTreeMap<String, Vec<Emitted>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "check",
            "--bins",
            "--keep-going",
            "--quiet",
            "--message-format=json",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo check on the scratch package");
    let mut by_file: BTreeMap<String, Vec<Emitted>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-message" || msg["message"]["level"] != "error" {
            continue;
        }
        let target = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let rendered = msg["message"]["rendered"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // rustc's summary ("aborting due to N previous errors") is not a refusal.
        if msg["message"]["spans"]
            .as_array()
            .is_some_and(|s| s.is_empty())
            && rendered.starts_with("error: aborting due to")
        {
            continue;
        }
        let code = msg["message"]["code"]["code"]
            .as_str()
            .unwrap_or("error")
            .to_string();
        let location = rendered.lines().find_map(|l| {
            let at = l.trim_start().strip_prefix("--> ")?;
            let mut it = at.rsplitn(3, ':');
            let column = it.next()?.parse().ok()?;
            let line = it.next()?.parse().ok()?;
            Some((it.next()?.to_string(), line, column))
        });
        let diagnostics = by_file.entry(target).or_default();
        // rustc may report one unsatisfied bound once per expansion that needs it, with the
        // very same rendering (how often varies by release): that is one refusal.
        if !diagnostics.iter().any(|d| d.rendered == rendered) {
            diagnostics.push(Emitted {
                code,
                location,
                rendered,
            });
        }
    }
    if by_file.is_empty() {
        panic!(
            "cargo check reported no errors at all (status {}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    by_file
}

/// Whether `emitted` is the refusal `expected` for the ui file `stem`.
fn matches(expected: &Refusal, emitted: &Emitted, stem: &str) -> bool {
    let at_file = |f: &str| f.ends_with(&format!("tests/ui/{stem}.rs"));
    expected.code == emitted.code
        && emitted
            .location
            .as_ref()
            .is_some_and(|(f, l, c)| at_file(f) && *l == expected.line && *c == expected.column)
        && emitted.rendered.contains(&expected.text)
}

#[test]
fn refusals_are_compile_errors() {
    let ui_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut ui: Vec<PathBuf> = fs::read_dir(&ui_dir)
        .expect("read tests/ui")
        .map(|e| e.expect("read a tests/ui entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    ui.sort();
    assert!(!ui.is_empty(), "no ui files in {}", ui_dir.display());
    let emitted = compile(&scratch_package(&ui));

    let mut failures = Vec::new();
    for file in &ui {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 name")
            .to_string();
        let mut expected = parse_expected(&file.with_extension("errors"));
        expected.sort();
        let mut unmatched: Vec<&Emitted> = emitted
            .get(&stem)
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        let mut missing = Vec::new();
        for want in &expected {
            match unmatched.iter().position(|e| matches(want, e, &stem)) {
                Some(i) => {
                    unmatched.remove(i);
                }
                None => missing.push(want.to_string()),
            }
        }
        if !missing.is_empty() || !unmatched.is_empty() {
            let mut report = format!("tests/ui/{stem}.rs:\n");
            for m in &missing {
                report += &format!("  expected, not emitted: {m}\n");
            }
            for e in &unmatched {
                report += &format!("  emitted, not expected:\n{}\n", e.rendered);
            }
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "refusals differ from tests/ui/*.errors:\n{}",
        failures.join("\n")
    );
}

//! `#[xen_abi]` types compiled for the other architectures of Xen's ABI (i686, armv7, aarch64),
//! where fields under `#[cfg]` differ from the host's: the types of `tests/pass.rs` compile
//! there with every const assertion evaluated, and on i686 a wrong x86_32 size of a type whose
//! layout only the compiler knows is refused with both numbers.
//!
//! This needs a rustc with those targets' standard library: the one in `PATH` if it has them
//! (`rustup target add ...`), else Debian's that `tests/cross-check.sh` unpacks (under
//! `$XEN_ABI_CACHE`, by default `/var/cache/xen-abi`; `tests/run.sh` runs it before the tests).
//! Without one the tests are skipped, saying so, and fail under `CI=true`. The macro's own
//! per-architecture checks are proven on any host by its unit tests.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const I686: &str = "i686-unknown-linux-gnu";
const TARGETS: [&str; 3] = [
    I686,
    "armv7-unknown-linux-gnueabihf",
    "aarch64-unknown-linux-gnu",
];

/// A rustc, with the library path its driver needs (Debian's links against its own LLVM).
struct Rustc {
    path: PathBuf,
    ld_library_path: Option<PathBuf>,
    /// Debian's, which tests/cross-check.sh builds xen-sys with for the same targets.
    debian: bool,
}

impl Rustc {
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some(l) = &self.ld_library_path {
            c.env("LD_LIBRARY_PATH", l);
        }
        c
    }

    /// Whether it has the standard library of `target`.
    fn has_std(&self, target: &str) -> bool {
        let Ok(out) = self
            .command(&self.path)
            .args(["--print", "target-libdir", "--target", target])
            .output()
        else {
            return false;
        };
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        out.status.success()
            && fs::read_dir(dir).is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
            })
    }

    /// `cargo` building with this rustc into `target_dir`.
    fn cargo(&self, target_dir: &Path) -> Command {
        let cargo = PathBuf::from(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        let mut c = self.command(&cargo);
        c.env("RUSTC", &self.path)
            .env("CARGO_TARGET_DIR", target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WRAPPER");
        c
    }
}

/// The rustc in `PATH`, then Debian's unpacked by tests/lib/debian-rust.sh (newest first).
fn candidates() -> Vec<Rustc> {
    let mut out = vec![Rustc {
        path: "rustc".into(),
        ld_library_path: None,
        debian: false,
    }];
    let cache = env::var_os("XEN_ABI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/var/cache/xen-abi".into())
        .join("debian-rust");
    let mut roots: Vec<PathBuf> = fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("root-"))
        })
        .collect();
    roots.sort();
    out.extend(roots.into_iter().rev().map(|root| Rustc {
        path: root.join("usr/bin/rustc"),
        ld_library_path: Some(root.join("usr/lib/x86_64-linux-gnu")),
        debian: true,
    }));
    out
}

/// A rustc with i686's standard library and the targets it has one for, or `None` (a skip,
/// said so) outside CI.
fn toolchain() -> Option<(Rustc, Vec<&'static str>)> {
    for rustc in candidates() {
        let targets: Vec<&str> = TARGETS.into_iter().filter(|t| rustc.has_std(t)).collect();
        if targets.contains(&I686) {
            return Some((rustc, targets));
        }
    }
    assert!(
        env::var("CI").as_deref() != Ok("true"),
        "no rustc with the standard library of {I686}: tests/cross-check.sh sets up Debian's (tests/lib/debian-rust.sh)"
    );
    eprintln!(
        "SKIPPED: no rustc with the standard library of {I686} (rustup target add, or run tests/cross-check.sh)"
    );
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// Where the cross builds go, one directory for both tests. With Debian's rustc, that of
/// tests/cross-check.sh (`$CARGO_TARGET_DIR/debian-cross`), which holds xen-sys and zerocopy for
/// these targets already: a cold build of them takes minutes on two cores.
fn target_dir(rustc: &Rustc) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    match tmp.parent() {
        Some(target) if rustc.debian => target.join("debian-cross"),
        _ => tmp.join("xen-abi-macros-cross"),
    }
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_pass_types_compile_for_every_architecture() {
    let Some((rustc, targets)) = toolchain() else {
        return;
    };
    for target in targets {
        let out = rustc
            .cargo(&target_dir(&rustc))
            .args(["check", "--locked", "--quiet", "--manifest-path"])
            .arg(workspace().join("Cargo.toml"))
            .args(["-p", "xen-abi-macros", "--test", "pass", "--target", target])
            .output()
            .expect("run cargo check");
        assert!(
            out.status.success(),
            "{}",
            report(&format!("tests/pass.rs for {target}"), &out)
        );
        eprintln!("ok   tests/pass.rs type-checks for {target}, every const assertion holds");
    }
}

/// The x86_32 size copied from the 64-bit ones; `expand` is another ABI type, so only the
/// compiler knows the layout, and only a compile for i686 can refuse it.
const WRONG_X86_32_SIZE: &str = r#"
#[xen_abi_macros::xen_abi(since = "4.18", size(x86_32 = 16, x86_64 = 16, arm32 = 16, arm64 = 16))]
#[repr(C)]
pub struct ExpandOp {
    pub nr: u32,
    #[cfg(not(target_arch = "x86"))]
    pub _pad0: [u8; 4],
    pub expand: xen_sys::EvtchnExpandArray,
}
fn main() {}
"#;

#[test]
fn a_wrong_x86_32_size_is_refused_on_i686_with_both_numbers() {
    let Some((rustc, _)) = toolchain() else {
        return;
    };
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xen-abi-macros-cross-refusal");
    fs::create_dir_all(dir.join("src")).expect("create the scratch package");
    let manifest = format!(
        "[package]\nname = \"xen-abi-macros-cross-refusal\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[workspace]\n\n[dependencies]\n\
         xen-abi-macros = {{ path = {:?} }}\nxen-sys = {{ path = {:?} }}\n\
         zerocopy = {{ version = \"0.8\", features = [\"derive\"] }}\n",
        crate_dir,
        workspace().join("xen-sys"),
    );
    fs::write(dir.join("Cargo.toml"), manifest).expect("write the scratch manifest");
    fs::write(dir.join("src/main.rs"), WRONG_X86_32_SIZE).expect("write the scratch source");
    fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    let out = rustc
        .cargo(&target_dir(&rustc))
        .args(["check", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .args(["--target", I686])
        .output()
        .expect("run cargo check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = "the wrong x86_32 size for i686";
    assert!(!out.status.success(), "{}", report(what, &out));
    // One error: the size, with both numbers; no field is missing (`_pad0` is not on i686).
    assert_eq!(
        stderr.matches("error[").count(),
        1,
        "{}",
        report(what, &out)
    );
    assert!(stderr.contains("error[E0080]"), "{}", report(what, &out));
    assert!(
        stderr.contains("`ExpandOp`: size on x86_32 is 12, declared 16"),
        "{}",
        report(what, &out)
    );
    eprintln!("ok   for {I686}: `ExpandOp`: size on x86_32 is 12, declared 16");
}

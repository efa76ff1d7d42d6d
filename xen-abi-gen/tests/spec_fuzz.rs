//! Structure-aware fuzzing of the real spec: every spec the generator accepts produces Rust
//! that parses (and, for a sample, compiles), and every spec it refuses gets located
//! diagnostics.
//!
//! Deterministic mutations of `abi-spec/` (seeded xorshift, no dependency) replace names (with
//! Rust keywords, prelude and crate names, the names of other items, and variants that collide
//! after case conversion or prefix stripping), types, integers, releases, docs, prefixes and
//! reprs, add `rust_name` keys and duplicate members and fields under colliding names. Each
//! mutant must be refused with diagnostics that all have a file:line:column in the spec (never
//! an "internal error"), or be accepted with every generated module parsing. A sample of the
//! accepted mutants whose generated code changed is written into scratch crates laid out like
//! `xen-sys` (the real `xen-sys/src/abi.rs`, the generated modules, zerocopy) and compiled
//! with one `cargo check --offline` (the scratch workspace lives in `CARGO_TARGET_TMPDIR`, so
//! zerocopy is built once).
//!
//! The check of each mutant is `xen_abi_gen::fuzzing::check`, which the coverage-guided target
//! (`xen-abi-gen/fuzz`, run by `tests/spec-fuzz-guided.sh`) shares; the compile step is this
//! test's alone (seconds a mutant, too slow for a fuzzer's every execution).
//!
//! It prints one line: `SPEC FUZZ mutants=N accepted=A refused=R compiled=C`. A longer run:
//! `SPEC_FUZZ_MUTANTS=5000 SPEC_FUZZ_COMPILED=40 SPEC_FUZZ_SEED=7` (`SPEC_FUZZ_VERBOSE=1`
//! lists every mutant and what became of it).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;

use xen_abi_gen::emit::rust::OutFile;
use xen_abi_gen::fuzzing::{self, Verdict};
use xen_abi_gen::spec::{self, Source};

/// How many mutants (in a debug build, about 60 s on two cores with the compile check).
const MUTANTS: u64 = 200;
/// How many accepted mutants are compiled (about 2.5 s each).
const COMPILED: usize = 5;
const SEED: u64 = 0x5eed_0024_c0de_f00d;

/// A count or seed from the environment, for longer runs.
fn env_or(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Mix the seed so neighbouring seeds do not start alike; never zero.
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
        if x == 0 {
            x = 1;
        }
        Rng(x)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T: ?Sized>(&mut self, xs: &[&'a T]) -> &'a T {
        xs[self.below(xs.len())]
    }
}

/// Rust keywords of every edition, and what cannot even be a raw identifier.
const KEYWORD_NAMES: &[&str] = &[
    "self", "Self", "super", "crate", "_", "__", "true", "false", "fn", "type", "match", "async",
    "await", "dyn", "gen", "try", "ref", "mod", "use", "impl", "struct", "union", "static",
    "const", "let", "loop", "move", "yield", "box", "macro", "abstract", "become", "final",
    "override", "priv", "typeof", "unsized", "virtual", "do", "where", "while", "in", "as",
];

/// Prelude, primitive and crate names, and what xen-sys's abi module exports.
const PRELUDE_NAMES: &[&str] = &[
    "Option",
    "None",
    "Some",
    "Ok",
    "Err",
    "Result",
    "Box",
    "Vec",
    "String",
    "Default",
    "From",
    "Copy",
    "Clone",
    "Drop",
    "core",
    "std",
    "alloc",
    "zerocopy",
    "u32",
    "i8",
    "u64",
    "bool",
    "char",
    "str",
    "usize",
    "GuestHandle",
    "XenVersion",
    "XenAbi",
    "Hypercall",
    "hypercall_result",
    "ioc",
    "IOC_READ",
    "read_prefix",
    "write_prefix",
];

/// Names the generated code uses inside impls and functions, names whose derived forms are
/// special, and module names (a type of that name would meet the module).
const OTHER_NAMES: &[&str] = &[
    "bytes",
    "default",
    "h",
    "ret",
    "name",
    "bits",
    "all",
    "empty",
    "contains",
    "unknown_bits",
    "fmt",
    "from",
    "clone",
    "eq",
    "new_zeroed",
    "as_bytes",
    "value",
    "set_",
    "from_",
    "with_",
    "self_t",
    "_self",
    "result_t",
    "option",
    "SELF",
    "Self_",
    "_1",
    "1abc",
    "a-b",
    "",
    "console_io",
    "memory",
    "errno",
    "xen_h",
];

const TYPES: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "u64_aligned",
    "ulong",
    "ptr",
    "handle<void>",
    "handle<u32>",
    "handle<domid_t>",
    "handle<nosuch>",
    "[u8; 3]",
    "[u8; 0]",
    "[u32; 4294967295]",
    "[[u8; 2]; 3]",
    "domid_t",
    "xen_pfn_t",
    "evtchn_port_t",
    "xen_errno",
    "nosuch_t",
    "bool",
    "u128",
    "",
    "[u8 3]",
];

const INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "8",
    "15",
    "16",
    "31",
    "32",
    "63",
    "64",
    "127",
    "128",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "-1",
    "-128",
    "-129",
    "9223372036854775807",
    "-9223372036854775808",
    "\"0xffffffffffffffff\"",
    "\"18446744073709551616\"",
    "\"-1\"",
    "\"0x\"",
];

const RELEASES: &[&str] = &[
    "4.020", "04.20", "4.2", "4.20", "4.0", "3.0", "4.21", "2.0", "1.0", "4.x", "4", "4.1.1",
    " 4.2", "4.00", "0.0", "4.14",
];

/// TOML basic-string bodies (escapes included).
const DOCS: &[&str] = &[
    "a\\rb",
    "line one\\r\\nline two",
    "\\u202Eevil",
    "trailing\\r",
    "\\u2066isolated\\u2069",
    "nul \\u0000 char",
    "back\\\\slash and \\\"quotes\\\"",
    "*/ /* // /// //!",
    "#[doc = \\\"x\\\"] ]]} {{",
    "",
    "   ",
    "x\\ny\\n\\nz",
];

const PREFIXES: &[&str] = &["", "XEN_", "X", "_", "IOREQ_", "VIRQ_", "XEN_DMOP_", "GTF_"];

const REPRS: &[&str] = &[
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "u128", "bool",
];

const HEADERS: &[&str] = &[
    "[[const]]",
    "[[typedef]]",
    "[[struct]]",
    "[[union]]",
    "[[values]]",
    "[[flags]]",
    "[[bitfield]]",
    "[[hypercall]]",
    "[[ioctl]]",
];

fn real_sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    spec::read_dir(&dir).expect("the in-tree spec is readable")
}

/// The byte ranges of the values of `key = ...` (the key at a word boundary), skipping
/// multi-line strings and inline tables or arrays.
fn value_spans(text: &str, key: &str) -> Vec<(usize, usize)> {
    let pat = format!("{key} = ");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&pat) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let start = at + pat.len();
        let rest = &text[start..];
        if rest.starts_with("\"\"\"") || rest.starts_with('{') || rest.starts_with('[') {
            continue;
        }
        let len = if let Some(body) = rest.strip_prefix('"') {
            // A basic string on one line: up to the next unescaped quote.
            let mut escaped = false;
            let mut end = None;
            for (i, c) in body.char_indices() {
                match c {
                    '\n' => break,
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i + 2);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            match end {
                Some(e) => e,
                None => continue,
            }
        } else {
            rest.find([',', ' ', '}', ']', '\n', '#'])
                .unwrap_or(rest.len())
        };
        if len > 0 {
            out.push((start, start + len));
        }
    }
    out
}

/// Variants of a name that collide with it once the generator derives Rust names.
fn variants(v: &str) -> Vec<String> {
    let mut out = vec![
        v.to_ascii_uppercase(),
        v.to_ascii_lowercase(),
        format!("_{v}"),
        format!("set_{v}"),
        format!("from_{v}"),
        format!("with_{v}"),
        format!("{}_SHIFT", v.to_ascii_uppercase()),
        format!("{v}_t"),
    ];
    if let Some((_, tail)) = v.split_once('_') {
        out.push(tail.to_owned());
        out.push(tail.to_ascii_lowercase());
    }
    out
}

/// All quoted `name = "..."` values of the spec, to reuse as colliding names.
fn spec_names(all: &[Source]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for s in all {
        for (a, b) in value_spans(&s.text, "name") {
            out.insert(s.text[a + 1..b - 1].to_owned());
        }
    }
    out.into_iter().collect()
}

/// A name: hostile, another spec name, or a variant of the one replaced.
fn a_name(rng: &mut Rng, names: &[String], old: &str) -> String {
    match rng.below(3) {
        0 => {
            let pool = [KEYWORD_NAMES, PRELUDE_NAMES, OTHER_NAMES][rng.below(3)];
            rng.pick(pool).to_owned()
        }
        1 => names[rng.below(names.len())].clone(),
        _ => {
            let v = variants(old);
            v[rng.below(v.len())].clone()
        }
    }
}

/// Apply one mutation to `text`; describe it.
fn mutate(rng: &mut Rng, names: &[String], text: &str) -> Option<(String, String)> {
    let replace = |text: &str, (a, b): (usize, usize), new: &str| {
        let mut t = text.to_owned();
        t.replace_range(a..b, new);
        t
    };
    let quoted = |s: &str| format!("\"{s}\"");
    match rng.below(11) {
        // A name of an item, field, member, argument or sub-op.
        0..=2 => {
            let spans = value_spans(text, "name");
            let sp = *spans.get(rng.below(spans.len()))?;
            let old = &text[sp.0 + 1..sp.1 - 1];
            let new = a_name(rng, names, old);
            Some((
                replace(text, sp, &quoted(&new)),
                format!("name {old:?} -> {new:?}"),
            ))
        }
        // A `rust_name` on an item.
        3 => {
            let header = rng.pick(HEADERS);
            let at: Vec<usize> = text
                .match_indices(&format!("{header}\n"))
                .map(|(i, h)| i + h.len())
                .collect();
            let at = *at.get(rng.below(at.len()))?;
            let new = a_name(rng, names, "x");
            let mut t = text.to_owned();
            t.insert_str(at, &format!("rust_name = {}\n", quoted(&new)));
            Some((t, format!("rust_name {new:?} on a {header}")))
        }
        // A member or field again, under a colliding name.
        4 => {
            let lines: Vec<(usize, &str)> = text
                .split_inclusive('\n')
                .scan(0, |pos, l| {
                    let at = *pos;
                    *pos += l.len();
                    Some((at, l))
                })
                .filter(|(_, l)| {
                    let t = l.trim();
                    t.starts_with("{ name = \"") && (t.ends_with("},") || t.ends_with('}'))
                })
                .collect();
            let (at, line) = *lines.get(rng.below(lines.len()))?;
            let (a, b) = *value_spans(line, "name").first()?;
            let old = &line[a + 1..b - 1];
            let v = variants(old);
            let new = if rng.below(4) == 0 {
                old.to_owned()
            } else {
                v[rng.below(v.len())].clone()
            };
            let mut copy = replace(line, (a, b), &quoted(&new));
            // Before the original, with a comma, so the array stays valid.
            copy = format!("{},\n", copy.trim_end().trim_end_matches(','));
            let mut t = text.to_owned();
            t.insert_str(at, &copy);
            Some((t, format!("copy of {old:?} as {new:?}")))
        }
        // A type.
        5 => {
            let spans = value_spans(text, "type");
            let sp = *spans.get(rng.below(spans.len()))?;
            let old = text[sp.0..sp.1].to_owned();
            let new = if old.starts_with('"') {
                quoted(rng.pick(TYPES))
            } else {
                rng.pick(INTS).to_owned()
            };
            Some((replace(text, sp, &new), format!("type {old} -> {new}")))
        }
        // An integer.
        6 => {
            let key = rng.pick(&[
                "value", "bit", "lsb", "width", "number", "nr", "size", "align",
            ]);
            let spans = value_spans(text, key);
            let sp = *spans.get(rng.below(spans.len()))?;
            let new = rng.pick(INTS);
            Some((
                replace(text, sp, new),
                format!("{key} {} -> {new}", &text[sp.0..sp.1]),
            ))
        }
        // A release.
        7 => {
            let key = rng.pick(&["since", "xen", "linux", "guest_since"]);
            let spans = value_spans(text, key);
            let sp = *spans.get(rng.below(spans.len()))?;
            let new = quoted(rng.pick(RELEASES));
            Some((replace(text, sp, &new), format!("{key} -> {new}")))
        }
        // A doc.
        8 => {
            let spans = value_spans(text, "doc");
            let sp = *spans.get(rng.below(spans.len()))?;
            let new = quoted(rng.pick(DOCS));
            Some((replace(text, sp, &new), format!("doc -> {new}")))
        }
        // A set's prefix.
        9 => {
            let spans = value_spans(text, "prefix");
            let sp = *spans.get(rng.below(spans.len()))?;
            let new = if rng.below(2) == 0 {
                rng.pick(PREFIXES).to_owned()
            } else {
                names[rng.below(names.len())].clone()
            };
            Some((
                replace(text, sp, &quoted(&new)),
                format!("prefix -> {new:?}"),
            ))
        }
        // A repr.
        _ => {
            let spans = value_spans(text, "repr");
            let sp = *spans.get(rng.below(spans.len()))?;
            let new = quoted(rng.pick(REPRS));
            Some((replace(text, sp, &new), format!("repr -> {new}")))
        }
    }
}

/// One mutant: the sources and what was changed.
fn mutant(base: &[Source], names: &[String], seed: u64, index: u64) -> (Vec<Source>, String) {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0x0100_0000_01b3));
    let mut sources = base.to_vec();
    let mut what = Vec::new();
    let n = 1 + rng.below(3);
    while what.len() < n {
        let f = rng.below(sources.len());
        if let Some((text, desc)) = mutate(&mut rng, names, &sources[f].text) {
            sources[f].text = text;
            what.push(format!("{}: {desc}", sources[f].rel_path));
        }
    }
    (sources, what.join("; "))
}

/// What happened to one mutant.
enum Outcome {
    /// Refused; the first diagnostic.
    Refused(String),
    /// Accepted; the generated files when they differ from the unmutated spec's and can be
    /// compiled beside xen-sys's hand-written `abi.rs`.
    Accepted(Option<Vec<OutFile>>),
    /// Broke a promise.
    Failed(String),
}

/// Whether `abi.rs` can be compiled with this spec's code: it is written against the spec's
/// `xen_errno` (`crate::generated::XenErrno`, an `i32` newtype with `name()`), a contract
/// between the spec and xen-sys's hand-written code rather than one the generator can check
/// (a spec of other items, e.g. the test fixture, need not have it).
fn has_xen_errno(spec: &xen_abi_gen::model::Spec) -> bool {
    use xen_abi_gen::model::ItemKind;
    spec.items().any(|(_, i)| {
        i.rust_name == "XenErrno"
            && matches!(&i.kind, ItemKind::Values(v) if v.repr == xen_abi_gen::ty::Int::I32)
    })
}

fn run_one(sources: &[Source], base: &[Source], baseline: &[OutFile]) -> Outcome {
    match fuzzing::check(sources, base, baseline) {
        Err(why) => Outcome::Failed(why.lines().map(|l| format!("    {l}\n")).collect()),
        Ok(Verdict::Refused(d)) => {
            Outcome::Refused(d.0.first().map(|d| d.to_string()).unwrap_or_default())
        }
        Ok(Verdict::Accepted { spec, files }) => {
            let changed = files.len() != baseline.len()
                || files
                    .iter()
                    .zip(baseline)
                    .any(|(a, b)| a.name != b.name || a.text != b.text);
            Outcome::Accepted((changed && has_xen_errno(&spec)).then_some(files))
        }
    }
}

/// Write `path` only when its contents change, so cargo re-checks only what changed.
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("create scratch dir");
    }
    std::fs::write(path, text).expect("write scratch file");
}

/// The crate root of a scratch crate: what xen-sys's lib.rs declares around the generated
/// modules (the same lints denied, the same allowances for the generated code).
const LIB_RS: &str = r#"#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]
//! A spec fuzz mutant.
#[path = "ABI_RS"]
pub mod abi;
#[rustfmt::skip]
#[allow(
    non_upper_case_globals,
    clippy::all,
    missing_docs,
    rustdoc::broken_intra_doc_links,
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags
)]
pub mod generated;
pub use abi::{hypercall_result, GuestHandle, Hypercall, XenAbi, XenVersion};
pub use generated::*;
"#;

/// Compile each file set as the generated modules of a crate laid out like xen-sys; return
/// the crates that failed, with cargo's messages about them.
fn compile(sets: &[(&str, &[OutFile])]) -> Vec<(usize, String)> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spec-fuzz");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let abi = manifest.join("../xen-sys/src/abi.rs");
    let abi = abi.canonicalize().unwrap_or(abi);
    let mut members = Vec::new();
    for (i, (_, files)) in sets.iter().enumerate() {
        let dir = root.join(format!("m{i}"));
        write_if_changed(
            &dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"spec-fuzz-m{i}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nzerocopy = {{ version = \"0.8\", features = [\"derive\"] }}\n"
            ),
        );
        write_if_changed(
            &dir.join("src/lib.rs"),
            &LIB_RS.replace("ABI_RS", &abi.display().to_string()),
        );
        let gen = dir.join("src/generated");
        if let Ok(rd) = std::fs::read_dir(&gen) {
            for e in rd.flatten() {
                if !files.iter().any(|f| e.file_name() == f.name.as_str()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for f in *files {
            write_if_changed(&gen.join(&f.name), &f.text);
        }
        members.push(format!("\"m{i}\""));
    }
    write_if_changed(
        &root.join("Cargo.toml"),
        &format!(
            "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
            members.join(", ")
        ),
    );
    // The workspace's lock file pins zerocopy to the version xen-sys builds with.
    let lock = std::fs::read_to_string(manifest.join("../Cargo.lock")).expect("read Cargo.lock");
    if !root.join("Cargo.lock").exists() {
        write_if_changed(&root.join("Cargo.lock"), &lock);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let check = |offline: bool| {
        let mut c = Command::new(&cargo);
        c.current_dir(&root)
            .args(["check", "-j1", "--workspace", "--keep-going", "--quiet"])
            .args(["--message-format", "short"])
            // Not the test's own target directory: the cargo running this test holds it.
            .env("CARGO_TARGET_DIR", root.join("target"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS");
        if offline {
            c.arg("--offline");
        }
        c.output().expect("run cargo check")
    };
    let mut out = check(true);
    if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("could not compile")
    {
        // Nothing was compiled: most likely zerocopy is not in cargo's cache yet, so let
        // cargo fetch it from the registry.
        out = check(false);
    }
    if out.status.success() {
        return Vec::new();
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    let mut failed = Vec::new();
    for i in 0..sets.len() {
        if !stderr.contains(&format!("could not compile `spec-fuzz-m{i}`")) {
            continue;
        }
        // Its own errors, or (when they are in abi.rs) all of them.
        let tag = format!("m{i}/src/");
        let mut msgs: Vec<&str> = errors
            .iter()
            .copied()
            .filter(|l| l.contains(&tag))
            .collect();
        if msgs.is_empty() {
            msgs = errors.clone();
        }
        msgs.truncate(8);
        failed.push((i, msgs.join("\n")));
    }
    if failed.is_empty() {
        // cargo failed, but not on a mutant's code: report everything.
        failed.push((usize::MAX, stderr));
    }
    failed
}

#[test]
fn mutants_are_refused_with_a_location_or_generate_code_that_compiles() {
    let start = std::time::Instant::now();
    let mutants = env_or("SPEC_FUZZ_MUTANTS", MUTANTS);
    let to_compile = env_or("SPEC_FUZZ_COMPILED", COMPILED as u64) as usize;
    let seed = env_or("SPEC_FUZZ_SEED", SEED);
    let base = real_sources();
    let names = spec_names(&base);
    let baseline = fuzzing::baseline(&base).expect("the in-tree spec generates");

    // Two workers (the machine's cores); each mutant depends only on its index.
    let workers = 2;
    let results: Vec<(u64, String, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (base, names, baseline) = (&base, &names, &baseline);
                s.spawn(move || {
                    let mut out = Vec::new();
                    for i in (w..mutants).step_by(workers as usize) {
                        let (sources, what) = mutant(base, names, seed, i);
                        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            run_one(&sources, base, baseline)
                        }))
                        .unwrap_or_else(|p| {
                            let msg = p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            Outcome::Failed(format!("    panicked: {msg}\n"))
                        });
                        out.push((i, what, r));
                    }
                    out
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("fuzz worker"))
            .collect();
        all.sort_by_key(|(i, _, _)| *i);
        all
    });

    let mut failures = String::new();
    let (mut accepted, mut refused) = (0, 0);
    let mut changed: Vec<(&str, &[OutFile])> = Vec::new();
    // SPEC_FUZZ_VERBOSE=1: every mutant and what became of it.
    let verbose = std::env::var_os("SPEC_FUZZ_VERBOSE").is_some();
    for (i, what, r) in &results {
        match r {
            Outcome::Refused(first) => {
                refused += 1;
                if verbose {
                    eprintln!("mutant {i} ({what}): refused: {}", first.replace('\n', " "));
                }
            }
            Outcome::Accepted(files) => {
                accepted += 1;
                if verbose {
                    eprintln!("mutant {i} ({what}): accepted");
                }
                // The code of mutants that renamed, retyped or re-represented something is
                // what compiling can catch beyond parsing (docs and numbers are checked by
                // the parse and the generator's own layout assertions).
                let risky = ["name ", "rust_name", "copy of", "prefix", "repr", "type "]
                    .iter()
                    .any(|k| what.contains(k));
                if let (Some(f), true) = (files, risky) {
                    changed.push((what.as_str(), f.as_slice()));
                }
            }
            Outcome::Failed(why) => {
                let _ = write!(failures, "mutant {i} ({what}):\n{why}");
            }
        }
    }

    let fuzzed = start.elapsed();

    // Compile an evenly spread sample of the accepted mutants whose code changed, and the
    // unmutated spec's code as the control (a failure there is the harness's, not a mutant's).
    let mut sets: Vec<(&str, &[OutFile])> = vec![("the unmutated spec", baseline.as_slice())];
    let step = changed.len().div_ceil(to_compile.max(1)).max(1);
    sets.extend(changed.iter().step_by(step).take(to_compile).copied());
    for (i, msgs) in compile(&sets) {
        match sets.get(i) {
            Some((what, _)) => {
                let _ = write!(
                    failures,
                    "accepted, but does not compile ({what}):\n{msgs}\n"
                );
            }
            None => {
                let _ = write!(
                    failures,
                    "cargo check of the scratch crates failed:\n{msgs}\n"
                );
            }
        }
    }
    let compiled = sets.len() - 1;

    eprintln!(
        "SPEC FUZZ mutants={mutants} accepted={accepted} refused={refused} compiled={compiled} (fuzz {:.1}s, compile {:.1}s)",
        fuzzed.as_secs_f64(),
        (start.elapsed() - fuzzed).as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures}");
    // The mutations must exercise both outcomes.
    assert!(
        accepted > 0 && refused > 0,
        "accepted={accepted} refused={refused}"
    );
}

/// What the coverage-guided target does with one input (`fuzz/fuzz_targets/spec.rs`), on the
/// stable toolchain: each in-tree file stands in for itself and is accepted, a broken copy is
/// refused with located diagnostics, a file of a new header is added; and the tampered checks
/// its control relies on do report a broken promise.
#[test]
fn the_guided_targets_input_replaces_its_file_and_tampering_is_reported() {
    use xen_abi_gen::fuzzing::Tamper;
    let base = spec::builtin_sources();
    let baseline = fuzzing::baseline(&base).expect("the in-tree spec generates");
    for s in &base {
        let sources = fuzzing::with_one_file(&base, &s.text);
        assert_eq!(
            sources.len(),
            base.len(),
            "{} was added, not replaced",
            s.rel_path
        );
        assert!(
            matches!(
                fuzzing::check(&sources, &base, &baseline),
                Ok(Verdict::Accepted { .. })
            ),
            "{}",
            s.rel_path
        );
    }
    // The in-tree `file` with `from` changed to `to`, in its slot: refused, the diagnostics
    // (located) naming `expect`.
    let refused = |file: &str, from: &str, to: &str, expect: &str| {
        let text = &base.iter().find(|s| s.rel_path == file).expect(file).text;
        let changed = text.replacen(from, to, 1);
        assert_ne!(&changed, text, "{file} has no {from}");
        let sources = fuzzing::with_one_file(&base, &changed);
        assert_eq!(sources.len(), base.len());
        match fuzzing::check(&sources, &base, &baseline) {
            Ok(Verdict::Refused(d)) => assert!(d.to_string().contains(expect), "{d}"),
            other => panic!("{file} with {to}: {other:?}"),
        }
        sources
    };
    let sources = refused(
        "sched.toml",
        "repr = \"u32\"",
        "repr = \"u33\"",
        "sched.toml:",
    );
    let err = fuzzing::check_tampered(&sources, &base, &baseline, Tamper::Unlocate)
        .expect_err("an unlocated diagnostic is reported");
    assert!(err.contains("unlocated"), "{err}");
    let err = fuzzing::check_tampered(&base, &base, &baseline, Tamper::Unparse)
        .expect_err("unparsable code is reported");
    assert!(err.contains("does not parse"), "{err}");
    // A message that quotes the spec's text is not an internal error, whatever the text says
    // (the guided fuzzer's first find: a false alarm of the check).
    let quoted = "name = \"internal erroriopl\"";
    refused(
        "physdev.toml",
        "name = \"iopl\"",
        quoted,
        "internal erroriopl",
    );
    let sched = &base
        .iter()
        .find(|s| s.rel_path == "sched.toml")
        .expect("sched")
        .text;
    let new = sched.replace("xen/sched.h", "xen/fuzz.h");
    assert_eq!(fuzzing::with_one_file(&base, &new).len(), base.len() + 1);
}

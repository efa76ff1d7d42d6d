//! Loading and validating spec files.

pub mod raw;
mod validate;

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, SourceMap};
use crate::model::Spec;

pub use validate::validate;

/// A spec file read from disk (or memory), not yet parsed.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path relative to the spec directory, `/`-separated.
    pub rel_path: String,
    /// Path for messages.
    pub path: PathBuf,
    /// The text.
    pub text: String,
}

/// Read every `*.toml` below `dir` (sorted, so output is deterministic).
pub fn read_dir(dir: &Path) -> Result<Vec<Source>, Diagnostics> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let io_err = |p: &Path, e: std::io::Error| {
        Diagnostics(vec![Diagnostic {
            loc: crate::diag::Loc {
                file: p.to_path_buf(),
                line: 0,
                col: 0,
            },
            message: format!("cannot read: {e}"),
            help: Some("pass the spec directory with --spec".into()),
        }])
    };
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| io_err(&d, e))?;
        for e in entries {
            let e = e.map_err(|e| io_err(&d, e))?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(Source {
                    rel_path: rel,
                    path: p,
                    text,
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    if out.is_empty() {
        return Err(Diagnostics(vec![Diagnostic {
            loc: crate::diag::Loc {
                file: dir.to_path_buf(),
                line: 0,
                col: 0,
            },
            message: "no .toml spec files found".into(),
            help: Some("pass the spec directory with --spec".into()),
        }]));
    }
    Ok(out)
}

/// Parse and validate the spec in `dir`.
pub fn load(dir: &Path) -> Result<Spec, Diagnostics> {
    let sources = read_dir(dir)?;
    load_sources(&sources)
}

/// Parse and validate sources already in memory.
pub fn load_sources(sources: &[Source]) -> Result<Spec, Diagnostics> {
    let mut parsed = Vec::new();
    let mut diags = Vec::new();
    for s in sources {
        let map = SourceMap::new(&s.path, &s.text);
        match toml::from_str::<raw::File>(&s.text) {
            Ok(f) => parsed.push((s.clone(), map, f)),
            Err(e) => {
                let loc = e
                    .span()
                    .map(|sp| map.span(&sp))
                    .unwrap_or_else(|| map.start());
                diags.push(Diagnostic {
                    loc,
                    message: match e.message().trim() {
                        "" => "the file is not valid TOML for the spec format".to_owned(),
                        m => m.to_owned(),
                    },
                    help: Some(e.span().and_then(|sp| too_large_value(&s.text, sp.start)).unwrap_or_else(
                        || "see abi-spec/README.md for the spec format and the keys each item takes"
                            .into(),
                    )),
                });
            }
        }
    }
    if !diags.is_empty() {
        diags.sort_by(|a, b| a.loc.cmp(&b.loc));
        return Err(Diagnostics(diags));
    }
    validate(&parsed)
}

/// The help for an integer literal at byte `at` of `text` that TOML cannot hold (beyond i64) but
/// a `value = "..."` string can: `write it as a string: value = "0x8000000000000000"`.
fn too_large_value(text: &str, at: usize) -> Option<String> {
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let key = text
        .get(line_start..at)?
        .trim_end()
        .strip_suffix('=')?
        .trim_end();
    // The key is the last word before `=` (`value`, also inside an inline table). Split, not
    // sliced at the byte after the last other character: that one may be wider than a byte.
    let key = key
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .next()
        .unwrap_or(key);
    if key != "value" {
        return None;
    }
    let rest = text.get(at..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '+' || c == '-'))
        .unwrap_or(rest.len());
    let lit = &rest[..end];
    let (neg, digits) = match lit.as_bytes().first()? {
        b'-' => (true, &lit[1..]),
        b'+' => (false, &lit[1..]),
        _ => (false, lit),
    };
    let clean = digits.replace('_', "");
    let (radix, body) = match clean.get(..2) {
        Some("0x") => (16, &clean[2..]),
        Some("0o") => (8, &clean[2..]),
        Some("0b") => (2, &clean[2..]),
        _ => (10, clean.as_str()),
    };
    let v = u64::from_str_radix(body, radix).ok()?;
    let fits_i64 = if neg { v <= 1 << 63 } else { v < 1 << 63 };
    if fits_i64 {
        return None;
    }
    // Strings take decimal or `0x` hexadecimal: keep what was written when it is one of those.
    let shown = match radix {
        10 | 16 => digits.to_owned(),
        _ => format!("{v:#x}"),
    };
    let sign = if neg { "-" } else { "" };
    Some(format!("write it as a string: value = \"{sign}{shown}\""))
}

/// The in-tree spec, embedded at build time, so `include_spec!` in another crate can resolve
/// references to its items (`domid_t`, `evtchn_port_t`, ...): every `.toml` file under
/// `abi-spec/`, found by the build script (a new file needs no edit here), as (path relative
/// to `abi-spec/`, text), sorted by path.
pub const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin.rs"));

/// The embedded spec as sources (paths `abi-spec/...`).
pub fn builtin_sources() -> Vec<Source> {
    BUILTIN
        .iter()
        .map(|(rel, text)| Source {
            rel_path: (*rel).to_owned(),
            path: PathBuf::from("abi-spec").join(rel),
            text: (*text).to_owned(),
        })
        .collect()
}

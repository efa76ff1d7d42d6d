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
                    help: Some(
                        "see abi-spec/README.md for the spec format and the keys each item takes"
                            .into(),
                    ),
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

//! Embeds every spec file of `abi-spec/` (`spec::BUILTIN`): adding a file there needs no edit
//! anywhere else. Cargo reruns this when anything under `abi-spec/` changes.
//!
//! The spec is read from the crate's own `abi-spec`: in the repository a symbolic link to the
//! workspace's `abi-spec/` (the one copy anyone edits), in the packaged crate the files
//! themselves (`cargo package` follows the link). A checkout without symbolic links (git's
//! `core.symlinks=false` makes the link a small text file) falls back to `../abi-spec`.

use std::path::{Path, PathBuf};

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "toml") {
            out.push(
                path.strip_prefix(root)
                    .expect("under the root")
                    .to_path_buf(),
            );
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let own = manifest.join("abi-spec");
    let root = if own.is_dir() {
        own.clone()
    } else {
        manifest.join("..").join("abi-spec")
    };
    // The directory the link leads to: cargo watches that one's files.
    let root = root.canonicalize().unwrap_or_else(|e| {
        panic!(
            "no spec: {} is no directory (in the repository a link to ../abi-spec, in the \
             packaged crate the spec files) and {}: {e}",
            own.display(),
            root.display()
        )
    });
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    // Sorted by path, with `/` separators: the same order on every machine.
    let mut rels: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|rel| {
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (name, root.join(rel))
        })
        .collect();
    rels.sort();
    let mut code = String::from("&[\n");
    for (name, path) in &rels {
        let abs = path.canonicalize().expect("a spec file");
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("builtin.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

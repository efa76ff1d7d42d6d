//! A malformed spec never panics the generator: deterministic mutations of the real spec
//! (truncation, line deletion, value and type corruption) must all end in `Ok` or in located
//! diagnostics.

use std::path::Path;

use xen_abi_gen::spec::{self, Source};

fn real_sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    spec::read_dir(&dir).expect("spec dir")
}

fn load_mutated(all: &[Source], idx: usize, text: String) {
    let mut sources = all.to_vec();
    sources[idx].text = text;
    match spec::load_sources(&sources) {
        Ok(_) => {}
        Err(d) => {
            assert!(!d.0.is_empty());
            for diag in &d.0 {
                assert!(diag.loc.line >= 1 && diag.loc.col >= 1, "{diag}");
                assert!(!diag.message.is_empty());
            }
        }
    }
}

#[test]
fn truncated_files_never_panic() {
    let all = real_sources();
    for (i, s) in all.iter().enumerate() {
        let mut cut = 0;
        while cut < s.text.len() {
            if s.text.is_char_boundary(cut) {
                load_mutated(&all, i, s.text[..cut].to_owned());
            }
            cut += 509;
        }
    }
}

#[test]
fn deleted_lines_never_panic() {
    let all = real_sources();
    for (i, s) in all.iter().enumerate() {
        let lines: Vec<&str> = s.text.lines().collect();
        for skip in (0..lines.len()).step_by(11) {
            let text: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(n, _)| *n != skip)
                .map(|(_, l)| *l)
                .collect();
            load_mutated(&all, i, text.join("\n"));
        }
    }
}

#[test]
fn corrupted_values_never_panic() {
    let all = real_sources();
    let replacements = [
        ("value = ", "value = 99999999999999999"),
        ("value = ", "value = -9223372036854775808 #"),
        ("type = \"", "type = \"[[u8; 4294967295]; 4294967295]\" #\""),
        ("type = \"", "type = \"handle<\" #\""),
        ("size = ", "size = -1 #"),
        ("since = \"", "since = \"99999.1\" #\""),
        ("bit = ", "bit = 9223372036854775807 #"),
        (
            "lsb = ",
            "lsb = -9223372036854775808, width = 9223372036854775807 #",
        ),
        ("nr = ", "nr = -1 #"),
        ("number = ", "number = 9223372036854775807 #"),
    ];
    for (i, s) in all.iter().enumerate() {
        for (from, to) in replacements {
            // Corrupt each occurrence in turn (bounded).
            for (n, (at, _)) in s.text.match_indices(from).enumerate().take(8) {
                let _ = n;
                let mut t = s.text.clone();
                t.replace_range(at..at + from.len(), to);
                load_mutated(&all, i, t);
            }
        }
    }
}

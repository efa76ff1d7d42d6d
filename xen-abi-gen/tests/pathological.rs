//! Specs that once took minutes or crashed: each is answered quickly, with located
//! diagnostics. The time limits are generous (a debug build on a busy machine); what they
//! catch is a return to quadratic behaviour, which took 40 s to over 300 s on these inputs.

use std::path::Path;
use std::time::{Duration, Instant};

use xen_abi_gen::spec::{self, Source};
use xen_abi_gen::Diagnostics;

const HEADER: &str = r#"[spec]
format = 1
xen = "4.20"
interface_version = 0x00040e00
header = "xen/extra.h"
doc = "An extra file."
"#;

fn with_extra(text: String) -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    let mut all = spec::read_dir(&dir).expect("the in-tree spec is readable");
    all.push(Source {
        rel_path: "zz_extra.toml".into(),
        path: "zz_extra.toml".into(),
        text,
    });
    all
}

/// Load, within `limit`; the diagnostics (all located in the extra file).
fn refused_within(sources: &[Source], limit: Duration) -> Diagnostics {
    let t = Instant::now();
    let r = spec::load_sources(sources);
    let took = t.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
    let d = match r {
        Ok(_) => panic!("the spec must be refused"),
        Err(d) => d,
    };
    for diag in &d.0 {
        assert_eq!(diag.loc.file, Path::new("zz_extra.toml"), "{diag}");
        assert!(diag.loc.line >= 1 && diag.loc.col >= 1, "{diag}");
    }
    d
}

#[test]
fn a_megabyte_long_unknown_type_name_is_reported_at_once() {
    let name = "a".repeat(1_000_000);
    let text = format!(
        "{HEADER}\n[[struct]]\nname = \"big\"\ndoc = \"x\"\nsince = \"4.1\"\nfields = [ {{ name = \"f\", type = \"{name}\" }} ]\n"
    );
    let d = refused_within(&with_extra(text), Duration::from_secs(10));
    // (Messages shortened: they hold the name.)
    let short: String = d.to_string().chars().take(200).collect();
    assert_eq!(d.0.len(), 1, "{short}");
    assert!(d.0[0].message.starts_with("unknown type `aaaa"), "{short}");
    // At the field, as every unknown type of a field.
    assert_eq!((d.0[0].loc.line, d.0[0].loc.col), (12, 21), "{short}");
}

#[test]
fn thousands_of_unknown_names_still_get_quick_answers() {
    // Distinct near-misses of real names: each would be compared with every type.
    let mut fields = String::new();
    for i in 0..5_000 {
        fields.push_str(&format!(
            "  {{ name = \"f{i}\", type = \"xen_pfn_{i}\" }},\n"
        ));
    }
    let text = format!(
        "{HEADER}\n[[struct]]\nname = \"big\"\ndoc = \"x\"\nsince = \"4.1\"\nfields = [\n{fields}]\n"
    );
    let d = refused_within(&with_extra(text), Duration::from_secs(20));
    assert_eq!(d.0.len(), 5_000);
    // The first ones still get their hint.
    assert!(
        d.0[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("did you mean `xen_pfn_t`?")),
        "{}",
        d.0[0]
    );
}

#[test]
fn a_struct_with_twenty_thousand_padding_holes_is_reported_quickly() {
    let mut fields = String::new();
    for i in 0..20_000 {
        let ty = if i % 2 == 0 { "u32" } else { "u8" };
        fields.push_str(&format!("  {{ name = \"f{i}\", type = \"{ty}\" }},\n"));
    }
    let text = format!(
        "{HEADER}\n[[struct]]\nname = \"big\"\ndoc = \"x\"\nsince = \"4.1\"\nfields = [\n{fields}]\n"
    );
    // Before: 40 s in a release build.
    let d = refused_within(&with_extra(text), Duration::from_secs(30));
    assert!(d.0.len() >= 20_000, "{} diagnostics", d.0.len());
    assert!(
        d.0.iter()
            .any(|x| x.message.contains("implicit padding in struct `big`")),
        "{}",
        d.0[0]
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // A million `[`: the type parser recursed once per level.
    let deep = format!("{}u8{}", "[".repeat(1_000_000), "; 1]".repeat(1_000_000));
    let text = format!(
        "{HEADER}\n[[typedef]]\nname = \"deep_t\"\ntype = \"{deep}\"\ndoc = \"x\"\nsince = \"4.1\"\n"
    );
    let d = refused_within(&with_extra(text), Duration::from_secs(10));
    assert!(
        d.0[0].message.contains("arrays nest more than 16 deep"),
        "{d}"
    );

    // A chain of typedefs: the layout engine recursed once per link.
    let mut text = HEADER.to_owned();
    let n = 2_000;
    for i in 0..n {
        let ty = if i + 1 < n {
            format!("t{}", i + 1)
        } else {
            "u32".into()
        };
        text.push_str(&format!(
            "\n[[typedef]]\nname = \"t{i}\"\ntype = \"{ty}\"\ndoc = \"x\"\nsince = \"4.1\"\n"
        ));
    }
    let d = refused_within(&with_extra(text), Duration::from_secs(30));
    assert!(
        d.0[0]
            .message
            .contains("typedef `t0`: type `t100` nests more than 100 named types deep"),
        "{}",
        d.0[0]
    );
    // Exactly the typedefs with more than 100 links below them, whatever the order of the
    // checks.
    assert_eq!(d.0.len(), n - 100);
}

#[test]
fn a_syntax_error_after_a_wide_character_and_an_equals_sign_is_located_not_a_panic() {
    // Found by the guided fuzzer (tests/spec-fuzz-guided.sh): a NUL in a string right after
    // `é=` is a TOML error; the help for too-large values then looked for the key before the
    // `=` and sliced inside the `é`.
    for wide in ["é", "\u{fffd}", "😀"] {
        let text = format!("{HEADER}\n[[const]]\nname = \"x{wide}=\u{0}\"\n");
        let d = refused_within(&with_extra(text), Duration::from_secs(10));
        assert_eq!(d.0.len(), 1, "{d}");
        assert_eq!(d.0[0].loc.line, 9, "{d}");
    }
}

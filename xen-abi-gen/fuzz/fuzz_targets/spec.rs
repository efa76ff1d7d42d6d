//! One spec file's text (lossy UTF-8), loaded with the rest of the in-tree spec: it stands in
//! for the in-tree file of the same C header, or is added as a new file
//! (`xen_abi_gen::fuzzing::with_one_file`). The promise (`xen_abi_gen::fuzzing::check`, the
//! check `tests/spec_fuzz.rs` makes): no panic; a refused spec gets diagnostics that all point
//! at a file:line:column of its files; an accepted one generates modules that all parse with
//! syn (compiling them is too slow for every execution; `tests/spec_fuzz.rs` compiles a
//! sample). A broken promise panics, which libFuzzer reports as a crash.
//!
//! `SPEC_FUZZ_TAMPER=unlocate` or `unparse` breaks the check on purpose (a refusal's first
//! diagnostic loses its line, every generated module gets a stray `}`): the control of
//! `tests/spec-fuzz-guided.sh`, which must then see a crash.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xen_abi_gen::emit::rust::OutFile;
use xen_abi_gen::fuzzing::{self, Tamper};
use xen_abi_gen::spec::{self, Source};

struct Base {
    sources: Vec<Source>,
    baseline: Vec<OutFile>,
    tamper: Tamper,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let sources = spec::builtin_sources();
        let baseline = fuzzing::baseline(&sources).expect("the in-tree spec generates");
        let tamper = match std::env::var("SPEC_FUZZ_TAMPER").as_deref() {
            Err(_) | Ok("") => Tamper::None,
            Ok("unlocate") => Tamper::Unlocate,
            Ok("unparse") => Tamper::Unparse,
            Ok(other) => panic!("SPEC_FUZZ_TAMPER={other}: not unlocate or unparse"),
        };
        Base {
            sources,
            baseline,
            tamper,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let text = String::from_utf8_lossy(data);
    let sources = fuzzing::with_one_file(&base.sources, &text);
    if let Err(why) = fuzzing::check_tampered(&sources, &base.sources, &base.baseline, base.tamper)
    {
        panic!("SPEC FUZZ PROMISE BROKEN:\n{why}");
    }
});

//! The C probe against the real headers (needs gcc and Debian's libxen-dev; tests/run.sh installs
//! them). The probe must pass on the real spec and name the item, field and numbers when the spec
//! is wrong.

use std::path::Path;

use xen_abi_gen::emit::c_probe::Headers;
use xen_abi_gen::probe_run;
use xen_abi_gen::{Arch, View};

fn spec_with(edit: Option<(&str, &str, &str)>) -> xen_abi_gen::model::Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    let mut sources = xen_abi_gen::spec::read_dir(&dir).unwrap();
    if let Some((file, from, to)) = edit {
        let s = sources.iter_mut().find(|s| s.rel_path == file).unwrap();
        assert!(s.text.contains(from), "{from}");
        s.text = s.text.replacen(from, to, 1);
    }
    xen_abi_gen::spec::load_sources(&sources).unwrap_or_else(|e| panic!("{e}"))
}

/// The release of the machine's Xen headers (libxen-dev's `major.minor`): the spec covers newer
/// ones, so the probe must know which release it is looking at.
fn machine_release() -> probe_run::Release {
    let out = std::process::Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libxen-dev"])
        .output()
        .expect("dpkg-query runs");
    let version = String::from_utf8_lossy(&out.stdout);
    let mm: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let version = xen_abi_gen::model::Version::parse(&mm)
        .unwrap_or_else(|| panic!("libxen-dev is not installed (dpkg says {version:?})"));
    probe_run::Release {
        version,
        xen_include: probe_run::machine_xen_include(),
        new_headers: None,
    }
}

fn probe(spec: &xen_abi_gen::model::Spec) -> probe_run::ProbeReport {
    probe_run::run_for(
        spec,
        Arch::X86_64,
        View::Guest,
        Headers::Xen,
        Some(&machine_release()),
    )
    .unwrap_or_else(|e| panic!("the C probe could not run (gcc and libxen-dev are required): {e}"))
}

#[test]
fn the_spec_equals_the_real_headers_on_x86_64() {
    let r = probe(&spec_with(None));
    assert!(r.ok(), "{:?} {:?}", r.mismatches, r.bit_mismatches);
    assert!(r.count() > 700, "{}", r.count());
    assert!(!r.probe.bit_checks.is_empty());
}

#[test]
fn the_headers_read_are_the_real_files_not_the_include_shim() {
    let r = probe(&spec_with(None));
    let xen = Path::new("/usr/include/xen/xen.h");
    assert!(r.headers.iter().any(|h| h == xen), "{:?}", r.headers);
    assert!(
        r.headers.iter().any(|h| h.ends_with("stdint.h")),
        "{:?}",
        r.headers
    );
    // Canonical paths only: nothing under the probe's scratch directory or its shim link.
    assert!(
        r.headers.iter().all(|h| h.is_absolute()
            && h.exists()
            && !h.to_string_lossy().contains("xen-abi-probe-")),
        "{:?}",
        r.headers
    );
    assert!(
        r.headers.windows(2).all(|w| w[0] < w[1]),
        "sorted, no duplicates"
    );
}

#[test]
fn a_missing_header_names_the_package_that_ships_it() {
    // A compiler whose C library is not installed: the hint names the package.
    let spec = spec_with(None);
    let dir = std::env::temp_dir().join(format!("xen-abi-no-libc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cc = dir.join("cc");
    std::fs::write(
        &cc,
        "#!/bin/sh\necho 'probe.c:3:10: fatal error: stdint.h: No such file or directory' >&2\nexit 1\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Only this test uses x86_32, so no other test sees the variable.
    std::env::set_var("XEN_ABI_CC_X86_32", &cc);
    let e = probe_run::run(&spec, Arch::X86_32, View::Guest, Headers::Xen).unwrap_err();
    std::env::remove_var("XEN_ABI_CC_X86_32");
    let _ = std::fs::remove_dir_all(&dir);
    let msg = e.to_string();
    assert!(
        msg.contains("x86_32: `stdint.h` is missing; Debian ships it in libc6-dev-i386-cross"),
        "{msg}"
    );
}

#[test]
fn a_wrong_constant_is_named_with_both_numbers() {
    let r = probe(&spec_with(Some((
        "hvm/ioreq.toml",
        "value = 511",
        "value = 512",
    ))));
    let msgs: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        msgs,
        ["IOREQ_BUFFER_SLOT_NUM: value expected 512 = 0x200 (spec), actual 511 = 0x1ff (C: IOREQ_BUFFER_SLOT_NUM)"]
    );
}

#[test]
fn a_wrong_bit_position_is_caught() {
    // Swap dir (bit 5) and df (bit 6) of the ioreq flags byte.
    let r = probe(&spec_with(Some((
        "hvm/ioreq.toml",
        "{ name = \"dir\", lsb = 5, width = 1, doc = \"ioreq_dir value: 1 = IOREQ_READ, 0 = IOREQ_WRITE.\" },\n  { name = \"df\", lsb = 6,",
        "{ name = \"dir\", lsb = 6, width = 1, doc = \"ioreq_dir value: 1 = IOREQ_READ, 0 = IOREQ_WRITE.\" },\n  { name = \"df\", lsb = 5,",
    ))));
    assert!(r.mismatches.is_empty());
    let msgs: Vec<String> = r.bit_mismatches.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        msgs,
        [
            "ioreq.flags: bitfield member `dir` expected byte 30 = 0x40 (spec), actual byte 30 = 0x20 (C)",
            "ioreq.flags: bitfield member `df` expected byte 30 = 0x20 (spec), actual byte 30 = 0x40 (C)",
        ]
    );
}

#[test]
fn a_wrong_error_table_is_caught() {
    // Xenstore's xsd_errors is an array: one member too few is an entry-count mismatch, and a
    // member's value is checked against <errno.h>.
    let r = probe(&spec_with(Some((
        "io/xs_wire.toml",
        "  { name = \"EISCONN\", value = 106,",
        "  { name = \"EISCONN\", value = 105,",
    ))));
    let msgs: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        msgs,
        ["xsd_errors.EISCONN: value expected 105 (spec), actual 106 (C: EISCONN)"]
    );
    let r = probe(&spec_with(Some((
        "io/xs_wire.toml",
        "  { name = \"EROFS\", value = 30, doc = \"The store is read-only (e.g. a read-only connection).\" },\n",
        "",
    ))));
    let msgs: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
    assert_eq!(
        msgs,
        ["xsd_errors: count expected 15 (spec), actual 16 (C: sizeof(xsd_errors) / sizeof((xsd_errors)[0]))"]
    );
}

/// The machine's 4.17 headers probed as if they were an older release: whatever the spec dates
/// later must then be absent, so a `since` that is too late is caught at every level.
fn probe_as_release(
    spec: &xen_abi_gen::model::Spec,
    version: &str,
    dir: &Path,
) -> probe_run::ProbeReport {
    let release = probe_run::Release {
        version: xen_abi_gen::model::Version::parse(version).unwrap(),
        xen_include: dir.to_path_buf(),
        new_headers: None,
    };
    probe_run::run_for(
        spec,
        Arch::X86_64,
        View::Tools,
        Headers::Xen,
        Some(&release),
    )
    .unwrap_or_else(|e| panic!("the release probe could not run: {e}"))
}

#[test]
fn a_since_later_than_the_release_headers_is_caught() {
    // The release the spec describes, with the spec's real `since`s: all present.
    let xen = Path::new("/usr/include/xen");
    let r = probe_as_release(&spec_with(None), "4.17", xen);
    assert!(r.ok(), "{:?} {:?}", r.mismatches, r.present_types);
    // Claim an old release's headers are the 4.17 ones: the items dated 4.15 and 4.16 are
    // there although the spec says they are not.
    let r = probe_as_release(&spec_with(None), "4.14", xen);
    assert!(!r.ok());
    let present: Vec<String> = r
        .present_types
        .iter()
        .map(|t| match &t.field {
            Some(f) => format!("{}.{f}", t.item),
            None => t.item.clone(),
        })
        .collect();
    // A value-set member (a macro), an enumerator (Xen's errno values are an enum), a type and
    // a field.
    for want in [
        "xen_dmop.XEN_DMOP_nr_vcpus",
        "xen_errno.XEN_ENOTDIR",
        "xen_dm_op_nr_vcpus",
        "xen_dm_op_u.nr_vcpus",
    ] {
        assert!(
            present.iter().any(|t| t == want),
            "{want} not in {present:?}"
        );
    }
    // An error-table member dated later is not looked for by name (<errno.h> defines it):
    // the table has one entry fewer. A struct with a later trailing field is smaller.
    assert!(
        !present.iter().any(|t| t.starts_with("xsd_errors")),
        "{present:?}"
    );
    assert!(present
        .iter()
        .any(|t| t == "xenstore_domain_interface.error"));
    let found = |item: &str, what: &str| {
        r.mismatches
            .iter()
            .find(|m| m.check.item == item && m.check.what == what)
            .map(|m| (m.check.expected, m.actual))
    };
    assert_eq!(found("xsd_errors", "count"), Some((15, 16)));
    assert_eq!(
        found("xenstore_domain_interface", "size"),
        Some((2072, 2076))
    );
    // The flag-set mask is computed for the release: 4.14's bits only.
    let mask = r
        .mismatches
        .iter()
        .find(|m| m.check.item == "HVMPV_feature_mask")
        .expect("the 4.17 mask differs from the 4.14 one");
    assert_eq!((mask.check.expected, mask.actual), (0x3ff, 0x1fff));
}

#[test]
fn a_release_probe_refuses_headers_from_the_machine() {
    // A "release" that lacks hvm/dm_op.h: the compiler finds the machine's instead.
    let dir = std::env::temp_dir().join(format!("xen-abi-release-{}", std::process::id()));
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg("/usr/include/xen")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::remove_file(dir.join("hvm/dm_op.h")).unwrap();
    let release = probe_run::Release {
        version: xen_abi_gen::model::Version::parse("4.17").unwrap(),
        xen_include: dir.clone(),
        new_headers: None,
    };
    let e = probe_run::run_for(
        &spec_with(None),
        Arch::X86_64,
        View::Guest,
        Headers::Xen,
        Some(&release),
    )
    .unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    let msg = e.to_string();
    assert!(
        matches!(e, probe_run::ProbeError::ForeignHeader { .. }),
        "{msg}"
    );
    assert!(msg.contains("/usr/include/xen/"), "{msg}");
}

#[test]
fn an_ioctl_dated_after_the_kernel_release_is_caught() {
    // The machine's Linux 6.1 uapi headers probed as Linux 4.17's: MMAP_RESOURCE (4.18) and
    // gntdev's dma-buf interface (4.19: a flag set by its members, structs and ioctls) and
    // nothing else must be reported present.
    let kernel = probe_run::LinuxRelease {
        version: "4.17".into(),
        xen_include: Some("/usr/include/xen".into()),
    };
    let r = probe_run::run_linux_for(&spec_with(None), Arch::X86_64, View::Guest, &kernel)
        .unwrap_or_else(|e| panic!("the uapi release probe could not run: {e}"));
    let mut present: Vec<String> = r
        .present_types
        .iter()
        .map(|t| match &t.field {
            Some(f) => format!("{}.{f} ({})", t.item, t.dated),
            None => format!("{} ({})", t.item, t.dated),
        })
        .collect();
    present.sort();
    assert_eq!(
        present,
        [
            "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS (Linux 4.19)",
            "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED (Linux 4.19)",
            "IOCTL_GNTDEV_DMABUF_IMP_RELEASE (Linux 4.19)",
            "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS (Linux 4.19)",
            "IOCTL_PRIVCMD_MMAP_RESOURCE (Linux 4.18)",
            "gntdev_dma_flags.GNTDEV_DMA_FLAG_COHERENT (Linux 4.19)",
            "gntdev_dma_flags.GNTDEV_DMA_FLAG_WC (Linux 4.19)",
            "ioctl_gntdev_dmabuf_exp_from_refs (Linux 4.19)",
            "ioctl_gntdev_dmabuf_exp_wait_released (Linux 4.19)",
            "ioctl_gntdev_dmabuf_imp_release (Linux 4.19)",
            "ioctl_gntdev_dmabuf_imp_to_refs (Linux 4.19)",
        ],
        "{:?}",
        r.mismatches
    );
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    // As 6.1 itself, everything matches.
    let kernel = probe_run::LinuxRelease {
        version: "6.1".into(),
        ..kernel
    };
    let r = probe_run::run_linux_for(&spec_with(None), Arch::X86_64, View::Guest, &kernel).unwrap();
    assert!(r.ok(), "{:?} {:?}", r.mismatches, r.present_types);
}

#[test]
fn a_type_named_differently_in_xens_copy_is_probed_by_each_name() {
    // gntdev's copy segment: `struct ioctl_gntdev_grant_copy_segment` in Xen's xen/sys/gntdev.h,
    // `struct gntdev_grant_copy_segment` in Linux's uapi header; its anonymous unions are
    // reached through whichever the headers have.
    let spec = spec_with(None);
    let xen = xen_abi_gen::emit::c_probe::c_probe(&spec, Arch::X86_64, View::Guest, Headers::Xen);
    let uapi =
        xen_abi_gen::emit::c_probe::c_probe(&spec, Arch::X86_64, View::Guest, Headers::LinuxUapi);
    assert!(xen
        .source
        .contains("offsetof(struct ioctl_gntdev_grant_copy_segment, source.foreign.domid)"));
    assert!(uapi
        .source
        .contains("offsetof(struct gntdev_grant_copy_segment, source.foreign.domid)"));
    assert!(!uapi.source.contains("ioctl_gntdev_grant_copy_segment"));
    // Both compile and match: Xen's copy on the machine, and the Linux uapi header.
    let r = probe(&spec);
    assert!(r.ok(), "{:?}", r.mismatches);
    let kernel = probe_run::LinuxRelease {
        version: "6.1".into(),
        xen_include: None,
    };
    let r = probe_run::run_linux_for(&spec, Arch::X86_64, View::Guest, &kernel).unwrap();
    assert!(r.ok(), "{:?} {:?}", r.mismatches, r.present_types);
}

#[test]
fn a_real_member_renamed_to_padding_is_caught() {
    // `remote_dom` is a C member: calling its bytes padding passes every offset and size check,
    // but not the padding proof, which initialises C's members positionally.
    let r = probe(&spec_with(Some((
        "event_channel.toml",
        r#"{ name = "remote_dom", type = "domid_t", doc = "IN: the only domain allowed to bind to the new port (DOMID_SELF permits loopback)." },"#,
        r#"{ name = "_pad0", type = "u16", in_c = false, doc = "Not padding at all." },"#,
    ))));
    assert!(r.mismatches.is_empty(), "{:?}", r.mismatches);
    let msgs: Vec<String> = r.pad_failures.iter().map(|m| m.to_string()).collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert!(m.contains("event_channel.toml:"), "{m}");
    assert!(
        m.contains("evtchn_alloc_unbound: the spec calls `_pad0` padding (in_c = false), but C's members are not exactly dom, port"),
        "{m}"
    );
    assert!(m.contains("missing initializer for field"), "{m}");
    assert!(!r.ok());
}

#[test]
fn declared_padding_is_proven_to_be_padding() {
    let r = probe(&spec_with(None));
    // Every struct of the spec with `in_c = false` fields on x86_64 (the 64-bit-only ones too).
    assert!(
        r.probe.pad_proofs.len() >= 20,
        "{}",
        r.probe.pad_proofs.len()
    );
    assert!(r.pad_failures.is_empty(), "{:?}", r.pad_failures);
    let p = r
        .probe
        .pad_proofs
        .iter()
        .find(|p| p.item == "evtchn_bind_interdomain")
        .expect("evtchn_bind_interdomain has padding");
    assert_eq!(p.members, ["remote_dom", "remote_port", "local_port"]);
    assert_eq!(p.pad_fields, ["_pad0"]);
}

/// The x86_64 guest-view probe of the machine's headers taken as the spec's newest release (no
/// `--release`), which they are not: the compile error, as the user sees it.
fn probe_as_newest(spec: &xen_abi_gen::model::Spec) -> String {
    probe_run::run(spec, Arch::X86_64, View::Guest, Headers::Xen)
        .expect_err("Debian 12's 4.17 headers lack the spec's 4.18-4.20 items")
        .to_string()
}

#[test]
fn a_probe_that_does_not_compile_names_spec_items_not_gcc_lines() {
    let msg = probe_as_newest(&spec_with(None));
    // Each failing item once, at its spec file:line, with what failed and its date.
    let line = msg
        .lines()
        .find(|l| l.contains("`XENFEAT_runstate_phys_area`"))
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(
        line.starts_with("  ") && line.contains("abi-spec/version.toml:"),
        "{line}"
    );
    assert!(line.contains("(since Xen 4.18) [value]"), "{line}");
    // A sub-op is reported at its own line.
    let subop = msg
        .lines()
        .find(|l| l.contains("`vcpu_op.VCPUOP_register_runstate_phys_area`"))
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(subop.contains("abi-spec/vcpu.toml:"), "{subop}");
    assert!(subop.contains("(since Xen 4.18) [value]:"), "{subop}");
    assert!(line.contains("undeclared"), "{line}");
    // No raw compiler output: no caret lines, notes or macro expansions.
    assert!(!msg.contains("XEN_ABI_PROBE("), "{msg}");
    assert!(!msg.contains("note:"), "{msg}");
    assert!(!msg.contains("(not traced to the spec)"), "{msg}");
    assert!(msg.lines().count() < 30, "{msg}");
    // And the way out.
    assert!(msg.contains("`xen-abi-gen c-probe --release R`"), "{msg}");
    assert!(msg.contains("before 4.18"), "{msg}");
    assert!(msg.contains("`--release 4.17`"), "{msg}");
}

#[test]
fn an_item_dated_before_the_release_that_added_it_is_located_with_a_hint() {
    let spec = spec_with(Some((
        "version.toml",
        "since = \"4.19\"",
        "since = \"4.17\"",
    )));
    let msg = probe_run::run_for(
        &spec,
        Arch::X86_64,
        View::Guest,
        Headers::Xen,
        Some(&machine_release()),
    )
    .expect_err("4.17's headers lack XENFEAT_dm_msix_all_writes")
    .to_string();
    let line = msg
        .lines()
        .position(|l| l.contains("`XENFEAT_dm_msix_all_writes` (since Xen 4.17) [value]"))
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(
        msg.lines()
            .nth(line)
            .unwrap()
            .contains("abi-spec/version.toml:"),
        "{msg}"
    );
    let help = msg.lines().nth(line + 1).unwrap_or_default();
    assert!(
        help.contains("help: the Xen 4.17 headers lack it, but the spec dates it 4.17"),
        "{msg}"
    );
}

#[test]
fn a_missing_anonymous_key_says_to_add_it() {
    let spec = spec_with(Some(("event_channel.toml", "anonymous = true\n", "")));
    let msg = probe_run::run_for(
        &spec,
        Arch::X86_64,
        View::Guest,
        Headers::Xen,
        Some(&machine_release()),
    )
    .expect_err("C has no named struct for an anonymous member")
    .to_string();
    assert!(msg.contains("abi-spec/event_channel.toml:"), "{msg}");
    assert!(msg.contains("add `anonymous = true` to `"), "{msg}");
    assert!(!msg.contains("note:"), "{msg}");
}

/// The in-tree spec plus `tests/fixtures/new-header/newop.toml`: a hypercall dated 4.21, after
/// every packaged release, in a header of its own.
fn spec_with_newop() -> xen_abi_gen::model::Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    let mut sources = xen_abi_gen::spec::read_dir(&dir).unwrap();
    let newop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/new-header/newop.toml");
    sources.push(xen_abi_gen::spec::Source {
        rel_path: "newop.toml".into(),
        text: std::fs::read_to_string(&newop).unwrap(),
        path: newop,
    });
    xen_abi_gen::spec::load_sources(&sources).unwrap_or_else(|e| panic!("{e}"))
}

/// A directory holding `newop.h` as given (the new header a Xen tree adds).
fn new_headers(name: &str, header: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xen-abi-new-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("newop.h"), header).unwrap();
    dir
}

fn probe_new(spec: &xen_abi_gen::model::Spec, dir: Option<&Path>) -> probe_run::ProbeReport {
    let mut release = machine_release();
    release.new_headers = dir.map(Path::to_path_buf);
    probe_run::run_for(
        spec,
        Arch::X86_32,
        View::Guest,
        Headers::Xen,
        Some(&release),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn new_items_are_probed_against_their_new_header_on_top_of_a_release() {
    let spec = spec_with_newop();
    let header = include_str!("fixtures/new-header/newop.h");
    let dir = new_headers("good", header);
    let r = probe_new(&spec, Some(&dir));
    assert!(r.ok(), "{:?} {:?}", r.mismatches, r.present_types);
    assert_eq!(r.probe.new_items, ["xen_newop_query", "newop_op"]);
    // Measured, not taken for absent: the struct's size and the hypercall's numbers.
    for (item, what) in [
        ("xen_newop_query", "size"),
        ("xen_newop_query", "offset"),
        ("newop_op", "value"),
    ] {
        assert!(
            r.probe
                .checks
                .iter()
                .any(|c| c.item == item && c.what == what),
            "{item} {what}"
        );
    }
    // A header that disagrees with the spec fails with the numbers.
    let bad = new_headers("bad", &header.replace("uint16_t pad;", "uint32_t pad;"));
    let r = probe_new(&spec, Some(&bad));
    let msgs: Vec<String> = r.mismatches.iter().map(|m| m.to_string()).collect();
    assert!(
        msgs.contains(&"xen_newop_query.port: offset expected 4 (spec), actual 8 (C: offsetof(struct xen_newop_query, port))".to_owned()),
        "{msgs:?}"
    );
    // Without the new header, the release rightly lacks all of it.
    let r = probe_new(&spec, None);
    assert!(r.ok(), "{:?}", r.present_types);
    assert!(r.probe.new_items.is_empty());
    assert!(r
        .probe
        .absent_types
        .iter()
        .any(|t| t.item == "xen_newop_query"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&bad);
}

#[test]
fn a_new_headers_directory_without_any_spec_header_is_refused() {
    let dir = std::env::temp_dir().join(format!("xen-abi-new-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("unrelated.h"), "").unwrap();
    let mut release = machine_release();
    release.new_headers = Some(dir.clone());
    let e = probe_run::run_for(
        &spec_with_newop(),
        Arch::X86_64,
        View::Guest,
        Headers::Xen,
        Some(&release),
    )
    .unwrap_err()
    .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        e.contains("holds none of the headers the spec's files describe"),
        "{e}"
    );
}

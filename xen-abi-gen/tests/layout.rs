//! Layout-engine tests on the real spec, for the cases that differ by architecture.
//! Expected numbers are from the reference tables compiled from the Xen 4.17 headers.

use std::path::Path;

use xen_abi_gen::layout::Engine;
use xen_abi_gen::model::{ItemKind, Spec};
use xen_abi_gen::{Arch, View};

fn spec() -> Spec {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    match xen_abi_gen::spec::load(&dir) {
        Ok(s) => s,
        Err(e) => panic!("the in-tree spec must be valid:\n{e}"),
    }
}

/// (size, align) on x86_32, x86_64, arm32, arm64 in the guest view.
fn sizes(spec: &Spec, name: &str) -> Vec<(u64, u64)> {
    let e = Engine::new(spec);
    Arch::ALL
        .iter()
        .map(|a| {
            let l = e.item(name, *a, View::Guest).expect(name);
            (l.size, l.align)
        })
        .collect()
}

fn offsets(spec: &Spec, name: &str, arch: Arch) -> Vec<(String, u64)> {
    let e = Engine::new(spec);
    e.item(name, arch, View::Guest)
        .expect(name)
        .fields
        .into_iter()
        .map(|f| (f.name, f.offset))
        .collect()
}

#[test]
fn dm_op_buf_is_8_bytes_on_x86_32_only() {
    let s = spec();
    assert_eq!(
        sizes(&s, "xen_dm_op_buf"),
        vec![(8, 4), (16, 8), (16, 8), (16, 8)]
    );
}

#[test]
fn acquire_resource_is_28_bytes_on_x86_32_only() {
    let s = spec();
    assert_eq!(
        sizes(&s, "xen_mem_acquire_resource"),
        vec![(28, 4), (32, 8), (32, 8), (32, 8)]
    );
    assert_eq!(
        offsets(&s, "xen_mem_acquire_resource", Arch::X86_32).last(),
        Some(&("frame_list".to_string(), 24))
    );
}

#[test]
fn ioreq_is_32_bytes_aligned_8_except_x86_32() {
    let s = spec();
    assert_eq!(sizes(&s, "ioreq"), vec![(32, 4), (32, 8), (32, 8), (32, 8)]);
    let want: Vec<(String, u64)> = [
        ("addr", 0),
        ("data", 8),
        ("count", 16),
        ("size", 20),
        ("vp_eport", 24),
        ("_pad0", 28),
        ("flags", 30),
        ("type", 31),
    ]
    .iter()
    .map(|(n, o)| (n.to_string(), *o))
    .collect();
    for a in Arch::ALL {
        assert_eq!(offsets(&s, "ioreq", a), want, "{a}");
    }
}

#[test]
fn multicall_entry_and_sched_poll_follow_the_word_size() {
    let s = spec();
    assert_eq!(
        sizes(&s, "multicall_entry"),
        vec![(32, 4), (64, 8), (64, 8), (64, 8)]
    );
    let poll: Vec<u64> = sizes(&s, "sched_poll").iter().map(|x| x.0).collect();
    assert_eq!(poll, vec![16, 24, 24, 24]);
}

#[test]
fn dm_op_is_32_bytes_and_its_alignment_depends_on_the_view() {
    let s = spec();
    assert_eq!(
        sizes(&s, "xen_dm_op"),
        vec![(32, 4), (32, 8), (32, 8), (32, 8)]
    );
    let e = Engine::new(&s);
    let tools = e.item("xen_dm_op", Arch::X86_32, View::Tools).unwrap();
    assert_eq!((tools.size, tools.align), (32, 8));
    // map_mem_type_to_ioreq_server uses a plain uint64_t: 4-aligned on x86_32 in both views.
    let m = e
        .item(
            "xen_dm_op_map_mem_type_to_ioreq_server",
            Arch::X86_32,
            View::Tools,
        )
        .unwrap();
    assert_eq!((m.size, m.align), (16, 4));
}

#[test]
fn dm_op_payload_sizes_match_the_reference() {
    let s = spec();
    for (name, size) in [
        ("xen_dm_op_create_ioreq_server", 6),
        ("xen_dm_op_get_ioreq_server_info", 24),
        ("xen_dm_op_ioreq_server_range", 24),
        ("xen_dm_op_set_ioreq_server_state", 4),
        ("xen_dm_op_destroy_ioreq_server", 4),
        ("xen_dm_op_track_dirty_vram", 16),
        ("xen_dm_op_set_pci_intx_level", 6),
        ("xen_dm_op_set_isa_irq_level", 2),
        ("xen_dm_op_set_pci_link_route", 2),
        ("xen_dm_op_modified_memory", 8),
        ("xen_dm_op_modified_memory_extent", 16),
        ("xen_dm_op_set_mem_type", 16),
        ("xen_dm_op_inject_event", 24),
        ("xen_dm_op_inject_msi", 16),
        ("xen_dm_op_map_mem_type_to_ioreq_server", 16),
        ("xen_dm_op_remote_shutdown", 4),
        ("xen_dm_op_relocate_memory", 24),
        ("xen_dm_op_pin_memory_cacheattr", 24),
        ("xen_dm_op_set_irq_level", 8),
        ("xen_dm_op_nr_vcpus", 4),
    ] {
        for (a, (sz, _)) in Arch::ALL.iter().zip(sizes(&s, name)) {
            assert_eq!(sz, size, "{name} on {a}");
        }
    }
}

#[test]
fn buffered_iopage_is_one_page_everywhere() {
    let s = spec();
    assert_eq!(sizes(&s, "buffered_iopage"), vec![(4096, 4); 4]);
    assert_eq!(sizes(&s, "buf_ioreq"), vec![(8, 4); 4]);
}

#[test]
fn event_channel_structs_match_the_reference() {
    let s = spec();
    for (name, size) in [
        ("evtchn_alloc_unbound", 8),
        ("evtchn_bind_interdomain", 12),
        ("evtchn_bind_virq", 12),
        ("evtchn_status", 24),
        ("evtchn_op", 28),
        ("xen_hvm_param", 16),
    ] {
        let got: Vec<u64> = sizes(&s, name).iter().map(|x| x.0).collect();
        assert_eq!(got, vec![size; 4], "{name}");
    }
}

fn ioctl(spec: &Spec, name: &str, arch: Arch) -> u32 {
    let item = spec.find(name).expect(name);
    let ItemKind::Ioctl(i) = &item.kind else {
        panic!("{name} is not an ioctl")
    };
    Engine::new(spec).ioctl_number(i, arch).unwrap()
}

#[test]
fn privcmd_ioctl_numbers_match_lp64_and_i386() {
    let s = spec();
    for (name, lp64, i386) in [
        ("IOCTL_PRIVCMD_HYPERCALL", 0x0030_5000, 0x0030_5000),
        ("IOCTL_PRIVCMD_MMAP", 0x0010_5002, 0x000c_5002),
        ("IOCTL_PRIVCMD_MMAPBATCH", 0x0018_5003, 0x0014_5003),
        ("IOCTL_PRIVCMD_MMAPBATCH_V2", 0x0020_5004, 0x0018_5004),
        ("IOCTL_PRIVCMD_DM_OP", 0x0010_5005, 0x0008_5005),
        ("IOCTL_PRIVCMD_RESTRICT", 0x0002_5006, 0x0002_5006),
        ("IOCTL_PRIVCMD_MMAP_RESOURCE", 0x0020_5007, 0x0020_5007),
        ("IOCTL_PRIVCMD_UNIMPLEMENTED", 0x0000_50ff, 0x0000_50ff),
    ] {
        assert_eq!(ioctl(&s, name, Arch::X86_64), lp64, "{name} x86_64");
        assert_eq!(ioctl(&s, name, Arch::Arm64), lp64, "{name} arm64");
        assert_eq!(ioctl(&s, name, Arch::X86_32), i386, "{name} x86_32");
    }
}

#[test]
fn evtchn_ioctl_numbers_match_the_reference() {
    let s = spec();
    for (name, v) in [
        ("IOCTL_EVTCHN_BIND_VIRQ", 0x0004_4500),
        ("IOCTL_EVTCHN_BIND_INTERDOMAIN", 0x0008_4501),
        ("IOCTL_EVTCHN_BIND_UNBOUND_PORT", 0x0004_4502),
        ("IOCTL_EVTCHN_UNBIND", 0x0004_4503),
        ("IOCTL_EVTCHN_NOTIFY", 0x0004_4504),
        ("IOCTL_EVTCHN_RESET", 0x0000_4505),
        ("IOCTL_EVTCHN_RESTRICT_DOMID", 0x0002_4506),
    ] {
        for a in Arch::ALL {
            assert_eq!(ioctl(&s, name, a), v, "{name} {a}");
        }
    }
}

#[test]
fn every_struct_of_the_spec_lays_out_without_implicit_padding() {
    let s = spec();
    let e = Engine::new(&s);
    let mut n = 0;
    for (_, item) in s.items() {
        if matches!(item.kind, ItemKind::Struct(_)) {
            for a in Arch::ALL {
                let l = e.item(&item.name, a, View::Guest).unwrap();
                assert!(
                    l.padding.is_empty(),
                    "{} on {a}: {:?}",
                    item.name,
                    l.padding
                );
                n += 1;
            }
        }
    }
    assert!(n > 200, "only {n} struct layouts checked");
}

#[test]
fn required_items_are_present_with_docs_and_since() {
    let s = spec();
    for name in [
        "__HYPERVISOR_dm_op",
        "DOMID_SELF",
        "xen_version",
        "sched_op",
        "console_io",
        "event_channel_op",
        "ioreq",
        "shared_iopage",
        "buf_ioreq",
        "buffered_iopage",
        "xen_dm_op",
        "xen_dm_op_buf",
        "xen_dm_op_u",
        "xen_mem_acquire_resource",
        "hvm_op",
        "xen_hvm_param",
        "hvm_param",
        "xen_errno",
        "hvm_ioreqsrv_bufioreq",
        "IOCTL_PRIVCMD_DM_OP",
        "IOCTL_EVTCHN_NOTIFY",
    ] {
        let item = s.find(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(!item.doc.is_empty(), "{name} has no doc");
        assert!(item.since.major >= 3, "{name} has no since");
    }
    // All 20 dm_ops.
    let ItemKind::Values(v) = &s.find("xen_dmop").expect("xen_dmop").kind else {
        panic!("xen_dmop is not a value set")
    };
    let mut values: Vec<i128> = v.members.iter().map(|m| m.value).collect();
    values.sort();
    assert_eq!(values, (1..=20).collect::<Vec<i128>>());
    // Every EVTCHNOP_* 0..=13.
    let ItemKind::Hypercall(h) = &s.find("event_channel_op").unwrap().kind else {
        panic!()
    };
    let mut ops: Vec<i128> = h.subops.iter().map(|o| o.value).collect();
    ops.sort();
    assert_eq!(ops, (0..=13).collect::<Vec<i128>>());
}

#[test]
fn the_embedded_spec_is_the_in_tree_spec() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../abi-spec");
    let on_disk: Vec<(String, String)> = xen_abi_gen::spec::read_dir(&dir)
        .unwrap()
        .into_iter()
        .map(|s| (s.rel_path, s.text))
        .collect();
    let embedded: Vec<(String, String)> = xen_abi_gen::spec::BUILTIN
        .iter()
        .map(|(r, t)| (r.to_string(), t.to_string()))
        .collect();
    assert_eq!(
        embedded, on_disk,
        "the build script embeds every .toml file under abi-spec/ (xen-abi-gen/build.rs)"
    );
}

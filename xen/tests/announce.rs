//! The virtio-mmio devices libxl announces in xenstore: what a 4.17 `specification=virtio`
//! disk and a 4.18+ generic device look like, and every malformed entry refused with the key
//! named.

use std::collections::BTreeMap;

use xen::virtio::announce::{Announced, Announcement};
use xen::virtio::Access;
use xen::DomId;

const DISK: &str = "/local/domain/0/backend/virtio_disk/5/51712";
const DEVICE: &str = "/local/domain/0/backend/virtio/7/0";

/// A disk as libxl 4.17 writes it (decimal base).
fn disk() -> BTreeMap<String, String> {
    [
        ("frontend-id", "5"),
        ("online", "1"),
        ("state", "1"),
        ("dev", "xvda"),
        ("type", "standalone"),
        ("mode", "w"),
        ("device-type", "disk"),
        ("params", "/srv/guest.img"),
        ("specification", "virtio"),
        ("transport", "mmio"),
        ("base", "33554432"),
        ("irq", "33"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{DISK}/{k}"), v.to_string()))
    .collect()
}

/// A generic device as libxl 4.18+ writes it (hexadecimal base).
fn device() -> BTreeMap<String, String> {
    [
        ("type", "virtio,device22"),
        ("transport", "mmio"),
        ("base", "0x2000200"),
        ("irq", "34"),
        ("grant_usage", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{DEVICE}/{k}"), v.to_string()))
    .collect()
}

fn parse(dir: &str, keys: &BTreeMap<String, String>) -> Result<Announcement, String> {
    Announcement::parse(dir, |k| keys.get(k).cloned()).map_err(|e| e.to_string())
}

#[test]
fn a_virtio_disk_of_libxl_4_17() {
    let a = parse(DISK, &disk()).unwrap();
    assert_eq!(a.domid, DomId(5));
    assert_eq!(a.devid, 51712);
    assert_eq!((a.base, a.irq, a.grants), (0x200_0000, 33, false));
    assert_eq!(
        a.what,
        Announced::Disk {
            path: "/srv/guest.img".into(),
            access: Access::ReadWrite
        }
    );
    assert_eq!(a.state_path(), format!("{DISK}/state"));
    let mut ro = disk();
    ro.insert(format!("{DISK}/mode"), "r".into());
    assert!(matches!(
        parse(DISK, &ro).unwrap().what,
        Announced::Disk {
            access: Access::ReadOnly,
            ..
        }
    ));
}

#[test]
fn a_generic_virtio_device_of_libxl_4_18() {
    let a = parse(DEVICE, &device()).unwrap();
    assert_eq!((a.domid, a.devid), (DomId(7), 0));
    assert_eq!((a.base, a.irq, a.grants), (0x200_0200, 34, true));
    assert_eq!(a.what, Announced::Device { device_id: 0x22 });
}

/// Each malformed entry: the message names the key and says what is wrong.
#[test]
fn malformed_entries_are_refused_naming_the_key() {
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            DISK,
            "base",
            Some("4096"),
            "base: 0x1000 is outside the virtio-mmio window 0x2000000-0x20fffff",
        ),
        (
            DISK,
            "base",
            Some("0x20fff00"),
            "base: 0x20fff00 is outside the virtio-mmio window",
        ),
        (
            DISK,
            "base",
            Some("0x2000002"),
            "base: 0x2000002 is not 4-byte aligned",
        ),
        (DISK, "base", Some("lots"), "base: \"lots\" is not a number"),
        (
            DISK,
            "irq",
            Some("32"),
            "irq: SPI 32 is not one of libxl's virtio-mmio SPIs (33-43)",
        ),
        (
            DISK,
            "irq",
            Some("99999999999"),
            "irq: \"99999999999\" is not a number",
        ),
        (DISK, "irq", None, "irq: missing"),
        (
            DISK,
            "transport",
            Some("pci"),
            "transport: \"pci\": only mmio is served",
        ),
        (
            DISK,
            "specification",
            Some("xen"),
            "specification: \"xen\": not a virtio disk",
        ),
        (DISK, "mode", Some("rw"), "mode: \"rw\": neither w nor r"),
        (
            DISK,
            "params",
            Some(""),
            "params: no file or device for the disk",
        ),
        (
            DEVICE,
            "type",
            Some("virtio,mmio"),
            "type: \"virtio,mmio\": unknown type",
        ),
        (
            DEVICE,
            "type",
            Some("virtio,device0"),
            "type: \"virtio,device0\": unknown type",
        ),
        (
            DEVICE,
            "grant_usage",
            Some("maybe"),
            "grant_usage: \"maybe\": not 0 or 1",
        ),
    ];
    for &(dir, key, value, want) in cases {
        let mut keys = if dir == DISK { disk() } else { device() };
        let path = format!("{dir}/{key}");
        match value {
            Some(v) => keys.insert(path, v.to_string()),
            None => keys.remove(&path),
        };
        let err = parse(dir, &keys).expect_err(want);
        assert!(
            err.starts_with(&format!("{dir}/")) && err.contains(want),
            "{key}={value:?}: got {err:?}, want {want:?}"
        );
    }
}

#[test]
fn a_directory_that_is_not_a_virtio_backend_is_refused() {
    let keys = BTreeMap::new();
    for (dir, want) in [
        (
            "/local/domain/0/backend/vbd/5/51712",
            "a vbd directory, not virtio_disk or virtio",
        ),
        ("/local/domain/0/backend/virtio/x/0", "not a domain id"),
        ("/local/domain/0/backend/virtio/5/dev", "not a device id"),
        ("", "not a device id"),
    ] {
        let err = parse(dir, &keys).unwrap_err();
        assert!(err.contains(want), "{dir}: {err}");
    }
}

//! The virtio-mmio devices libxl announces in xenstore for an Arm guest, read and checked: a
//! 4.17 `specification=virtio` disk (`backend/virtio_disk/<domid>/<devid>`) and, from 4.18,
//! a generic `virtio = [...]` device (`backend/virtio/<domid>/<devid>`). libxl puts each in
//! the guest's device tree at `base` with SPI `irq`, and waits (10 s) for its back end to reach
//! `XenbusStateInitWait` before it goes on with the guest.

use alloc::format;
use alloc::string::{String, ToString};
use core::ops::RangeInclusive;

use xen_sys::XenbusState;

use super::blk::Access;
use crate::DomId;

/// Where libxl places virtio-mmio devices in an Arm guest's memory map
/// (`GUEST_VIRTIO_MMIO_BASE`, `GUEST_VIRTIO_MMIO_SIZE`).
pub const VIRTIO_MMIO_WINDOW: RangeInclusive<u64> = 0x0200_0000..=0x020f_ffff;
/// The SPIs libxl gives them (`GUEST_VIRTIO_MMIO_SPI_FIRST` to `_LAST`).
pub const VIRTIO_MMIO_SPIS: RangeInclusive<u32> = 33..=43;

/// What the announced device is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Announced {
    /// A disk (`backend/virtio_disk`): the file or device in `params`, `mode` `w` or `r`.
    Disk {
        /// The back end's file or block device.
        path: String,
        /// Whether the guest may write it.
        access: Access,
    },
    /// A generic device (`backend/virtio`, `type = "virtio,device<id>"`): the virtio
    /// device ID (hexadecimal in the string, as in a device tree's compatible).
    Device {
        /// The virtio device ID.
        device_id: u32,
    },
}

/// A virtio-mmio device libxl announced for a guest, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Its back-end directory in xenstore (where `state` goes).
    pub backend: String,
    /// The guest.
    pub domid: DomId,
    /// Its device id under the guest.
    pub devid: u32,
    /// Guest-physical base of its registers, in the virtio-mmio window.
    pub base: u64,
    /// Its SPI.
    pub irq: u32,
    /// Whether the guest was told to use grants for its buffers (`xen,grant-dma`).
    pub grants: bool,
    /// What it is.
    pub what: Announced,
}

/// An announcement refused: the xenstore key at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {what}")]
pub struct AnnouncementError {
    /// The xenstore path of the key (or of the device's directory).
    pub key: String,
    /// What is wrong with it.
    pub what: String,
}

/// A number as libxl writes them: decimal, or hexadecimal with `0x`.
fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Announcement {
    /// Read and check the device whose back-end directory is `backend`
    /// (`.../backend/virtio_disk/<domid>/<devid>` or `.../backend/virtio/<domid>/<devid>`),
    /// with `read` giving a key's value (`None` when it is missing).
    ///
    /// ```
    /// use xen::virtio::announce::{Announced, Announcement};
    /// let dir = "/local/domain/0/backend/virtio_disk/5/51712";
    /// let keys = [("specification", "virtio"), ("transport", "mmio"), ("base", "33554432"),
    ///             ("irq", "33"), ("params", "/srv/disk.img"), ("mode", "w")];
    /// let a = Announcement::parse(dir, |k| {
    ///     keys.iter().find(|(n, _)| k.ends_with(&format!("/{n}"))).map(|(_, v)| v.to_string())
    /// })?;
    /// assert_eq!((a.domid, a.devid, a.base, a.irq), (xen::DomId(5), 51712, 0x200_0000, 33));
    /// assert!(matches!(a.what, Announced::Disk { .. }));
    ///
    /// let bad = Announcement::parse(dir, |k| {
    ///     if k.ends_with("/irq") { return Some("99".into()) }
    ///     keys.iter().find(|(n, _)| k.ends_with(&format!("/{n}"))).map(|(_, v)| v.to_string())
    /// });
    /// assert_eq!(bad.unwrap_err().to_string(),
    ///            "/local/domain/0/backend/virtio_disk/5/51712/irq: SPI 99 is not one of libxl's virtio-mmio SPIs (33-43)");
    /// # Ok::<(), xen::virtio::announce::AnnouncementError>(())
    /// ```
    pub fn parse(
        backend: &str,
        mut read: impl FnMut(&str) -> Option<String>,
    ) -> Result<Announcement, AnnouncementError> {
        let backend = backend.trim_end_matches('/');
        let refuse = |key: &str, what: String| AnnouncementError {
            key: if key.is_empty() {
                backend.to_string()
            } else {
                format!("{backend}/{key}")
            },
            what,
        };
        let mut parts = backend.rsplit('/');
        let (devid, domid, kind) = (parts.next(), parts.next(), parts.next());
        let devid = devid
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| refuse("", "the last part of the path is not a device id".into()))?;
        let domid = domid.and_then(|d| d.parse::<u16>().ok()).ok_or_else(|| {
            refuse(
                "",
                "the part before the device id is not a domain id".into(),
            )
        })?;
        let disk = match kind {
            Some("virtio_disk") => true,
            Some("virtio") => false,
            other => {
                return Err(refuse(
                    "",
                    format!(
                        "a {} directory, not virtio_disk or virtio",
                        other.unwrap_or("top-level")
                    ),
                ))
            }
        };
        let mut get = |key: &str| {
            read(&format!("{backend}/{key}")).ok_or_else(|| refuse(key, "missing".into()))
        };
        let transport = get("transport")?;
        if transport != "mmio" {
            return Err(refuse(
                "transport",
                format!("\"{transport}\": only mmio is served"),
            ));
        }
        let what = if disk {
            let spec = get("specification")?;
            if spec != "virtio" {
                return Err(refuse(
                    "specification",
                    format!("\"{spec}\": not a virtio disk"),
                ));
            }
            let path = get("params")?;
            if path.is_empty() {
                return Err(refuse("params", "no file or device for the disk".into()));
            }
            let access = match get("mode")?.as_str() {
                "w" => Access::ReadWrite,
                "r" => Access::ReadOnly,
                m => return Err(refuse("mode", format!("\"{m}\": neither w nor r"))),
            };
            Announced::Disk { path, access }
        } else {
            let ty = get("type")?;
            let device_id = ty
                .strip_prefix("virtio,device")
                .and_then(|id| u32::from_str_radix(id, 16).ok())
                .filter(|&id| id != 0)
                .ok_or_else(|| {
                    refuse(
                        "type",
                        format!("\"{ty}\": unknown type (want virtio,device<hex id>)"),
                    )
                })?;
            Announced::Device { device_id }
        };
        let raw = get("base")?;
        let base =
            number(&raw).ok_or_else(|| refuse("base", format!("\"{raw}\" is not a number")))?;
        let last = base.checked_add(super::MMIO_SIZE - 1);
        if !VIRTIO_MMIO_WINDOW.contains(&base)
            || !last.is_some_and(|l| VIRTIO_MMIO_WINDOW.contains(&l))
        {
            return Err(refuse(
                "base",
                format!(
                    "{base:#x} is outside the virtio-mmio window {:#x}-{:#x}",
                    VIRTIO_MMIO_WINDOW.start(),
                    VIRTIO_MMIO_WINDOW.end()
                ),
            ));
        }
        if base % 4 != 0 {
            return Err(refuse("base", format!("{base:#x} is not 4-byte aligned")));
        }
        let raw = get("irq")?;
        let irq = number(&raw)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| refuse("irq", format!("\"{raw}\" is not a number")))?;
        if !VIRTIO_MMIO_SPIS.contains(&irq) {
            return Err(refuse(
                "irq",
                format!(
                    "SPI {irq} is not one of libxl's virtio-mmio SPIs ({}-{})",
                    VIRTIO_MMIO_SPIS.start(),
                    VIRTIO_MMIO_SPIS.end()
                ),
            ));
        }
        // Absent in 4.17's disks; "1"/"0" or "true"/"false" in later releases.
        let grants = match read(&format!("{backend}/grant_usage")).as_deref() {
            None | Some("0" | "false" | "default") => false,
            Some("1" | "true") => true,
            Some(g) => return Err(refuse("grant_usage", format!("\"{g}\": not 0 or 1"))),
        };
        Ok(Announcement {
            backend: backend.to_string(),
            domid: DomId(domid),
            devid,
            base,
            irq,
            grants,
            what,
        })
    }

    /// The path of the back end's `state` node.
    pub fn state_path(&self) -> String {
        format!("{}/state", self.backend)
    }

    /// A back-end state as xenstore holds it (decimal).
    pub fn state_value(state: XenbusState) -> String {
        state.0.to_string()
    }
}

/// With a xenstore client: the announcements under `backend_home` (this domain's
/// `/local/domain/<id>/backend`) for guest `domid` that wait for a back end (their `state` is
/// still `XenbusStateInitialising`), each checked (a refused one is reported, the others still
/// served). Devices already served, or being removed (their keys going away one by one), are
/// left out.
#[cfg(all(feature = "std", unix))]
pub fn announcements<C: crate::xenstore::Conn>(
    xs: &mut crate::xenstore::Client<C>,
    backend_home: &str,
    domid: DomId,
) -> alloc::vec::Vec<Result<Announcement, AnnouncementError>> {
    let mut out = alloc::vec::Vec::new();
    for kind in ["virtio_disk", "virtio"] {
        let dir = format!("{backend_home}/{kind}/{}", domid.0);
        // No such directory: nothing of that kind.
        let Ok(devids) = xs.directory(&dir) else {
            continue;
        };
        for devid in devids {
            let backend = format!("{dir}/{devid}");
            let state = xs.read(&format!("{backend}/state")).unwrap_or_default();
            if state != XenbusState::INITIALISING.0.to_string().as_bytes() {
                continue;
            }
            out.push(Announcement::parse(&backend, |key| {
                xs.read(key)
                    .ok()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            }));
        }
    }
    out
}

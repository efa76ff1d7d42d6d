//! What the vhost-user examples share: device types by name, and a back end's device over a
//! guest's RAM by foreign mapping.

use std::os::fd::AsFd;

use xen::linux::Linux;
use xen::vhost::{GuestMemoryShare, QueueSizes, VhostUserDevice, VhostUserOptions};
use xen::virtio::device_id;
use xen::{DomId, Xen};

use super::setup::Res;

/// A virtio device type by name (rng, console, blk, scsi, vsock) or number.
pub fn device_type(name: &str) -> Res<u32> {
    Ok(match name {
        "rng" => device_id::RNG,
        "console" => device_id::CONSOLE,
        "blk" => device_id::BLOCK,
        "scsi" => device_id::SCSI,
        "vsock" => device_id::VSOCK,
        n => n.parse().map_err(|_| format!("unknown device type {n}"))?,
    })
}

/// The device of type `kind` that the back end listening on `socket` serves for `domid`,
/// whose populated RAM is `ram`; its queues of `size` entries, as many as the back end has.
pub fn connect(
    xen: &Xen<Linux>,
    domid: DomId,
    socket: &str,
    kind: u32,
    size: u16,
    ram: &[(u64, u64)],
) -> Res<VhostUserDevice> {
    Ok(VhostUserDevice::connect_with(
        std::path::Path::new(socket),
        kind,
        QueueSizes::FromBackend(size),
        GuestMemoryShare::XenForeign {
            privcmd: xen.platform().privcmd().as_fd(),
            domid,
        },
        ram,
        VhostUserOptions::default(),
    )?)
}

//! Virtio devices on the IOREQ server (feature `virtio`): a guest's stock virtio drivers talk to
//! a device implemented in this process, through a transport the guest finds without any
//! Xen-specific driver.
//!
//! The layers follow the data:
//! - [`VirtioDevice`] (`device`): what a device implements, over `virtio-queue` and guest RAM
//!   as rust-vmm's `GuestMemory` (see [`crate::memory::GuestRam::vm_memory`]);
//! - [`Common`] (`common`): the transport-neutral device state every transport drives (feature
//!   negotiation, device status, the queues, and `NEEDS_RESET` for a driver that breaks the
//!   rules): virtio-pci here, virtio-mmio on Arm;
//! - [`VirtioPci`] (`pci`): virtio-pci (modern, virtio 1.x) as an [`crate::ioreq::Handler`]: the
//!   PCI function's configuration space (claimed by SBDF), its memory BAR (claimed where the
//!   guest places it), MSI-X through `XEN_DMOP_inject_msi` and INTx through
//!   `XEN_DMOP_set_pci_intx_level`;
//! - [`VirtioMmio`] (`mmio`): virtio-mmio (virtio 1.x, version 2 registers) as an
//!   [`crate::ioreq::Handler`] at a base address, its interrupt a level-triggered SPI through
//!   `XEN_DMOP_set_irq_level`: the transport of Arm guests.
//!
//! [`Block`] (`blk`) is a device of this crate: virtio-blk on a file, in this process.
//! [`announce`] reads the virtio-mmio devices libxl announces in xenstore for an Arm guest.
//!
//! A guest that breaks the rules (a queue size that is not a power of two, ring addresses
//! outside its RAM, a notify of a queue it never enabled, a write to a read-only register, a BAR
//! over its RAM, an MSI-X table entry out of range) gets its device set to `NEEDS_RESET` with
//! one log line (the `log` crate, level warn) and a configuration-change interrupt; nothing
//! panics, and other devices are untouched. The guest recovers by resetting the device.

#[cfg(unix)]
pub mod announce;
#[cfg(unix)]
mod blk;
mod common;
mod device;
mod mmio;
mod pci;
mod state;

#[cfg(unix)]
pub use blk::{Access, Block};
pub use common::{Common, Fault, Polled};
pub use device::{BackendEvent, DeviceError, VirtioDevice};
pub use mmio::{VirtioMmio, MMIO_SIZE};
pub use pci::{InterruptPath, VirtioPci, BAR_SIZE};

/// Device status bits (virtio 1.x §2.1).
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready to drive the device.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const NEEDS_RESET: u8 = 0x40;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// Feature bits the transport handles (virtio 1.x §6).
pub mod features {
    /// `VIRTIO_F_VERSION_1`: a virtio 1.x device (always offered; a driver must accept it).
    pub const VERSION_1: u64 = 1 << 32;
    /// `VIRTIO_F_RING_EVENT_IDX`: notification suppression by event index.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
    /// `VIRTIO_F_RING_INDIRECT_DESC`: indirect descriptor tables.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
}

/// Virtio device IDs (virtio 1.x §5).
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const RNG: u32 = 4;
    /// SCSI host.
    pub const SCSI: u32 = 8;
    /// Socket (vsock).
    pub const VSOCK: u32 = 19;
}

//! virtio-mmio (virtio 1.x §4.2, the version 2 register layout) on the IOREQ server: the
//! transport of Arm guests, whose device tree (or libxl, for a `virtio` disk) names the
//! device's base address and its SPI. The registers and the device configuration fill
//! [`MMIO_SIZE`] bytes at the base; the interrupt is a level-triggered line raised and lowered
//! with `XEN_DMOP_set_irq_level`.

use alloc::vec::Vec;

use vm_memory::GuestMemory;

use super::common::{Common, Fault};
use super::device::VirtioDevice;
use crate::dm::{RangeKind, Xen};
use crate::ioreq::{Handler, Size, Space};
use crate::platform::Platform;
use crate::{DomId, Error};

/// Bytes the device decodes at its base: registers to 0x100, device configuration after
/// (libxl gives each virtio-mmio device 0x200).
pub const MMIO_SIZE: u64 = 0x200;

/// "virt" in little-endian.
const MAGIC: u32 = 0x7472_6976;
/// The register layout of virtio 1.x (version 1 is the legacy one).
const VERSION: u32 = 2;
/// The vendor ID the device reports ("XenR", Xen Rust).
const VENDOR: u32 = 0x5265_6e58;
/// Where the device configuration starts.
const CONFIG: u64 = 0x100;

/// InterruptStatus bits.
const INT_USED: u32 = 1;
const INT_CONFIG: u32 = 2;

/// Registers (offsets from the base).
mod reg {
    pub const MAGIC: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    /// QueueDescLow; the driver ring's and device ring's follow 0x10 apart, each a low
    /// and a high half (+4).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// QueueDeviceHigh, the last of them.
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// A virtio device served as a virtio-mmio device of guest `domid` at `base`, interrupting on
/// `irq` (an SPI, 32 or above, that the guest's device tree gives the device): an
/// [`crate::ioreq::Handler`] for the server that claimed [`range`](Self::range).
///
/// ```
/// use xen::dm::RangeKind;
/// use xen::ioreq::{IoreqServer, ServerOptions};
/// use xen::memory::GuestRam;
/// use xen::sim::Sim;
/// use xen::virtio::VirtioMmio;
/// # use virtio_queue::Queue;
/// # use xen::virtio::{DeviceError, VirtioDevice};
/// # struct Rng;
/// # impl<M: vm_memory::GuestMemory> VirtioDevice<M> for Rng {
/// #     fn device_type(&self) -> u32 { xen::virtio::device_id::RNG }
/// #     fn queue_max_sizes(&self) -> &[u16] { &[64] }
/// #     fn process_queue(&mut self, _: u16, _: &mut Queue, _: &M) -> Result<bool, DeviceError> { Ok(false) }
/// # }
///
/// let sim = Sim::new();
/// let dom = sim.create_guest(1);
/// let xen = xen::Xen::new(sim.clone())?;
/// let ram = GuestRam::map(&sim, dom, &[(0, 0x10_0000)])?;
/// // libxl's first virtio-mmio slot on Arm, and its first SPI.
/// let dev = VirtioMmio::new(&xen, dom, 0x200_0000, 33, Rng, ram.vm_memory()?)?;
/// let mut server = IoreqServer::create(&xen, dom, ServerOptions::default())?;
/// let (kind, start, end) = dev.range();
/// server.map_range(kind, start, end)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct VirtioMmio<'x, P: Platform, D: VirtioDevice<M>, M: GuestMemory> {
    xen: &'x Xen<P>,
    domid: DomId,
    base: u64,
    irq: u32,
    common: Common<D, M>,
    /// InterruptStatus.
    isr: u32,
    /// Whether the line is raised.
    line: bool,
}

impl<P: Platform, D: VirtioDevice<M> + core::fmt::Debug, M: GuestMemory> core::fmt::Debug
    for VirtioMmio<'_, P, D, M>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioMmio")
            .field("domid", &self.domid)
            .field("base", &self.base)
            .field("irq", &self.irq)
            .field("common", &self.common)
            .field("isr", &self.isr)
            .finish_non_exhaustive()
    }
}

impl<'x, P: Platform, D: VirtioDevice<M>, M: GuestMemory> VirtioMmio<'x, P, D, M> {
    /// `device` at guest-physical `base` (4-byte aligned; libxl places devices 0x200 apart)
    /// of `domid`, on its RAM `mem`, interrupting on SPI `irq`.
    pub fn new(
        xen: &'x Xen<P>,
        domid: DomId,
        base: u64,
        irq: u32,
        device: D,
        mem: M,
    ) -> Result<Self, Error> {
        if base % 4 != 0 || base.checked_add(MMIO_SIZE).is_none() {
            return Err(Error::InvalidArgument {
                op: "virtio-mmio device",
                what: "the base must be 4-byte aligned, with its 0x200 bytes below 2^64",
            });
        }
        if irq < 32 {
            return Err(Error::InvalidArgument {
                op: "virtio-mmio device",
                what: "the interrupt must be an SPI (32 or above)",
            });
        }
        Ok(VirtioMmio {
            xen,
            domid,
            base,
            irq,
            common: Common::new(device, mem)?,
            isr: 0,
            line: false,
        })
    }

    /// The range to claim on the server (`map_range(kind, start, end)`).
    pub fn range(&self) -> (RangeKind, u64, u64) {
        (RangeKind::Mmio, self.base, self.base + MMIO_SIZE - 1)
    }

    /// The device's base address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The device's interrupt (SPI).
    pub fn irq(&self) -> u32 {
        self.irq
    }

    /// The transport-neutral state (the device, its status and queues).
    pub fn common(&self) -> &Common<D, M> {
        &self.common
    }

    /// The transport-neutral state, mutably.
    pub fn common_mut(&mut self) -> &mut Common<D, M> {
        &mut self.common
    }

    /// Interrupt the driver for every queue the device used outside a notify (a back end in
    /// another process), and set `NEEDS_RESET` for a back end that went away or resume the
    /// device when it came back ([`Common::poll`]): call after
    /// [`VirtioDevice::interrupt_fds`] became readable, or [`VirtioDevice::backend_retry`]
    /// passed.
    pub fn poll_interrupts(&mut self) {
        let polled = self.common.poll();
        if polled.tell {
            self.signal(INT_CONFIG);
        }
        if polled.queues != 0 {
            self.signal(INT_USED);
        }
    }

    /// Set `NEEDS_RESET` and tell the driver (configuration-change interrupt) the first time.
    fn fail(&mut self, fault: Fault) {
        if self.common.fail(fault) {
            self.signal(INT_CONFIG);
        }
    }

    /// Set InterruptStatus bits and raise the line. Raised again while it is high: Xen's Arm
    /// vGIC takes each `set_irq_level(1)` as a new edge, and a raise it ignores costs nothing.
    fn signal(&mut self, bits: u32) {
        let first = self.isr == 0;
        self.isr |= bits;
        if first || !self.line {
            self.set_line(true);
        }
    }

    fn set_line(&mut self, level: bool) {
        self.line = level;
        if let Err(e) = self.xen.set_irq_level(self.domid, self.irq, level) {
            log::warn!("virtio-mmio {:#x} of domain {}: {e}", self.base, self.domid);
        }
    }

    fn read_register(&mut self, off: u64) -> u32 {
        let c = &self.common;
        match off {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => c.device().device_type(),
            reg::VENDOR_ID => VENDOR,
            reg::DEVICE_FEATURES => c.device_features_word(),
            reg::QUEUE_NUM_MAX => u32::from(c.queue_max_size()),
            reg::QUEUE_READY => u32::from(c.queue_ready()),
            reg::INTERRUPT_STATUS => self.isr,
            reg::STATUS => u32::from(c.status()),
            // No shared memory regions: whichever SHMSel selects, its length and base read
            // as all ones (-1).
            reg::SHM_LEN_LOW..=reg::SHM_BASE_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => u32::from(c.config_generation()),
            // Write-only registers and the gaps read as zero.
            _ => 0,
        }
    }

    fn write_register(&mut self, off: u64, v: u32) {
        let c = &mut self.common;
        let tell = match off {
            reg::DEVICE_FEATURES_SEL => {
                c.set_device_feature_select(v);
                false
            }
            reg::DRIVER_FEATURES => {
                c.set_driver_features_word(v);
                false
            }
            reg::DRIVER_FEATURES_SEL => {
                c.set_driver_feature_select(v);
                false
            }
            reg::QUEUE_SEL => {
                // Past the 16 bits a queue index has: a queue that does not exist.
                c.set_queue_select(u16::try_from(v).unwrap_or(u16::MAX));
                false
            }
            reg::QUEUE_NUM => c.set_queue_size(u16::try_from(v).unwrap_or(u16::MAX)),
            reg::QUEUE_READY => c.set_queue_ready(u16::from(v != 0)),
            reg::QUEUE_NOTIFY => {
                // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue's index.
                let queue = u16::try_from(v).unwrap_or(u16::MAX);
                match c.notify(queue) {
                    Ok(true) => {
                        self.signal(INT_USED);
                        false
                    }
                    Ok(false) => false,
                    Err(tell) => tell,
                }
            }
            reg::INTERRUPT_ACK => {
                self.isr &= !v;
                // Still something to say (it arrived after the driver read the status):
                // raised again, as an edge; else lowered.
                self.set_line(self.isr != 0);
                false
            }
            reg::STATUS => {
                let tell = c.set_status(v as u8);
                if v == 0 {
                    // A reset clears what the driver had not acknowledged.
                    self.isr = 0;
                    if self.line {
                        self.set_line(false);
                    }
                }
                tell
            }
            reg::QUEUE_DESC_LOW..=reg::QUEUE_DEVICE_HIGH => {
                let ring = ((off - reg::QUEUE_DESC_LOW) / 0x10) as u8;
                if off % 0x10 >= 8 {
                    // 0x88, 0x8c, 0x98, ...: between the address registers.
                    return;
                }
                c.set_queue_address(ring, off % 8 == 4, v)
            }
            reg::SHM_SEL => false,
            reg::MAGIC
            | reg::VERSION
            | reg::DEVICE_ID
            | reg::VENDOR_ID
            | reg::DEVICE_FEATURES
            | reg::QUEUE_NUM_MAX
            | reg::INTERRUPT_STATUS
            | reg::CONFIG_GENERATION => {
                let register = match off {
                    reg::MAGIC => "MagicValue",
                    reg::VERSION => "Version",
                    reg::DEVICE_ID => "DeviceID",
                    reg::VENDOR_ID => "VendorID",
                    reg::DEVICE_FEATURES => "DeviceFeatures",
                    reg::QUEUE_NUM_MAX => "QueueNumMax",
                    reg::INTERRUPT_STATUS => "InterruptStatus",
                    _ => "ConfigGeneration",
                };
                return self.fail(Fault::ReadOnly { register });
            }
            reg::SHM_LEN_LOW..=reg::SHM_BASE_HIGH => {
                return self.fail(Fault::ReadOnly {
                    register: "the shared memory region registers",
                })
            }
            _ => false, // nothing there
        };
        if tell {
            self.signal(INT_CONFIG);
        }
    }

    /// The registers take 32-bit accesses only (virtio 1.x §4.2.2.2).
    fn register_access(&self, off: u64, size: Size) -> bool {
        size == Size::B4 && off % 4 == 0
    }
}

impl<P: Platform, D: VirtioDevice<M>, M: GuestMemory> crate::mmio::MmioDevice
    for VirtioMmio<'_, P, D, M>
{
    fn range(&self) -> (u64, u64) {
        (self.base, self.base + MMIO_SIZE - 1)
    }
    fn poll_interrupts(&mut self) {
        VirtioMmio::poll_interrupts(self);
    }
    fn poll_timeout(&self) -> Option<core::time::Duration> {
        self.common.poll_timeout()
    }
    #[cfg(target_os = "linux")]
    fn interrupt_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.common.device().interrupt_fds()
    }
}

impl<P: Platform, D: VirtioDevice<M>, M: GuestMemory> Handler for VirtioMmio<'_, P, D, M> {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        let Some(off) = addr
            .checked_sub(self.base)
            .filter(|&o| space == Space::Mmio && o < MMIO_SIZE)
        else {
            return size.mask();
        };
        if off >= CONFIG {
            let mut b = [0u8; 8];
            let n = size.bytes() as usize;
            self.common.read_config(off - CONFIG, &mut b[..n]);
            return u64::from_le_bytes(b);
        }
        if !self.register_access(off, size) {
            // Reads have no side effects here: all ones, as for nothing there.
            return size.mask();
        }
        u64::from(self.read_register(off))
    }

    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        let Some(off) = addr
            .checked_sub(self.base)
            .filter(|&o| space == Space::Mmio && o < MMIO_SIZE)
        else {
            return;
        };
        if off >= CONFIG {
            let b = value.to_le_bytes();
            self.common
                .write_config(off - CONFIG, &b[..size.bytes() as usize]);
            return;
        }
        if !self.register_access(off, size) {
            return self.fail(Fault::BadAccess {
                region: "the virtio-mmio registers",
                offset: off,
                size: size.bytes(),
            });
        }
        self.write_register(off, value as u32);
    }
}

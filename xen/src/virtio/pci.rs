//! virtio-pci (modern, virtio 1.x §4.1) on the IOREQ server: a PCI function whose configuration
//! space Xen forwards by SBDF, with one 64-bit memory BAR holding the common configuration,
//! ISR, device configuration, notification and MSI-X regions.

use alloc::vec;
use alloc::vec::Vec;

use vm_memory::{GuestAddress, GuestMemory, Permissions};

use super::common::{Common, Fault};
use super::device::VirtioDevice;
use crate::dm::{RangeKind, Xen};
use crate::ioreq::{Handler, RangeChange, Size, Space};
use crate::platform::Platform;
use crate::{DomId, Error};

/// Size of the memory BAR (BAR 0/1, 64-bit).
pub const BAR_SIZE: u64 = 0x8000;

// Where each region lives in the BAR.
const COMMON: u64 = 0x0000;
const COMMON_LEN: u64 = 0x38;
const ISR: u64 = 0x1000;
const DEVICE: u64 = 0x2000;
const DEVICE_LEN: u64 = 0x1000;
const NOTIFY: u64 = 0x3000;
const NOTIFY_LEN: u64 = 0x1000;
/// Bytes between two queues' notification addresses.
const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE: u64 = 0x4000;
const MSIX_PBA: u64 = 0x5000;

// Configuration space.
const VENDOR_VIRTIO: u16 = 0x1af4;
const CAP_COMMON: u8 = 0x40;
const CAP_ISR: u8 = 0x50;
const CAP_DEVICE: u8 = 0x60;
const CAP_NOTIFY: u8 = 0x70;
const CAP_MSIX: u8 = 0x84;
const CMD_MEMORY: u16 = 1 << 1;
const CMD_INTX_DISABLE: u16 = 1 << 10;
/// The command register bits a guest may set (I/O space stays off: there is no I/O BAR).
const CMD_WRITABLE: u16 = CMD_MEMORY | 1 << 2 | 1 << 6 | 1 << 8 | CMD_INTX_DISABLE;
const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_MASK_ALL: u16 = 1 << 14;
/// "No vector" for `config_msix_vector` and `queue_msix_vector`.
const NO_VECTOR: u16 = 0xffff;

/// ISR bits.
const ISR_QUEUE: u8 = 1;
const ISR_CONFIG: u8 = 2;

/// Who turns a back end's "used buffers" signal into the queue's MSI-X interrupt
/// ([`VirtioPci::set_interrupt_path`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterruptPath {
    /// The dom0 kernel, where it can (Linux privcmd irqfd: 6.6 or later built with
    /// `CONFIG_XEN_PRIVCMD_EVENTFD`), for every queue whose device has an eventfd for it
    /// ([`VirtioDevice::queue_call_fd`]) and whose vector is enabled and unmasked; this process
    /// otherwise (a kernel without irqfd is found out once, and logged). The default.
    #[default]
    KernelWhereAvailable,
    /// Always this process: it reads the eventfds and injects the interrupts.
    Relayed,
}

/// The queues whose interrupts the kernel delivers (privcmd irqfd).
#[derive(Debug)]
struct KernelInterrupts {
    /// Still worth trying (the path allows it and the kernel has not refused).
    enabled: bool,
    /// Per queue: the MSI-X message the kernel delivers for it.
    bound: Vec<Option<(u64, u32)>>,
}

/// One MSI-X table entry.
#[derive(Clone, Copy, Debug, Default)]
struct MsixEntry {
    addr: u64,
    data: u32,
    masked: bool,
    pending: bool,
}

/// A virtio device served as a virtio-pci function of guest `domid` at `sbdf`: an
/// [`crate::ioreq::Handler`] for the server that claimed the SBDF. It asks the server to claim
/// its BAR where the guest places it ([`Handler::range_change`]), before the guest's write is
/// answered.
pub struct VirtioPci<'x, P: Platform, D: VirtioDevice<M>, M: GuestMemory> {
    xen: &'x Xen<P>,
    domid: DomId,
    sbdf: u32,
    common: Common<D, M>,
    command: u16,
    /// BAR 0 and BAR 1 as the guest wrote them (sizing bits masked).
    bar: u64,
    interrupt_line: u8,
    msix_control: u16,
    msix: Vec<MsixEntry>,
    config_vector: u16,
    queue_vectors: Vec<u16>,
    isr: u8,
    intx: bool,
    /// The BAR range claimed on the server.
    claimed: Option<u64>,
    /// Where the BAR should be claimed (what was last asked of the server).
    target: Option<u64>,
    /// Range changes for the server, oldest first.
    changes: Vec<RangeChange>,
    /// Bumped by every guest write that changes the saved state (not by notifies).
    generation: u64,
    kernel: KernelInterrupts,
}

impl<P: Platform, D: VirtioDevice<M> + core::fmt::Debug, M: GuestMemory> core::fmt::Debug
    for VirtioPci<'_, P, D, M>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VirtioPci")
            .field("domid", &self.domid)
            .field("sbdf", &self.sbdf)
            .field("common", &self.common)
            .field("bar", &self.claimed)
            .field("kernel_interrupts", &self.kernel)
            .finish_non_exhaustive()
    }
}

impl<'x, P: Platform, D: VirtioDevice<M>, M: GuestMemory> VirtioPci<'x, P, D, M> {
    /// `device` as PCI function `sbdf` (segment 0, bus 0) of `domid`, on its RAM `mem`. Claim
    /// the SBDF on the server (`map_range(RangeKind::Pci, sbdf, sbdf)`) to receive its
    /// configuration space accesses.
    pub fn new(xen: &'x Xen<P>, domid: DomId, sbdf: u32, device: D, mem: M) -> Result<Self, Error> {
        if sbdf >> 8 != 0 {
            return Err(Error::InvalidArgument {
                op: "virtio-pci device",
                what: "segment 0, bus 0 only (where Xen routes INTx)",
            });
        }
        let common = Common::new(device, mem)?;
        let nq = usize::from(common.num_queues());
        Ok(VirtioPci {
            xen,
            domid,
            sbdf,
            common,
            command: 0,
            bar: 0,
            interrupt_line: 0,
            msix_control: 0,
            msix: vec![MsixEntry::default(); nq + 1],
            config_vector: NO_VECTOR,
            queue_vectors: vec![NO_VECTOR; nq],
            isr: 0,
            intx: false,
            claimed: None,
            target: None,
            changes: Vec::new(),
            generation: 0,
            kernel: KernelInterrupts {
                enabled: true,
                bound: vec![None; nq],
            },
        })
    }

    /// The state the guest set up (PCI configuration, the BAR, MSI-X, the virtio status and
    /// queues), as text, for [`restore_state`](Self::restore_state) in a device model that
    /// takes over after this one is killed (see [`crate::ioreq::IoreqServer::adopt`]).
    /// Changes with [`state_generation`](Self::state_generation).
    pub fn save_state(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut out = alloc::string::String::new();
        let _ = writeln!(
            out,
            "pci {:#x} {} {:#x} {} {:#x} {} {}",
            self.sbdf,
            self.command,
            self.bar,
            self.interrupt_line,
            self.msix_control,
            self.config_vector,
            self.claimed
                .map_or(alloc::string::String::from("-"), |b| alloc::format!(
                    "{b:#x}"
                ))
        );
        for (i, e) in self.msix.iter().enumerate() {
            let _ = writeln!(
                out,
                "msix {i} {:#x} {:#x} {}",
                e.addr,
                e.data,
                u8::from(e.masked)
            );
        }
        for (i, v) in self.queue_vectors.iter().enumerate() {
            let _ = writeln!(out, "qvec {i} {v}");
        }
        self.common.save(&mut out);
        out
    }

    /// Take over the state [`save_state`](Self::save_state) wrote for this function, before
    /// serving: the BAR is taken as claimed where it was (the predecessor's server, adopted,
    /// still claims it: pass [`bar_claimed`](Self::bar_claimed) among the adopted ranges), and
    /// a device the driver had set up is activated where it left off. Text for another
    /// function, or malformed, is an error.
    pub fn restore_state(&mut self, text: &str) -> Result<(), Error> {
        let bad = |what| Error::InvalidArgument {
            op: "virtio-pci state",
            what,
        };
        use super::state::{num, nums};
        let mut lines = text.lines().filter(|l| !l.trim().is_empty()).peekable();
        let mut w = lines.next().ok_or(bad("empty"))?.split_whitespace();
        if w.next() != Some("pci") {
            return Err(bad("no pci line first"));
        }
        let sbdf = num(w.next()).ok_or(bad("pci line"))?;
        if sbdf != u64::from(self.sbdf) {
            return Err(bad("the state of another function"));
        }
        let [command, bar, line, control, config_vector] =
            nums::<5>(&mut w).ok_or(bad("pci line"))?;
        let claimed = match w.next() {
            Some("-") => None,
            c => Some(num(c).ok_or(bad("pci line"))?),
        };
        self.command = command as u16 & CMD_WRITABLE;
        self.bar = bar;
        self.interrupt_line = line as u8;
        self.msix_control = control as u16 & (MSIX_ENABLE | MSIX_MASK_ALL);
        self.config_vector = config_vector as u16;
        self.claimed = claimed;
        self.target = claimed;
        while let Some(l) = lines.next_if(|l| l.starts_with("msix ") || l.starts_with("qvec ")) {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("msix") => {
                    let [i, addr, data, masked] = nums::<4>(&mut w).ok_or(bad("msix line"))?;
                    let e = self.msix.get_mut(i as usize).ok_or(bad("msix entry"))?;
                    *e = MsixEntry {
                        addr,
                        data: data as u32,
                        masked: masked != 0,
                        pending: false,
                    };
                }
                _ => {
                    let [i, vec] = nums::<2>(&mut w).ok_or(bad("qvec line"))?;
                    *self
                        .queue_vectors
                        .get_mut(i as usize)
                        .ok_or(bad("queue vector"))? = vec as u16;
                }
            }
        }
        self.common.restore(lines)?;
        self.sync_kernel_interrupts();
        Ok(())
    }

    /// Choose who delivers the queues' MSI-X interrupts (by default the kernel where it can).
    pub fn set_interrupt_path(&mut self, path: InterruptPath) {
        self.kernel.enabled = path == InterruptPath::KernelWhereAvailable;
        self.sync_kernel_interrupts();
    }

    /// The queues whose interrupts the kernel delivers now, with no return to this process
    /// (bit `i`: queue `i`; see [`InterruptPath`]).
    pub fn kernel_interrupts(&self) -> u64 {
        self.kernel
            .bound
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_some())
            .fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Hand each queue's interrupt to the kernel (privcmd irqfd) or take it back, as the
    /// guest's MSI-X table, mask bits and queue vectors now say (and the path allows).
    #[cfg(target_os = "linux")]
    fn sync_kernel_interrupts(&mut self) {
        let on =
            self.kernel.enabled && self.msix_control & (MSIX_ENABLE | MSIX_MASK_ALL) == MSIX_ENABLE;
        if !on && self.kernel.bound.iter().all(Option::is_none) {
            return;
        }
        let xen = self.xen;
        let mut changed = false;
        for (q, &vector) in self.queue_vectors.iter().enumerate() {
            let want = self
                .msix
                .get(usize::from(vector))
                .filter(|e| on && !e.masked)
                .map(|e| (e.addr, e.data));
            let have = self.kernel.bound[q];
            if want == have {
                continue;
            }
            let Some(fd) = self.common.device().queue_call_fd(q as u16) else {
                continue;
            };
            if have.is_some() {
                // Taken back: signals from now on are read here (a masked vector's become
                // its pending bit).
                if let Err(e) = xen.irqfd_remove(self.domid, fd) {
                    log::warn!("virtio-pci {:#x} of domain {}: {e}", self.sbdf, self.domid);
                }
                self.kernel.bound[q] = None;
                changed = true;
            }
            let Some((addr, data)) = want else {
                continue;
            };
            // A signal already counted is delivered by the kernel as it binds.
            match xen.irqfd_msi(self.domid, fd, addr, data) {
                Ok(()) => {
                    log::debug!(
                        "virtio-pci {:#x} of domain {}: queue {q}'s interrupts by the kernel (irqfd)",
                        self.sbdf,
                        self.domid
                    );
                    self.kernel.bound[q] = want;
                    changed = true;
                }
                Err(e) => {
                    log::info!(
                        "virtio-pci {:#x} of domain {}: interrupts relayed by this process ({e})",
                        self.sbdf,
                        self.domid
                    );
                    self.kernel.enabled = false;
                }
            }
        }
        if changed {
            let mask = self.kernel_interrupts();
            self.common.device_mut().set_kernel_interrupts(mask);
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn sync_kernel_interrupts(&mut self) {}

    /// Changes whenever the guest changes what [`save_state`](Self::save_state) records.
    pub fn state_generation(&self) -> u64 {
        self.generation
    }

    /// The transport-neutral state (the device, its status and queues).
    pub fn common(&self) -> &Common<D, M> {
        &self.common
    }

    /// The transport-neutral state, mutably.
    pub fn common_mut(&mut self) -> &mut Common<D, M> {
        &mut self.common
    }

    /// The PCI function.
    pub fn sbdf(&self) -> u32 {
        self.sbdf
    }

    /// Where the BAR is claimed on the server, if it is.
    pub fn bar_claimed(&self) -> Option<u64> {
        self.claimed
    }

    /// Interrupt the driver for every queue the device used outside a notify (a back end in
    /// another process), and set `NEEDS_RESET` for a back end that went away or resume the
    /// device when it came back ([`Common::poll`]): call after
    /// [`VirtioDevice::interrupt_fds`] became readable, or [`VirtioDevice::backend_retry`]
    /// passed.
    pub fn poll_interrupts(&mut self) {
        let polled = self.common.poll();
        self.told(polled.tell);
        let mask = polled.queues;
        for i in 0..64 {
            if mask & (1 << i) != 0 {
                let vector = *self.queue_vectors.get(i).unwrap_or(&NO_VECTOR);
                self.signal(vector, ISR_QUEUE);
            }
        }
    }

    /// After a write to the command register or the BAR: ask the server to move the claim to
    /// where the guest placed the BAR (memory decoding on, clear of guest RAM), before that
    /// write is answered. A placement over guest RAM sets `NEEDS_RESET` and claims nothing.
    fn place_bar(&mut self) {
        let mut want = (self.command & CMD_MEMORY != 0 && self.bar != 0).then_some(self.bar);
        if let Some(addr) = want {
            // Guest RAM is page-granular: a BAR clear of it has none of its pages in RAM.
            let mem = self.common.memory();
            let over_ram = addr.checked_add(BAR_SIZE - 1).is_none()
                || (0..BAR_SIZE)
                    .step_by(4096)
                    .any(|o| mem.check_range(GuestAddress(addr + o), 1, Permissions::No));
            if over_ram {
                self.fail(Fault::BarPlacement {
                    bar: 0,
                    addr,
                    size: BAR_SIZE,
                    what: "guest RAM",
                });
                want = None;
            }
        }
        if want == self.target {
            return;
        }
        if let Some(old) = self.target {
            self.changes.push(RangeChange::Release {
                kind: RangeKind::Mmio,
                start: old,
                end: old + BAR_SIZE - 1,
            });
        }
        if let Some(new) = want {
            self.changes.push(RangeChange::Claim {
                kind: RangeKind::Mmio,
                start: new,
                end: new + BAR_SIZE - 1,
            });
        }
        self.target = want;
    }

    /// Set `NEEDS_RESET` and tell the driver (configuration-change interrupt) the first time.
    fn fail(&mut self, fault: Fault) {
        if self.common.fail(fault) {
            self.signal(self.config_vector, ISR_CONFIG);
        }
    }

    /// `tell` from a [`Common`] operation: the fault must be signalled.
    fn told(&mut self, tell: bool) {
        if tell {
            self.signal(self.config_vector, ISR_CONFIG);
        }
    }

    /// Interrupt the driver: MSI-X `vector` when MSI-X is on, else INTx with `isr` set.
    fn signal(&mut self, vector: u16, isr: u8) {
        if self.msix_control & MSIX_ENABLE != 0 {
            let Some(e) = self.msix.get_mut(usize::from(vector)) else {
                return; // NO_VECTOR: the driver wants no interrupt for this
            };
            if e.masked || self.msix_control & MSIX_MASK_ALL != 0 {
                e.pending = true;
                return;
            }
            let (addr, data) = (e.addr, e.data);
            self.inject(addr, data);
            return;
        }
        self.isr |= isr;
        if !self.intx && self.command & CMD_INTX_DISABLE == 0 {
            self.set_intx(true);
        }
    }

    fn inject(&self, addr: u64, data: u32) {
        if let Err(e) = self.xen.inject_msi(self.domid, addr, data) {
            log::warn!("virtio-pci {:#x} of domain {}: {e}", self.sbdf, self.domid);
        }
    }

    fn set_intx(&mut self, level: bool) {
        self.intx = level;
        let device = (self.sbdf >> 3) as u8 & 0x1f;
        if let Err(e) = self.xen.set_pci_intx_level(self.domid, device, 0, level) {
            log::warn!("virtio-pci {:#x} of domain {}: {e}", self.sbdf, self.domid);
        }
    }

    /// Deliver MSI-X vectors left pending by a mask that is now lifted.
    fn deliver_pending(&mut self) {
        if self.msix_control & (MSIX_ENABLE | MSIX_MASK_ALL) != MSIX_ENABLE {
            return;
        }
        for i in 0..self.msix.len() {
            let e = self.msix[i];
            if e.pending && !e.masked {
                self.msix[i].pending = false;
                self.inject(e.addr, e.data);
            }
        }
    }

    // --- configuration space -------------------------------------------------------------

    fn config_byte(&self, reg: u32) -> u8 {
        let device_id = 0x1040 + self.common.device().device_type() as u16;
        let le16 = |v: u16, i: u32| v.to_le_bytes()[i as usize];
        let le32 = |v: u32, i: u32| v.to_le_bytes()[i as usize];
        let cap = |at: u8, next: u8, ty: u8, off: u64, len: u64, reg: u32| -> u8 {
            let i = reg - u32::from(at);
            match i {
                0 => 0x09, // vendor-specific capability
                1 => next,
                2 => {
                    if ty == 2 {
                        20
                    } else {
                        16
                    }
                }
                3 => ty,
                4 => 0, // BAR 0
                8..=11 => le32(off as u32, i - 8),
                12..=15 => le32(len as u32, i - 12),
                16..=19 if ty == 2 => le32(NOTIFY_MULTIPLIER, i - 16),
                _ => 0,
            }
        };
        match reg {
            0..=1 => le16(VENDOR_VIRTIO, reg),
            2..=3 => le16(device_id, reg - 2),
            4..=5 => le16(self.command, reg - 4),
            6 => 0x10, // status: capability list
            8 => 1,    // revision
            0xa => 0x00,
            0xb => 0xff,                                              // class: other
            0xe => 0,                                                 // header type 0
            0x10..=0x13 => le32(self.bar as u32 | 0b100, reg - 0x10), // 64-bit memory BAR
            0x14..=0x17 => le32((self.bar >> 32) as u32, reg - 0x14),
            0x2c..=0x2d => le16(VENDOR_VIRTIO, reg - 0x2c),
            0x2e..=0x2f => le16(0x1100, reg - 0x2e),
            0x34 => CAP_COMMON,
            0x3c => self.interrupt_line,
            0x3d => 1, // INTA
            r if (0x40..0x50).contains(&r) => cap(CAP_COMMON, CAP_ISR, 1, COMMON, COMMON_LEN, r),
            r if (0x50..0x60).contains(&r) => cap(CAP_ISR, CAP_DEVICE, 3, ISR, 1, r),
            r if (0x60..0x70).contains(&r) => cap(CAP_DEVICE, CAP_NOTIFY, 4, DEVICE, DEVICE_LEN, r),
            r if (0x70..0x84).contains(&r) => cap(CAP_NOTIFY, CAP_MSIX, 2, NOTIFY, NOTIFY_LEN, r),
            r if (0x84..0x90).contains(&r) => {
                let i = r - 0x84;
                let table_size = self.msix.len() as u16 - 1;
                match i {
                    0 => 0x11,
                    1 => 0,
                    2..=3 => le16(self.msix_control | table_size, i - 2),
                    4..=7 => le32(MSIX_TABLE as u32, i - 4),
                    _ => le32(MSIX_PBA as u32, i - 8),
                }
            }
            _ => 0,
        }
    }

    fn config_read(&self, reg: u64, size: Size) -> u64 {
        let mut v = 0u64;
        for i in 0..size.bytes() {
            let r = reg as u32 + i;
            let b = if r < 256 { self.config_byte(r) } else { 0xff };
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    fn config_write(&mut self, reg: u64, size: Size, value: u64) {
        self.generation += 1;
        // Byte by byte, as the register each byte belongs to allows.
        let mut bar_touched = false;
        for i in 0..u64::from(size.bytes()) {
            let r = reg + i;
            let b = (value >> (8 * i)) as u8;
            match r {
                4 => self.command = (self.command & 0xff00) | u16::from(b),
                5 => self.command = (self.command & 0x00ff) | u16::from(b) << 8,
                0x10..=0x17 => {
                    let shift = 8 * (r - 0x10);
                    self.bar = (self.bar & !(0xff << shift)) | u64::from(b) << shift;
                    bar_touched = true;
                }
                0x3c => self.interrupt_line = b,
                0x87 => {
                    // MSI-X message control, high byte: enable and function mask.
                    let bits = u16::from(b) << 8 & (MSIX_ENABLE | MSIX_MASK_ALL);
                    self.msix_control = bits;
                }
                _ => {} // read-only in PCI terms: ignored
            }
        }
        self.command &= CMD_WRITABLE;
        if bar_touched {
            // The BAR is naturally aligned: the low bits are its flags and size.
            self.bar &= !(BAR_SIZE - 1);
        }
        // The command register (bytes 4 and 5) switches memory decoding.
        if bar_touched || reg < 6 && reg + u64::from(size.bytes()) > 4 {
            self.place_bar();
        }
        if self.intx
            && (self.command & CMD_INTX_DISABLE != 0 || self.msix_control & MSIX_ENABLE != 0)
        {
            self.set_intx(false);
        }
        self.deliver_pending();
        self.sync_kernel_interrupts();
    }

    // --- the BAR --------------------------------------------------------------------------

    fn common_field(&self, field: u64) -> u64 {
        let c = &self.common;
        let (desc, driver, device) = c.queue_addresses();
        let sel = usize::from(c.queue_select());
        match field {
            0x00 => u64::from(c.device_feature_select()),
            0x04 => u64::from(c.device_features_word()),
            0x08 => u64::from(c.driver_feature_select()),
            0x0c => u64::from(c.driver_features_word()),
            0x10 => u64::from(self.config_vector),
            0x12 => u64::from(c.num_queues()),
            0x14 => u64::from(c.status()),
            0x15 => u64::from(c.config_generation()),
            0x16 => u64::from(c.queue_select()),
            0x18 => u64::from(c.queue_size()),
            0x1a => u64::from(*self.queue_vectors.get(sel).unwrap_or(&NO_VECTOR)),
            0x1c => u64::from(c.queue_ready()),
            0x1e => u64::from(c.queue_select()), // queue_notify_off: the queue's index
            0x20 => desc,
            0x28 => driver,
            0x30 => device,
            _ => 0,
        }
    }

    /// The common configuration field holding byte `off`: (start, width).
    fn common_layout(off: u64) -> Option<(u64, u64)> {
        const FIELDS: [(u64, u64); 16] = [
            (0x00, 4),
            (0x04, 4),
            (0x08, 4),
            (0x0c, 4),
            (0x10, 2),
            (0x12, 2),
            (0x14, 1),
            (0x15, 1),
            (0x16, 2),
            (0x18, 2),
            (0x1a, 2),
            (0x1c, 2),
            (0x1e, 2),
            (0x20, 8),
            (0x28, 8),
            (0x30, 8),
        ];
        FIELDS
            .iter()
            .copied()
            .find(|&(s, w)| s <= off && off < s + w)
    }

    fn common_read(&self, off: u64, size: Size) -> u64 {
        let mut v = 0u64;
        for i in 0..u64::from(size.bytes()) {
            let b = match Self::common_layout(off + i) {
                Some((s, _)) => (self.common_field(s) >> (8 * (off + i - s))) as u8,
                None => 0,
            };
            v |= u64::from(b) << (8 * i);
        }
        v
    }

    fn common_write(&mut self, off: u64, size: Size, v: u64) {
        self.generation += 1;
        let n = u64::from(size.bytes());
        let bad = |offset| Fault::BadAccess {
            region: "the common configuration",
            offset,
            size: n as u32,
        };
        let Some((start, width)) = Self::common_layout(off) else {
            return self.fail(bad(off));
        };
        // A whole field, or either 32-bit half of a 64-bit one.
        let half = width == 8 && n == 4 && (off - start) % 4 == 0;
        if !(half || off == start && n == width) {
            return self.fail(bad(off));
        }
        let c = &mut self.common;
        let tell = match start {
            0x00 => {
                c.set_device_feature_select(v as u32);
                false
            }
            0x08 => {
                c.set_driver_feature_select(v as u32);
                false
            }
            0x0c => {
                c.set_driver_features_word(v as u32);
                false
            }
            0x10 => {
                self.config_vector = self.vector(v as u16);
                false
            }
            0x14 => c.set_status(v as u8),
            0x16 => {
                c.set_queue_select(v as u16);
                false
            }
            0x18 => c.set_queue_size(v as u16),
            0x1a => {
                let sel = usize::from(c.queue_select());
                let vector = self.vector(v as u16);
                if let Some(q) = self.queue_vectors.get_mut(sel) {
                    *q = vector;
                }
                self.sync_kernel_interrupts();
                false
            }
            0x1c => c.set_queue_ready(v as u16),
            0x20 | 0x28 | 0x30 => {
                let ring = ((start - 0x20) / 8) as u8;
                if n == 8 {
                    c.set_queue_address(ring, false, v as u32)
                        || c.set_queue_address(ring, true, (v >> 32) as u32)
                } else {
                    c.set_queue_address(ring, off != start, v as u32)
                }
            }
            _ => {
                let register = match start {
                    0x04 => "device_feature",
                    0x12 => "num_queues",
                    0x15 => "config_generation",
                    _ => "queue_notify_off",
                };
                return self.fail(Fault::ReadOnly { register });
            }
        };
        self.told(tell);
    }

    /// An MSI-X vector the driver asks for: kept if it is in the table, else `NO_VECTOR`
    /// (which the driver reads back and so learns the mapping failed).
    fn vector(&self, v: u16) -> u16 {
        if usize::from(v) < self.msix.len() {
            v
        } else {
            NO_VECTOR
        }
    }

    fn msix_read(&self, off: u64, size: Size) -> u64 {
        let Some(e) = self.msix.get((off / 16) as usize) else {
            return 0;
        };
        let words = [
            e.addr as u32,
            (e.addr >> 32) as u32,
            e.data,
            u32::from(e.masked),
        ];
        let w = u64::from(words[((off % 16) / 4) as usize]);
        match size {
            Size::B8 if off % 8 == 0 => w | u64::from(words[((off % 16) / 4 + 1) as usize]) << 32,
            _ => w & size.mask(),
        }
    }

    fn msix_write(&mut self, off: u64, size: Size, v: u64) {
        self.generation += 1;
        let entries = self.msix.len() as u16;
        let i = (off / 16) as usize;
        if i >= self.msix.len() || off % 4 != 0 || size == Size::B1 || size == Size::B2 {
            return self.fail(Fault::MsixOutOfRange {
                offset: off,
                entries,
            });
        }
        let mut put = |word: u64, val: u32| {
            let e = &mut self.msix[i];
            match word {
                0 => e.addr = (e.addr & !0xffff_ffff) | u64::from(val),
                1 => e.addr = (e.addr & 0xffff_ffff) | u64::from(val) << 32,
                2 => e.data = val,
                _ => e.masked = val & 1 != 0,
            }
        };
        let word = (off % 16) / 4;
        put(word, v as u32);
        if size == Size::B8 && word < 3 {
            put(word + 1, (v >> 32) as u32);
        }
        self.deliver_pending();
        self.sync_kernel_interrupts();
    }

    fn bar_read(&mut self, off: u64, size: Size) -> u64 {
        match off {
            o if o < COMMON_LEN => self.common_read(o, size),
            o if o == ISR => {
                // Reading the ISR acknowledges it (and lowers INTx).
                let v = self.isr;
                self.isr = 0;
                if self.intx {
                    self.set_intx(false);
                }
                u64::from(v)
            }
            o if (DEVICE..DEVICE + DEVICE_LEN).contains(&o) => {
                let mut b = [0u8; 8];
                let n = size.bytes() as usize;
                self.common.read_config(o - DEVICE, &mut b[..n]);
                u64::from_le_bytes(b)
            }
            o if (MSIX_TABLE..MSIX_PBA).contains(&o) => self.msix_read(o - MSIX_TABLE, size),
            o if (MSIX_PBA..MSIX_PBA + 0x800).contains(&o) => {
                let first = (o - MSIX_PBA) * 8;
                let mut v = 0u64;
                for (bit, e) in self.msix.iter().enumerate().skip(first as usize).take(64) {
                    v |= u64::from(e.pending) << (bit as u64 - first);
                }
                v & size.mask()
            }
            _ => 0,
        }
    }

    fn bar_write(&mut self, off: u64, size: Size, v: u64) {
        match off {
            o if o < COMMON_LEN => self.common_write(o, size, v),
            o if (DEVICE..DEVICE + DEVICE_LEN).contains(&o) => {
                let b = v.to_le_bytes();
                self.common
                    .write_config(o - DEVICE, &b[..size.bytes() as usize]);
            }
            o if (NOTIFY..NOTIFY + NOTIFY_LEN).contains(&o) => {
                let queue = ((o - NOTIFY) / u64::from(NOTIFY_MULTIPLIER)) as u16;
                match self.common.notify(queue) {
                    Ok(true) => {
                        let vector = *self
                            .queue_vectors
                            .get(usize::from(queue))
                            .unwrap_or(&NO_VECTOR);
                        self.signal(vector, ISR_QUEUE);
                    }
                    Ok(false) => {}
                    Err(tell) => self.told(tell),
                }
            }
            o if (MSIX_TABLE..MSIX_PBA).contains(&o) => self.msix_write(o - MSIX_TABLE, size, v),
            o if (MSIX_PBA..MSIX_PBA + 0x800).contains(&o) => self.fail(Fault::ReadOnly {
                register: "the MSI-X pending bits",
            }),
            o if o == ISR => self.fail(Fault::ReadOnly { register: "ISR" }),
            _ => {} // between regions: nothing there
        }
    }
}

impl<P: Platform, D: VirtioDevice<M>, M: GuestMemory> crate::pci::PciFunction
    for VirtioPci<'_, P, D, M>
{
    fn sbdf(&self) -> u32 {
        self.sbdf
    }
    fn owns_mmio(&self, addr: u64) -> bool {
        self.claimed
            .is_some_and(|b| (b..b + BAR_SIZE).contains(&addr))
    }
    fn poll_interrupts(&mut self) {
        VirtioPci::poll_interrupts(self);
    }
    fn poll_timeout(&self) -> Option<core::time::Duration> {
        self.common.poll_timeout()
    }
    fn state_generation(&self) -> Option<u64> {
        Some(self.generation)
    }
    fn save_state(&self) -> Option<alloc::string::String> {
        Some(VirtioPci::save_state(self))
    }
    fn claimed_ranges(&self) -> Vec<(RangeKind, u64, u64)> {
        self.claimed
            .map(|b| alloc::vec![(RangeKind::Mmio, b, b + BAR_SIZE - 1)])
            .unwrap_or_default()
    }
    #[cfg(target_os = "linux")]
    fn interrupt_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.common.device().interrupt_fds()
    }
}

impl<P: Platform, D: VirtioDevice<M>, M: GuestMemory> Drop for VirtioPci<'_, P, D, M> {
    /// The kernel forgets the eventfds before the device closes them.
    fn drop(&mut self) {
        self.kernel.enabled = false;
        self.sync_kernel_interrupts();
    }
}

impl<P: Platform, D: VirtioDevice<M>, M: GuestMemory> Handler for VirtioPci<'_, P, D, M> {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        match space {
            Space::PciConfig { sbdf } if sbdf == self.sbdf => self.config_read(addr, size),
            Space::Mmio => match self.claimed {
                Some(base) if (base..base + BAR_SIZE).contains(&addr) => {
                    self.bar_read(addr - base, size)
                }
                _ => size.mask(),
            },
            _ => size.mask(),
        }
    }

    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        match space {
            Space::PciConfig { sbdf } if sbdf == self.sbdf => self.config_write(addr, size, value),
            Space::Mmio => {
                if let Some(base) = self.claimed.filter(|b| (*b..*b + BAR_SIZE).contains(&addr)) {
                    self.bar_write(addr - base, size, value);
                }
            }
            _ => {}
        }
    }

    fn range_change(&mut self) -> Option<RangeChange> {
        if self.changes.is_empty() {
            None
        } else {
            Some(self.changes.remove(0))
        }
    }

    fn range_change_done(&mut self, change: RangeChange, result: Result<(), Error>) {
        match (change, result) {
            (RangeChange::Claim { start, .. }, Ok(())) => self.claimed = Some(start),
            (RangeChange::Claim { start, .. }, Err(e)) => {
                log::warn!("virtio-pci {:#x} of domain {}: {e}", self.sbdf, self.domid);
                self.target = None;
                self.fail(Fault::BarPlacement {
                    bar: 0,
                    addr: start,
                    size: BAR_SIZE,
                    what: "a range Xen refused to claim",
                });
            }
            (RangeChange::Release { .. }, _) => self.claimed = None,
        }
    }
}

//! A PCI bus on one IOREQ server: several PCI functions served together, dispatched by SBDF
//! for configuration space and by the BARs they claim for MMIO, plus what a guest without a
//! device model needs to find the bus at all.
//!
//! A PVH guest has no QEMU: Xen forwards its type-1 configuration accesses (0xCF8 address,
//! 0xCFC data) to the server that claimed the SBDF, but answers reads of 0xCF8 itself with
//! all-ones, so Linux's probe for the mechanism (write 0x80000000 to 0xCF8, read it back) fails
//! and it finds no bus. [`PciBus::with_host_bridge`] claims ports 0xCF8-0xCFB too (Xen still
//! latches the address, then forwards the access) and answers the read-back, and puts a host
//! bridge at 00:00.0, which Linux looks for before it scans. (With ACPI tables that describe
//! no PCI root, the guest also needs `pci=noacpi`.)

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::dm::RangeKind;
use crate::ioreq::{Handler, IoreqServer, RangeChange, Size, Space};
use crate::platform::Platform;
use crate::Error;

/// A PCI function on a [`PciBus`]: a [`Handler`] for its configuration space and BARs.
pub trait PciFunction: Handler {
    /// Its address (`xen_sys::pci_sbdf`).
    fn sbdf(&self) -> u32;
    /// Whether MMIO address `addr` is in one of its BARs as claimed now.
    fn owns_mmio(&self, addr: u64) -> bool;
    /// Deliver interrupts that arrived outside a request (a back end in another process), and
    /// notice a back end that went away or came back.
    fn poll_interrupts(&mut self) {}
    /// How soon [`poll_interrupts`](Self::poll_interrupts) wants to run again even if none of
    /// the [`interrupt_fds`](Self::interrupt_fds) becomes readable (a back end to reconnect
    /// to); `None`: only when one does.
    fn poll_timeout(&self) -> Option<core::time::Duration> {
        None
    }
    /// Descriptors that become readable when [`poll_interrupts`](Self::poll_interrupts) has
    /// work (for an event loop's poll; with `std` on Linux).
    #[cfg(all(feature = "std", target_os = "linux"))]
    fn interrupt_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        Vec::new()
    }
    /// A number that changes whenever what [`save_state`](Self::save_state) records does;
    /// `None` (the default): nothing to save.
    fn state_generation(&self) -> Option<u64> {
        None
    }
    /// The state the guest set up, as text, for a device model that takes over after this one
    /// is killed (see [`crate::virtio::VirtioPci::save_state`]).
    fn save_state(&self) -> Option<alloc::string::String> {
        None
    }
    /// What it claims on the server now besides its SBDF (its BARs where the guest put them).
    fn claimed_ranges(&self) -> Vec<(RangeKind, u64, u64)> {
        Vec::new()
    }
}

/// The first line of [`PciBus::save_state`]'s text.
const STATE_MAGIC: &str = "xen-abi pci-bus state 1";

/// What [`PciBus::save_state`] wrote: the server's id and each function's state text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedBus {
    /// The IOREQ server to adopt.
    pub server: xen_sys::Ioservid,
    /// (SBDF, the function's state text), for its `restore_state`.
    pub functions: Vec<(u32, alloc::string::String)>,
}

impl SavedBus {
    /// Parse [`PciBus::save_state`]'s text.
    pub fn parse(text: &str) -> Result<SavedBus, Error> {
        let bad = |what| Error::InvalidArgument {
            op: "PCI bus state",
            what,
        };
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            return Err(bad("not a PCI bus state (first line)"));
        }
        let server = lines
            .next()
            .and_then(|l| l.strip_prefix("server "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(bad("no server line"))?;
        let mut functions = Vec::new();
        while let Some(l) = lines.next() {
            let sbdf = l
                .strip_prefix("function ")
                .and_then(|v| u32::from_str_radix(v.trim().trim_start_matches("0x"), 16).ok())
                .ok_or(bad("expected a function line"))?;
            let mut body = alloc::string::String::new();
            loop {
                match lines.next() {
                    Some("end") => break,
                    Some(l) => {
                        body.push_str(l);
                        body.push('\n');
                    }
                    None => return Err(bad("a function without its end line")),
                }
            }
            functions.push((sbdf, body));
        }
        Ok(SavedBus { server, functions })
    }

    /// The state text saved for `sbdf`.
    pub fn function(&self, sbdf: u32) -> Option<&str> {
        self.functions
            .iter()
            .find(|(s, _)| *s == sbdf)
            .map(|(_, t)| t.as_str())
    }
}

/// The type-1 configuration address port.
const CF8: u64 = 0xcf8;

/// Several PCI functions behind one IOREQ server ([`Handler`]); optionally the address port's
/// read-back and a host bridge for guests without a device model. Functions are `Send`, so the
/// bus can be served from another thread.
pub struct PciBus<'h> {
    functions: Vec<Box<dyn PciFunction + Send + 'h>>,
    host_bridge: bool,
    cf8: u32,
    /// The function whose range change is in progress.
    changing: Option<usize>,
}

impl core::fmt::Debug for PciBus<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let sbdfs: Vec<u32> = self.functions.iter().map(|d| d.sbdf()).collect();
        f.debug_struct("PciBus")
            .field("functions", &sbdfs)
            .field("host_bridge", &self.host_bridge)
            .finish_non_exhaustive()
    }
}

impl Default for PciBus<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'h> PciBus<'h> {
    /// An empty bus, for a guest with a device model that owns the bus (an HVM guest's QEMU).
    pub fn new() -> Self {
        PciBus {
            functions: Vec::new(),
            host_bridge: false,
            cf8: 0,
            changing: None,
        }
    }

    /// An empty bus with a host bridge at 00:00.0 and the 0xCF8 read-back: for a guest with no
    /// device model (PVH).
    pub fn with_host_bridge() -> Self {
        PciBus {
            host_bridge: true,
            ..Self::new()
        }
    }

    /// Add a function; refused if its SBDF is taken (00:00.0 is the host bridge's).
    pub fn add(&mut self, f: impl PciFunction + Send + 'h) -> Result<(), Error> {
        let sbdf = f.sbdf();
        if (self.host_bridge && sbdf == 0) || self.functions.iter().any(|g| g.sbdf() == sbdf) {
            return Err(Error::InvalidArgument {
                op: "PCI bus",
                what: "two functions at one SBDF",
            });
        }
        self.functions.push(Box::new(f));
        Ok(())
    }

    /// The functions, in the order they were added.
    pub fn functions(&self) -> impl Iterator<Item = &(dyn PciFunction + Send + 'h)> {
        self.functions.iter().map(|f| &**f)
    }

    /// Claim on `server` what the bus answers: every function's SBDF, and with a host bridge
    /// its SBDF and ports 0xCF8-0xCFB. (BARs are claimed as the guest places them.)
    pub fn claim<P: Platform>(&self, server: &mut IoreqServer<'_, P>) -> Result<(), Error> {
        if self.host_bridge {
            server.map_range(RangeKind::Port, CF8, CF8 + 3)?;
            server.map_range(RangeKind::Pci, 0, 0)?;
        }
        for f in &self.functions {
            let s = u64::from(f.sbdf());
            server.map_range(RangeKind::Pci, s, s)?;
        }
        Ok(())
    }

    /// Everything the bus claims on its server now: with a host bridge its SBDF and ports
    /// 0xCF8-0xCFB, every function's SBDF and BARs. What [`crate::ioreq::IoreqServer::adopt`]
    /// takes when a device model takes over a killed one's server.
    pub fn claimed_ranges(&self) -> Vec<(RangeKind, u64, u64)> {
        let mut r = Vec::new();
        if self.host_bridge {
            r.push((RangeKind::Port, CF8, CF8 + 3));
            r.push((RangeKind::Pci, 0, 0));
        }
        for f in &self.functions {
            let s = u64::from(f.sbdf());
            r.push((RangeKind::Pci, s, s));
            r.extend(f.claimed_ranges());
        }
        r
    }

    /// Changes whenever a function's saved state does (see [`save_state`](Self::save_state)).
    pub fn state_generation(&self) -> u64 {
        self.functions
            .iter()
            .filter_map(|f| f.state_generation())
            .fold(0u64, u64::wrapping_add)
    }

    /// The bus's state, as text: the server's id and every function's state (see
    /// [`PciFunction::save_state`]), for a device model that takes over after this one is
    /// killed: [`SavedBus::parse`], `restore_state` on each function, then
    /// [`crate::ioreq::IoreqServer::adopt`] with [`claimed_ranges`](Self::claimed_ranges).
    pub fn save_state(&self, server: xen_sys::Ioservid) -> alloc::string::String {
        let mut out = alloc::format!("{STATE_MAGIC}\nserver {server}\n");
        for f in &self.functions {
            if let Some(text) = f.save_state() {
                out.push_str(&alloc::format!("function {:#x}\n", f.sbdf()));
                out.push_str(&text);
                out.push_str("end\n");
            }
        }
        out
    }

    /// [`PciFunction::poll_interrupts`] of every function.
    pub fn poll_interrupts(&mut self) {
        for f in &mut self.functions {
            f.poll_interrupts();
        }
    }

    /// The shortest [`PciFunction::poll_timeout`] of the functions: how long an event loop
    /// may wait for the [`interrupt_fds`](Self::interrupt_fds) before calling
    /// [`poll_interrupts`](Self::poll_interrupts) anyway.
    pub fn poll_timeout(&self) -> Option<core::time::Duration> {
        self.functions.iter().filter_map(|f| f.poll_timeout()).min()
    }

    /// Serve the bus on `server` until `stop` is set and the platform woken (with
    /// [`crate::linux::Linux`], `request_stop`, which a signal handler may call) or its stop is
    /// requested: one thread waits in `poll(2)` on the event channel and every function's
    /// [`interrupt_fds`](Self::interrupt_fds) (at most [`poll_timeout`](Self::poll_timeout)
    /// while a back end is away), serves the guest's requests, relays back ends' interrupts
    /// and notices back ends that go or come back. ([`IoreqServer::run`] serves requests
    /// only.) The platform must not block when it waits for events
    /// ([`crate::linux::Linux::open_nonblocking`]).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), xen::Error> {
    /// use std::sync::atomic::AtomicBool;
    /// use xen::ioreq::{IoreqServer, ServerOptions};
    /// let xen = xen::Xen::new(xen::linux::Linux::open_nonblocking()?)?;
    /// let mut server = IoreqServer::create(&xen, xen::DomId(5), ServerOptions::default())?;
    /// let mut bus = xen::pci::PciBus::with_host_bridge();
    /// // bus.add(...) the functions, then:
    /// bus.claim(&mut server)?;
    /// static STOP: AtomicBool = AtomicBool::new(false);
    /// bus.serve(&mut server, &STOP)?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn serve<P: Platform + std::os::fd::AsFd>(
        &mut self,
        server: &mut IoreqServer<'_, P>,
        stop: &core::sync::atomic::AtomicBool,
    ) -> Result<(), Error> {
        self.serve_with(server, stop, |_| {})
    }

    /// [`serve`](Self::serve), calling `changed` after every wake-up in which the guest changed
    /// a function's saved state ([`state_generation`](Self::state_generation)): where a device
    /// model writes [`save_state`](Self::save_state) down for a successor.
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn serve_with<P: Platform + std::os::fd::AsFd>(
        &mut self,
        server: &mut IoreqServer<'_, P>,
        stop: &core::sync::atomic::AtomicBool,
        changed: impl FnMut(&Self),
    ) -> Result<(), Error> {
        crate::serve::serve(self, server, stop, changed)
    }

    /// Every function's [`PciFunction::interrupt_fds`].
    #[cfg(all(feature = "std", target_os = "linux"))]
    pub fn interrupt_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.functions
            .iter()
            .flat_map(|f| f.interrupt_fds())
            .collect()
    }

    fn function(&mut self, space: Space, addr: u64) -> Option<&mut (dyn PciFunction + Send + 'h)> {
        let i = match space {
            Space::PciConfig { sbdf } => self.functions.iter().position(|f| f.sbdf() == sbdf),
            Space::Mmio => self.functions.iter().position(|f| f.owns_mmio(addr)),
            Space::Port => None,
        }?;
        Some(&mut *self.functions[i])
    }

    /// The host bridge's configuration space: an Intel 440FX (8086:1237), class 06:00:00.
    fn host_config(reg: u64, size: Size) -> u64 {
        const HEAD: [u8; 12] = [0x86, 0x80, 0x37, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x06];
        let mut v = 0;
        for i in 0..u64::from(size.bytes()) {
            let b = HEAD.get((reg + i) as usize).copied().unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        v
    }
}

#[cfg(all(feature = "std", target_os = "linux"))]
impl crate::serve::Sources for PciBus<'_> {
    fn count(&self) -> usize {
        self.functions.len()
    }
    fn fds(&self, i: usize) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.functions[i].interrupt_fds()
    }
    fn timeout(&self, i: usize) -> Option<core::time::Duration> {
        self.functions[i].poll_timeout()
    }
    fn poll(&mut self, i: usize) {
        self.functions[i].poll_interrupts();
    }
    fn generation(&self) -> u64 {
        self.state_generation()
    }
}

impl Handler for PciBus<'_> {
    fn read(&mut self, space: Space, addr: u64, size: Size) -> u64 {
        if self.host_bridge {
            match space {
                Space::Port if (CF8..CF8 + 4).contains(&addr) => {
                    return (u64::from(self.cf8) >> (8 * (addr - CF8))) & size.mask();
                }
                Space::PciConfig { sbdf: 0 } => return Self::host_config(addr, size),
                _ => {}
            }
        }
        match self.function(space, addr) {
            Some(f) => f.read(space, addr, size),
            None => size.mask(),
        }
    }

    fn write(&mut self, space: Space, addr: u64, size: Size, value: u64) {
        if self.host_bridge {
            match space {
                Space::Port if (CF8..CF8 + 4).contains(&addr) => {
                    // The latch Xen keeps too; narrower writes go to other registers of
                    // the same ports on real chipsets and are not the address.
                    if addr == CF8 && size == Size::B4 {
                        self.cf8 = value as u32;
                    }
                    return;
                }
                Space::PciConfig { sbdf: 0 } => return,
                _ => {}
            }
        }
        if let Some(f) = self.function(space, addr) {
            f.write(space, addr, size, value);
        }
    }

    fn range_change(&mut self) -> Option<RangeChange> {
        for (i, f) in self.functions.iter_mut().enumerate() {
            if let Some(c) = f.range_change() {
                self.changing = Some(i);
                return Some(c);
            }
        }
        None
    }

    fn range_change_done(&mut self, change: RangeChange, result: Result<(), Error>) {
        if let Some(f) = self.changing.take().and_then(|i| self.functions.get_mut(i)) {
            f.range_change_done(change, result);
        }
    }
}

//! virtio-mmio on the simulator, driven as Linux's virtio_mmio drives a device found in the
//! device tree: check the magic and version, negotiate, set up a queue, get buffers filled and
//! the SPI raised (and lowered by the acknowledgement). Then a guest that breaks the rules:
//! the device needs a reset (one log line, a configuration interrupt), nothing panics, and a
//! reset brings it back.

use xen::ioreq::{IoreqServer, ServerOptions};
use xen::memory::GuestRam;
use xen::sim::{Sim, Vcpu};
use xen::virtio::{status, Access, Block, VirtioDevice, VirtioMmio, MMIO_SIZE};
use xen::{DomId, Xen};

#[path = "common/virtio.rs"]
mod virtio;
use virtio::{serving, warnings_with, Ring, Rng, AVAIL, BUF, DESC, LOGGER, RAM, USED};

/// libxl's first virtio-mmio slot on Arm (GUEST_VIRTIO_MMIO_BASE) and its first SPI.
const BASE: u64 = 0x0200_0000;
const SPI: u32 = 33;

/// The guest side: Linux's virtio_mmio, step by step.
struct Driver {
    v: Vcpu,
    sim: Sim,
    dom: DomId,
    /// The device ID and queue 0's maximum size it must report.
    device: (u32, u32),
}

impl Driver {
    fn ring(&self) -> Ring<'_> {
        Ring {
            sim: &self.sim,
            dom: self.dom,
        }
    }
    fn offer(&self, n: u16, addr: u64, len: u32) {
        self.ring().offer(n, addr, len)
    }
    fn used_idx(&self) -> u16 {
        self.ring().used_idx()
    }
    fn rd(&self, off: u64) -> u32 {
        self.v.mmio_read(BASE + off, 4).unwrap() as u32
    }
    fn wr(&self, off: u64, v: u32) {
        self.v.mmio_write(BASE + off, 4, u64::from(v)).unwrap()
    }
    fn status(&self) -> u8 {
        self.rd(0x70) as u8
    }

    /// Probe: magic, version 2, the device ID.
    fn probe(&self) {
        assert_eq!(self.rd(0), 0x7472_6976, "magic 'virt'");
        assert_eq!(self.rd(4), 2, "version 2 (virtio 1.x registers)");
        assert_eq!(self.rd(8), self.device.0, "device ID");
    }

    /// Reset, then negotiate VERSION_1 only.
    fn negotiate(&self) {
        self.wr(0x70, 0);
        self.wr(0x70, u32::from(status::ACKNOWLEDGE | status::DRIVER));
        self.wr(0x14, 1);
        assert_eq!(self.rd(0x10) & 1, 1, "VERSION_1 offered");
        self.wr(0x24, 0);
        self.wr(0x20, 0);
        self.wr(0x24, 1);
        self.wr(0x20, 1);
        self.wr(
            0x70,
            u32::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
        );
        assert_ne!(self.status() & status::FEATURES_OK, 0, "features accepted");
    }

    /// Queue 0: `size` entries, rings at DESC/AVAIL/USED, ready.
    fn queue(&self, size: u32) {
        self.wr(0x30, 0);
        assert_eq!(self.rd(0x44), 0, "not ready yet");
        assert_eq!(self.rd(0x34), self.device.1, "queue 0's maximum size");
        self.wr(0x38, size);
        self.wr(0x80, DESC as u32);
        self.wr(0x84, 0);
        self.wr(0x90, AVAIL as u32);
        self.wr(0x94, 0);
        self.wr(0xa0, USED as u32);
        self.wr(0xa4, 0);
        self.wr(0x44, 1);
        assert_eq!(self.rd(0x44), 1, "ready");
    }

    fn driver_ok(&self) {
        let s = self.status() | status::DRIVER_OK;
        self.wr(0x70, u32::from(s));
    }

    /// Set up queue 0 and get one buffer used.
    fn live(&self) {
        self.probe();
        self.negotiate();
        self.queue(8);
        self.driver_ok();
        self.offer(0, BUF, 16);
        self.wr(0x50, 0);
        assert_eq!(self.used_idx(), 1);
    }
}

/// A guest with 1 MiB of RAM, an IOREQ server claiming the device's 0x200 bytes, and the rng
/// behind it; `body` plays the guest while a thread serves.
fn with_device<R>(body: impl FnOnce(&Driver) -> R) -> (R, Sim, DomId) {
    with(Rng::default(), (4, 8), body)
}

/// Guest RAM as the devices see it.
type Mem = vm_memory::GuestRegionCollection<xen::memory::RamRegion<xen::sim::SimPages>>;

/// `device` (reporting this device ID and queue 0's maximum size) as in [`with_device`].
fn with<D, R>(device: D, id: (u32, u32), body: impl FnOnce(&Driver) -> R) -> (R, Sim, DomId)
where
    D: VirtioDevice<Mem> + Send,
{
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let mut dev = VirtioMmio::new(&xen, dom, BASE, SPI, device, ram.vm_memory().unwrap()).unwrap();
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    let (kind, start, end) = dev.range();
    assert_eq!((start, end), (BASE, BASE + MMIO_SIZE - 1));
    srv.map_range(kind, start, end).unwrap();
    let driver = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        device: id,
    };
    let r = serving(&sim, &mut srv, &mut dev, || body(&driver));
    (r, sim, dom)
}

#[test]
fn a_driver_gets_random_bytes_and_the_spi_per_used_buffer() {
    let ((bytes, isr, after_ack), sim, dom) = with_device(|d| {
        d.live();
        let isr = d.rd(0x60);
        d.wr(0x64, isr);
        let after_ack = d.rd(0x60);
        d.offer(1, BUF + 16, 8);
        d.wr(0x50, 0);
        assert_eq!(d.used_idx(), 2);
        d.wr(0x64, d.rd(0x60));
        assert_eq!(d.status() & status::NEEDS_RESET, 0);
        (d.sim.guest_ram_read(d.dom, BUF, 24), isr, after_ack)
    });
    let want: Vec<u8> = (1..=24).collect();
    assert_eq!(bytes, want, "the device's bytes, in the guest's buffers");
    assert_eq!(isr, 1, "InterruptStatus: used buffers");
    assert_eq!(after_ack, 0, "acknowledged");
    assert_eq!(
        sim.irq_log(),
        [
            (dom, SPI, true),
            (dom, SPI, false),
            (dom, SPI, true),
            (dom, SPI, false)
        ],
        "the SPI raised per used buffer, lowered by each acknowledgement"
    );
    assert!(sim.msi_log().is_empty());
}

#[test]
fn registers_read_as_the_specification_says() {
    let (r, _, _) = with_device(|d| {
        d.probe();
        let vendor = d.rd(0xc);
        // No shared memory regions: length and base read as -1.
        d.wr(0xac, 0);
        let shm = [d.rd(0xb0), d.rd(0xb4), d.rd(0xb8), d.rd(0xbc)];
        // A queue that does not exist has no room.
        d.wr(0x30, 5);
        let absent = d.rd(0x34);
        // Past the registers: the device configuration (an rng has none) and nothing beyond.
        let config = d.v.mmio_read(BASE + 0x100, 1).unwrap();
        (vendor, shm, absent, config, d.status())
    });
    assert_ne!(r.0, 0, "a vendor ID");
    assert_eq!(r.1, [u32::MAX; 4]);
    assert_eq!(r.2, 0, "queue 5 does not exist");
    assert_eq!(r.3, 0);
    assert_eq!(r.4, 0, "nothing went wrong");
}

#[test]
fn a_reset_clears_the_interrupt_status_and_lowers_the_line() {
    let ((isr, status), sim, dom) = with_device(|d| {
        d.live();
        d.wr(0x70, 0);
        (d.rd(0x60), d.status())
    });
    assert_eq!((isr, status), (0, 0));
    assert_eq!(sim.irq_log(), [(dom, SPI, true), (dom, SPI, false)]);
}

/// A guest that breaks one rule: the device needs a reset (status, one log line naming the
/// fault, a configuration interrupt), then a reset and a clean set-up work again.
fn broken(log_says: &str, act: impl FnOnce(&Driver)) {
    let ((isr, after), sim, dom) = with_device(|d| {
        d.probe();
        d.negotiate();
        act(d);
        assert_ne!(
            d.status() & status::NEEDS_RESET,
            0,
            "NEEDS_RESET after: {log_says}"
        );
        let isr = d.rd(0x60);
        d.wr(0x64, isr);
        // The driver resets the device and sets it up properly.
        d.live();
        (isr, d.status())
    });
    assert_ne!(isr & 2, 0, "a configuration-change interrupt");
    assert_eq!(after & status::NEEDS_RESET, 0, "a reset recovers");
    assert!(sim.irq_log().contains(&(dom, SPI, true)));
    assert_eq!(warnings_with(log_says), 1, "one log line: {log_says}");
}

#[test]
fn a_register_written_16_bits_wide() {
    broken(
        "2-byte write at offset 0x38 of the virtio-mmio registers",
        |d| {
            d.wr(0x30, 0);
            d.v.mmio_write(BASE + 0x38, 2, 8).unwrap();
        },
    );
}

#[test]
fn a_write_to_a_read_only_register_of_virtio_mmio() {
    broken("read-only register QueueNumMax", |d| d.wr(0x34, 64));
}

#[test]
fn a_queue_size_that_is_not_a_power_of_two_on_virtio_mmio() {
    broken("size 6 is not a power of two", |d| {
        d.wr(0x30, 0);
        d.wr(0x38, 6);
    });
}

#[test]
fn a_notify_of_a_queue_the_mmio_driver_never_enabled() {
    broken("notify of queue 3, which is not enabled", |d| d.wr(0x50, 3));
}

#[test]
fn a_base_that_is_not_word_aligned_or_a_line_below_the_spis_is_refused() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let mem = || ram.vm_memory().unwrap();
    assert!(VirtioMmio::new(&xen, dom, BASE + 2, SPI, Rng::default(), mem()).is_err());
    assert!(VirtioMmio::new(&xen, dom, BASE, 31, Rng::default(), mem()).is_err());
}

/// A disk of 8 sectors in a scratch file, sector `i` filled with `'a' + i`.
fn disk(name: &str, access: Access) -> (Block, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("xen-blk-{name}-{}", std::process::id()));
    let pattern: Vec<u8> = (0..8 * 512).map(|i| (i / 512) as u8 + b'a').collect();
    std::fs::write(&path, &pattern).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    (Block::new(file, access, "xen-test-disk").unwrap(), path)
}

const HDR: u64 = 0x20000;
const DATA: u64 = 0x21000;
const STATUS: u64 = 0x22000;

impl Driver {
    /// One virtio-blk request as avail entry `n`: the header, `len` bytes of data at DATA
    /// (the device's to write unless `ty` is a write), the status. Returns the status and the
    /// used length.
    fn request(&self, n: u16, ty: u32, sector: u64, len: u32) -> (u8, u32) {
        let mut h = Vec::new();
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&sector.to_le_bytes());
        self.sim.guest_ram_write(self.dom, HDR, &h);
        self.sim.guest_ram_write(self.dom, STATUS, &[0xff]);
        let mut chain = vec![(HDR, 16, false)];
        if len > 0 {
            chain.push((DATA, len, ty != 1));
        }
        chain.push((STATUS, 1, true));
        self.ring().offer_chain(n, &chain);
        self.wr(0x50, 0);
        assert_eq!(self.used_idx(), n + 1, "request {n} used");
        let e = self
            .sim
            .guest_ram_read(self.dom, USED + 4 + 8 * u64::from(n % 8), 8);
        let used_len = u32::from_le_bytes(e[4..8].try_into().unwrap());
        (self.sim.guest_ram_read(self.dom, STATUS, 1)[0], used_len)
    }

    fn blk_live(&self) {
        self.probe();
        self.negotiate();
        self.queue(8);
        self.driver_ok();
    }
}

#[test]
fn a_virtio_blk_disk_reads_and_writes_its_file() {
    let (dev, path) = disk("rw", Access::ReadWrite);
    let (r, _, _) = with(dev, (2, 128), |d| {
        // Capacity (sectors) and block size in the configuration.
        let geometry = (d.v.mmio_read(BASE + 0x100, 8).unwrap(), d.rd(0x100 + 20));
        d.blk_live();
        // Read sector 2 ('c' * 512).
        let read = d.request(0, 0, 2, 512);
        let got = d.sim.guest_ram_read(d.dom, DATA, 512);
        // Write sectors 5 and 6, then read them back.
        d.sim.guest_ram_write(d.dom, DATA, &[b'Z'; 1024]);
        let write = d.request(1, 1, 5, 1024);
        d.sim.guest_ram_write(d.dom, DATA, &[0; 1024]);
        let back = d.request(2, 0, 5, 1024);
        let again = d.sim.guest_ram_read(d.dom, DATA, 1024);
        let flush = d.request(3, 4, 0, 0);
        let id = d.request(4, 8, 0, 20);
        let serial = d.sim.guest_ram_read(d.dom, DATA, 13);
        // Past the end, not whole sectors, an unknown type.
        let refused = [
            d.request(5, 0, 7, 1024).0,
            d.request(6, 0, 0, 100).0,
            d.request(7, 99, 0, 0).0,
        ];
        let moves = (read, got, write, back, again);
        (geometry, moves, flush, id, serial, refused, d.status())
    });
    let file = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let (geometry, (read, got, write, back, again), flush, id, serial, refused, status) = r;
    assert_eq!(geometry, (8, 512), "capacity and block size");
    assert_eq!(read, (0, 513), "read: OK, 512 bytes and the status");
    assert_eq!(got, [b'c'; 512]);
    assert_eq!(write, (0, 1), "write: OK");
    assert_eq!(back, (0, 1025));
    assert_eq!(again, [b'Z'; 1024]);
    assert_eq!(
        &file[5 * 512..7 * 512],
        &[b'Z'; 1024][..],
        "the file holds the write"
    );
    assert_eq!(&file[7 * 512..], &[b'h'; 512][..], "and nothing past it");
    assert_eq!(flush.0, 0, "flush: OK");
    assert_eq!(id, (0, 21), "get id: OK, 20 bytes");
    assert_eq!(serial, b"xen-test-disk");
    assert_eq!(
        refused,
        [1, 1, 2],
        "past the end, part of a sector: IOERR; unknown: UNSUPP"
    );
    assert_eq!(
        status & status::NEEDS_RESET,
        0,
        "none of that needs a reset"
    );
}

#[test]
fn a_read_only_virtio_blk_disk_refuses_writes() {
    let (dev, path) = disk("ro", Access::ReadOnly);
    let (r, _, _) = with(dev, (2, 128), |d| {
        d.wr(0x14, 0);
        let features = d.rd(0x10);
        d.blk_live();
        d.sim.guest_ram_write(d.dom, DATA, &[b'Z'; 512]);
        (features, d.request(0, 1, 0, 512))
    });
    let file = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_ne!(r.0 & (1 << 5), 0, "VIRTIO_BLK_F_RO offered");
    assert_eq!(r.1 .0, 1, "IOERR");
    assert_eq!(&file[..512], &[b'a'; 512][..], "the file is untouched");
}

#[test]
fn a_virtio_blk_request_without_a_status_byte_needs_a_reset() {
    let (dev, path) = disk("nostatus", Access::ReadWrite);
    let (s, _, _) = with(dev, (2, 128), |d| {
        d.blk_live();
        d.ring()
            .offer_chain(0, &[(HDR, 16, false), (DATA, 512, false)]);
        d.wr(0x50, 0);
        d.status()
    });
    let _ = std::fs::remove_file(&path);
    assert_ne!(s & status::NEEDS_RESET, 0);
    assert_eq!(warnings_with("without its header or its status byte"), 1);
}

/// libxl's layout: devices 0x200 apart in the virtio window, consecutive SPIs; one server,
/// one bus, each device answering at its own base and raising its own line.
#[test]
fn two_devices_on_one_mmio_bus() {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let xen = Xen::new(sim.clone()).unwrap();
    let ram = GuestRam::map(&sim, dom, &[(0, RAM)]).unwrap();
    let (blk, path) = disk("bus", Access::ReadWrite);
    let mut bus = xen::mmio::MmioBus::new();
    let mem = || ram.vm_memory().unwrap();
    bus.add(VirtioMmio::new(&xen, dom, BASE, SPI, Rng::default(), mem()).unwrap())
        .unwrap();
    // 0x200 apart, as libxl places them.
    let second = BASE + MMIO_SIZE;
    bus.add(VirtioMmio::new(&xen, dom, second, SPI + 1, blk, mem()).unwrap())
        .unwrap();
    let overlap = VirtioMmio::new(&xen, dom, BASE, 40, Rng::default(), mem()).unwrap();
    assert!(bus.add(overlap).is_err(), "one device per address");
    let mut srv = IoreqServer::create(&xen, dom, ServerOptions::default()).unwrap();
    bus.claim(&mut srv).unwrap();
    let d = Driver {
        v: sim.vcpu(dom, 0),
        sim: sim.clone(),
        dom,
        device: (4, 8),
    };
    let ids = serving(&sim, &mut srv, &mut bus, || {
        d.live();
        let at2 = |off| d.v.mmio_read(second + off, 4).unwrap();
        (at2(8), at2(0x70), d.rd(0x60))
    });
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        ids,
        (2, 0, 1),
        "the disk answers at its base, untouched; the rng's ISR"
    );
    assert_eq!(sim.irq_log(), [(dom, SPI, true)], "the rng's line only");
}

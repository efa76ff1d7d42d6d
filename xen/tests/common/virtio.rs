//! What the virtio transport tests share: a device, the log capture, a serving thread, the
//! driver's side of a queue.
// Each test crate uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemory};
use xen::ioreq::IoreqServer;
use xen::sim::Sim;
use xen::virtio::{DeviceError, VirtioDevice};

/// virtio-rng filling buffers with a counter (a real one reads the host's entropy).
#[derive(Debug, Default)]
pub struct Rng {
    pub next: u8,
    pub resets: u32,
}

impl<M: GuestMemory> VirtioDevice<M> for Rng {
    fn device_type(&self) -> u32 {
        xen::virtio::device_id::RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[8]
    }
    fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut len = 0;
            for d in chain.writable() {
                let bytes: Vec<u8> = (0..d.len())
                    .map(|_| {
                        self.next = self.next.wrapping_add(1);
                        self.next
                    })
                    .collect();
                mem.write_slice(&bytes, d.addr())
                    .map_err(|_| DeviceError::Device("buffer outside guest RAM"))?;
                len += d.len();
            }
            q.add_used(mem, head, len)
                .map_err(|e| DeviceError::queue(index, e))?;
            used = true;
        }
        Ok(used)
    }
    fn reset(&mut self) {
        self.resets += 1;
    }
}

/// Warnings logged (the "one clear log line" per fault).
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
pub struct Capture;
impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            WARNINGS.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}
pub static LOGGER: Capture = Capture;
/// The tests run in parallel: each looks only at the lines that name its own fault.
pub fn warnings_with(s: &str) -> usize {
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(s))
        .count()
}

/// Run `body` (the guest) while a thread serves `handler`; the server is stopped also when
/// `body` panics (or the scope would wait for it forever).
pub fn serving<H: xen::ioreq::Handler + Send, R>(
    sim: &Sim,
    srv: &mut IoreqServer<'_, Sim>,
    handler: &mut H,
    body: impl FnOnce() -> R,
) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let t = s.spawn(|| srv.run(handler, &stop));
        struct Stop<'a>(&'a AtomicBool, &'a Sim);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
                self.1.wake();
            }
        }
        let guard = Stop(&stop, sim);
        let r = body();
        drop(guard);
        t.join().expect("server thread").expect("run");
        r
    })
}

/// Where the tests' drivers put queue 0's rings and buffers in guest RAM.
pub const RAM: u64 = 0x10_0000;
pub const DESC: u64 = 0x1000;
pub const AVAIL: u64 = 0x2000;
pub const USED: u64 = 0x3000;
pub const BUF: u64 = 0x10000;

/// The driver's side of queue 0 (8 entries) in `dom`'s RAM.
pub struct Ring<'a> {
    pub sim: &'a Sim,
    pub dom: xen::DomId,
}

impl Ring<'_> {
    /// Offer one writable buffer of `len` bytes at `addr` as avail entry `n` (0-based).
    pub fn offer(&self, n: u16, addr: u64, len: u32) {
        let slot = u64::from(n % 8);
        self.descriptor(slot, addr, len, 2); // VIRTQ_DESC_F_WRITE
        self.publish(n, n % 8);
    }

    /// Offer the chain `descs` (address, length, device-writable) as avail entry `n`, at
    /// descriptors 0.. (the previous request is complete).
    pub fn offer_chain(&self, n: u16, descs: &[(u64, u32, bool)]) {
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let last = i + 1 == descs.len();
            let flags = u16::from(!last) | if write { 2 } else { 0 };
            self.descriptor(i as u64, addr, len, flags);
            if !last {
                self.sim.guest_ram_write(
                    self.dom,
                    DESC + 16 * i as u64 + 14,
                    &(i as u16 + 1).to_le_bytes(),
                );
            }
        }
        self.publish(n, 0);
    }

    fn descriptor(&self, index: u64, addr: u64, len: u32, flags: u16) {
        let mut d = Vec::new();
        d.extend_from_slice(&addr.to_le_bytes());
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&flags.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        self.sim.guest_ram_write(self.dom, DESC + 16 * index, &d);
    }

    /// Avail entry `n` names descriptor `head`; the avail index moves past it.
    fn publish(&self, n: u16, head: u16) {
        let slot = u64::from(n % 8);
        self.sim
            .guest_ram_write(self.dom, AVAIL + 4 + 2 * slot, &head.to_le_bytes());
        self.sim
            .guest_ram_write(self.dom, AVAIL + 2, &(n + 1).to_le_bytes());
    }

    /// The device's used index.
    pub fn used_idx(&self) -> u16 {
        let b = self.sim.guest_ram_read(self.dom, USED + 2, 2);
        u16::from_le_bytes([b[0], b[1]])
    }
}

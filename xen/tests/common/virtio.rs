//! What the virtio transport tests share: a device, the log capture, a serving thread.

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

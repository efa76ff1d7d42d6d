//! The in-process virtio-rng device of the `virtio_rng` and `virtio_attach` examples.

use std::io::Read;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemory};
use xen::virtio::{device_id, DeviceError, VirtioDevice};

/// virtio-rng (virtio 1.x §5.4): one queue; every buffer the driver offers is filled.
pub struct Rng(pub std::fs::File);

impl<M: GuestMemory> VirtioDevice<M> for Rng {
    fn device_type(&self) -> u32 {
        device_id::RNG
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[64]
    }
    fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut len = 0;
            for d in chain.writable() {
                // At most a page per buffer: the driver asks for little at a time.
                let mut bytes = vec![0u8; (d.len() as usize).min(4096)];
                self.0
                    .read_exact(&mut bytes)
                    .map_err(|_| DeviceError::Device("reading /dev/urandom failed"))?;
                mem.write_slice(&bytes, d.addr())
                    .map_err(|_| DeviceError::Device("a buffer outside guest RAM"))?;
                len += bytes.len() as u32;
            }
            q.add_used(mem, head, len)
                .map_err(|e| DeviceError::queue(index, e))?;
            used = true;
        }
        Ok(used)
    }
}

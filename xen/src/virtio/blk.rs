//! virtio-blk (virtio 1.x §5.2) on a file, in this process: what serves a guest's
//! `specification=virtio` disk when no vhost-user back end offers virtio-blk.

use alloc::vec;
use alloc::vec::Vec;
use std::fs::File;
use std::os::unix::fs::FileExt;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory};

use super::device::{DeviceError, VirtioDevice};

/// Bytes per sector, whatever the file's block size.
const SECTOR: u64 = 512;
/// Descriptors a request may have besides its header and status (`seg_max`).
const SEG_MAX: u32 = 126;
/// The most bytes read or written per step (a request may be larger).
const CHUNK: usize = 64 * 1024;

// Feature bits (§5.2.3).
const F_SEG_MAX: u64 = 1 << 2;
const F_RO: u64 = 1 << 5;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;

// Request types and statuses (§5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// Whether the guest may write the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads and writes.
    ReadWrite,
    /// Reads only (`VIRTIO_BLK_F_RO`; a write request fails with `IOERR`).
    ReadOnly,
}

/// A virtio-blk device backed by a file (or a block device) in this process: one queue,
/// reads, writes, flushes and the device ID. The capacity is the file's length in 512-byte
/// sectors, fixed when the device is created.
///
/// A request the disk cannot serve (past the end, a length that is not whole sectors, a
/// write to a read-only disk, an I/O error) completes with `VIRTIO_BLK_S_IOERR`; an unknown
/// type with `VIRTIO_BLK_S_UNSUPP`. A request with no room for its status, or buffers outside
/// guest RAM, sets `NEEDS_RESET`.
///
/// ```no_run
/// use xen::virtio::{Access, Block};
/// let disk = Block::new(std::fs::OpenOptions::new().read(true).write(true).open("disk.img")?,
///                       Access::ReadWrite, "disk0")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Block {
    file: File,
    access: Access,
    sectors: u64,
    /// `VIRTIO_BLK_T_GET_ID`'s answer: 20 bytes, NUL-padded.
    id: [u8; 20],
    /// The configuration space (§5.2.4): capacity, size_max, seg_max, geometry, blk_size.
    config: [u8; 24],
}

impl Block {
    /// A disk of `file`'s length (rounded down to whole sectors), serial `id` (at most 20
    /// bytes are kept). `file` may be a block device (libxl gives a `specification=virtio`
    /// disk only a block device, e.g. a loop device over an image).
    pub fn new(file: File, access: Access, id: &str) -> std::io::Result<Block> {
        use std::io::Seek;
        // A block device's length is where its end is (its metadata says 0).
        let sectors = (&file).seek(std::io::SeekFrom::End(0))? / SECTOR;
        let mut serial = [0u8; 20];
        let n = id.len().min(20);
        serial[..n].copy_from_slice(&id.as_bytes()[..n]);
        let mut config = [0u8; 24];
        config[0..8].copy_from_slice(&sectors.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
        Ok(Block {
            file,
            access,
            sectors,
            id: serial,
            config,
        })
    }

    /// The capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Serve one request: its readable and writable buffers (the status byte is the last
    /// writable one). Returns the status and how many bytes it wrote before the status.
    fn serve<M: GuestMemory>(
        &self,
        mem: &M,
        readable: &[(GuestAddress, u32)],
        writable: &[(GuestAddress, u32)],
    ) -> Result<(u8, u32), &'static str> {
        let mut header = [0u8; 16];
        if gather(mem, readable, 0, &mut header)? < header.len() {
            return Err("a request shorter than its header");
        }
        let ty = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let sector = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
        let out_len: u64 = readable.iter().map(|&(_, l)| u64::from(l)).sum::<u64>() - 16;
        let in_len: u64 = writable.iter().map(|&(_, l)| u64::from(l)).sum::<u64>() - 1;
        // Within the disk, in whole sectors.
        let span = |len: u64| {
            let end = sector.checked_mul(SECTOR)?.checked_add(len)?;
            (len % SECTOR == 0 && end <= self.sectors * SECTOR).then_some(sector * SECTOR)
        };
        let status = match ty {
            T_IN => match span(in_len) {
                Some(at) => {
                    let mut done = 0u64;
                    let mut buf = vec![0u8; CHUNK.min(in_len as usize)];
                    while done < in_len {
                        let n = (in_len - done).min(CHUNK as u64) as usize;
                        if self.file.read_exact_at(&mut buf[..n], at + done).is_err() {
                            return Ok((S_IOERR, 0));
                        }
                        scatter(mem, writable, done, &buf[..n])?;
                        done += n as u64;
                    }
                    return Ok((S_OK, u32::try_from(in_len).unwrap_or(u32::MAX)));
                }
                None => S_IOERR,
            },
            T_OUT if self.access == Access::ReadOnly => S_IOERR,
            T_OUT => match span(out_len) {
                Some(at) => {
                    let mut done = 0u64;
                    let mut buf = vec![0u8; CHUNK.min(out_len as usize)];
                    let mut status = S_OK;
                    while done < out_len {
                        let n = (out_len - done).min(CHUNK as u64) as usize;
                        gather(mem, readable, 16 + done, &mut buf[..n])?;
                        if self.file.write_all_at(&buf[..n], at + done).is_err() {
                            status = S_IOERR;
                            break;
                        }
                        done += n as u64;
                    }
                    status
                }
                None => S_IOERR,
            },
            T_FLUSH => {
                if self.file.sync_data().is_ok() {
                    S_OK
                } else {
                    S_IOERR
                }
            }
            T_GET_ID => {
                let n = (in_len as usize).min(self.id.len());
                scatter(mem, writable, 0, &self.id[..n])?;
                return Ok((S_OK, n as u32));
            }
            _ => S_UNSUPP,
        };
        Ok((status, 0))
    }
}

/// The pieces of `len` bytes at `offset` of the buffers `bufs` (taken as one): `f` gets each
/// piece's guest address and its range in those bytes. Returns how many bytes the buffers had.
fn pieces(
    bufs: &[(GuestAddress, u32)],
    mut offset: u64,
    len: usize,
    mut f: impl FnMut(GuestAddress, core::ops::Range<usize>) -> bool,
) -> Result<usize, &'static str> {
    let mut done = 0;
    for &(addr, blen) in bufs {
        if done == len {
            break;
        }
        let blen = u64::from(blen);
        if offset >= blen {
            offset -= blen;
            continue;
        }
        let n = ((blen - offset) as usize).min(len - done);
        let ok = addr
            .checked_add(offset)
            .is_some_and(|a| f(a, done..done + n));
        if !ok {
            return Err("a buffer outside guest RAM");
        }
        done += n;
        offset = 0;
    }
    Ok(done)
}

/// Copy the bytes at `offset` of the buffers `bufs` (taken as one) into `out`; how many there
/// were.
fn gather<M: GuestMemory>(
    mem: &M,
    bufs: &[(GuestAddress, u32)],
    offset: u64,
    out: &mut [u8],
) -> Result<usize, &'static str> {
    pieces(bufs, offset, out.len(), |a, r| {
        mem.read_slice(&mut out[r], a).is_ok()
    })
}

/// Copy `data` to `offset` of the buffers `bufs` (taken as one).
fn scatter<M: GuestMemory>(
    mem: &M,
    bufs: &[(GuestAddress, u32)],
    offset: u64,
    data: &[u8],
) -> Result<(), &'static str> {
    pieces(bufs, offset, data.len(), |a, r| {
        mem.write_slice(&data[r], a).is_ok()
    })
    .map(drop)
}

impl<M: GuestMemory> VirtioDevice<M> for Block {
    fn device_type(&self) -> u32 {
        super::device_id::BLOCK
    }

    fn features(&self) -> u64 {
        let ro = if self.access == Access::ReadOnly {
            F_RO
        } else {
            0
        };
        F_SEG_MAX | F_BLK_SIZE | F_FLUSH | ro
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[128]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = usize::try_from(offset)
                .ok()
                .and_then(|o| self.config.get(o + i))
                .copied()
                .unwrap_or(0);
        }
    }

    fn process_queue(&mut self, index: u16, q: &mut Queue, mem: &M) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let (mut readable, mut writable) = (Vec::new(), Vec::new());
            for d in chain {
                if d.is_write_only() {
                    writable.push((d.addr(), d.len()));
                } else if writable.is_empty() {
                    readable.push((d.addr(), d.len()));
                } else {
                    return Err(DeviceError::Device(
                        "virtio-blk: a readable buffer after a writable one",
                    ));
                }
            }
            let readable_len: u64 = readable.iter().map(|&(_, l)| u64::from(l)).sum();
            let writable_len: u64 = writable.iter().map(|&(_, l)| u64::from(l)).sum();
            if readable_len < 16 || writable_len < 1 {
                return Err(DeviceError::Device(
                    "virtio-blk: a request without its header or its status byte",
                ));
            }
            let (status, len) = self
                .serve(mem, &readable, &writable)
                .map_err(DeviceError::Device)?;
            scatter(mem, &writable, writable_len - 1, &[status]).map_err(DeviceError::Device)?;
            q.add_used(mem, head, len.saturating_add(1))
                .map_err(|e| DeviceError::queue(index, e))?;
            used = true;
        }
        Ok(used)
    }
}

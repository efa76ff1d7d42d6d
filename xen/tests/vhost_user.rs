//! The vhost-user front end against rust-vmm's published vhost-device-rng (built with its `xen`
//! feature, the back end CI runs on real Xen), on the host: guest RAM is a shared file
//! (`GuestMemoryShare::SharedFile`, the Xen variant's plain mapping), so the whole protocol
//! (features, Xen memory regions, rings, kick and call eventfds) is exercised without Xen.
//! The back end's path comes from `VHOST_DEVICE_RNG` (tests/run.sh sets it; see
//! tests/lib/vhost-devices.sh); without it the test fails under `CI=true` and is skipped
//! elsewhere, saying so.

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use xen::vhost::{GuestMemoryShare, VhostUserDevice};
use xen::virtio::{device_id, features, VirtioDevice};

const RAM: u64 = 2 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const BUF: u64 = 0x10000;

type Mem = GuestMemoryMmap<()>;

struct Backend(std::process::Child);
impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vhost_device_rng_fills_a_buffer_through_the_front_end() {
    let Ok(bin) = std::env::var("VHOST_DEVICE_RNG") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "VHOST_DEVICE_RNG is not set: tests/run.sh builds vhost-device-rng (tests/lib/vhost-devices.sh)"
        );
        eprintln!("SKIPPED: VHOST_DEVICE_RNG is not set (no vhost-device-rng to test against)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("xen-vhost-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("rng.sock");
    let _backend = Backend(
        std::process::Command::new(&bin)
            .arg("--socket-path")
            .arg(&sock)
            .spawn()
            .expect("start vhost-device-rng"),
    );
    // The back end numbers its sockets from 0.
    let sock0 = dir.join("rng.sock0");
    let t = Instant::now();
    while !sock0.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no socket from the back end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Guest RAM: a file, RAM at its guest-physical offset.
    let ram = tempfile_in(&dir);
    ram.set_len(RAM).unwrap();
    let mut dev = VhostUserDevice::connect(
        &sock0,
        device_id::RNG,
        &[64],
        GuestMemoryShare::SharedFile { fd: ram.as_fd() },
        &[(0, RAM)],
    )
    .expect("connect and negotiate");
    assert_ne!(
        <VhostUserDevice as VirtioDevice<Mem>>::features(&dev) & features::VERSION_1,
        0
    );

    // One queue of 8, one writable 64-byte buffer offered.
    let mut q = Queue::new(64).unwrap();
    q.set_size(8);
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_ready(true);
    let mut desc = Vec::new();
    desc.extend_from_slice(&BUF.to_le_bytes());
    desc.extend_from_slice(&64u32.to_le_bytes());
    desc.extend_from_slice(&2u16.to_le_bytes()); // WRITE
    desc.extend_from_slice(&0u16.to_le_bytes());
    ram.write_all_at(&desc, DESC).unwrap();
    ram.write_all_at(&[0, 0, 1, 0, 0, 0], AVAIL).unwrap(); // flags 0, idx 1, ring[0] = 0

    let queues = [q];
    <VhostUserDevice as VirtioDevice<Mem>>::activate(&mut dev, features::VERSION_1, &queues)
        .expect("the back end takes the rings");
    let [mut q] = queues;
    let mem: Mem = GuestMemoryMmap::new();
    <VhostUserDevice as VirtioDevice<Mem>>::process_queue(&mut dev, 0, &mut q, &mem).unwrap();

    // The back end signals the call eventfd once it used the buffer.
    let fds = <VhostUserDevice as VirtioDevice<Mem>>::interrupt_fds(&dev);
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    let n = poll(
        &mut p,
        Some(&Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        }),
    )
    .unwrap();
    drop(p);
    assert_eq!(n, 1, "the back end signalled within 10 s");
    assert_eq!(
        <VhostUserDevice as VirtioDevice<Mem>>::take_interrupts(&mut dev),
        1
    );
    let mut used = [0u8; 12];
    ram.read_exact_at(&mut used, USED).unwrap();
    assert_eq!(u16::from_le_bytes([used[2], used[3]]), 1, "used.idx");
    assert_eq!(
        u32::from_le_bytes(used[8..12].try_into().unwrap()),
        64,
        "used len"
    );
    let mut bytes = [0u8; 64];
    ram.read_exact_at(&mut bytes, BUF).unwrap();
    assert!(bytes.iter().any(|&b| b != 0), "random bytes in the buffer");
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_in(dir: &std::path::Path) -> std::fs::File {
    let path = dir.join("ram");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

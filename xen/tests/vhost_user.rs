//! The vhost-user front end against rust-vmm's published vhost-device-rng (built with its `xen`
//! feature, the back end CI runs on real Xen), on the host: guest RAM is a shared file
//! (`GuestMemoryShare::SharedFile`, the Xen variant's plain mapping), so the whole protocol
//! (features, Xen memory regions, rings, kick and call eventfds) is exercised without Xen.
//! The back end's path comes from `VHOST_DEVICE_RNG` (tests/run.sh sets it; see
//! tests/lib/vhost-devices.sh); without it the test fails under `CI=true` and is skipped
//! elsewhere, saying so.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use xen::vhost::{GuestMemoryShare, QueueSizes, VhostUserDevice, VhostUserOptions};
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

/// vhost-device-rng's binary, or `None` (a skip, said so) outside CI.
fn backend_binary() -> Option<String> {
    binary("VHOST_DEVICE_RNG")
}

/// The back end binary `var` names (tests/run.sh sets it, tests/lib/vhost-devices.sh builds
/// it), or `None` (a skip, said so) outside CI; under `CI=true` its absence fails.
fn binary(var: &str) -> Option<String> {
    let Ok(bin) = std::env::var(var) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{var} is not set: tests/run.sh builds the back end (tests/lib/vhost-devices.sh)"
        );
        eprintln!("SKIPPED: {var} is not set (no back end to test against)");
        return None;
    };
    Some(bin)
}

/// A scratch directory for one test.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("xen-vhost-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Start vhost-device-rng listening in `dir`; returns it and its socket once it exists.
fn start_backend(bin: &str, dir: &std::path::Path) -> (Backend, std::path::PathBuf) {
    let backend = Backend(
        std::process::Command::new(bin)
            .arg("--socket-path")
            .arg(dir.join("rng.sock"))
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
    (backend, sock0)
}

#[test]
fn vhost_device_rng_fills_a_buffer_through_the_front_end() {
    let Some(bin) = backend_binary() else {
        return;
    };
    let dir = scratch("fill");
    let (_backend, sock0) = start_backend(&bin, &dir);

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
    // While the kernel reads queue 0's call eventfd (irqfd), the device leaves it alone.
    type Dev = VhostUserDevice;
    let call = <Dev as VirtioDevice<Mem>>::queue_call_fd(&dev, 0)
        .expect("queue 0's eventfd")
        .as_raw_fd();
    assert_eq!(call, fds[0].as_raw_fd(), "the eventfd polled so far");
    drop(fds);
    <Dev as VirtioDevice<Mem>>::set_kernel_interrupts(&mut dev, 1);
    let left: Vec<i32> = <Dev as VirtioDevice<Mem>>::interrupt_fds(&dev)
        .iter()
        .map(|f| f.as_raw_fd())
        .collect();
    assert!(!left.contains(&call), "not polled while the kernel's");
    assert_eq!(<Dev as VirtioDevice<Mem>>::take_interrupts(&mut dev), 0);
    assert!(<Dev as VirtioDevice<Mem>>::queue_call_fd(&dev, 1).is_none());
    // Taken back: the signal the kernel did not consume is still there.
    <Dev as VirtioDevice<Mem>>::set_kernel_interrupts(&mut dev, 0);
    assert_eq!(<Dev as VirtioDevice<Mem>>::take_interrupts(&mut dev), 1);
    assert_eq!((dev.kicks_relayed(), dev.calls_relayed()), (1, 1));
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

/// Guest RAM in a file in `dir`, and the same file mapped as guest memory.
fn shared_ram(dir: &std::path::Path) -> (std::fs::File, Mem) {
    use vm_memory::{FileOffset, GuestAddress};
    let ram = tempfile_in(dir);
    ram.set_len(RAM).unwrap();
    let mem: Mem = GuestMemoryMmap::from_ranges_with_files([(
        GuestAddress(0),
        RAM as usize,
        Some(FileOffset::new(ram.try_clone().unwrap(), 0)),
    )])
    .unwrap();
    (ram, mem)
}

/// Wait until `cond` holds, polling every 10 ms, for at most 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Descriptor `i`: a writable buffer of 64 bytes at `BUF + i * 0x1000`.
fn offer(ram: &std::fs::File, i: u16) {
    let mut desc = Vec::new();
    desc.extend_from_slice(&(BUF + u64::from(i) * 0x1000).to_le_bytes());
    desc.extend_from_slice(&64u32.to_le_bytes());
    desc.extend_from_slice(&2u16.to_le_bytes()); // WRITE
    desc.extend_from_slice(&0u16.to_le_bytes());
    ram.write_all_at(&desc, DESC + u64::from(i) * 16).unwrap();
    ram.write_all_at(&i.to_le_bytes(), AVAIL + 4 + u64::from(i) * 2)
        .unwrap();
    ram.write_all_at(&(i + 1).to_le_bytes(), AVAIL + 2).unwrap();
}

fn used_idx(ram: &std::fs::File) -> u16 {
    let mut idx = [0u8; 2];
    ram.read_exact_at(&mut idx, USED + 2).unwrap();
    u16::from_le_bytes(idx)
}

#[test]
fn a_back_end_that_dies_sets_needs_reset_and_a_reset_after_it_comes_back_renegotiates() {
    use xen::virtio::{status, Common, DeviceError, Fault};
    let Some(bin) = backend_binary() else {
        return;
    };
    let dir = scratch("restart");
    let (backend, sock0) = start_backend(&bin, &dir);
    let (ram, mem) = shared_ram(&dir);
    let dev = VhostUserDevice::connect_with(
        &sock0,
        device_id::RNG,
        QueueSizes::FromBackend(64),
        GuestMemoryShare::SharedFile { fd: ram.as_fd() },
        &[(0, RAM)],
        VhostUserOptions::default()
            .with_reconnect_interval(Duration::from_millis(50))
            .with_reply_timeout(Duration::from_secs(2)),
    )
    .expect("connect and negotiate");
    assert_eq!(
        dev.num_queues(),
        1,
        "vhost-device-rng has one queue (and no MQ)"
    );
    let mut c = Common::new(dev, mem).unwrap();

    drive_to_live(&mut c);
    let live = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
    offer(&ram, 0);
    assert_eq!(c.notify(0), Ok(false));
    wait_until("the first buffer used", || used_idx(&ram) == 1);

    // The back end dies: the device needs a reset, and the driver is told once.
    drop(backend);
    let mut told = 0;
    wait_until("the loss noticed", || {
        told += usize::from(c.poll().tell);
        c.fault().is_some()
    });
    assert_eq!(told, 1, "one configuration-change interrupt");
    assert!(matches!(
        c.fault(),
        Some(Fault::Device(DeviceError::BackendLost(_)))
    ));
    assert_eq!(c.status(), live | status::NEEDS_RESET);
    assert!(!c.device().connected());
    assert_eq!(
        <VhostUserDevice as VirtioDevice<Mem>>::backend_retry(c.device()),
        Some(Duration::from_millis(50))
    );
    // A buffer offered while it is gone waits.
    offer(&ram, 1);
    assert_eq!(c.notify(0), Ok(false));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(used_idx(&ram), 1);
    assert!(
        !c.poll().tell,
        "the socket is gone: nothing to reconnect to"
    );

    // It comes back: the queue resumes from used index 1. vhost-device-rng 0.1.0 is built on
    // vhost-user-backend 0.10, which restarts the used index at 0: it uses the waiting
    // buffer as used index 1 again, which the transport notices and reports.
    let (_backend, _) = start_backend(&bin, &dir);
    let mut told = 0;
    wait_until("the back end reconnected", || {
        told += usize::from(c.poll().tell);
        c.resumes() == 1
    });
    assert!(c.device().connected());
    assert_eq!(c.device().reconnects(), 1);
    wait_until("the broken resume noticed", || {
        told += usize::from(c.poll().tell);
        c.fault().is_some()
    });
    assert_eq!(told, 1);
    assert!(
        matches!(
            c.fault(),
            Some(Fault::BackendResume {
                queue: 0,
                base: 1,
                used: 1,
                avail: 2
            })
        ),
        "{:?}",
        c.fault()
    );
    assert_eq!(c.status(), live | status::NEEDS_RESET);

    // The driver resets the device (as the spec says) and sets it up again with fresh
    // rings: a clean negotiation with the new back end.
    assert!(!c.set_status(0));
    assert_eq!(c.status(), 0);
    ram.write_all_at(&[0; 0x3000], DESC).unwrap();
    drive_to_live(&mut c);
    offer(&ram, 0);
    assert_eq!(c.notify(0), Ok(false));
    wait_until("a buffer used after the reset", || used_idx(&ram) == 1);
    let polled = c.poll();
    assert!(!polled.tell && c.fault().is_none());
    let mut bytes = [0u8; 64];
    ram.read_exact_at(&mut bytes, BUF).unwrap();
    assert!(
        bytes.iter().any(|&b| b != 0),
        "random bytes after the reset"
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Feature negotiation and queue 0 (8 entries at DESC/AVAIL/USED) as Linux does it, up to
/// `DRIVER_OK`.
fn drive_to_live<D: VirtioDevice<Mem>>(c: &mut xen::virtio::Common<D, Mem>) {
    drive_queue_to_live(c, 0);
}

/// [`drive_to_live`] with queue `queue` at DESC/AVAIL/USED instead (the others stay off).
fn drive_queue_to_live<D: VirtioDevice<Mem>>(c: &mut xen::virtio::Common<D, Mem>, queue: u16) {
    use xen::virtio::status;
    c.set_status(status::ACKNOWLEDGE | status::DRIVER);
    c.set_driver_feature_select(1);
    c.set_driver_features_word(1); // VIRTIO_F_VERSION_1
    c.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    c.set_queue_select(queue);
    assert!(!c.set_queue_size(8));
    assert!(!c.set_queue_address(0, false, DESC as u32));
    assert!(!c.set_queue_address(1, false, AVAIL as u32));
    assert!(!c.set_queue_address(2, false, USED as u32));
    assert!(!c.set_queue_ready(1));
    let live = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
    assert!(!c.set_status(live));
    assert_eq!(c.status(), live, "{:?}", c.fault());
}

/// vhost-device-console (built on vhost-user-backend 0.17, which takes the used index from
/// guest RAM on a new connection) is killed with a buffer of the driver's waiting and started
/// again: the front end reconnects, the queue resumes where it was, the waiting buffer is
/// served, and nothing needs a reset. Also: its four queues come from `GET_QUEUE_NUM`.
#[test]
fn a_console_back_end_that_comes_back_continues_the_queue() {
    use std::io::Read;
    use xen::virtio::{status, Common};
    let Some(bin) = binary("VHOST_DEVICE_CONSOLE") else {
        return;
    };
    let dir = scratch("console");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let start = || {
        let b = Backend(
            std::process::Command::new(&bin)
                .arg("--socket-path")
                .arg(dir.join("con.sock"))
                .args(["--backend", "network", "--tcp-port", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start vhost-device-console"),
        );
        let sock0 = dir.join("con.sock0");
        wait_until("the console back end's socket", || sock0.exists());
        (b, sock0)
    };
    let (backend, sock0) = start();
    let (ram, mem) = shared_ram(&dir);
    let dev = VhostUserDevice::connect_with(
        &sock0,
        device_id::CONSOLE,
        QueueSizes::FromBackend(64),
        GuestMemoryShare::SharedFile { fd: ram.as_fd() },
        &[(0, RAM)],
        VhostUserOptions::default().with_reconnect_interval(Duration::from_millis(50)),
    )
    .expect("connect and negotiate");
    assert_eq!(dev.num_queues(), 4, "rx, tx, control rx, control tx");
    let mut c = Common::new(dev, mem).unwrap();
    // Queue 1: port 0's transmit queue; the driver's buffers are readable.
    drive_queue_to_live(&mut c, 1);
    let live = c.status();
    let send = |i: u16, text: &[u8]| {
        let buf = BUF + u64::from(i) * 0x1000;
        ram.write_all_at(text, buf).unwrap();
        let mut desc = Vec::new();
        desc.extend_from_slice(&buf.to_le_bytes());
        desc.extend_from_slice(&(text.len() as u32).to_le_bytes());
        desc.extend_from_slice(&0u16.to_le_bytes()); // readable
        desc.extend_from_slice(&0u16.to_le_bytes());
        ram.write_all_at(&desc, DESC + u64::from(i) * 16).unwrap();
        ram.write_all_at(&i.to_le_bytes(), AVAIL + 4 + u64::from(i) * 2)
            .unwrap();
        ram.write_all_at(&(i + 1).to_le_bytes(), AVAIL + 2).unwrap();
    };
    send(0, b"first\n");
    assert_eq!(c.notify(1), Ok(false));
    wait_until("the first buffer used", || used_idx(&ram) == 1);

    drop(backend);
    wait_until("the loss noticed", || {
        c.poll();
        c.fault().is_some()
    });
    assert_eq!(c.status(), live | status::NEEDS_RESET);
    send(1, b"second\n");
    assert_eq!(c.notify(1), Ok(false));

    let (_backend, _) = start();
    wait_until("the back end reconnected", || {
        c.poll();
        c.resumes() == 1
    });
    wait_until("the waiting buffer used", || used_idx(&ram) == 2);
    let mut tell = false;
    for _ in 0..20 {
        tell |= c.poll().tell;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!tell && c.fault().is_none(), "{:?}", c.fault());
    assert_eq!(c.status(), live, "no reset needed");
    let mut elem = [0u8; 8];
    ram.read_exact_at(&mut elem, USED + 4 + 8).unwrap();
    assert_eq!(
        u32::from_le_bytes(elem[..4].try_into().unwrap()),
        1,
        "used ring entry 1 is descriptor 1"
    );
    // The new back end holds the waiting buffer's bytes for its TCP side.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = [0u8; 7];
    tcp.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"second\n");
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

/// vhost-device-scsi 0.1.0 panics on SET_CONFIG; Linux's virtio-scsi driver writes back the
/// sense and CDB sizes the device already has. Such a write is not sent; the queue count and
/// the configuration come from the back end.
#[test]
fn an_unchanged_configuration_write_is_not_sent() {
    let Some(bin) = binary("VHOST_DEVICE_SCSI") else {
        return;
    };
    let dir = scratch("scsi");
    let img = dir.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let sock = dir.join("scsi.sock");
    let _backend = Backend(
        std::process::Command::new(&bin)
            .arg("--socket-path")
            .arg(&sock)
            .arg(&img)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start vhost-device-scsi"),
    );
    wait_until("the scsi back end's socket", || sock.exists());
    let ram = tempfile_in(&dir);
    ram.set_len(RAM).unwrap();
    let mut dev = VhostUserDevice::connect_with(
        &sock,
        device_id::SCSI,
        QueueSizes::FromBackend(64),
        GuestMemoryShare::SharedFile { fd: ram.as_fd() },
        &[(0, RAM)],
        VhostUserOptions::default(),
    )
    .expect("connect and negotiate");
    assert_eq!(dev.num_queues(), 3, "control, event, one request queue");
    // virtio_scsi_config: sense_size at 20, cdb_size at 24.
    let mut sizes = [0u8; 8];
    <VhostUserDevice as VirtioDevice<Mem>>::read_config(&dev, 20, &mut sizes);
    assert_eq!(sizes, [96, 0, 0, 0, 32, 0, 0, 0]);
    <VhostUserDevice as VirtioDevice<Mem>>::write_config(&mut dev, 20, &96u32.to_le_bytes());
    <VhostUserDevice as VirtioDevice<Mem>>::write_config(&mut dev, 24, &32u32.to_le_bytes());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        <VhostUserDevice as VirtioDevice<Mem>>::poll_backend(&mut dev),
        None,
        "the back end is still there"
    );
    assert!(dev.connected());
    let mut again = [0u8; 8];
    <VhostUserDevice as VirtioDevice<Mem>>::read_config(&dev, 20, &mut again);
    assert_eq!(again, sizes);
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connect (as an rng) to a fake back end that `play`s the other side of the socket, with
/// reply timeout `timeout`; the result and how long it took.
fn against_fake(
    name: &str,
    timeout: Duration,
    play: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
) -> (Result<VhostUserDevice, xen::Error>, Duration) {
    let dir = scratch(name);
    let sock = dir.join("fake.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fake = std::thread::spawn(move || play(listener.accept().unwrap().0));
    let ram = tempfile_in(&dir);
    ram.set_len(RAM).unwrap();
    let t = Instant::now();
    let r = VhostUserDevice::connect_with(
        &sock,
        device_id::RNG,
        QueueSizes::Each(&[64]),
        GuestMemoryShare::SharedFile { fd: ram.as_fd() },
        &[(0, RAM)],
        VhostUserOptions::default().with_reply_timeout(timeout),
    );
    let took = t.elapsed();
    fake.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (r, took)
}

/// A back end that accepts and then never answers must not stall the front end: the
/// handshake fails after the reply timeout.
#[test]
fn a_back_end_that_never_answers_is_given_up_on() {
    let (r, took) = against_fake("silent", Duration::from_millis(300), |conn| {
        std::thread::sleep(Duration::from_millis(1500));
        drop(conn);
    });
    assert!(r.is_err(), "a silent back end is refused");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A back end that answers GET_FEATURES with garbage is refused, not trusted.
#[test]
fn a_malformed_reply_is_refused() {
    use std::io::{Read, Write};
    let (r, _) = against_fake("garbage", Duration::from_secs(2), |mut conn| {
        // SET_OWNER (12-byte header), then GET_FEATURES (12 bytes).
        let mut req = [0u8; 24];
        conn.read_exact(&mut req).unwrap();
        // A "reply" for another request (code 5, SET_MEM_TABLE), flagged as a reply, with
        // a payload size that does not match.
        let mut reply = Vec::new();
        reply.extend_from_slice(&5u32.to_le_bytes());
        reply.extend_from_slice(&(0x1u32 | 0x4).to_le_bytes());
        reply.extend_from_slice(&3u32.to_le_bytes());
        reply.extend_from_slice(&[0xff; 3]);
        let _ = conn.write_all(&reply);
        std::thread::sleep(Duration::from_millis(500));
    });
    assert!(r.is_err(), "a malformed reply is refused");
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

//! Guest RAM mapped with `xen::memory::GuestRam` on the simulator, driven by rust-vmm's
//! `virtio-queue` through the `vm-memory` traits: the test lays out a split virtqueue in the
//! simulated guest's RAM as a driver would, the device pops the chain, reads the request,
//! writes the answer (across a page boundary) and returns it on the used ring. An unpopulated
//! page is reported per page and left unmapped: a descriptor pointing into it is an error, not
//! a fault.
#![cfg(all(feature = "sim", feature = "vm-memory"))]

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory};
use xen::memory::{GuestRam, PageError};
use xen::sim::{Sim, GUEST_RAM};
use xen::{DomId, Error, Gfn, GrantRef};

const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const SIZE: u16 = 8;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// The driver's side: descriptor `i`.
fn put_desc(sim: &Sim, dom: DomId, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut d = Vec::new();
    d.extend_from_slice(&addr.to_le_bytes());
    d.extend_from_slice(&len.to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    d.extend_from_slice(&next.to_le_bytes());
    sim.guest_ram_write(dom, DESC + 16 * u64::from(i), &d);
}

/// Offer chain `head` as available entry `idx`.
fn offer(sim: &Sim, dom: DomId, idx: u16, head: u16) {
    sim.guest_ram_write(
        dom,
        AVAIL + 4 + 2 * u64::from(idx % SIZE),
        &head.to_le_bytes(),
    );
    sim.guest_ram_write(dom, AVAIL + 2, &(idx + 1).to_le_bytes());
}

fn queue<M: GuestMemory>(mem: &M) -> Queue {
    let mut q = Queue::new(SIZE).unwrap();
    q.set_size(SIZE);
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_ready(true);
    assert!(q.is_valid(mem), "queue layout rejected");
    q
}

#[test]
fn virtio_queue_runs_over_mapped_guest_ram() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let ram = GuestRam::map(&sim, dom, &[(0, GUEST_RAM as u64)]).unwrap();
    assert_eq!(ram.failed_pages(), []);
    assert_eq!(ram.regions().len(), 1);
    let mem = ram.vm_memory().unwrap();
    let mut q = queue(&mem);

    // Request: 16 readable bytes; response: 32 writable bytes straddling 0x21000.
    sim.guest_ram_write(dom, 0x10000, b"hello, virtio!!!");
    put_desc(&sim, dom, 0, 0x10000, 16, F_NEXT, 1);
    put_desc(&sim, dom, 1, 0x20ff0, 32, F_WRITE, 0);
    offer(&sim, dom, 0, 0);

    let chain = q.pop_descriptor_chain(&mem).expect("a chain");
    let head = chain.head_index();
    let mut req = Vec::new();
    for d in chain.clone().readable() {
        let mut b = vec![0; d.len() as usize];
        mem.read_slice(&mut b, d.addr()).unwrap();
        req.extend(b);
    }
    assert_eq!(req, b"hello, virtio!!!");
    let answer: Vec<u8> = req
        .iter()
        .map(u8::to_ascii_uppercase)
        .chain(*b"-from-the-device")
        .collect();
    let mut written = 0u32;
    for d in chain.writable() {
        mem.write_slice(&answer[..d.len() as usize], d.addr())
            .unwrap();
        written += d.len();
    }
    q.add_used(&mem, head, written).unwrap();
    assert!(
        q.pop_descriptor_chain(&mem).is_none(),
        "only one chain was offered"
    );

    // The driver sees the used entry and the answer in its RAM.
    let used = sim.guest_ram_read(dom, USED, 12);
    assert_eq!(u16::from_le_bytes([used[2], used[3]]), 1, "used.idx");
    assert_eq!(
        u32::from_le_bytes(used[4..8].try_into().unwrap()),
        0,
        "used id"
    );
    assert_eq!(
        u32::from_le_bytes(used[8..12].try_into().unwrap()),
        32,
        "used len"
    );
    assert_eq!(
        sim.guest_ram_read(dom, 0x20ff0, 32),
        b"HELLO, VIRTIO!!!-from-the-device"
    );
    // The same bytes through GuestRam's own accessors, across the page boundary.
    let mut b = [0u8; 32];
    ram.read(0x20ff0, &mut b).unwrap();
    assert_eq!(&b, b"HELLO, VIRTIO!!!-from-the-device");
}

#[test]
fn an_unpopulated_page_is_reported_and_never_touched() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    sim.unpopulate(dom, Gfn(0x30));
    let ram = GuestRam::map(&sim, dom, &[(0, 0x40000), (0x80000, 0x1000)]).unwrap();
    assert_eq!(
        ram.failed_pages(),
        [PageError {
            gfn: Gfn(0x30),
            errno: 22
        }]
    );
    let r: Vec<_> = ram.regions().iter().map(|r| (r.gpa(), r.len())).collect();
    assert_eq!(r, [(0, 0x30000), (0x31000, 0xf000), (0x80000, 0x1000)]);

    // GuestRam: a read running into the hole fails whole, with the first missing address.
    let mut b = [0xaa; 32];
    let e = ram.read(0x2fff0, &mut b).unwrap_err();
    assert_eq!(
        e,
        Error::BadAddress {
            op: "read guest RAM",
            addr: 0x30000,
            len: 16
        }
    );
    assert_eq!(b, [0xaa; 32], "a failed read wrote part of the buffer");
    assert!(
        ram.write(0x40000, b"x").is_err(),
        "beyond the mapped ranges"
    );
    ram.write(0x80000, b"ok").unwrap();
    assert_eq!(sim.guest_ram_read(dom, 0x80000, 2), b"ok");

    // virtio-queue: a descriptor into the hole gives an error from vm-memory.
    let mem = ram.vm_memory().unwrap();
    let mut q = queue(&mem);
    put_desc(&sim, dom, 0, 0x30100, 64, F_WRITE, 0);
    offer(&sim, dom, 0, 0);
    let chain = q.pop_descriptor_chain(&mem).expect("a chain");
    let d = chain.writable().next().unwrap();
    assert!(mem.write_slice(&[1; 64], d.addr()).is_err());
    assert!(mem.read_obj::<u64>(GuestAddress(0x30ff8)).is_err());
    assert_eq!(mem.read_obj::<u16>(GuestAddress(AVAIL + 2)).unwrap(), 1);
}

#[test]
fn bad_ranges_are_refused() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let bad = |ranges: &[(u64, u64)]| match GuestRam::map(&sim, dom, ranges) {
        Err(Error::InvalidArgument { what, .. }) => what,
        Err(e) => panic!("{ranges:?}: {e}"),
        Ok(_) => panic!("{ranges:?} accepted"),
    };
    assert_eq!(bad(&[(0, 0x2000), (0x1fff, 1)]), "overlapping ranges");
    assert_eq!(bad(&[(0x1000, 0)]), "an empty range");
    assert_eq!(
        bad(&[(u64::MAX - 10, 100)]),
        "a range that wraps around the address space"
    );
    // Beyond the guest's RAM: the platform refuses the mapping.
    assert!(matches!(
        GuestRam::map(&sim, dom, &[(GUEST_RAM as u64, 0x1000)]),
        Err(Error::Os { errno: 22, .. })
    ));
}

#[test]
fn a_mapping_placed_at_grant_dma_addresses() {
    use xen::grant::grant_dma_address;
    use xen::platform::MapGuest;
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    sim.guest_ram_write(dom, 0x10000, b"page zero");
    sim.guest_ram_write(dom, 0x11ffc, b"ABCDEFGH"); // runs from page one into page two
    let (m, errs) = sim.map_guest(dom, Gfn(0x10), 3).unwrap();
    assert_eq!(errs, [0, 0, 0]);
    let f = |g| Gfn::containing(grant_dma_address(GrantRef(g)));
    // Pages 0, 1, 2 of the mapping as grants 7, 8 and 3.
    let ram = GuestRam::from_mapping(dom, m, &[f(7), f(8), f(3)]).unwrap();
    let r: Vec<_> = ram.regions().iter().map(|r| (r.gpa(), r.len())).collect();
    assert_eq!(
        r,
        [
            (grant_dma_address(GrantRef(3)), 0x1000),
            (grant_dma_address(GrantRef(7)), 0x2000)
        ]
    );
    let mem = ram.vm_memory().unwrap();
    let mut b = [0u8; 9];
    mem.read_slice(&mut b, GuestAddress(grant_dma_address(GrantRef(7))))
        .unwrap();
    assert_eq!(&b, b"page zero");
    // Grants 7 and 8 are consecutive in both the mapping and the address space: one region.
    let mut b = [0u8; 4];
    mem.read_slice(
        &mut b,
        GuestAddress(grant_dma_address(GrantRef(7)) + 0x1ffc),
    )
    .unwrap();
    assert_eq!(&b, b"ABCD");
    // Grant 8 ends where grant 9 (not mapped) would start.
    assert!(mem
        .read_slice(
            &mut [0u8; 8],
            GuestAddress(grant_dma_address(GrantRef(8)) + 0xffc)
        )
        .is_err());
    mem.write_slice(
        b"via grant 3",
        GuestAddress(grant_dma_address(GrantRef(3)) + 16),
    )
    .unwrap();
    assert_eq!(sim.guest_ram_read(dom, 0x12010, 11), b"via grant 3");

    let (m, _) = sim.map_guest(dom, Gfn(0x10), 2).unwrap();
    assert!(matches!(
        GuestRam::from_mapping(dom, m, &[f(7), f(7)]),
        Err(Error::InvalidArgument {
            what: "a frame given twice",
            ..
        })
    ));
}

#[test]
fn host_ptr_is_none_past_the_region() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let ram = GuestRam::map(&sim, dom, &[(0, 0x2000)]).unwrap();
    let r = &ram.regions()[0];
    let base = r.host_ptr(0).expect("byte 0");
    assert_eq!(r.host_ptr(0x1fff), Some(base.wrapping_add(0x1fff)));
    // One past the end is a pointer (to no bytes); anything further is refused, in release
    // builds too (no debug assertion to rely on).
    assert_eq!(r.host_ptr(0x2000), Some(base.wrapping_add(0x2000)));
    assert_eq!(r.host_ptr(0x2001), None);
    assert_eq!(r.host_ptr(u64::MAX), None);
}

/// The first byte of the last page of the 64-bit address space.
const LAST_PAGE: u64 = 0xffff_ffff_ffff_f000;

#[test]
fn debug_of_a_region_on_the_last_page() {
    use xen::platform::MapGuest;
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let (m, _) = sim.map_guest(dom, Gfn(0), 1).unwrap();
    let ram = GuestRam::from_mapping(dom, m, &[Gfn(LAST_PAGE >> 12)]).unwrap();
    // `gpa + len` is 2^64 here: Debug shows the last address instead.
    let r = format!("{:?}", ram.regions()[0]);
    assert_eq!(r, "RamRegion(0xfffffffffffff000..=0xffffffffffffffff)");
    let all = format!("{ram:?}");
    assert!(all.contains(&r), "{all}");
}

/// A platform that maps any guest frames as the simulated guest's first pages, so `map` can
/// reach frames far beyond the simulator's RAM (the top of the address space). Records what
/// it was asked for.
struct Relocated<'a> {
    sim: &'a Sim,
    asked: std::cell::Cell<Option<(u64, usize)>>,
}

impl xen::platform::MapGuest for Relocated<'_> {
    type Mapping = xen::sim::SimPages;
    fn map_guest(
        &self,
        domid: DomId,
        gfn: Gfn,
        n: usize,
    ) -> Result<(xen::sim::SimPages, Vec<i32>), Error> {
        self.asked.set(Some((gfn.0, n)));
        self.sim.map_guest(domid, Gfn(0), n)
    }
}

#[test]
fn the_last_page_of_the_address_space_is_guest_ram() {
    use xen::platform::MapGuest;
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    // Both pages end up at guest frames 0 and 1 of the simulator.
    sim.guest_ram_write(dom, 0xff8, b"page0end");
    sim.guest_ram_write(dom, 0x1ff8, b"lastword");
    let platform = Relocated {
        sim: &sim,
        asked: Default::default(),
    };
    // The last two pages, by `map` (a range ending on the very last byte) and by
    // `from_mapping`: the same memory, the same regions.
    let mapped = GuestRam::map(&platform, dom, &[(LAST_PAGE - 0x1000, 0x2000)]).unwrap();
    assert_eq!(platform.asked.get(), Some(((LAST_PAGE >> 12) - 1, 2)));
    let (m, _) = sim.map_guest(dom, Gfn(0), 2).unwrap();
    let placed =
        GuestRam::from_mapping(dom, m, &[Gfn((LAST_PAGE >> 12) - 1), Gfn(LAST_PAGE >> 12)])
            .unwrap();
    for ram in [&mapped, &placed] {
        let r: Vec<_> = ram.regions().iter().map(|r| (r.gpa(), r.len())).collect();
        assert_eq!(r, [(LAST_PAGE - 0x1000, 0x2000)], "{ram:?}");
        // The last 8 bytes, and 16 across the page boundary.
        let mut b = [0u8; 8];
        ram.read(u64::MAX - 7, &mut b).unwrap();
        assert_eq!(&b, b"lastword");
        let mut b = [0u8; 16];
        ram.read(LAST_PAGE - 8, &mut b).unwrap();
        assert_eq!(&b[..8], b"page0end");
        // Running past the end of the address space: refused whole, nothing touched.
        let mut b = [0xaa; 16];
        assert_eq!(
            ram.read(u64::MAX - 7, &mut b),
            Err(Error::BadAddress {
                op: "read guest RAM",
                addr: u64::MAX - 7,
                len: 16
            })
        );
        assert_eq!(b, [0xaa; 16], "a failed read wrote part of the buffer");
        assert!(matches!(
            ram.write(u64::MAX, b"!!"),
            Err(Error::BadAddress { .. })
        ));
        assert_eq!(sim.guest_ram_read(dom, 0x1fff, 1), b"d");
        // The very last byte.
        ram.write(u64::MAX, b"D").unwrap();
        assert_eq!(sim.guest_ram_read(dom, 0x1ff8, 8), b"lastworD");
        ram.write(u64::MAX, b"d").unwrap();
        // vm-memory over the same regions.
        let mem = ram.vm_memory().unwrap();
        let v: u64 = mem.read_obj(GuestAddress(u64::MAX - 7)).unwrap();
        assert_eq!(&v.to_le_bytes(), b"lastword");
        assert!(mem.read_obj::<u128>(GuestAddress(u64::MAX - 7)).is_err());
    }

    // A range past the end of the address space is refused by both, as an invalid argument.
    for past in [(LAST_PAGE, 0x1001), (u64::MAX, 2)] {
        assert!(
            matches!(
                GuestRam::map(&platform, dom, &[past]),
                Err(Error::InvalidArgument { .. })
            ),
            "{past:x?}"
        );
    }
    let (m, _) = sim.map_guest(dom, Gfn(0), 1).unwrap();
    assert!(matches!(
        GuestRam::from_mapping(dom, m, &[Gfn((LAST_PAGE >> 12) + 1)]),
        Err(Error::InvalidArgument { .. })
    ));
}

/// `GuestRam` reads and writes the same bytes from two threads at once, as a guest and a device
/// model do: every access is atomic, so this is free of data races in Rust's memory model (what
/// Miri or ThreadSanitizer check here; with volatile accesses they report a race). A read may
/// mix bytes of two writes, never see anything else.
#[test]
fn concurrent_reads_and_writes_see_only_written_bytes() {
    let sim = Sim::new();
    let dom = sim.create_guest(1);
    let ram = GuestRam::map(&sim, dom, &[(0, 0x2000)]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..500 {
                let v = if i % 2 == 0 { 0x5a } else { 0xa5 };
                ram.write(0xff0, &[v; 32]).unwrap();
            }
        });
        for _ in 0..500 {
            let mut b = [1u8; 32];
            ram.read(0xff0, &mut b).unwrap();
            assert!(b.iter().all(|&x| matches!(x, 0 | 0x5a | 0xa5)), "{b:x?}");
        }
    });
}

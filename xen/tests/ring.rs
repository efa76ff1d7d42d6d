//! `xen::ring`: both ends of an `io/ring.h` ring in one process over an ordinary page-aligned
//! buffer (layout, sizes, round trips, the notification rules), and a hostile front end that
//! writes random indices and contents, from a seeded generator and from a concurrent thread:
//! errors, never a panic, and never more than the ring's size of requests taken unanswered.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

use xen::ring::{entry_size, ring_size, BackRing, Error, FrontRing, HEADER_LEN};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// A request as blkif-like protocols have them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Req {
    id: u64,
    op: u8,
    _pad: [u8; 3],
    value: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Rsp {
    id: u64,
    status: i16,
    _pad: [u8; 6],
}

const PAGE: usize = 4096;

#[repr(C, align(4096))]
struct Pages<const N: usize>([u8; N]);

/// `N` bytes of page-aligned memory reached only by raw pointer (so the rings' atomic
/// accesses are the only ones), freed on drop.
struct Buf<const N: usize>(*mut Pages<N>);

impl<const N: usize> Buf<N> {
    fn new() -> Self {
        Buf(Box::into_raw(Box::new(Pages([0; N]))))
    }
    fn ptr(&self) -> *mut u8 {
        self.0.cast()
    }
    /// Word `off` of the page, atomically.
    fn word(&self, off: usize) -> &AtomicU32 {
        assert!(off + 4 <= N && off % 4 == 0);
        // SAFETY: an aligned u32 inside the live allocation, only ever reached atomically.
        unsafe { AtomicU32::from_ptr(self.ptr().add(off).cast()) }
    }
    fn byte(&self, off: usize) -> &AtomicU8 {
        assert!(off < N);
        // SAFETY: as in `word`.
        unsafe { AtomicU8::from_ptr(self.ptr().add(off)) }
    }
    /// Both ends of a ring over the buffer.
    fn rings(&self) -> (FrontRing<Req, Rsp>, BackRing<Req, Rsp>) {
        // SAFETY: the buffer is page-aligned, lives as long as the test's rings (each test
        // declares its buffer before its rings, so they are dropped first), and is reached
        // by atomic accesses only.
        unsafe {
            (
                FrontRing::from_raw(self.ptr(), N).unwrap(),
                BackRing::from_raw(self.ptr(), N).unwrap(),
            )
        }
    }
    /// A back end over the buffer whose header the test writes itself.
    fn back(&self) -> BackRing<Req, Rsp> {
        // SAFETY: as in `rings`.
        unsafe { BackRing::from_raw(self.ptr(), N).unwrap() }
    }
}

impl<const N: usize> Drop for Buf<N> {
    fn drop(&mut self) {
        // SAFETY: made by Box::into_raw in `new`; no ring outlives the buffer in these tests.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

// SAFETY: the buffer is only reached atomically, from any thread.
unsafe impl<const N: usize> Send for Buf<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Sync for Buf<N> {}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn sizes_are_io_ring_h_s() {
    assert_eq!(entry_size::<Req, Rsp>(), 16);
    assert_eq!(ring_size::<Req, Rsp>(PAGE), 128);
    // blkif (112/16 bytes): 32 slots in one page, 64 in two.
    assert_eq!(ring_size::<[u64; 14], [u64; 2]>(PAGE), 32);
    assert_eq!(ring_size::<[u64; 14], [u64; 2]>(2 * PAGE), 64);
    // netif rx (8/8): 256; tx (12/4): 256.
    assert_eq!(ring_size::<u64, u64>(PAGE), 256);
    assert_eq!(ring_size::<[u32; 3], u32>(PAGE), 256);
    assert_eq!(ring_size::<u8, u8>(PAGE), 2048);
    // The union is as large as the larger type, aligned as the more aligned one.
    assert_eq!(entry_size::<[u8; 9], u64>(), 16);
    assert_eq!(ring_size::<(), ()>(PAGE), 0);
    assert_eq!(ring_size::<Req, Rsp>(HEADER_LEN + 15), 0);
    assert_eq!(ring_size::<Req, Rsp>(HEADER_LEN + 16), 1);
}

#[test]
fn memory_that_cannot_hold_a_ring_is_refused() {
    let buf = Buf::<PAGE>::new();
    // SAFETY (all three): the buffer is valid and page-aligned where it is used; the calls
    // are refused before any access.
    let e = unsafe { BackRing::<Req, Rsp>::from_raw(buf.ptr().add(8), PAGE - 8) }.unwrap_err();
    assert!(matches!(e, Error::Misaligned { .. }), "{e}");
    let e = unsafe { BackRing::<Req, Rsp>::from_raw(buf.ptr(), HEADER_LEN + 8) }.unwrap_err();
    assert_eq!(
        e.to_string(),
        "attach the back end of a ring: 72 bytes cannot hold a ring of 16-byte entries: not even \
         one slot after the 64-byte header"
    );
    let e = unsafe { FrontRing::<(), ()>::from_raw(buf.ptr(), PAGE) }.unwrap_err();
    assert!(matches!(e, Error::Layout { entry: 0, .. }), "{e}");
    let e: xen::Error = e.into();
    assert!(matches!(e, xen::Error::InvalidArgument { .. }), "{e}");
}

#[test]
fn the_shared_header_and_slots_are_laid_out_as_in_c() {
    let buf = Buf::<PAGE>::new();
    for i in 0..PAGE {
        buf.byte(i).store(0xaa, Ordering::Relaxed);
    }
    let (mut front, _back) = buf.rings();
    // SHARED_RING_INIT: req_prod 0, req_event 1, rsp_prod 0, rsp_event 1, padding zero.
    let words: Vec<u32> = (0..4)
        .map(|i| buf.word(i * 4).load(Ordering::Relaxed))
        .collect();
    assert_eq!(words, [0, 1, 0, 1]);
    assert!((16..HEADER_LEN).all(|i| buf.byte(i).load(Ordering::Relaxed) == 0));
    for id in 0..3 {
        front
            .push_request(Req {
                id: 0x1111 * (id + 1),
                op: 7,
                _pad: [0; 3],
                value: 9,
            })
            .unwrap();
    }
    // Not published yet.
    assert_eq!(buf.word(0).load(Ordering::Relaxed), 0);
    front.push_requests();
    assert_eq!(buf.word(0).load(Ordering::Relaxed), 3);
    // Request 2 in slot 2, at 64 + 2 * 16, little-endian as C has it on this machine.
    let at = HEADER_LEN + 2 * 16;
    let bytes: Vec<u8> = (at..at + 16)
        .map(|i| buf.byte(i).load(Ordering::Relaxed))
        .collect();
    let want = Req {
        id: 0x3333,
        op: 7,
        _pad: [0; 3],
        value: 9,
    };
    assert_eq!(bytes, want.as_bytes());
}

#[test]
fn requests_and_responses_go_round_many_times() {
    let buf = Buf::<PAGE>::new();
    let (mut front, mut back) = buf.rings();
    let size = back.size();
    let mut next_id = 0u64;
    let mut answered = 0u64;
    for round in 0..100u64 {
        // A batch of 1..=size requests.
        let n = 1 + (round * 37) % u64::from(size);
        for _ in 0..n {
            front
                .push_request(Req {
                    id: next_id,
                    op: 1,
                    _pad: [0; 3],
                    value: next_id as u32,
                })
                .unwrap();
            next_id += 1;
        }
        if n == u64::from(size) {
            assert!(matches!(
                front.push_request(Req::new_zeroed()),
                Err(Error::Full { size: 128, .. })
            ));
        }
        front.push_requests();
        let mut taken = 0;
        while let Some(r) = back.next_request().unwrap() {
            back.push_response(Rsp {
                id: r.id,
                status: (r.value % 100) as i16,
                _pad: [0; 6],
            })
            .unwrap();
            taken += 1;
        }
        assert_eq!(taken, n);
        back.push_responses();
        assert!(!back.final_check_for_requests().unwrap());
        while let Some(r) = front.next_response().unwrap() {
            assert_eq!(r.id, answered);
            assert_eq!(r.status, (answered % 100) as i16);
            answered += 1;
        }
    }
    assert_eq!(answered, next_id);
    assert!(!front.is_broken() && !back.is_broken());
}

#[test]
fn notifications_follow_the_event_indices() {
    let buf = Buf::<PAGE>::new();
    let (mut front, mut back) = buf.rings();
    let req = Req::new_zeroed();
    let rsp = Rsp::new_zeroed();
    // req_event is 1: the first request wants a notification, the next ones not until the
    // back end re-arms.
    front.push_request(req).unwrap();
    assert!(front.push_requests());
    front.push_request(req).unwrap();
    assert!(!front.push_requests(), "the back end has not re-armed");
    assert!(!front.push_requests(), "nothing new");
    assert_eq!(back.unconsumed_requests().unwrap(), 2);
    assert!(back.final_check_for_requests().unwrap(), "work waiting");
    while back.next_request().unwrap().is_some() {}
    assert!(!back.final_check_for_requests().unwrap());
    assert_eq!(
        buf.word(4).load(Ordering::Relaxed),
        3,
        "req_event = req_cons + 1"
    );
    front.push_request(req).unwrap();
    assert!(front.push_requests(), "re-armed");
    // Responses: rsp_event is 1.
    back.push_response(rsp).unwrap();
    back.push_response(rsp).unwrap();
    assert!(back.push_responses());
    assert_eq!(back.outstanding(), 0);
    // A request published after the final check's re-arm is seen by its second look.
    assert!(back.final_check_for_requests().unwrap());
    back.next_request().unwrap().unwrap();
    back.push_response(rsp).unwrap();
    assert!(!back.push_responses(), "the front end has not re-armed");
    assert_eq!(front.unconsumed_responses().unwrap(), 3);
    while front.next_response().unwrap().is_some() {}
    assert!(!front.final_check_for_responses().unwrap());
    assert_eq!(
        buf.word(12).load(Ordering::Relaxed),
        4,
        "rsp_event = rsp_cons + 1"
    );
}

#[test]
fn a_back_end_never_holds_more_than_the_ring_unanswered() {
    let buf = Buf::<PAGE>::new();
    let mut back = buf.back();
    let size = back.size();
    // As many requests as slots: all taken; then nothing until answered.
    buf.word(0).store(size, Ordering::Release);
    for _ in 0..size {
        back.next_request().unwrap().unwrap();
    }
    assert_eq!(back.next_request().unwrap(), None);
    assert_eq!(back.outstanding(), size);
    // A response frees a slot; the front end may then publish one more.
    back.push_response(Rsp::new_zeroed()).unwrap();
    assert_eq!(back.next_request().unwrap(), None);
    buf.word(0).store(size + 1, Ordering::Release);
    back.next_request().unwrap().unwrap();
    assert_eq!(back.next_request().unwrap(), None);
    // A response without a request is refused (it would overwrite an unread request).
    for _ in 0..size {
        back.push_response(Rsp::new_zeroed()).unwrap();
    }
    assert!(matches!(
        back.push_response(Rsp::new_zeroed()),
        Err(Error::NoRequest { .. })
    ));
}

#[test]
fn an_impossible_req_prod_breaks_the_ring() {
    let buf = Buf::<PAGE>::new();
    // More than a ring ahead of the responses.
    let mut back = buf.back();
    buf.word(0).store(back.size() + 1, Ordering::Release);
    let e = back.next_request().unwrap_err();
    assert_eq!(
        e.to_string(),
        "take a request: the other end's req_prod is 129, outside 0..=128 for a ring of 128 \
         slots; the ring is broken"
    );
    assert!(back.is_broken());
    // Even if the front end puts it right, nothing more is taken.
    buf.word(0).store(1, Ordering::Release);
    assert!(matches!(back.next_request(), Err(Error::Broken { .. })));
    assert!(matches!(
        back.final_check_for_requests(),
        Err(Error::Broken { .. })
    ));
    let e: xen::Error = Error::Broken { op: "x" }.into();
    assert!(matches!(e, xen::Error::Protocol { .. }));

    // Behind what was already taken.
    buf.word(0).store(0, Ordering::Release);
    let mut back = buf.back();
    buf.word(0).store(5, Ordering::Release);
    for _ in 0..5 {
        back.next_request().unwrap().unwrap();
    }
    buf.word(0).store(3, Ordering::Release);
    assert!(matches!(
        back.unconsumed_requests(),
        Err(Error::BadIndex {
            index: "req_prod",
            value: 3,
            low: 5,
            ..
        })
    ));

    // A back end answering requests never published breaks the front end's ring.
    let buf = Buf::<PAGE>::new();
    let (mut front, _back) = buf.rings();
    front.push_request(Req::new_zeroed()).unwrap();
    front.push_requests();
    buf.word(8).store(2, Ordering::Release);
    assert!(matches!(
        front.next_response(),
        Err(Error::BadIndex {
            index: "rsp_prod",
            value: 2,
            high: 1,
            ..
        })
    ));
    assert!(front.is_broken());
}

/// Serve what is there, as a back end's loop does, at most `batch` requests, answering each
/// with probability `answer`/4; how many requests were taken.
fn serve(
    back: &mut BackRing<Req, Rsp>,
    rng: &mut Rng,
    answer: u64,
    batch: u32,
) -> Result<u32, Error> {
    let mut taken = 0;
    while taken < batch {
        let Some(r) = back.next_request()? else { break };
        taken += 1;
        assert!(back.outstanding() <= back.size());
        if rng.below(4) < answer {
            back.push_response(Rsp {
                id: r.id,
                status: 0,
                _pad: [0; 6],
            })?;
        }
    }
    back.push_responses();
    back.final_check_for_requests()?;
    Ok(taken)
}

#[test]
fn a_hostile_front_end_from_a_seeded_generator() {
    const N: usize = 2 * PAGE;
    let buf = Buf::<N>::new();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut broken, mut taken_total, mut calls) = (0u64, 0u64, 0u64);
    let mut back = buf.back();
    // What the back end has taken and answered since it was made, to write plausible
    // producer indices too.
    let (mut taken, mut answered) = (0u32, 0u32);
    for _ in 0..20_000 {
        // The front end writes something: an index (random, or plausible), or slot bytes.
        match rng.below(6) {
            0 => {
                let off = 4 * rng.below(4) as usize;
                buf.word(off).store(rng.next() as u32, Ordering::Release);
            }
            1..=2 => {
                let ahead = rng.below(u64::from(back.size()) + 2) as u32;
                buf.word(0)
                    .store(answered.wrapping_add(ahead), Ordering::Release);
            }
            _ => {
                for _ in 0..rng.below(64) {
                    let at = rng.below(N as u64) as usize;
                    buf.byte(at).store(rng.next() as u8, Ordering::Relaxed);
                }
            }
        }
        calls += 1;
        let before = back.outstanding();
        // No batch limit: the front end does not write while the back end serves, so the
        // ring's size bounds the loop: never more than the slots free at the start.
        match serve(&mut back, &mut rng, 2, u32::MAX) {
            Ok(n) => {
                assert!(
                    n <= back.size() - before,
                    "{n} taken with {before} outstanding"
                );
                taken_total += u64::from(n);
                taken = taken.wrapping_add(n);
                answered = taken.wrapping_sub(back.outstanding());
            }
            Err(Error::BadIndex { .. }) => {
                assert!(back.is_broken());
                broken += 1;
                // Reconnect: a new back end (the front end's header as it is).
                back = buf.back();
                (taken, answered) = (0, 0);
            }
            Err(e) => panic!("{e}"),
        }
    }
    println!("{calls} rounds: {taken_total} requests taken, {broken} times broken");
    assert!(broken > 100, "random indices break the ring");
    assert!(taken_total > 10_000, "plausible ones are served");
}

#[test]
fn a_hostile_front_end_writing_concurrently() {
    let buf = Arc::new(Buf::<PAGE>::new());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (buf, stop) = (Arc::clone(&buf), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Rng(42);
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match rng.below(1024) {
                    // req_prod as an honest front end moves it (forward, at most a ring ahead
                    // of the published responses); from a broken ring's values, anywhere.
                    0..=639 => {
                        let cur = buf.word(0).load(Ordering::Relaxed);
                        let rsp_prod = buf.word(8).load(Ordering::Acquire);
                        let room = rsp_prod.wrapping_add(128).wrapping_sub(cur);
                        let v = if room <= 128 {
                            cur.wrapping_add(rng.below(u64::from(room) + 1) as u32)
                        } else {
                            rsp_prod.wrapping_add(rng.below(130) as u32)
                        };
                        buf.word(0).store(v, Ordering::Release);
                    }
                    // Any value in the front end's producer or in either event index, now
                    // and then (the back end's own `rsp_prod` is scribbled on by the seeded
                    // test).
                    640 => {
                        let at = [0, 4, 12][rng.below(3) as usize];
                        buf.word(at).store(rng.next() as u32, Ordering::Release);
                    }
                    // Slot contents.
                    _ => {
                        let at =
                            HEADER_LEN + 4 * rng.below((PAGE - HEADER_LEN) as u64 / 4) as usize;
                        buf.word(at).store(rng.next() as u32, Ordering::Relaxed);
                    }
                }
                writes += 1;
            }
            writes
        })
    };
    let mut rng = Rng(7);
    let mut back = buf.back();
    let (mut rounds, mut broken, mut taken) = (0u64, 0u64, 0u64);
    let end = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::time::Instant::now() < end {
        rounds += 1;
        // A front end that keeps publishing keeps a back end busy, as an honest busy one
        // does: a back end bounds its batch (each call is bounded work).
        let batch = 4 * back.size();
        match serve(&mut back, &mut rng, 4, batch) {
            Ok(n) => taken += u64::from(n),
            Err(Error::BadIndex { .. }) => {
                broken += 1;
                // Reconnect over a fresh ring, as the front end would set it up again.
                for at in [0, 8] {
                    buf.word(at).store(0, Ordering::Release);
                }
                back = buf.back();
            }
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    println!("{rounds} rounds against {writes} writes: {taken} taken, {broken} times broken");
    assert!(rounds > 100 && writes > 100);
}

//! Fuzzing the xenstore reply path: random and mutated daemon output fed to every parser and to
//! the client's operations. Nothing may panic or hang (the input is finite, so every operation
//! must end in a value or an error), and what an operation accepts must satisfy the protocol.
//! The counts are printed (`cargo test --test xenstore_fuzz -- --nocapture`).
#![cfg(all(feature = "std", unix))]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use xen::xenstore::wire::{self, Header, XsdSockmsgType};
use xen::xenstore::{Client, Error};

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
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A connection whose daemon side is a fixed byte string; writes are discarded.
struct Canned {
    rx: Vec<u8>,
    at: usize,
    /// Largest chunk per read (1 exercises reassembly).
    chunk: usize,
    fd: File,
}
impl Read for Canned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.rx.len() - self.at);
        buf[..n].copy_from_slice(&self.rx[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
impl Write for Canned {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl AsFd for Canned {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A payload that is often almost right: strings from a small alphabet, NULs, digits,
/// permission letters, OK, error names, or plain noise.
fn payload(r: &mut Rng) -> Vec<u8> {
    const WORDS: [&[u8]; 14] = [
        b"OK",
        b"ENOENT",
        b"EAGAIN",
        b"r0",
        b"b65535",
        b"n70000",
        b"12",
        b"0",
        b"/a/b",
        b"@releaseDomain",
        b"a/rel",
        b"tok",
        b"\xff\xfe",
        b"",
    ];
    match r.below(4) {
        0 => {
            let n = r.below(64) as usize;
            r.bytes(n)
        }
        _ => {
            let mut p = Vec::new();
            for _ in 0..r.below(5) {
                p.extend_from_slice(WORDS[r.below(WORDS.len() as u64) as usize]);
                if r.below(5) != 0 {
                    p.push(0);
                }
            }
            p
        }
    }
}

/// A daemon stream: a few messages, each with a plausible or random header (often of type
/// `reply_ty`).
fn stream(r: &mut Rng, reply_ty: u32) -> Vec<u8> {
    let mut s = Vec::new();
    for _ in 0..1 + r.below(4) {
        let p = payload(r);
        let ty = match r.below(5) {
            0 => r.below(32) as u32,
            4 => reply_ty,
            1 => 15, // watch event
            2 => 16, // error
            _ => 1 + r.below(14) as u32,
        };
        let len = match r.below(8) {
            0 => r.next() as u32,
            1 => p.len() as u32 + r.below(8) as u32,
            _ => p.len() as u32,
        };
        // Mostly right: replies carry the request's ids (1, outside a transaction), watch
        // events none.
        let req_id = match r.below(4) {
            0 => r.next() as u32,
            _ if ty == 15 => 0,
            _ => 1,
        };
        let tx_id = if r.below(8) == 0 { r.next() as u32 } else { 0 };
        s.extend_from_slice(
            &Header {
                ty: XsdSockmsgType(ty),
                req_id,
                tx_id,
                len,
            }
            .encode(),
        );
        s.extend_from_slice(&p);
        if r.below(8) == 0 {
            let n = r.below(16) as usize;
            s.extend(r.bytes(n));
        }
    }
    if r.below(8) == 0 {
        let cut = r.below(s.len() as u64 + 1) as usize;
        s.truncate(cut);
    }
    s
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::Daemon { .. } => "daemon error",
        Error::Io { .. } => "io",
        Error::Malformed { .. } => "malformed",
        Error::Invalid { .. } => "invalid",
        Error::Broken { .. } => "broken",
        Error::Closed { .. } => "closed",
        Error::Conflict { .. } => "conflict",
    }
}

#[test]
fn random_daemon_output_never_panics_and_accepted_replies_obey_the_protocol() {
    const CASES: u64 = 200_000;
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..CASES {
        let op = r.below(8);
        // The type of the reply the operation waits for (half the streams lean towards it).
        const REPLY: [u32; 8] = [2, 11, 1, 3, 6, 10, 15, 15];
        let rx = stream(&mut r, REPLY[op as usize]);
        let chunk = if r.below(4) == 0 {
            1 + r.below(7) as usize
        } else {
            1 << 16
        };
        let mut xs = Client::new(Canned {
            rx,
            at: 0,
            chunk,
            fd: File::open("/dev/null").unwrap(),
        });
        let res: Result<(), Error> = match op {
            0 => xs.read("/a").map(|_| ()),
            1 => xs.write("/a", b"v"),
            2 => xs.directory("/a").map(|d| {
                assert!(
                    d.iter().all(|n| !n.is_empty() && !n.contains('\0')),
                    "{d:?}"
                );
            }),
            3 => xs.get_perms("/a").map(|p| assert!(!p.is_empty())),
            4 => xs.transaction_start().map(|t| assert_ne!(t.id(), 0)),
            5 => xs
                .get_domain_path(xen::DomId(1))
                .map(|p| assert!(!p.contains('\0'))),
            6 => xs.next_event().map(|e| {
                assert!(!e.path.contains('\0') && !e.token.contains('\0'));
                assert!(e.path.starts_with('/') || e.path.starts_with('@'), "{e:?}");
                assert!(!e.token.is_empty(), "{e:?}");
            }),
            _ => xs.dispatch().map(|_| ()),
        };
        let key = match &res {
            Ok(()) => format!("op {op}: ok"),
            Err(e) => format!("op {op}: {}", kind(e)),
        };
        *outcomes.entry(key).or_default() += 1;
        // After a malformed message the client refuses to go on.
        if matches!(res, Err(Error::Malformed { .. })) {
            assert!(matches!(xs.read("/a"), Err(Error::Broken { .. })));
        }
    }
    println!("{CASES} random daemon streams:");
    for (k, n) in &outcomes {
        println!("  {k}: {n}");
    }
    // The fuzzer reaches both acceptance and every kind of refusal (else it is too weak), and
    // every operation accepts something (else its checks refuse everything).
    for want in ["ok", "malformed", "daemon error", "closed"] {
        assert!(
            outcomes.iter().any(|(k, _)| k.ends_with(want)),
            "no case ended \"{want}\""
        );
    }
    for op in 0..8 {
        assert!(
            outcomes.contains_key(&format!("op {op}: ok")),
            "op {op} never succeeded"
        );
    }
}

#[test]
fn the_wire_parsers_on_a_million_random_payloads() {
    const CASES: u64 = 1_000_000;
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut accepted = [0u64; 8];
    for _ in 0..CASES {
        let p = payload(&mut r);
        let results = [
            wire::string(&p).is_ok(),
            wire::strings(&p).is_ok(),
            wire::ok(&p).is_ok(),
            wire::transaction_id(&p).is_ok(),
            wire::watch_event(&p).is_ok(),
            wire::perms(&p).is_ok(),
            wire::directory(&p).is_ok(),
            wire::frame(&p).is_ok_and(|f| f.is_some()),
        ];
        for (a, ok) in accepted.iter_mut().zip(results) {
            *a += u64::from(ok);
        }
        if let Ok(s) = wire::strings(&p) {
            // A list round-trips.
            let mut back = Vec::new();
            for x in &s {
                back.extend_from_slice(x.as_bytes());
                back.push(0);
            }
            assert_eq!(back, p);
        }
        if let Ok(names) = wire::directory(&p) {
            assert!(names.iter().all(|n| !n.is_empty()), "{p:?}");
        }
        if let Ok(perms) = wire::perms(&p) {
            assert!(!perms.is_empty(), "{p:?}");
        }
        if let Ok((path, token)) = wire::watch_event(&p) {
            assert!(path.starts_with('/') || path.starts_with('@'), "{p:?}");
            assert!(!token.is_empty(), "{p:?}");
        }
        if let Ok(Some((h, range))) = wire::frame(&p) {
            assert!(h.len as usize <= wire::PAYLOAD_MAX && range.end <= p.len());
        }
    }
    println!(
        "{CASES} random payloads accepted by string {}, strings {}, ok {}, transaction_id {}, watch_event {}, perms {}, directory {}, frame {}",
        accepted[0], accepted[1], accepted[2], accepted[3], accepted[4], accepted[5], accepted[6], accepted[7]
    );
    assert!(
        accepted.iter().take(7).all(|&a| a > 0),
        "a parser never accepted: {accepted:?}"
    );
}

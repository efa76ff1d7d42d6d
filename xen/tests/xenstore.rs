//! The xenstore client against a small in-test daemon (`common/xenstored.rs`) over a socket
//! pair: every operation, errors named by operation and path, watch events arriving before
//! replies, transactions retried on EAGAIN, and a daemon that misbehaves (wrong ids, oversized
//! or truncated messages), which must give errors, never a panic or a hang. The event
//! descriptor (`Client::event_fd`) is readable exactly while something is there to dispatch.
#![cfg(all(feature = "std", unix))]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

use xen::xenstore::wire::{self, Header, Malformed};
use xen::xenstore::{Access, Client, Error, Perm, WatchEvent};

#[path = "common/xenstored.rs"]
mod xenstored;
use xenstored::{client, Quirks};

// Message types (io/xs_wire.h, from the spec).
use xen::sys::{
    XS_DIRECTORY as DIRECTORY, XS_ERROR as ERROR, XS_GET_PERMS as GET_PERMS, XS_READ as READ,
    XS_TRANSACTION_END as TRANSACTION_END, XS_TRANSACTION_START as TRANSACTION_START,
    XS_WATCH_EVENT as WATCH_EVENT, XS_WRITE as WRITE,
};

#[test]
fn every_operation_against_the_daemon() {
    let mut xs = client(Quirks::default());
    xs.write("/local/domain/0/name", b"Domain-0").unwrap();
    assert_eq!(xs.read("/local/domain/0/name").unwrap(), b"Domain-0");
    // Values are bytes: NULs and non-UTF-8 survive.
    xs.write("/bin", &[0, 0xff, 1]).unwrap();
    assert_eq!(xs.read("/bin").unwrap(), [0, 0xff, 1]);
    xs.mkdir("/local/domain/0/device").unwrap();
    let mut d = xs.directory("/local/domain/0").unwrap();
    d.sort();
    assert_eq!(d, ["device", "name"]);
    assert_eq!(
        xs.directory("/local/domain/0/device").unwrap(),
        Vec::<String>::new()
    );
    let perms = [
        Perm {
            domid: xen::DomId(0),
            access: Access::None,
        },
        Perm {
            domid: xen::DomId(5),
            access: Access::Read,
        },
        Perm {
            domid: xen::DomId(7),
            access: Access::Both,
        },
    ];
    xs.set_perms("/local/domain/0/name", &perms).unwrap();
    assert_eq!(xs.get_perms("/local/domain/0/name").unwrap(), perms);
    assert_eq!(
        xs.get_domain_path(xen::DomId(3)).unwrap(),
        "/local/domain/3"
    );
    xs.rm("/local/domain/0").unwrap();
    let e = xs.read("/local/domain/0/name").unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(
        e.to_string(),
        "XS_READ \"/local/domain/0/name\": ENOENT (errno 2)"
    );
    assert_eq!(e.errno(), Some(2));
    let e = xs.rm("/nothing").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Daemon {
                op: "XS_RM",
                errno: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn watch_events_come_by_iterator_and_between_replies() {
    let mut xs = client(Quirks::default());
    xs.watch("/backend/vif", "be").unwrap();
    // The daemon fires a new watch once.
    assert_eq!(
        xs.next_event().unwrap(),
        WatchEvent {
            path: "/backend/vif".into(),
            token: "be".into()
        }
    );
    xs.write("/backend/vif/3/0/state", b"1").unwrap();
    xs.write("/elsewhere", b"x").unwrap();
    // The write's event was queued while the client waited for the next write's reply.
    assert_eq!(
        xs.pending_event().map(|e| e.path).as_deref(),
        Some("/backend/vif/3/0/state")
    );
    assert_eq!(xs.pending_event(), None);
    // And one read by the iterator, after a change below the watch.
    xs.rm("/backend/vif/3").unwrap();
    let ev = xs.events().next().unwrap().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.token.as_str()),
        ("/backend/vif/3", "be")
    );
    xs.unwatch("/backend/vif", "be").unwrap();
    let e = xs.unwatch("/backend/vif", "be").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Daemon {
                op: "XS_UNWATCH",
                errno: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn chatty_daemon_events_before_every_reply_are_queued_not_lost() {
    let mut xs = client(Quirks {
        chatty: true,
        ..Quirks::default()
    });
    xs.watch("/a", "t").unwrap();
    for i in 0..100 {
        xs.write("/b", format!("{i}").as_bytes()).unwrap();
    }
    // One initial event, then one per request after the watch (100 writes).
    let mut n = 0;
    while xs.pending_event().is_some() {
        n += 1;
    }
    assert_eq!(n, 101);
    assert_eq!(xs.dropped_events(), 0);
}

#[test]
fn transactions_retry_on_eagain_and_give_up_after_the_limit() {
    let mut xs = client(Quirks {
        conflicts: 3,
        ..Quirks::default()
    });
    let mut runs = 0;
    let v = xs
        .transaction(|t| {
            runs += 1;
            assert_ne!(t.id(), 0, "a transaction's id");
            t.write("/counter", b"1")?;
            Ok(42)
        })
        .unwrap();
    assert_eq!((v, runs), (42, 4), "three conflicts, then the commit");
    // An error inside aborts and is returned as is.
    let e = xs
        .transaction(|t| t.read("/missing").map(|_| ()))
        .unwrap_err();
    assert!(e.is_not_found());

    let mut xs = client(Quirks {
        conflicts: u32::MAX,
        ..Quirks::default()
    });
    let e = xs.transaction(|_| Ok(())).unwrap_err();
    assert_eq!(
        e,
        Error::Conflict {
            attempts: xen::xenstore::TRANSACTION_ATTEMPTS
        }
    );
}

#[test]
fn bad_requests_are_refused_before_sending() {
    let mut xs = client(Quirks::default());
    for (path, what) in [("/a\0b", "a NUL inside the path"), ("", "an empty path")] {
        let e = xs.read(path).unwrap_err();
        assert!(
            matches!(e, Error::Invalid { what: w, .. } if w == what),
            "{e}"
        );
    }
    let long = format!("/{}", "x".repeat(3072));
    assert!(matches!(xs.read(&long), Err(Error::Invalid { .. })));
    let e = xs.write("/v", &[0; 4096]).unwrap_err();
    assert!(matches!(e, Error::Invalid { op: "XS_WRITE", .. }), "{e}");
    assert!(matches!(xs.watch("/w", "a\0b"), Err(Error::Invalid { .. })));
    // Watches whose events the client would refuse: on a relative path (its events have
    // relative paths) or with an empty token.
    for (path, token, what) in [
        (
            "device/vif",
            "t",
            "a relative path: a watch's path must be absolute or special (@...)",
        ),
        ("/w", "", "an empty token"),
    ] {
        let e = xs.watch(path, token).unwrap_err();
        assert!(
            matches!(e, Error::Invalid { op: "XS_WATCH", what: w, .. } if w == what),
            "{e}"
        );
        let e = xs.unwatch(path, token).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    op: "XS_UNWATCH",
                    ..
                }
            ),
            "{e}"
        );
    }
    // The connection is still good, and special paths can be watched.
    xs.write("/v", b"ok").unwrap();
    xs.watch("@releaseDomain", "rd").unwrap();
    assert_eq!(xs.next_event().unwrap().path, "@releaseDomain");
}

/// A daemon that answers the first request with `reply` (raw bytes) and then hangs up.
fn scripted(reply: Vec<u8>) -> Client<UnixStream> {
    scripted_for(1, reply)
}

/// A daemon that answers the first request with `reply` (all of it), takes `requests` requests
/// in all, then hangs up.
fn scripted_for(requests: usize, reply: Vec<u8>) -> Client<UnixStream> {
    let (a, mut b) = UnixStream::pair().unwrap();
    thread::spawn(move || {
        for i in 0..requests {
            let mut h = [0u8; 16];
            if b.read_exact(&mut h).is_err() {
                return;
            }
            let h = Header::decode(&h).unwrap();
            let mut p = vec![0; h.len as usize];
            let _ = b.read_exact(&mut p);
            if i == 0 {
                let _ = b.write_all(&reply);
            }
        }
    });
    Client::new(a)
}

/// The daemon's answer to the first request, `XS_TRANSACTION_START`: transaction `id`.
fn start(id: u32) -> Vec<u8> {
    frame_tx(TRANSACTION_START, 1, 0, format!("{id}\0").as_bytes())
}

fn frame(ty: u32, id: u32, payload: &[u8]) -> Vec<u8> {
    frame_tx(ty, id, 0, payload)
}

fn frame_tx(ty: u32, id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Header {
        ty: wire::XsdSockmsgType(ty),
        req_id: id,
        tx_id,
        len: payload.len() as u32,
    }
    .encode()
    .to_vec();
    m.extend_from_slice(payload);
    m
}

/// `r` is the malformed-message error of `op` on `path` for `want`, and the connection is
/// unusable after it.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    xs: &mut Client<UnixStream>,
    r: Result<T, Error>,
    op: &str,
    path: &str,
    want: Malformed,
) {
    match r {
        Err(Error::Malformed {
            op: o,
            path: p,
            what,
        }) => assert_eq!((o, p.as_str(), what), (op, path, want)),
        other => panic!("{want:?}: got {other:?}"),
    }
    assert!(matches!(xs.read("/x"), Err(Error::Broken { .. })));
}

#[test]
fn a_reply_in_another_transaction_is_malformed() {
    let wrong = |got, want| Malformed::WrongTransaction { got, want };
    // Outside a transaction, a reply in one.
    let mut xs = scripted(frame_tx(WRITE, 1, 7, b"OK\0"));
    let r = xs.write("/x", b"1");
    refused(&mut xs, r, "XS_WRITE", "/x", wrong(7, 0));
    // Inside a transaction, a reply outside it or in another one; errors too.
    let mut xs = scripted_for(2, [start(5), frame_tx(READ, 2, 0, b"v")].concat());
    let r = xs.transaction_start().unwrap().read("/x");
    refused(&mut xs, r, "XS_READ", "/x", wrong(0, 5));
    let mut xs = scripted_for(2, [start(5), frame_tx(ERROR, 2, 6, b"ENOENT\0")].concat());
    let r = xs.transaction_start().unwrap().read("/x");
    refused(&mut xs, r, "XS_READ", "/x", wrong(6, 5));
    // XS_TRANSACTION_START is sent outside any transaction and xenstored answers in kind: the
    // new id is the payload, not the header's tx_id.
    let mut xs = scripted(frame_tx(TRANSACTION_START, 1, 12, b"12\0"));
    let r = xs.transaction_start().map(|t| t.id());
    refused(&mut xs, r, "XS_TRANSACTION_START", "", wrong(12, 0));
    let mut xs = scripted(frame_tx(TRANSACTION_START, 1, 0, b"12\0"));
    assert_eq!(xs.transaction_start().unwrap().id(), 12);
    // The reply that echoes the request's transaction is taken.
    let mut xs = scripted_for(2, [start(5), frame_tx(READ, 2, 5, b"v")].concat());
    assert_eq!(xs.transaction_start().unwrap().read("/x").unwrap(), b"v");
}

#[test]
fn a_misbehaving_daemon_gives_errors_and_a_broken_connection() {
    let cases: Vec<(Vec<u8>, Malformed)> = vec![
        (
            frame(WRITE, 9, b"OK\0"),
            Malformed::WrongId { got: 9, want: 1 },
        ),
        (
            frame(READ, 1, b"OK\0"),
            Malformed::WrongType {
                got: READ,
                want: WRITE,
            },
        ),
        (frame(WRITE, 1, b"NO\0"), Malformed::NotOk),
        (frame(WRITE, 1, b"OK"), Malformed::Unterminated),
        (frame(ERROR, 1, b"ENOENT"), Malformed::Unterminated),
        (
            frame(WATCH_EVENT, 0, b"only-a-path\0"),
            Malformed::BadWatchEvent,
        ),
        (
            {
                let mut m = frame(WRITE, 1, b"");
                m[12..16].copy_from_slice(&5000u32.to_ne_bytes());
                m
            },
            Malformed::Oversized(5000),
        ),
        (
            frame(WRITE, 1, b"OK\0")[..10].to_vec(),
            Malformed::Truncated,
        ),
    ];
    for (reply, want) in cases {
        let mut xs = scripted(reply);
        match xs.write("/x", b"1") {
            Err(Error::Malformed {
                op: "XS_WRITE",
                path,
                what,
            }) => {
                assert_eq!((path.as_str(), what), ("/x", want))
            }
            other => panic!("{want:?}: got {other:?}"),
        }
        assert!(matches!(xs.read("/x"), Err(Error::Broken { .. })));
    }
    // An unknown error name is EIO, keeping the name.
    let mut xs = scripted(frame(ERROR, 1, b"EWEIRD\0"));
    let e = xs.write("/x", b"1").unwrap_err();
    assert_eq!(e.errno(), Some(5));
    assert!(e.to_string().contains("EWEIRD"), "{e}");
    // A daemon that hangs up.
    let mut xs = scripted(Vec::new());
    assert!(matches!(xs.write("/x", b"1"), Err(Error::Closed { .. })));
}

#[test]
fn a_watch_event_with_a_bad_path_token_or_ids_is_malformed() {
    let ids = |req_id, tx_id| Malformed::EventIds { req_id, tx_id };
    let cases = [
        (frame(WATCH_EVENT, 0, b"\0tok\0"), Malformed::BadEventPath),
        (
            frame(WATCH_EVENT, 0, b"rel/path\0tok\0"),
            Malformed::BadEventPath,
        ),
        (frame(WATCH_EVENT, 0, b"/a\0\0"), Malformed::EmptyToken),
        (frame(WATCH_EVENT, 3, b"/a\0tok\0"), ids(3, 0)),
        (frame_tx(WATCH_EVENT, 0, 4, b"/a\0tok\0"), ids(0, 4)),
    ];
    for (event, want) in cases {
        // Before the reply the client waits for: the request's error.
        let mut m = event.clone();
        m.extend(frame(WRITE, 1, b"OK\0"));
        let mut xs = scripted(m);
        let r = xs.write("/x", b"1");
        refused(&mut xs, r, "XS_WRITE", "/x", want);
        // After it: not queued with the reply, but reported by the next read.
        let mut m = frame(WRITE, 1, b"OK\0");
        m.extend(event);
        let mut xs = scripted(m);
        xs.write("/x", b"1").unwrap();
        assert_eq!(xs.pending_event(), None);
        let r = xs.next_event();
        refused(&mut xs, r, "XS_WATCH_EVENT", "", want);
    }
    // Absolute and special paths are events.
    let mut m = frame(WRITE, 1, b"OK\0");
    for p in [
        &b"/\0t\0"[..],
        b"@releaseDomain\0t\0",
        b"@introduceDomain\0t\0",
    ] {
        m.extend(frame(WATCH_EVENT, 0, p));
    }
    let mut xs = scripted(m);
    xs.write("/x", b"1").unwrap();
    let paths: Vec<String> = std::iter::from_fn(|| xs.pending_event().map(|e| e.path)).collect();
    assert_eq!(paths, ["/", "@releaseDomain", "@introduceDomain"]);
}

#[test]
fn an_empty_permission_list_is_malformed() {
    let mut xs = scripted(frame(GET_PERMS, 1, b""));
    let r = xs.get_perms("/x");
    refused(&mut xs, r, "XS_GET_PERMS", "/x", Malformed::NoPermissions);
    // The owner's entry alone is a list.
    let mut xs = scripted(frame(GET_PERMS, 1, b"b3\0"));
    assert_eq!(
        xs.get_perms("/x").unwrap(),
        [Perm {
            domid: xen::DomId(3),
            access: Access::Both
        }]
    );
}

#[test]
fn a_directory_listing_with_an_empty_name_is_malformed() {
    for listing in [&b"a\0\0b\0"[..], b"\0", b"\0a\0", b"a\0\0"] {
        let mut xs = scripted(frame(DIRECTORY, 1, listing));
        let r = xs.directory("/x");
        refused(&mut xs, r, "XS_DIRECTORY", "/x", Malformed::EmptyName);
    }
    // A node without children: xenstored sends an empty payload.
    let mut xs = scripted(frame(DIRECTORY, 1, b""));
    assert_eq!(xs.directory("/x").unwrap(), Vec::<String>::new());
    let mut xs = scripted(frame(DIRECTORY, 1, b"a\0b\0"));
    assert_eq!(xs.directory("/x").unwrap(), ["a", "b"]);
}

#[test]
fn an_event_in_the_same_read_as_a_reply_is_pending_at_once() {
    // A caller that polls the descriptor for events must not wait for bytes already read.
    let mut both = frame(WRITE, 1, b"OK\0");
    both.extend(frame(WATCH_EVENT, 0, b"/w/x\0tok\0"));
    let mut xs = scripted(both);
    xs.write("/w/x", b"1").unwrap();
    assert_eq!(
        xs.pending_event(),
        Some(WatchEvent {
            path: "/w/x".into(),
            token: "tok".into()
        })
    );
}

#[test]
fn wait_event_takes_a_queued_event_without_polling_and_times_out() {
    let mut both = frame(WRITE, 1, b"OK\0");
    both.extend(frame(WATCH_EVENT, 0, b"/w/x\0tok\0"));
    let mut xs = scripted(both);
    xs.write("/w/x", b"1").unwrap();
    // The event came with the reply; the daemon has hung up, so had wait_event read the
    // descriptor first it would have got Closed instead of the event.
    let ev = xs
        .wait_event(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    assert_eq!(ev.map(|e| e.path).as_deref(), Some("/w/x"));
    // Nothing else comes (the daemon has hung up: the read says so).
    let r = xs.wait_event(Some(std::time::Duration::from_millis(50)));
    assert!(matches!(r, Ok(None) | Err(Error::Closed { .. })), "{r:?}");
}

#[test]
fn wait_event_reads_an_event_that_comes_later() {
    let mut xs = client(Quirks::default());
    xs.watch("/later", "t").unwrap();
    assert!(xs
        .wait_event(Some(std::time::Duration::from_secs(5)))
        .unwrap()
        .is_some());
    assert_eq!(
        xs.wait_event(Some(std::time::Duration::from_millis(50)))
            .unwrap(),
        None,
        "a timeout without events"
    );
}

#[test]
fn parsers_on_edge_payloads() {
    assert_eq!(wire::strings(b"").unwrap(), Vec::<&str>::new());
    assert_eq!(wire::strings(b"a\0\0b\0").unwrap(), ["a", "", "b"]);
    assert_eq!(wire::strings(b"a"), Err(Malformed::Unterminated));
    assert_eq!(wire::directory(b"").unwrap(), Vec::<&str>::new());
    assert_eq!(wire::directory(b"a\0\0b\0"), Err(Malformed::EmptyName));
    assert_eq!(wire::directory(b"\0"), Err(Malformed::EmptyName));
    assert_eq!(wire::perms(b""), Err(Malformed::NoPermissions));
    assert_eq!(
        wire::watch_event(b"@releaseDomain\0t\0"),
        Ok(("@releaseDomain".into(), "t".into()))
    );
    for (bad, want) in [
        (&b"\0t\0"[..], Malformed::BadEventPath),
        (b"a/b\0t\0", Malformed::BadEventPath),
        (b"/a\0\0", Malformed::EmptyToken),
        (b"/a\0t\0x\0", Malformed::BadWatchEvent),
    ] {
        assert_eq!(wire::watch_event(bad), Err(want), "{bad:?}");
    }
    assert_eq!(wire::string(b"a\0b\0"), Err(Malformed::InteriorNul));
    assert_eq!(wire::string(&[0xff, 0]), Err(Malformed::NotUtf8));
    assert_eq!(wire::transaction_id(b"12\0"), Ok(12));
    for bad in [
        &b"0\0"[..],
        b"\0",
        b"-1\0",
        b"+1\0",
        b"4294967296\0",
        b"1x\0",
    ] {
        assert_eq!(
            wire::transaction_id(bad),
            Err(Malformed::BadTransactionId),
            "{bad:?}"
        );
    }
    assert_eq!(
        Perm::parse("b65535").unwrap(),
        Perm {
            domid: xen::DomId(65535),
            access: Access::Both
        }
    );
    for bad in ["", "x1", "r", "r65536", "r-1", "r+1", "rr1"] {
        assert_eq!(Perm::parse(bad), Err(Malformed::BadPermission), "{bad}");
    }
}

/// A transaction dropped unfinished is aborted ("F" in its own id); committed, it sends "T".
#[test]
fn a_transaction_dropped_unfinished_is_aborted() {
    for commit in [false, true] {
        let (a, mut b) = UnixStream::pair().unwrap();
        let (seen, got) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut h = [0u8; 16];
            while b.read_exact(&mut h).is_ok() {
                let h = Header::decode(&h).unwrap();
                let mut p = vec![0; h.len as usize];
                let _ = b.read_exact(&mut p);
                let reply = match h.ty.0 {
                    TRANSACTION_START => frame_tx(TRANSACTION_START, h.req_id, 0, b"7\0"),
                    t => frame_tx(t, h.req_id, h.tx_id, b"OK\0"),
                };
                let _ = b.write_all(&reply);
                let _ = seen.send((h.ty.0, h.tx_id, p));
            }
        });
        let mut xs = Client::new(a);
        {
            let mut t = xs.transaction_start().unwrap();
            t.write("/x", b"1").unwrap();
            if commit {
                t.commit().unwrap();
            }
        }
        let _ = got.recv().unwrap(); // start
        let (ty, tx, p) = got.recv().unwrap();
        assert_eq!((ty, tx, p.as_slice()), (WRITE, 7, &b"/x\x001"[..]));
        let (ty, tx, p) = got.recv().unwrap();
        let end: &[u8] = if commit { b"T\0" } else { b"F\0" };
        assert_eq!((ty, tx, p.as_slice()), (TRANSACTION_END, 7, end));
    }
}

/// Whether `fd` polls readable within `ms` milliseconds.
fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: i64) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let ts = Timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&ts)).unwrap() == 1
}

/// A client over one end of a socket pair whose other end the test holds: nothing is read
/// from it, so the client's reads see exactly what the test wrote. A read that would block is
/// an error after two seconds, so a regression fails instead of hanging.
fn over_pair() -> (Client<UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    (Client::new(a), b)
}

#[cfg(target_os = "linux")]
#[test]
fn event_fd_is_readable_for_an_event_that_came_with_a_reply() {
    use std::os::fd::AsFd;
    // Made before and after the reply: readable either way.
    for early in [true, false] {
        let (mut xs, mut daemon) = over_pair();
        if early {
            assert!(!readable(xs.event_fd().unwrap(), 0), "idle");
        }
        let mut both = frame(WRITE, 1, b"OK\0");
        both.extend(frame(WATCH_EVENT, 0, b"/w/x\0tok\0"));
        both.extend(frame(WATCH_EVENT, 0, b"/w/y\0tok\0"));
        daemon.write_all(&both).unwrap();
        xs.write("/w/x", b"1").unwrap();
        // Everything came in one read: the socket has nothing more...
        assert!(!readable(xs.as_fd(), 0), "the socket is idle");
        // ... but the event descriptor says there are events.
        assert!(readable(xs.event_fd().unwrap(), 0), "events queued");
        // The loop's dispatch does not read (it would wait two seconds and fail).
        assert_eq!(xs.dispatch().unwrap(), 2);
        assert_eq!(xs.pending_event().unwrap().path, "/w/x");
        assert!(readable(xs.event_fd().unwrap(), 0), "one still queued");
        assert_eq!(xs.pending_event().unwrap().path, "/w/y");
        assert_eq!(xs.pending_event(), None);
        assert!(!readable(xs.event_fd().unwrap(), 0), "drained");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn event_fd_is_not_readable_while_the_queue_is_empty_and_the_socket_idle() {
    let (mut xs, mut daemon) = over_pair();
    assert!(!readable(xs.event_fd().unwrap(), 50));
    // A reply alone leaves nothing behind.
    daemon.write_all(&frame(WRITE, 1, b"OK\0")).unwrap();
    xs.write("/w/x", b"1").unwrap();
    assert!(!readable(xs.event_fd().unwrap(), 50));
    // Half an event is not an event: the socket is drained, nothing is queued.
    let ev = frame(WATCH_EVENT, 0, b"/w/x\0tok\0");
    daemon.write_all(&ev[..10]).unwrap();
    assert!(readable(xs.event_fd().unwrap(), 1000), "bytes to read");
    assert_eq!(xs.dispatch().unwrap(), 0);
    assert!(!readable(xs.event_fd().unwrap(), 50), "nothing complete");
    daemon.write_all(&ev[10..]).unwrap();
    assert!(readable(xs.event_fd().unwrap(), 1000));
    assert_eq!(xs.dispatch().unwrap(), 1);
    assert!(xs.pending_event().is_some());
    assert!(!readable(xs.event_fd().unwrap(), 50));
    // The same descriptor every time.
    use std::os::fd::AsRawFd;
    let fd = xs.event_fd().unwrap().as_raw_fd();
    assert_eq!(xs.event_fd().unwrap().as_raw_fd(), fd);
}

#[cfg(target_os = "linux")]
#[test]
fn event_fd_becomes_readable_when_the_daemon_sends_an_event_later() {
    let (mut xs, mut daemon) = over_pair();
    assert!(!readable(xs.event_fd().unwrap(), 0));
    let later = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(100));
        daemon
            .write_all(&frame(WATCH_EVENT, 0, b"/later\0t\0"))
            .unwrap();
        daemon
    });
    assert!(readable(xs.event_fd().unwrap(), 5000));
    assert_eq!(xs.dispatch().unwrap(), 1);
    assert_eq!(xs.pending_event().unwrap().path, "/later");
    assert!(!readable(xs.event_fd().unwrap(), 0));
    drop(later.join().unwrap());
}

/// An event loop on the event descriptor against the daemon: poll, dispatch, drain. The
/// watch's first event comes right after the reply, often in the same read; none is lost and
/// no dispatch waits.
#[cfg(target_os = "linux")]
#[test]
fn an_event_loop_on_event_fd_sees_every_event() {
    let d = xenstored::Xenstored::new();
    let mut xs = d.connect();
    xs.watch("/dev", "dev").unwrap();
    let mut seen = Vec::new();
    for i in 0..20 {
        xs.write(&format!("/dev/{i}"), b"x").unwrap();
        if i % 2 == 1 {
            d.write(&format!("/dev/t{i}"), b"y"); // by the toolstack, not in a reply's read
        }
    }
    while seen.len() < 31 {
        assert!(readable(xs.event_fd().unwrap(), 5000), "seen {seen:?}");
        xs.dispatch().unwrap();
        while let Some(e) = xs.pending_event() {
            seen.push(e.path);
        }
    }
    assert_eq!(seen[0], "/dev");
    assert!(seen.contains(&"/dev/19".to_string()) && seen.contains(&"/dev/t19".to_string()));
    assert!(!readable(xs.event_fd().unwrap(), 50));
}

#[cfg(target_os = "linux")]
#[test]
fn event_fd_reports_a_message_left_behind_and_a_broken_connection() {
    use std::os::fd::AsFd;
    // A reply, then a second reply nobody asked for, in one read.
    let (mut xs, mut daemon) = over_pair();
    let mut m = frame(WRITE, 1, b"OK\0");
    m.extend(frame(READ, 9, b"v"));
    daemon.write_all(&m).unwrap();
    xs.write("/x", b"1").unwrap();
    assert!(!readable(xs.as_fd(), 0));
    assert!(readable(xs.event_fd().unwrap(), 0), "a message to report");
    let e = xs.dispatch().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Malformed {
                what: Malformed::WrongType { .. },
                ..
            }
        ),
        "{e}"
    );
    // Broken now: still readable, so the loop learns it.
    assert!(readable(xs.event_fd().unwrap(), 0));
    assert!(matches!(xs.dispatch(), Err(Error::Broken { .. })));
}

#[cfg(target_os = "linux")]
#[test]
fn event_fd_on_a_connection_epoll_cannot_watch_is_an_error() {
    struct File(std::fs::File);
    impl Read for File {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(b)
        }
    }
    impl Write for File {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl std::os::fd::AsFd for File {
        fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.0.as_fd()
        }
    }
    let f = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let mut xs = Client::new(File(f));
    let e = xs.event_fd().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Io {
                op: "epoll_ctl",
                errno: 1,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wait_event_for_leaves_other_watches_events_queued() {
    let mut xs = client(Quirks::default());
    xs.watch("/a", "a").unwrap();
    xs.watch("/b", "b").unwrap();
    while xs.pending_event().is_some() {}
    xs.write("/a/x", b"1").unwrap();
    xs.write("/b/x", b"1").unwrap();
    xs.write("/a/y", b"1").unwrap();
    let t = Some(std::time::Duration::from_secs(5));
    assert_eq!(xs.wait_event_for("b", t).unwrap().unwrap().path, "/b/x");
    assert_eq!(
        xs.wait_event_for("b", Some(std::time::Duration::from_millis(50)))
            .unwrap(),
        None
    );
    assert_eq!(xs.pending_event().unwrap().path, "/a/x");
    assert_eq!(xs.discard_events("a"), 1);
    assert_eq!(xs.pending_event(), None);
}

//! The xenstore client against a small in-test daemon over a socket pair: every operation,
//! errors named by operation and path, watch events arriving before replies, transactions
//! retried on EAGAIN, and a daemon that misbehaves (wrong ids, oversized or truncated
//! messages), which must give errors, never a panic or a hang.
#![cfg(all(feature = "std", unix))]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;

use xen::xenstore::wire::{self, Header, Malformed};
use xen::xenstore::{Access, Client, Error, Perm, WatchEvent};

// Message types (io/xs_wire.h, from the spec).
use xen::sys::{
    XS_DIRECTORY as DIRECTORY, XS_ERROR as ERROR, XS_GET_DOMAIN_PATH as GET_DOMAIN_PATH,
    XS_GET_PERMS as GET_PERMS, XS_MKDIR as MKDIR, XS_READ as READ, XS_RM as RM,
    XS_SET_PERMS as SET_PERMS, XS_TRANSACTION_END as TRANSACTION_END,
    XS_TRANSACTION_START as TRANSACTION_START, XS_UNWATCH as UNWATCH, XS_WATCH as WATCH,
    XS_WATCH_EVENT as WATCH_EVENT, XS_WRITE as WRITE,
};

/// How the daemon misbehaves.
#[derive(Clone, Copy, Default)]
struct Quirks {
    /// Fail the first N transaction commits with EAGAIN.
    conflicts: u32,
    /// Send a watch event for every watch before each reply.
    chatty: bool,
}

#[derive(Default)]
struct Store {
    nodes: BTreeMap<String, (Vec<u8>, Vec<String>)>,
    watches: Vec<(String, String)>,
    next_tx: u32,
}

fn send(s: &mut UnixStream, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
    let h = Header {
        ty: wire::XsdSockmsgType(ty),
        req_id,
        tx_id,
        len: payload.len() as u32,
    };
    let mut m = h.encode().to_vec();
    m.extend_from_slice(payload);
    let _ = s.write_all(&m);
}

fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    let i = p.rfind('/')?;
    Some(if i == 0 { "/" } else { &p[..i] })
}

/// Serve the client's requests until it hangs up.
fn daemon(mut s: UnixStream, mut q: Quirks) {
    let mut st = Store::default();
    st.nodes.insert("/".into(), (Vec::new(), vec!["n0".into()]));
    loop {
        let mut h = [0u8; 16];
        if s.read_exact(&mut h).is_err() {
            return;
        }
        let h = Header::decode(&h).unwrap();
        let mut p = vec![0; h.len as usize];
        s.read_exact(&mut p).unwrap();
        let args: Vec<&[u8]> = p.split(|&b| b == 0).collect();
        let path = String::from_utf8_lossy(args[0]).into_owned();
        let (id, tx) = (h.req_id, h.tx_id);
        if q.chatty {
            for (wp, tok) in st.watches.clone() {
                send(
                    &mut s,
                    WATCH_EVENT,
                    0,
                    0,
                    format!("{wp}\0{tok}\0").as_bytes(),
                );
            }
        }
        let err = |s: &mut UnixStream, e: &str| send(s, ERROR, id, tx, format!("{e}\0").as_bytes());
        let fire = |s: &mut UnixStream, st: &Store, changed: &str| {
            for (wp, tok) in &st.watches {
                if changed == wp || changed.starts_with(&format!("{wp}/")) {
                    send(
                        s,
                        WATCH_EVENT,
                        0,
                        0,
                        format!("{changed}\0{tok}\0").as_bytes(),
                    );
                }
            }
        };
        match h.ty.0 {
            READ => match st.nodes.get(&path) {
                Some((v, _)) => send(&mut s, READ, id, tx, v),
                None => err(&mut s, "ENOENT"),
            },
            WRITE | MKDIR => {
                let value = if h.ty.0 == WRITE {
                    p[path.len() + 1..].to_vec()
                } else {
                    Vec::new()
                };
                let mut at = Some(path.as_str());
                while let Some(a) = at {
                    st.nodes
                        .entry(a.to_string())
                        .or_insert_with(|| (Vec::new(), vec!["n0".into()]));
                    at = parent(a);
                }
                if h.ty.0 == WRITE {
                    st.nodes.get_mut(&path).unwrap().0 = value;
                }
                send(&mut s, h.ty.0, id, tx, b"OK\0");
                fire(&mut s, &st, &path);
            }
            RM => {
                if st.nodes.remove(&path).is_none() {
                    err(&mut s, "ENOENT");
                    continue;
                }
                let below = format!("{path}/");
                st.nodes.retain(|k, _| !k.starts_with(&below));
                send(&mut s, RM, id, tx, b"OK\0");
                fire(&mut s, &st, &path);
            }
            DIRECTORY => {
                if !st.nodes.contains_key(&path) {
                    err(&mut s, "ENOENT");
                    continue;
                }
                let pre = if path == "/" {
                    "/".to_string()
                } else {
                    format!("{path}/")
                };
                let mut out = Vec::new();
                for k in st.nodes.keys() {
                    if let Some(rest) = k.strip_prefix(&pre) {
                        if !rest.is_empty() && !rest.contains('/') {
                            out.extend_from_slice(rest.as_bytes());
                            out.push(0);
                        }
                    }
                }
                send(&mut s, DIRECTORY, id, tx, &out);
            }
            GET_PERMS => match st.nodes.get(&path) {
                Some((_, perms)) => {
                    let mut out = Vec::new();
                    for x in perms {
                        out.extend_from_slice(x.as_bytes());
                        out.push(0);
                    }
                    send(&mut s, GET_PERMS, id, tx, &out);
                }
                None => err(&mut s, "ENOENT"),
            },
            SET_PERMS => {
                let perms: Vec<String> = args[1..]
                    .iter()
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                match st.nodes.get_mut(&path) {
                    Some(n) => {
                        n.1 = perms;
                        send(&mut s, SET_PERMS, id, tx, b"OK\0");
                    }
                    None => err(&mut s, "ENOENT"),
                }
            }
            WATCH => {
                let tok = String::from_utf8_lossy(args[1]).into_owned();
                st.watches.push((path.clone(), tok.clone()));
                send(&mut s, WATCH, id, tx, b"OK\0");
                send(
                    &mut s,
                    WATCH_EVENT,
                    0,
                    0,
                    format!("{path}\0{tok}\0").as_bytes(),
                );
            }
            UNWATCH => {
                let tok = String::from_utf8_lossy(args[1]).into_owned();
                let n = st.watches.len();
                st.watches.retain(|w| *w != (path.clone(), tok.clone()));
                if st.watches.len() == n {
                    err(&mut s, "ENOENT");
                } else {
                    send(&mut s, UNWATCH, id, tx, b"OK\0");
                }
            }
            TRANSACTION_START => {
                st.next_tx += 1;
                send(
                    &mut s,
                    TRANSACTION_START,
                    id,
                    0,
                    format!("{}\0", st.next_tx).as_bytes(),
                );
            }
            TRANSACTION_END => {
                if p.first() == Some(&b'T') && q.conflicts > 0 {
                    q.conflicts -= 1;
                    err(&mut s, "EAGAIN");
                } else {
                    send(&mut s, TRANSACTION_END, id, tx, b"OK\0");
                }
            }
            GET_DOMAIN_PATH => send(
                &mut s,
                GET_DOMAIN_PATH,
                id,
                tx,
                format!("/local/domain/{path}\0").as_bytes(),
            ),
            _ => err(&mut s, "EINVAL"),
        }
    }
}

fn client(q: Quirks) -> Client<UnixStream> {
    let (a, b) = UnixStream::pair().unwrap();
    thread::spawn(move || daemon(b, q));
    Client::new(a)
}

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

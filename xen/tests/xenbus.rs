//! `xen::xenbus` against the in-test daemon (`common/xenstored.rs`), each end on a connection
//! of its own as in two domains: the device's directories and links, states read and switched
//! (refusing values `io/xenbus.h` does not define, with the node and the value named), waits
//! woken by watches and bounded by a timeout, the whole handshake from `Initialising` to
//! `Closed`, and the front end's `ring-ref` and `event-channel` as typed ids.
#![cfg(all(feature = "std", unix))]

use std::thread;
use std::time::{Duration, Instant};

use xen::sys::XenbusState;
use xen::xenbus::{self, Backend, Error, Frontend, RingInfo};
use xen::{DomId, EvtchnPort, GrantRef};

#[path = "common/xenstored.rs"]
mod xenstored;
use xenstored::Xenstored;

const BE: &str = "/local/domain/0/backend/echo/5/3";
const FE: &str = "/local/domain/5/device/echo/3";

/// A store with device `echo/3` of domain 5 served by domain 0, as a toolstack makes it.
fn toolstack() -> Xenstored {
    let d = Xenstored::new();
    d.write(&format!("{BE}/frontend"), FE.as_bytes());
    d.write(&format!("{BE}/frontend-id"), b"5");
    d.write(&format!("{BE}/state"), b"1");
    d.write(&format!("{FE}/backend"), BE.as_bytes());
    d.write(&format!("{FE}/backend-id"), b"0");
    d.write(&format!("{FE}/state"), b"1");
    d
}

#[test]
fn standard_paths() {
    assert_eq!(xenbus::backend_dir(DomId(0), "echo", DomId(5), 3), BE);
    assert_eq!(xenbus::frontend_dir(DomId(5), "echo", 3), FE);
    assert_eq!(xenbus::state_path(BE), format!("{BE}/state"));
}

#[test]
fn both_ends_open_with_their_links() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, &format!("{BE}/")).unwrap();
    assert_eq!(
        be,
        Backend {
            dir: BE.into(),
            kind: "echo".into(),
            frontend_id: DomId(5),
            devid: 3,
            frontend: FE.into(),
        }
    );
    assert_eq!(be.frontend_state_path(), format!("{FE}/state"));
    let fe = Frontend::open(&mut xs, FE).unwrap();
    assert_eq!(
        fe,
        Frontend {
            dir: FE.into(),
            kind: "echo".into(),
            devid: 3,
            backend_id: DomId(0),
            backend: BE.into(),
        }
    );
    assert_eq!(fe.backend_state_path(), format!("{BE}/state"));
}

#[test]
fn directories_and_links_that_are_not_a_device_are_refused() {
    let d = toolstack();
    let mut xs = d.connect();
    for (dir, what) in [
        ("backend/echo/5/3", "not an absolute path"),
        (
            "/local/domain/0/echo/5/3",
            "not under a backend/<type> directory",
        ),
        (
            "/local/domain/0/backend/echo/x/3",
            "\"x\" is not a front end's domain id",
        ),
        (
            "/local/domain/0/backend/echo/70000/3",
            "is not a front end's domain id",
        ),
        ("/local/domain/0/backend/echo/5/-3", "is not a device id"),
    ] {
        match Backend::open(&mut xs, dir) {
            Err(Error::BadDevice { what: w, .. }) => assert!(w.contains(what), "{dir}: {w}"),
            other => panic!("{dir}: {other:?}"),
        }
    }
    assert!(matches!(
        Frontend::open(&mut xs, "/local/domain/5/devices/echo/3"),
        Err(Error::BadDevice { .. })
    ));
    // A frontend-id that is not the directory's domain.
    d.write(&format!("{BE}/frontend-id"), b"6");
    let e = Backend::open(&mut xs, BE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{BE}/frontend-id: domain 6, but the directory is domain 5's")
    );
    d.write(&format!("{BE}/frontend-id"), b"five");
    let e = Backend::open(&mut xs, BE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{BE}/frontend-id: \"five\" is not a domain id")
    );
    d.write(&format!("{BE}/frontend-id"), b"5");
    d.write(&format!("{BE}/frontend"), b"device/echo/3");
    let e = Backend::open(&mut xs, BE).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{BE}/frontend: \"device/echo/3\" is not an absolute xenstore path")
    );
    // A missing link is xenstore's ENOENT, named by operation and path.
    d.rm(&format!("{BE}/frontend"));
    let e = Backend::open(&mut xs, BE).unwrap_err();
    assert_eq!(e.errno(), Some(2));
    assert_eq!(
        e.to_string(),
        format!("XS_READ \"{BE}/frontend\": ENOENT (errno 2)")
    );
}

#[test]
fn states_are_read_and_switched_only_when_they_change() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, BE).unwrap();
    assert_eq!(be.state(&mut xs).unwrap(), XenbusState::INITIALISING);
    xs.watch(&be.state_path(), "mine").unwrap();
    assert!(xs
        .wait_event_for("mine", Some(Duration::from_secs(5)))
        .unwrap()
        .is_some());
    assert!(be.switch_state(&mut xs, XenbusState::INITWAIT).unwrap());
    assert_eq!(d.read(&format!("{BE}/state")).unwrap(), b"2");
    assert!(xs
        .wait_event_for("mine", Some(Duration::from_secs(5)))
        .unwrap()
        .is_some());
    // The same state again: not written, so the watch does not fire.
    assert!(be.switch_state(&mut xs, XenbusState::INITWAIT).unwrap());
    assert_eq!(
        xs.wait_event_for("mine", Some(Duration::from_millis(100)))
            .unwrap(),
        None
    );
    // A state node that is gone stays gone (the device is being removed).
    d.rm(&format!("{BE}/state"));
    assert_eq!(be.state(&mut xs).unwrap(), XenbusState::UNKNOWN);
    assert!(!be.switch_state(&mut xs, XenbusState::CLOSED).unwrap());
    assert_eq!(d.read(&format!("{BE}/state")), None);
    // Only states io/xenbus.h defines are written.
    let e = xenbus::switch_state(&mut xs, FE, XenbusState(9)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FE}/state: refusing to write XenbusState(9), which io/xenbus.h does not define")
    );
}

#[test]
fn a_state_io_xenbus_h_does_not_define_is_refused_with_node_and_value() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, BE).unwrap();
    for (v, shown) in [
        (&b"9"[..], "\"9\""),
        (b"-1", "\"-1\""),
        (b"4 ", "ok"),
        (b"Connected", "\"Connected\""),
        (b"\xff\xfe", "\"\u{fffd}\u{fffd}\""),
    ] {
        d.write(&format!("{FE}/state"), v);
        match be.frontend_state(&mut xs) {
            Ok(s) => assert_eq!((s, shown), (XenbusState::CONNECTED, "ok")),
            Err(e) => assert_eq!(
                e.to_string(),
                format!("{FE}/state: {shown} is not a xenbus state (0-8)")
            ),
        }
    }
    // A long value is cut in the error.
    d.write(&format!("{FE}/state"), &[b'7'; 3000]);
    match be.frontend_state(&mut xs) {
        Err(Error::BadValue { value, path, .. }) => {
            assert_eq!((value.len(), path), (64, format!("{FE}/state")))
        }
        other => panic!("{other:?}"),
    }
    // A wait ends on it too, rather than waiting for a value that makes sense.
    let e = be
        .wait_frontend(&mut xs, Duration::from_secs(5), |s| {
            s == XenbusState::CONNECTED
        })
        .unwrap_err();
    assert!(matches!(e, Error::BadValue { .. }), "{e}");
}

#[test]
fn ring_ref_and_event_channel_are_typed_ids() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, BE).unwrap();
    d.write(&format!("{FE}/ring-ref"), b"8");
    d.write(&format!("{FE}/event-channel"), b"4294967295");
    assert_eq!(be.ring_ref(&mut xs).unwrap(), GrantRef(8));
    assert_eq!(be.event_channel(&mut xs).unwrap(), EvtchnPort(u32::MAX));
    d.write(&format!("{FE}/event-channel"), b"4294967296");
    let e = be.event_channel(&mut xs).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FE}/event-channel: \"4294967296\" is not an event-channel port")
    );
    d.write(&format!("{FE}/ring-ref"), b"0x8");
    let e = be.ring_ref(&mut xs).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FE}/ring-ref: \"0x8\" is not a grant reference")
    );
    // Into the crate's one error type, for a back end's `?`.
    let e: xen::Error = e.into();
    assert!(matches!(e, xen::Error::Protocol { .. }), "{e}");
    assert_eq!(
        xenbus::read_u32(&mut xs, &format!("{BE}/frontend-id"), "a domain id").unwrap(),
        5
    );
}

#[test]
fn the_whole_handshake_between_two_connections() {
    let d = toolstack();
    let mut fe_xs = d.connect();
    let front = thread::spawn(move || -> Result<(), Error> {
        let fe = Frontend::open(&mut fe_xs, FE)?;
        let t = Duration::from_secs(10);
        // Wait for the back end to be ready for our details, publish them.
        fe.wait_backend(&mut fe_xs, t, |s| s >= XenbusState::INITWAIT)?;
        fe.publish_ring(
            &mut fe_xs,
            RingInfo {
                ring_ref: GrantRef(77),
                event_channel: EvtchnPort(12),
            },
        )?;
        let s = fe.wait_backend(&mut fe_xs, t, |s| s == XenbusState::CONNECTED)?;
        assert_eq!(s, XenbusState::CONNECTED);
        fe.switch_state(&mut fe_xs, XenbusState::CONNECTED)?;
        // ... the device works; then the front end goes away.
        thread::sleep(Duration::from_millis(50));
        fe.switch_state(&mut fe_xs, XenbusState::CLOSING)?;
        fe.wait_backend(&mut fe_xs, t, |s| s == XenbusState::CLOSED)?;
        fe.switch_state(&mut fe_xs, XenbusState::CLOSED)?;
        Ok(())
    });
    let mut xs = d.connect();
    // The caller's own watch, with events queued before and during the waits: left alone.
    xs.watch("/local/domain/0/backend/echo", "devices").unwrap();
    let be = Backend::open(&mut xs, BE).unwrap();
    let ring = be
        .wait_for_frontend_ring(&mut xs, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        ring,
        RingInfo {
            ring_ref: GrantRef(77),
            event_channel: EvtchnPort(12),
        }
    );
    assert_eq!(
        be.frontend_state(&mut xs).unwrap(),
        XenbusState::INITIALISED
    );
    assert!(be.switch_state(&mut xs, XenbusState::CONNECTED).unwrap());
    // Serve until the front end closes: a watch on its state node, checked on each event.
    xs.watch(&be.frontend_state_path(), "fe").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while !be.frontend_closing(&mut xs).unwrap() {
        let left = end.saturating_duration_since(Instant::now());
        assert!(xs.wait_event_for("fe", Some(left)).unwrap().is_some());
    }
    assert!(be.switch_state(&mut xs, XenbusState::CLOSED).unwrap());
    front.join().unwrap().unwrap();
    assert_eq!(d.read(&format!("{FE}/state")).unwrap(), b"6");
    // The waits' own watches are gone with their events; the caller's are all there: the
    // first one, and one per write of our state (InitWait, Connected, Closed).
    let mut mine = Vec::new();
    while let Some(e) = xs.pending_event() {
        assert!(e.token == "devices" || e.token == "fe", "{e:?}");
        if e.token == "devices" {
            mine.push(e.path);
        }
    }
    assert_eq!(
        mine,
        [
            "/local/domain/0/backend/echo".to_string(),
            format!("{BE}/state"),
            format!("{BE}/state"),
            format!("{BE}/state"),
        ]
    );
}

#[test]
fn a_wait_times_out_with_the_last_state_seen() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, BE).unwrap();
    let t0 = Instant::now();
    let e = be
        .wait_frontend(&mut xs, Duration::from_millis(200), |s| {
            s == XenbusState::CONNECTED
        })
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        e,
        Error::Timeout {
            path: format!("{FE}/state"),
            last: XenbusState::INITIALISING,
            waited: Duration::from_millis(200),
        }
    );
    assert_eq!(
        e.to_string(),
        format!("{FE}/state: still XenbusStateInitialising after 200ms")
    );
    let e: xen::Error = e.into();
    assert_eq!(e.errno(), Some(110));
    // The wait's watch is gone: a change now queues nothing.
    d.write(&format!("{FE}/state"), b"2");
    thread::sleep(Duration::from_millis(50));
    assert_eq!(xs.pending_event(), None);
}

#[test]
fn a_front_end_that_closes_while_the_back_end_waits_ends_the_wait() {
    let d = toolstack();
    let mut xs = d.connect();
    let be = Backend::open(&mut xs, BE).unwrap();
    let d2 = d.clone();
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        d2.write(&format!("{FE}/state"), b"5");
    });
    let e = be
        .wait_for_frontend_ring(&mut xs, Duration::from_secs(10))
        .unwrap_err();
    closer.join().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{FE}/state: the other end went to XenbusStateClosing while waiting for the front \
             end's ring"
        )
    );
    assert_eq!(be.state(&mut xs).unwrap(), XenbusState::INITWAIT);
    // A front end gone altogether reads as Unknown, which counts as closing.
    d.rm(FE);
    assert!(be.frontend_closing(&mut xs).unwrap());
}

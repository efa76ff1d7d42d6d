//! The xenbus handshake of split (PV) devices, on a [`xenstore::Client`]: each end's `state`
//! node read and switched as a typed [`XenbusState`], waits for the other end bounded by a
//! timeout and woken by watches, the standard directories and the nodes that link them, and
//! what a front end publishes for a one-page ring (`ring-ref`, `event-channel`) read as typed
//! ids.
//!
//! A device `<type>/<devid>` of front-end domain `F` served by back-end domain `B` has two
//! directories, made by the toolstack:
//!
//! | end | directory | links to the other end |
//! |---|---|---|
//! | back end | `/local/domain/B/backend/<type>/F/<devid>` ([`backend_dir`]) | `frontend`, `frontend-id` |
//! | front end | `/local/domain/F/device/<type>/<devid>` ([`frontend_dir`]) | `backend`, `backend-id` |
//!
//! Each end writes its state (`io/xenbus.h`, a decimal number) into its own `state` node: the
//! back end `InitWait` once it is ready for the front end's details, the front end publishes
//! its ring and goes `Initialised`, the back end maps the ring, binds the event channel and
//! goes `Connected`; either end goes `Closing`, then `Closed`, to tear down.
//!
//! Everything the other end writes is checked: a `state` that is not one of `io/xenbus.h`'s
//! values, or an id that is not a decimal number of its type, is an error naming the node and
//! the value ([`Error::BadValue`]), never a guess.
//!
//! A back end in a few lines:
//!
//! ```no_run
//! use std::time::Duration;
//! use xen::sys::XenbusState;
//! use xen::xenbus::Backend;
//! use xen::xenstore::Client;
//!
//! let mut xs = Client::open()?;
//! // A device the toolstack made (found by watching `backend/echo`, say).
//! let be = Backend::open(&mut xs, "/local/domain/0/backend/echo/5/0")?;
//! // InitWait, then wait for the front end's ring-ref and event-channel.
//! let ring = be.wait_for_frontend_ring(&mut xs, Duration::from_secs(30))?;
//! println!("ring grant {} event channel {}", ring.ring_ref, ring.event_channel);
//! // ... map `ring.ring_ref` of `be.frontend_id` (xen::grant::Gntdev), bind the port
//! // (xen::linux::Evtchn), serve it (xen::ring::BackRing) ...
//! be.switch_state(&mut xs, XenbusState::CONNECTED)?;
//! // Serving until the front end closes: watch its state node, check it on each event.
//! xs.watch(&be.frontend_state_path(), "fe")?;
//! while !be.frontend_closing(&mut xs)? {
//!     xs.wait_event_for("fe", None)?;
//! }
//! // ... unmap, unbind ...
//! be.switch_state(&mut xs, XenbusState::CLOSED)?;
//! # Ok::<(), xen::xenbus::Error>(())
//! ```

use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::{format, vec};

use core::sync::atomic::{AtomicU64, Ordering};

pub use xen_sys::XenbusState;

use crate::xenstore::{self, Client, Conn};
use crate::{DomId, EvtchnPort, GrantRef};

/// A failed xenbus step: xenstore's error, or what the other end (or the toolstack) wrote that
/// the protocol does not allow, with the node's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading, writing or watching a node failed (its operation, path and errno).
    #[error(transparent)]
    Xenstore(#[from] xenstore::Error),
    /// A node holds a value its protocol does not allow.
    #[error("{path}: {value:?} is not {what}")]
    BadValue {
        /// The node.
        path: String,
        /// What it holds (cut to 64 characters, invalid UTF-8 replaced).
        value: String,
        /// What it should be (`"a xenbus state (0-8)"`, `"a grant reference"`, ...).
        what: &'static str,
    },
    /// Asked to write a state `io/xenbus.h` does not define.
    #[error("{path}: refusing to write {state:?}, which io/xenbus.h does not define")]
    UnknownState {
        /// The `state` node.
        path: String,
        /// The state asked for.
        state: XenbusState,
    },
    /// The other end did not reach the state waited for in time.
    #[error("{path}: still {last:?} after {waited:?}")]
    Timeout {
        /// The `state` node waited on.
        path: String,
        /// What it held last (`XenbusStateUnknown` for a missing node).
        last: XenbusState,
        /// How long was waited.
        waited: Duration,
    },
    /// The other end went to a state that ends the wait without the outcome waited for
    /// (`Closing` while a back end waited for the front end's ring, say).
    #[error("{path}: the other end went to {state:?} while {waiting}")]
    OtherEnd {
        /// The other end's `state` node.
        path: String,
        /// Its state.
        state: XenbusState,
        /// What was being waited for.
        waiting: &'static str,
    },
    /// A directory that is not a device's, or whose links disagree with it.
    #[error("{path}: {what}")]
    BadDevice {
        /// The directory or node.
        path: String,
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// The errno, for xenstore's daemon and I/O errors.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Xenstore(e) => e.errno(),
            _ => None,
        }
    }
}

/// As one error type for a whole back end (see [`crate::Error`]'s `From` for xenstore).
impl From<Error> for crate::Error {
    fn from(e: Error) -> crate::Error {
        match e {
            Error::Xenstore(e) => e.into(),
            Error::BadValue { .. } => crate::Error::Protocol {
                op: "xenbus",
                what: "a xenstore node holds a value its protocol does not allow",
            },
            Error::UnknownState { .. } => crate::Error::InvalidArgument {
                op: "xenbus switch state",
                what: "not a state io/xenbus.h defines",
            },
            Error::Timeout { .. } => crate::Error::Os {
                op: "xenbus wait for the other end",
                errno: ETIMEDOUT,
            },
            Error::OtherEnd { .. } => crate::Error::Protocol {
                op: "xenbus wait for the other end",
                what: "the other end is closing",
            },
            Error::BadDevice { .. } => crate::Error::Protocol {
                op: "xenbus device",
                what: "not a device directory, or its links disagree with it",
            },
        }
    }
}

const ETIMEDOUT: i32 = 110;

/// A back end's directory: `/local/domain/<backend>/backend/<kind>/<frontend>/<devid>`.
///
/// ```
/// use xen::{xenbus, DomId};
/// assert_eq!(xenbus::backend_dir(DomId(0), "vif", DomId(5), 0),
///            "/local/domain/0/backend/vif/5/0");
/// ```
pub fn backend_dir(backend: DomId, kind: &str, frontend: DomId, devid: u32) -> String {
    format!("/local/domain/{backend}/backend/{kind}/{frontend}/{devid}")
}

/// A front end's directory: `/local/domain/<frontend>/device/<kind>/<devid>`.
///
/// ```
/// use xen::{xenbus, DomId};
/// assert_eq!(xenbus::frontend_dir(DomId(5), "vbd", 51712),
///            "/local/domain/5/device/vbd/51712");
/// ```
pub fn frontend_dir(frontend: DomId, kind: &str, devid: u32) -> String {
    format!("/local/domain/{frontend}/device/{kind}/{devid}")
}

/// The `state` node of an end's directory.
pub fn state_path(dir: &str) -> String {
    format!("{}/state", dir.trim_end_matches('/'))
}

/// A node's value as shown in errors: at most 64 characters, invalid UTF-8 replaced.
fn shown(v: &[u8]) -> String {
    String::from_utf8_lossy(v).chars().take(64).collect()
}

/// A decimal number as xenstore holds them: ASCII digits, surrounding ASCII whitespace and
/// trailing NULs ignored; no sign, no other base.
fn decimal(v: &[u8]) -> Option<u64> {
    let s = core::str::from_utf8(v).ok()?;
    let s = s.trim_end_matches('\0').trim_ascii();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A state as its `state` node holds it.
///
/// ```
/// use xen::sys::XenbusState;
/// use xen::xenbus::parse_state;
/// assert_eq!(parse_state("/fe/state", b"4"), Ok(XenbusState::CONNECTED));
/// let e = parse_state("/fe/state", b"9").unwrap_err();
/// assert_eq!(e.to_string(), "/fe/state: \"9\" is not a xenbus state (0-8)");
/// ```
pub fn parse_state(path: &str, value: &[u8]) -> Result<XenbusState, Error> {
    decimal(value)
        .and_then(|n| u32::try_from(n).ok())
        .map(XenbusState)
        .filter(|s| s.name().is_some())
        .ok_or_else(|| Error::BadValue {
            path: path.to_string(),
            value: shown(value),
            what: "a xenbus state (0-8)",
        })
}

/// Read a decimal number of type `T` from `path`; `what` names it in the error.
fn number<C: Conn, T: TryFrom<u64>>(
    xs: &mut Client<C>,
    path: &str,
    what: &'static str,
) -> Result<T, Error> {
    let v = xs.read(path)?;
    decimal(&v)
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| Error::BadValue {
            path: path.to_string(),
            value: shown(&v),
            what,
        })
}

/// Read a decimal `u32` at `path` (a front end's `ring-page-order`, a feature flag...); `what`
/// names it in the error.
pub fn read_u32<C: Conn>(xs: &mut Client<C>, path: &str, what: &'static str) -> Result<u32, Error> {
    number(xs, path, what)
}

/// The state of the end whose directory is `dir`: `XenbusStateUnknown` when its `state`
/// node is missing (as Linux's `xenbus_read_driver_state` has it: the device is not made yet,
/// or gone), an error for a value `io/xenbus.h` does not define.
pub fn read_state<C: Conn>(xs: &mut Client<C>, dir: &str) -> Result<XenbusState, Error> {
    let path = state_path(dir);
    match xs.read(&path) {
        Ok(v) => parse_state(&path, &v),
        Err(e) if e.is_not_found() => Ok(XenbusState::UNKNOWN),
        Err(e) => Err(e.into()),
    }
}

/// Switch the end whose directory is `dir` to `state`, as Linux's `xenbus_switch_state`: in
/// a transaction, written only if it differs (so watches do not fire for nothing), and not at
/// all when the `state` node is missing (the device is being removed: writing would make its
/// directory again). `Ok(true)` when the node holds `state` now, `Ok(false)` when it was
/// missing.
pub fn switch_state<C: Conn>(
    xs: &mut Client<C>,
    dir: &str,
    state: XenbusState,
) -> Result<bool, Error> {
    let path = state_path(dir);
    if state.name().is_none() {
        return Err(Error::UnknownState { path, state });
    }
    let value = state.0.to_string();
    Ok(xs.transaction(|t| match t.read(&path) {
        Ok(v) if v == value.as_bytes() => Ok(true),
        Ok(_) => t.write(&path, value.as_bytes()).map(|()| true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    })?)
}

/// A token no other wait of this process uses.
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("xen::xenbus wait {}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Wait until the state of the end whose directory is `dir` satisfies `done` (a missing node
/// reads as `XenbusStateUnknown`), at most `timeout`; returns that state. Woken by a watch of
/// its own on the `state` node (removed before returning, its events dropped), so the
/// caller's watches and their queued events are left alone. A value `io/xenbus.h` does not
/// define ends the wait with [`Error::BadValue`], the time running out with
/// [`Error::Timeout`].
pub fn wait_state<C: Conn>(
    xs: &mut Client<C>,
    dir: &str,
    timeout: Duration,
    mut done: impl FnMut(XenbusState) -> bool,
) -> Result<XenbusState, Error> {
    let path = state_path(dir);
    let token = token();
    xs.watch(&path, &token)?;
    let end = Instant::now() + timeout;
    let r = loop {
        let s = match read_state(xs, dir) {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        if done(s) {
            break Ok(s);
        }
        let left = end.saturating_duration_since(Instant::now());
        match xs.wait_event_for(&token, Some(left)) {
            Ok(Some(_)) => {}
            Ok(None) => {
                break Err(Error::Timeout {
                    path: path.clone(),
                    last: s,
                    waited: timeout,
                })
            }
            Err(e) => break Err(e.into()),
        }
    };
    let unwatched = xs.unwatch(&path, &token);
    xs.discard_events(&token);
    // The wait's own error matters more than the unwatch's.
    let s = r?;
    unwatched?;
    Ok(s)
}

/// Whether `s` is a closing end's (or a gone one's): `Closing`, `Closed`, or `Unknown` (the
/// `state` node is missing).
pub fn is_closing(s: XenbusState) -> bool {
    s == XenbusState::CLOSING || s == XenbusState::CLOSED || s == XenbusState::UNKNOWN
}

/// What a front end publishes for a one-page ring: the grant of the ring's page and the
/// event channel (both in the front end's numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RingInfo {
    /// `ring-ref`: the front end's grant of the shared ring page.
    pub ring_ref: GrantRef,
    /// `event-channel`: the front end's unbound port for the back end to bind.
    pub event_channel: EvtchnPort,
}

/// Split `dir` into its last three parts; the rest before them.
fn tail3(dir: &str) -> Option<(&str, &str, &str, &str)> {
    let (rest, c) = dir.rsplit_once('/')?;
    let (rest, b) = rest.rsplit_once('/')?;
    let (rest, a) = rest.rsplit_once('/')?;
    Some((rest, a, b, c))
}

fn bad_device(path: &str, what: impl Into<String>) -> Error {
    Error::BadDevice {
        path: path.to_string(),
        what: what.into(),
    }
}

/// A node naming the other end's directory (`frontend`, `backend`): an absolute path.
fn link<C: Conn>(xs: &mut Client<C>, path: &str) -> Result<String, Error> {
    let v = xs.read(path)?;
    match String::from_utf8(v) {
        Ok(s) if s.starts_with('/') && s.len() > 1 && !s.contains('\0') => {
            Ok(s.trim_end_matches('/').to_string())
        }
        Ok(s) => Err(Error::BadValue {
            path: path.to_string(),
            value: shown(s.as_bytes()),
            what: "an absolute xenstore path",
        }),
        Err(e) => Err(Error::BadValue {
            path: path.to_string(),
            value: shown(e.as_bytes()),
            what: "an absolute xenstore path",
        }),
    }
}

/// The back end of a device: its directory and the front end's, as the toolstack linked them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// This end's directory, `.../backend/<kind>/<frontend_id>/<devid>`.
    pub dir: String,
    /// The device type (`vif`, `vbd`, ...).
    pub kind: String,
    /// The front end's domain.
    pub frontend_id: DomId,
    /// The device's id under the front end.
    pub devid: u32,
    /// The front end's directory (the `frontend` node).
    pub frontend: String,
}

impl Backend {
    /// The back end whose directory is `dir` (absolute, ending
    /// `backend/<kind>/<frontend-domid>/<devid>`): its `frontend` and `frontend-id` nodes
    /// read and checked against the path.
    pub fn open<C: Conn>(xs: &mut Client<C>, dir: &str) -> Result<Backend, Error> {
        let dir = dir.trim_end_matches('/');
        let Some((rest, kind, fe, devid)) = tail3(dir).filter(|_| dir.starts_with('/')) else {
            return Err(bad_device(
                dir,
                "not an absolute path ending backend/<type>/<frontend domid>/<devid>",
            ));
        };
        if !rest.ends_with("/backend") || kind.is_empty() {
            return Err(bad_device(dir, "not under a backend/<type> directory"));
        }
        let frontend_id = decimal(fe.as_bytes())
            .and_then(|n| u16::try_from(n).ok())
            .map(DomId)
            .ok_or_else(|| bad_device(dir, format!("{fe:?} is not a front end's domain id")))?;
        let devid = decimal(devid.as_bytes())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad_device(dir, format!("{devid:?} is not a device id")))?;
        let id_path = format!("{dir}/frontend-id");
        let id = DomId(number(xs, &id_path, "a domain id")?);
        if id != frontend_id {
            return Err(bad_device(
                &id_path,
                format!("domain {id}, but the directory is domain {frontend_id}'s"),
            ));
        }
        let frontend = link(xs, &format!("{dir}/frontend"))?;
        Ok(Backend {
            dir: dir.to_string(),
            kind: kind.to_string(),
            frontend_id,
            devid,
            frontend,
        })
    }

    /// This end's `state` node.
    pub fn state_path(&self) -> String {
        state_path(&self.dir)
    }

    /// The front end's `state` node (watch it to hear of the front end's changes).
    pub fn frontend_state_path(&self) -> String {
        state_path(&self.frontend)
    }

    /// This end's state ([`read_state`]).
    pub fn state<C: Conn>(&self, xs: &mut Client<C>) -> Result<XenbusState, Error> {
        read_state(xs, &self.dir)
    }

    /// Switch this end to `state` ([`switch_state`]: not written when the node is gone).
    pub fn switch_state<C: Conn>(
        &self,
        xs: &mut Client<C>,
        state: XenbusState,
    ) -> Result<bool, Error> {
        switch_state(xs, &self.dir, state)
    }

    /// The front end's state ([`read_state`]).
    pub fn frontend_state<C: Conn>(&self, xs: &mut Client<C>) -> Result<XenbusState, Error> {
        read_state(xs, &self.frontend)
    }

    /// Whether the front end is closing or gone ([`is_closing`]): time to tear down and
    /// switch to `Closed`.
    pub fn frontend_closing<C: Conn>(&self, xs: &mut Client<C>) -> Result<bool, Error> {
        self.frontend_state(xs).map(is_closing)
    }

    /// Wait until the front end's state satisfies `done` ([`wait_state`]).
    pub fn wait_frontend<C: Conn>(
        &self,
        xs: &mut Client<C>,
        timeout: Duration,
        done: impl FnMut(XenbusState) -> bool,
    ) -> Result<XenbusState, Error> {
        wait_state(xs, &self.frontend, timeout, done)
    }

    /// The front end's `ring-ref` (a grant of its domain).
    pub fn ring_ref<C: Conn>(&self, xs: &mut Client<C>) -> Result<GrantRef, Error> {
        let path = format!("{}/ring-ref", self.frontend);
        number(xs, &path, "a grant reference").map(GrantRef)
    }

    /// The front end's `event-channel` (an unbound port of its domain, for this end to bind).
    pub fn event_channel<C: Conn>(&self, xs: &mut Client<C>) -> Result<EvtchnPort, Error> {
        let path = format!("{}/event-channel", self.frontend);
        number(xs, &path, "an event-channel port").map(EvtchnPort)
    }

    /// The back end's side of the handshake up to the front end's details: switch to
    /// `InitWait`, wait (at most `timeout`) for the front end to reach `Initialised` or
    /// `Connected`, then read its [`RingInfo`]. A front end that is `Closing` or `Closed`
    /// meanwhile ends the wait with [`Error::OtherEnd`]. Map the ring and bind the port, then
    /// [`switch_state`](Self::switch_state) to `Connected`.
    pub fn wait_for_frontend_ring<C: Conn>(
        &self,
        xs: &mut Client<C>,
        timeout: Duration,
    ) -> Result<RingInfo, Error> {
        self.switch_state(xs, XenbusState::INITWAIT)?;
        let s = self.wait_frontend(xs, timeout, |s| {
            s == XenbusState::INITIALISED
                || s == XenbusState::CONNECTED
                || s == XenbusState::CLOSING
                || s == XenbusState::CLOSED
        })?;
        if s == XenbusState::CLOSING || s == XenbusState::CLOSED {
            return Err(Error::OtherEnd {
                path: self.frontend_state_path(),
                state: s,
                waiting: "waiting for the front end's ring",
            });
        }
        Ok(RingInfo {
            ring_ref: self.ring_ref(xs)?,
            event_channel: self.event_channel(xs)?,
        })
    }
}

/// The front end of a device: its directory and the back end's, as the toolstack linked them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// This end's directory, `.../device/<kind>/<devid>`.
    pub dir: String,
    /// The device type.
    pub kind: String,
    /// The device's id.
    pub devid: u32,
    /// The back end's domain.
    pub backend_id: DomId,
    /// The back end's directory (the `backend` node).
    pub backend: String,
}

impl Frontend {
    /// The front end whose directory is `dir` (absolute, ending `device/<kind>/<devid>`):
    /// its `backend` and `backend-id` nodes read.
    pub fn open<C: Conn>(xs: &mut Client<C>, dir: &str) -> Result<Frontend, Error> {
        let dir = dir.trim_end_matches('/');
        let Some((_, device, kind, devid)) = tail3(dir).filter(|_| dir.starts_with('/')) else {
            return Err(bad_device(
                dir,
                "not an absolute path ending device/<type>/<devid>",
            ));
        };
        if device != "device" || kind.is_empty() {
            return Err(bad_device(dir, "not under a device/<type> directory"));
        }
        let devid = decimal(devid.as_bytes())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad_device(dir, format!("{devid:?} is not a device id")))?;
        let backend_id = DomId(number(xs, &format!("{dir}/backend-id"), "a domain id")?);
        let backend = link(xs, &format!("{dir}/backend"))?;
        Ok(Frontend {
            dir: dir.to_string(),
            kind: kind.to_string(),
            devid,
            backend_id,
            backend,
        })
    }

    /// This end's `state` node.
    pub fn state_path(&self) -> String {
        state_path(&self.dir)
    }

    /// The back end's `state` node.
    pub fn backend_state_path(&self) -> String {
        state_path(&self.backend)
    }

    /// This end's state ([`read_state`]).
    pub fn state<C: Conn>(&self, xs: &mut Client<C>) -> Result<XenbusState, Error> {
        read_state(xs, &self.dir)
    }

    /// Switch this end to `state` ([`switch_state`]).
    pub fn switch_state<C: Conn>(
        &self,
        xs: &mut Client<C>,
        state: XenbusState,
    ) -> Result<bool, Error> {
        switch_state(xs, &self.dir, state)
    }

    /// The back end's state ([`read_state`]).
    pub fn backend_state<C: Conn>(&self, xs: &mut Client<C>) -> Result<XenbusState, Error> {
        read_state(xs, &self.backend)
    }

    /// Wait until the back end's state satisfies `done` ([`wait_state`]).
    pub fn wait_backend<C: Conn>(
        &self,
        xs: &mut Client<C>,
        timeout: Duration,
        done: impl FnMut(XenbusState) -> bool,
    ) -> Result<XenbusState, Error> {
        wait_state(xs, &self.backend, timeout, done)
    }

    /// Publish a one-page ring, as Linux's front ends do: `ring-ref` and `event-channel` in
    /// one transaction, then switch to `Initialised`.
    pub fn publish_ring<C: Conn>(&self, xs: &mut Client<C>, ring: RingInfo) -> Result<(), Error> {
        let nodes = vec![
            (
                format!("{}/ring-ref", self.dir),
                ring.ring_ref.0.to_string(),
            ),
            (
                format!("{}/event-channel", self.dir),
                ring.event_channel.0.to_string(),
            ),
        ];
        xs.transaction(|t| {
            for (p, v) in &nodes {
                t.write(p, v.as_bytes())?;
            }
            Ok(())
        })?;
        self.switch_state(xs, XenbusState::INITIALISED)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_strict() {
        assert_eq!(decimal(b"42"), Some(42));
        assert_eq!(decimal(b" 42\n"), Some(42));
        assert_eq!(decimal(b"42\0"), Some(42));
        for bad in [
            &b""[..],
            b" ",
            b"+1",
            b"-1",
            b"0x10",
            b"1 2",
            b"4\x002",
            b"\xff",
            b"184467440737095516160",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
    }

    #[test]
    fn states_outside_the_header_are_refused_with_path_and_value() {
        for (v, s) in [(&b"0"[..], 0), (b"1", 1), (b"8", 8), (b"6\n", 6)] {
            assert_eq!(parse_state("/s", v), Ok(XenbusState(s)));
        }
        let e = parse_state("/d/state", b"Connected").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/d/state: \"Connected\" is not a xenbus state (0-8)"
        );
        assert!(parse_state("/s", b"4294967296").is_err());
        let long = [b'9'; 200];
        match parse_state("/s", &long) {
            Err(Error::BadValue { value, .. }) => assert_eq!(value.len(), 64),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(state_path("/a/b/"), "/a/b/state");
        assert_eq!(
            tail3("/local/domain/0/backend/vif/5/0"),
            Some(("/local/domain/0/backend", "vif", "5", "0"))
        );
        assert_eq!(tail3("/a/b"), None);
        assert!(is_closing(XenbusState::UNKNOWN) && !is_closing(XenbusState::CONNECTED));
    }

    #[test]
    fn converts_into_the_crate_error() {
        let e: crate::Error = Error::Timeout {
            path: "/x/state".into(),
            last: XenbusState::INITWAIT,
            waited: Duration::from_secs(1),
        }
        .into();
        assert_eq!(e.errno(), Some(ETIMEDOUT));
    }
}

//! A PV back end to start from: the xenbus handshake in xenstore, the front end's ring page
//! mapped by grant, its event channel bound, requests answered. The device, `echo`, upper-cases
//! each request. One event loop polls two descriptors: xenstore's and the event channels'.
//!
//! `pv_echo_backend [--toolstack FRONTEND_DOMID]`: with `--toolstack` it first creates the
//! device's two xenstore directories as a toolstack would (`backend/echo/FE/0` under dom0's
//! home, `device/echo/0` under the front end's, with the front end allowed to write its own and
//! read ours). Then it waits for a device under `backend/echo`, and serves it until the front
//! end closes.
//!
//! The ring (one page, granted by the front end): `req_prod` (u32) at 0, `rsp_prod` (u32) at 4,
//! 16 request slots of 64 bytes from offset 64 and 16 response slots from 2048, each a u32
//! length and up to 60 bytes. Indices run freely; slot = index % 16. The front end never has
//! more than 16 requests outstanding; a front end that breaks the rules is disconnected, never
//! trusted: every index and length is checked against a private copy.
//!
//! Run by tests/real-xen/xenstore-grant.sh with the PVH test guest (`echo-frontend`) as the
//! front end.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use xen::grant::{Gntdev, Shared};
use xen::linux::Evtchn;
use xen::xenstore::{Access, Client, Perm};
use xen::Error;

const SLOTS: u32 = 16;
const REQ: usize = 64;
const RSP: usize = 2048;
const SLOT: usize = 64;

// xenbus states (io/xenbus.h).
const INIT_WAIT: &[u8] = b"2";
const INITIALISED: &[u8] = b"3";
const CONNECTED: &[u8] = b"4";
const CLOSING: &[u8] = b"5";
const CLOSED: &[u8] = b"6";

/// One error type for the whole back end: xenstore's, the grant and event-channel devices' and
/// the hypervisor's errors all convert into `xen::Error` with `?`.
type Res<T> = Result<T, Error>;

/// ETIMEDOUT, for the waits this back end bounds.
fn timed_out(op: &'static str) -> Error {
    Error::Os { op, errno: 110 }
}

/// A number the front end (or the toolstack) wrote in xenstore.
fn number<T: std::str::FromStr>(xs: &mut Client, path: &str, op: &'static str) -> Res<T> {
    let v = xs.read(path)?;
    std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Error::Protocol {
            op,
            what: "not a decimal number",
        })
}

fn poll_err(e: rustix::io::Errno) -> Error {
    Error::Os {
        op: "poll",
        errno: e.raw_os_error(),
    }
}

fn say(s: impl std::fmt::Display) {
    println!("pv_echo_backend: {s}");
}

/// As a toolstack: the two directories of device `echo/0` of `fe`.
fn create_device(xs: &mut Client, fe: xen::DomId) -> Res<()> {
    let be = format!("/local/domain/0/backend/echo/{fe}/0");
    let fe_dir = format!("/local/domain/{fe}/device/echo/0");
    xs.transaction(|t| {
        t.write(&format!("{be}/frontend"), fe_dir.as_bytes())?;
        t.write(&format!("{be}/frontend-id"), fe.to_string().as_bytes())?;
        t.write(&format!("{be}/state"), b"1")?;
        // Ours; the front end may read it.
        let theirs_read = [
            Perm {
                domid: xen::DomId(0),
                access: Access::None,
            },
            Perm {
                domid: fe,
                access: Access::Read,
            },
        ];
        for p in ["frontend", "frontend-id", "state", ""] {
            let path = if p.is_empty() {
                be.clone()
            } else {
                format!("{be}/{p}")
            };
            t.set_perms(&path, &theirs_read)?;
        }
        t.write(&format!("{fe_dir}/backend"), be.as_bytes())?;
        t.write(&format!("{fe_dir}/backend-id"), b"0")?;
        t.write(&format!("{fe_dir}/state"), b"1")?;
        // The front end owns its directory.
        let owned = [
            Perm {
                domid: fe,
                access: Access::None,
            },
            Perm {
                domid: xen::DomId(0),
                access: Access::Read,
            },
        ];
        for p in ["backend", "backend-id", "state", ""] {
            let path = if p.is_empty() {
                fe_dir.clone()
            } else {
                format!("{fe_dir}/{p}")
            };
            t.set_perms(&path, &owned)?;
        }
        Ok(())
    })?;
    say(format!("created {be} and {fe_dir}"));
    Ok(())
}

/// Take every queued watch event; whether there was one. A read's reply often brings events
/// with it: they are queued, not left on the descriptor, so poll would not report them.
fn take_events(xs: &mut Client) -> bool {
    let mut any = false;
    while xs.pending_event().is_some() {
        any = true;
    }
    any
}

/// Wait for a xenstore event until `end`.
fn next_change(xs: &mut Client, end: Instant) -> Res<()> {
    let left = end.saturating_duration_since(Instant::now());
    xs.wait_event(Some(left))?
        .ok_or(timed_out("wait for a xenstore event"))?;
    take_events(xs);
    Ok(())
}

/// Wait up to `secs` for `path` to read `want`, by watch events.
fn await_value(xs: &mut Client, path: &str, want: &[u8], secs: u64) -> Res<()> {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        if xs.read(path).is_ok_and(|v| v == want) {
            return Ok(());
        }
        next_change(xs, end)?;
    }
}

/// Poll `fds` for input until `end`; which are readable.
fn wait_readable(fds: &[std::os::fd::BorrowedFd<'_>], end: Instant) -> Res<Vec<bool>> {
    let left = end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out("wait for the event channel or xenstore"));
    }
    let ts = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    poll(&mut p, Some(&ts)).map_err(poll_err)?;
    Ok(p.iter()
        .map(|f| f.revents().contains(PollFlags::IN))
        .collect())
}

/// Whether the event-channel descriptor has input now.
fn evtchn_ready(e: &Evtchn) -> Res<bool> {
    let mut p = [PollFd::new(e, PollFlags::IN)];
    poll(
        &mut p,
        Some(&Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }),
    )
    .map_err(poll_err)?;
    Ok(p[0].revents().contains(PollFlags::IN))
}

fn read_u32(page: &impl Shared, off: usize) -> Res<u32> {
    let mut b = [0u8; 4];
    page.read_at(off, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut xs = Client::open()?;
    if args.get(1).map(String::as_str) == Some("--toolstack") {
        let fe = args
            .get(2)
            .and_then(|a| a.parse().ok())
            .map(xen::DomId)
            .ok_or(Error::InvalidArgument {
                op: "pv_echo_backend",
                what: "--toolstack FRONTEND_DOMID",
            })?;
        create_device(&mut xs, fe)?;
    }
    let root = "/local/domain/0/backend/echo";
    xs.watch(root, "devices")?;
    say(format!("watching {root}"));
    // The first device that appears.
    let end = Instant::now() + Duration::from_secs(60);
    let (fe, be) = loop {
        let found = xs.directory(root).ok().and_then(|fes| {
            fes.into_iter().find_map(|f| {
                let ids = xs.directory(&format!("{root}/{f}")).ok()?;
                Some((
                    xen::DomId(f.parse().ok()?),
                    format!("{root}/{f}/{}", ids.first()?),
                ))
            })
        });
        if let Some(d) = found {
            break d;
        }
        next_change(&mut xs, end)?;
    };
    let fe_dir =
        String::from_utf8(xs.read(&format!("{be}/frontend"))?).map_err(|_| Error::Protocol {
            op: "read the front end's path",
            what: "not UTF-8",
        })?;
    say(format!("device {be} of domain {fe}, front end at {fe_dir}"));
    xs.watch(&fe_dir, "frontend")?;
    xs.write(&format!("{be}/state"), INIT_WAIT)?;
    await_value(&mut xs, &format!("{fe_dir}/state"), INITIALISED, 60)?;
    let ring_ref = xen::GrantRef(number(
        &mut xs,
        &format!("{fe_dir}/ring-ref"),
        "read ring-ref",
    )?);
    let port = xen::EvtchnPort(number(
        &mut xs,
        &format!("{fe_dir}/event-channel"),
        "read event-channel",
    )?);
    let gntdev = Gntdev::open()?;
    let ring = gntdev.map(fe, &[ring_ref], xen::grant::Access::ReadWrite)?;
    let evtchn = Evtchn::open()?;
    let local = evtchn.bind_interdomain(fe, port)?;
    xs.write(&format!("{be}/state"), CONNECTED)?;
    say(format!(
        "connected: ring grant {ring_ref}, event channel {port} (local {local})"
    ));

    // Serve: requests on events, the front end's state on xenstore watch events.
    let mut rsp_prod = read_u32(&ring, 4)?;
    let mut served = 0u64;
    let end = Instant::now() + Duration::from_secs(120);
    'serve: loop {
        // Events queued by an earlier read count as xenstore input without polling.
        let queued = take_events(&mut xs);
        let mut ready = if queued {
            vec![false, true]
        } else {
            wait_readable(&[evtchn.as_fd(), xs.as_fd()], end)?
        };
        if queued {
            // Requests may be waiting too: look without blocking.
            ready[0] = evtchn_ready(&evtchn)?;
        }
        if ready[0] {
            if let Some(p) = evtchn.pending()? {
                evtchn.unmask(p)?;
            }
            let req_prod = read_u32(&ring, 0)?;
            if req_prod.wrapping_sub(rsp_prod) > SLOTS {
                say(format!("front end broke the ring (req_prod {req_prod}, rsp_prod {rsp_prod}): disconnecting"));
                break 'serve;
            }
            while rsp_prod != req_prod {
                let slot = (rsp_prod % SLOTS) as usize;
                let len = (read_u32(&ring, REQ + slot * SLOT)? as usize).min(SLOT - 4);
                let mut req = vec![0u8; len];
                ring.read_at(REQ + slot * SLOT + 4, &mut req)?;
                let rsp = req.to_ascii_uppercase();
                ring.write_at(RSP + slot * SLOT, &(rsp.len() as u32).to_le_bytes())?;
                ring.write_at(RSP + slot * SLOT + 4, &rsp)?;
                rsp_prod = rsp_prod.wrapping_add(1);
                served += 1;
            }
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            ring.write_at(4, &rsp_prod.to_le_bytes())?;
            evtchn.notify(local)?;
        }
        if ready[1] {
            if !queued {
                xs.dispatch()?;
                take_events(&mut xs);
            }
            let st = xs.read(&format!("{fe_dir}/state")).unwrap_or_default();
            if st == CLOSING || st == CLOSED {
                break 'serve;
            }
        }
    }
    drop(ring); // unmapped and released before we say Closed
    evtchn.unbind(local)?;
    xs.write(&format!("{be}/state"), CLOSED)?;
    say(format!("closed after echoing {served} requests"));
    Ok(())
}

//! Checks the Linux privcmd backend (`xen-sys`) and the evtchn device (`xen::linux::Evtchn`)
//! against a running Xen from a dom0. The real-Xen
//! harness (`tests/real-xen/linux-dom0.sh`) runs it as a static binary in a Linux PV dom0 and
//! reads one `CHECK` line per check and a `RESULT` line.
//!
//! Run by hand in a dom0: `cargo run -p xen --example privcmd_check --features std`.

use std::os::fd::AsFd;
use std::process::ExitCode;

use xen::linux::Evtchn;
use xen::sys::backend::privcmd::{Errno, Error as SysError, HypercallBuffers, Privcmd};
use xen::sys::*;
use xen::Error;

/// Test-only (`--cfg broken_backend`): the privcmd backend with its first two arguments in each
/// other's places, to show the scenario fails when a backend is wrong.
#[cfg(broken_backend)]
struct Swapped<'a>(&'a Privcmd);
#[cfg(broken_backend)]
// SAFETY: deliberately wrong; only built to show that the checks catch it.
unsafe impl Hypercall for Swapped<'_> {
    unsafe fn hypercall(&self, op: u32, mut args: [u64; 5]) -> i64 {
        args.swap(0, 1);
        // SAFETY: test-only misuse.
        unsafe { self.0.hypercall(op, args) }
    }
}

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        println!(
            "CHECK privcmd {name}: {} ({detail})",
            if ok { "ok" } else { "FAIL" }
        );
    }
}

fn dm_op_nr_vcpus(p: &Privcmd, domid: Domid) -> Result<(), SysError> {
    let mut op = XenDmOp {
        op: XenDmop::NR_VCPUS,
        ..Default::default()
    };
    let bytes = zerocopy::IntoBytes::as_mut_bytes(&mut op);
    p.dm_op(domid, &mut [bytes])
}

fn errno_of(r: &Result<(), SysError>) -> Option<Errno> {
    r.as_ref().err().and_then(SysError::errno)
}

/// An ioctl newer than some kernels, called with arguments the kernel refuses if it has the
/// ioctl at all (a pipe where an eventfd belongs, a device xen-pciback does not own, a port
/// that is not static): the running kernel decides between "present" (an errno of the ioctl
/// itself) and "refused" (the typed error of a kernel without it, or without its option). Prints `GATE <ioctl> <verdict>
/// <release>` for the harness, which knows the kernel it booted.
fn gate<T: std::fmt::Debug, E: Into<Error>>(
    c: &mut Checks,
    op: &str,
    since: &str,
    r: Result<T, E>,
) {
    // One error type: the privcmd backend's and the evtchn device's errors alike.
    let r = r.map_err(Into::into);
    let verdict = match &r {
        Err(Error::NotSupportedByKernel { .. } | Error::KernelOptionMissing { .. }) => "refused",
        _ => "present",
    };
    let typed = match &r {
        Err(Error::NotSupportedByKernel { op: o, linux, .. }) => *o == op && *linux == since,
        Err(Error::KernelOptionMissing { op: o, .. }) => *o == op,
        Err(Error::Os { op: o, .. }) => *o == op,
        _ => false,
    };
    c.check(
        &format!("{op}: the kernel decides ({verdict})"),
        typed,
        format!("{r:?}"),
    );
    println!("GATE {op} {verdict} {since}");
}

fn main() -> ExitCode {
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };
    let p = match Privcmd::open() {
        Ok(p) => p,
        Err(e) => {
            println!("CHECK privcmd open: FAIL ({e})");
            println!("RESULT: FAIL (cannot open privcmd)");
            return ExitCode::FAILURE;
        }
    };
    c.check("open", true, p.path().to_string());
    #[cfg(broken_backend)]
    let swapped = Swapped(&p);
    #[cfg(broken_backend)]
    let hc: &dyn Hypercall = &swapped;
    #[cfg(not(broken_backend))]
    let hc: &dyn Hypercall = &p;

    // Generic hypercalls through IOCTL_PRIVCMD_HYPERCALL.
    // SAFETY: XENVER_version takes no memory.
    let v = unsafe { xen_version_version(hc) };
    // One binary for every release: what to expect is decided by what Xen reports (the harness
    // checks the report against the hypervisor it booted).
    let running = XenVersion::from_xenver(v.unwrap_or(0) as u32);
    c.check(
        "hypercall xen_version.version",
        v.is_ok() && running >= XenVersion::new(4, 14),
        format!("{v:?}, want >= 4.14"),
    );
    println!("VERSION {}.{}", running.major, running.minor);
    let bufs = match HypercallBuffers::open(4) {
        Ok(b) => b,
        Err(e) => {
            c.check("hypercall buffers", false, e.to_string());
            println!("RESULT: FAIL");
            return ExitCode::FAILURE;
        }
    };
    c.check(
        "hypercall buffers",
        true,
        format!("{:?}, {} bytes", bufs.source(), bufs.capacity()),
    );
    let Ok(extra) = bufs.alloc(16) else {
        println!("RESULT: FAIL (no hypercall buffer)");
        return ExitCode::FAILURE;
    };
    // SAFETY: a 16-byte hypercall buffer Xen fills.
    let r = unsafe { xen_version_extraversion(hc, extra.as_mut_ptr().cast()) };
    let got: [u8; 16] = extra.read_obj();
    let s = String::from_utf8_lossy(&got[..got.iter().position(|b| *b == 0).unwrap_or(16)])
        .into_owned();
    c.check(
        "hypercall xen_version.extraversion (out buffer)",
        r == Ok(0) && !s.is_empty(),
        format!("{r:?} \"{s}\""),
    );
    println!("EXTRAVERSION privcmd {s}");
    let Ok(fi) = bufs.alloc_obj(&XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    }) else {
        println!("RESULT: FAIL (no hypercall buffer)");
        return ExitCode::FAILURE;
    };
    // SAFETY: an in/out struct in hypercall memory.
    let r = unsafe { xen_version_get_features(hc, fi.as_mut_ptr().cast()) };
    let f: XenFeatureInfo = fi.read_obj();
    c.check(
        "hypercall xen_version.get_features (in/out buffer)",
        r == Ok(0) && f.submap != 0,
        format!("{r:?} submap {:#x}", f.submap),
    );

    // The evtchn device: loopback through dom0 itself.
    match Evtchn::open() {
        Err(e) => c.check("evtchn open", false, e.to_string()),
        Ok(ev) => {
            let p1 = ev.bind_unbound_port(xen::DomId(0));
            c.check("evtchn bind_unbound_port", p1.is_ok(), format!("{p1:?}"));
            let p1 = p1.unwrap_or(xen::EvtchnPort(0));
            let p2 = ev.bind_interdomain(xen::DomId(0), p1);
            c.check(
                "evtchn bind_interdomain(loopback)",
                p2.is_ok(),
                format!("{p2:?}"),
            );
            let p2 = p2.unwrap_or(xen::EvtchnPort(0));
            // bind_interdomain marks the new local port pending: consume it first.
            let mut seen = Vec::new();
            let mut first = [xen::EvtchnPort(0); 8];
            if let Ok(n) = ev.pending_into(&mut first[..1]) {
                seen.extend_from_slice(&first[..n]);
                let _ = ev.unmask_all(&first[..n]);
            }
            let n = ev.notify(p2);
            c.check("evtchn notify", n.is_ok(), format!("{n:?} on port {p2}"));
            let mut got = None;
            for _ in 0..4 {
                match ev.pending() {
                    Ok(Some(port)) => {
                        seen.push(port);
                        let u = ev.unmask(port);
                        if port == p1 {
                            got = Some(u);
                            break;
                        }
                    }
                    other => {
                        c.check("evtchn read pending", false, format!("{other:?}"));
                        break;
                    }
                }
            }
            c.check(
                "evtchn read pending port",
                got.is_some(),
                format!("ports read {seen:?}, want {p1}"),
            );
            c.check(
                "evtchn unmask by write",
                matches!(got, Some(Ok(()))),
                format!("{got:?}"),
            );
            let u2 = ev.unbind(p2);
            let u1 = ev.unbind(p1);
            c.check(
                "evtchn unbind",
                u1.is_ok() && u2.is_ok(),
                format!("{u1:?} {u2:?}"),
            );
            let again = ev.unbind(p1);
            c.check(
                "evtchn unbind twice is refused",
                again.is_err(),
                format!("{again:?}"),
            );
        }
    }

    // IOCTL_PRIVCMD_DM_OP and the errors Xen gives.
    let r = dm_op_nr_vcpus(&p, 0);
    c.check(
        "dm_op on dom0 itself: EPERM",
        errno_of(&r) == Some(Errno::PERM),
        format!("{r:?}"),
    );
    let r = dm_op_nr_vcpus(&p, 0x7ff4);
    c.check(
        "dm_op on DOMID_INVALID: ESRCH",
        errno_of(&r) == Some(Errno::SRCH),
        format!("{r:?}"),
    );
    let mut a = [0u8; 32];
    let mut b = [0u8; 8];
    let mut d = [0u8; 8];
    let r = p.dm_op(0x7ff4, &mut [&mut a, &mut b, &mut d]);
    c.check(
        "dm_op with 3 buffers: E2BIG",
        errno_of(&r) == Some(Errno::TOOBIG),
        format!("{r:?}"),
    );

    // MMAP_RESOURCE size query. From Xen 4.15 acquire_resource locks the target with
    // rcu_lock_remote_domain_by_id(): the caller itself is refused (EPERM) and DOMID_SELF is no
    // domain id (ESRCH); a successful query needs a second domain (the IOREQ tests have one).
    // Before 4.15 Xen answered every size query with its batch limit, 32, before looking at the
    // domain at all.
    let sized = running >= XenVersion::new(4, 15);
    for (domid, name, want) in [
        (0, "on dom0 itself", Errno::PERM),
        (DOMID_SELF, "on DOMID_SELF", Errno::SRCH),
    ] {
        let r = p.resource_size(
            domid,
            XenMemResourceType::GRANT_TABLE,
            XENMEM_resource_grant_table_id_shared,
        );
        let e = r.as_ref().err().and_then(SysError::errno);
        if sized {
            c.check(
                &format!("mmap_resource size query {name}: {want:?}"),
                e == Some(want),
                format!("{r:?}"),
            );
        } else {
            c.check(
                &format!("mmap_resource size query {name} before Xen 4.15: the batch limit 32"),
                matches!(r, Ok(32)),
                format!("{r:?}"),
            );
        }
    }

    // Ioctls from later kernels than some dom0s run: decided at run time.
    match rustix::pipe::pipe() {
        Ok((rd, _wr)) => {
            let op = [0u8; 32];
            let r = p.irqfd_assign(0x7ff4, &op, rd.as_fd());
            gate(&mut c, "IOCTL_PRIVCMD_IRQFD", IOCTL_PRIVCMD_IRQFD_LINUX, r);
        }
        Err(e) => c.check("pipe for the irqfd gate", false, e.to_string()),
    }
    let r = p.pcidev_get_gsi(0xffff_ffff);
    let since = IOCTL_PRIVCMD_PCIDEV_GET_GSI_LINUX;
    gate(&mut c, "IOCTL_PRIVCMD_PCIDEV_GET_GSI", since, r);
    match Evtchn::open() {
        Ok(e) => {
            let r = e.bind_static(xen::EvtchnPort(0x7fff_ffff));
            gate(
                &mut c,
                "IOCTL_EVTCHN_BIND_STATIC",
                IOCTL_EVTCHN_BIND_STATIC_LINUX,
                r,
            );
        }
        Err(e) => c.check("evtchn open for the bind_static gate", false, e.to_string()),
    }

    // RESTRICT: afterwards generic hypercalls are refused and other domains too.
    let r = p.restrict(1);
    c.check("restrict(1)", r.is_ok(), format!("{r:?}"));
    // SAFETY: no memory.
    let v = unsafe { p.hypercall_ioctl(__HYPERVISOR_xen_version, [0; 5]) };
    c.check(
        "restricted: generic hypercall EPERM",
        matches!(&v, Err(e) if e.errno() == Some(Errno::PERM)),
        format!("{v:?}"),
    );
    let r = dm_op_nr_vcpus(&p, 2);
    c.check(
        "restricted: dm_op for another domain EPERM",
        errno_of(&r) == Some(Errno::PERM),
        format!("{r:?}"),
    );
    let r = p.restrict(2);
    c.check(
        "restricted: restricting to another domain EINVAL",
        errno_of(&r) == Some(Errno::INVAL),
        format!("{r:?}"),
    );

    if c.failed == 0 {
        println!("RESULT: PASS ({} checks)", c.passed);
        ExitCode::SUCCESS
    } else {
        println!(
            "RESULT: FAIL ({} of {} checks failed)",
            c.failed,
            c.failed + c.passed
        );
        ExitCode::FAILURE
    }
}

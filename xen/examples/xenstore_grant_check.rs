//! xenstore and grant-table checks on real Xen, one line per check (`CHECK name: ok`), for
//! tests/real-xen/xenstore-grant.sh; also a starting point for a PV back end's plumbing.
//!
//! `xenstore_grant_check local`: the xenstore client against the running xenstored, over its
//! socket and over `/dev/xen/xenbus`: read, write, directory, mkdir, rm, permissions, domain
//! path, transactions (commit, abort, a conflict retried), watches fired by another connection.
//!
//! `xenstore_grant_check frontend DOMID`: the back end of the PVH test guest's `frontend`
//! mode: watch its xenstore area, map the page it grants (gntdev), check and answer it, grant
//! copy both ways, share a page with it (gntalloc), and unmap when it says so.

use std::time::{Duration, Instant};

use xen::grant::{copy_from_grant, copy_to_grant, Gntalloc, Gntdev, Shared};
use xen::xenstore::{Access, Client, Conn, Error, Perm, WatchEvent};

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("CHECK {name}: ok");
            }
            Err(e) => {
                self.failed += 1;
                println!("CHECK {name}: FAIL ({e})");
            }
        }
    }

    fn finish(&self) -> ! {
        if self.failed == 0 {
            println!("RESULT: PASS ({} checks)", self.passed);
            std::process::exit(0);
        }
        println!(
            "RESULT: FAIL ({} of {} checks failed)",
            self.failed,
            self.failed + self.passed
        );
        std::process::exit(1)
    }
}

fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn s(e: Error) -> String {
    e.to_string()
}

/// The next watch event within `secs`.
fn event_within<C: Conn>(xs: &mut Client<C>, secs: u64) -> Result<WatchEvent, String> {
    xs.wait_event(Some(Duration::from_secs(secs)))
        .map_err(s)?
        .ok_or(format!("no watch event within {secs} s"))
}

fn local_checks<C: Conn>(c: &mut Checks, t: &str, a: &mut Client<C>, b: &mut Client<C>) {
    let base = format!("/test/{t}");
    let _ = a.rm(&base);
    c.check(
        &format!("{t}: write and read back"),
        (|| {
            a.write(&format!("{base}/a"), b"1")?;
            a.read(&format!("{base}/a"))
        })()
        .map_err(s)
        .and_then(|v| eq(v.as_slice(), b"1")),
    );
    c.check(
        &format!("{t}: a 4000-byte value"),
        (|| {
            let v = vec![b'x'; 4000];
            a.write(&format!("{base}/big"), &v)?;
            Ok::<_, Error>(a.read(&format!("{base}/big"))? == v)
        })()
        .map_err(s)
        .and_then(|ok| eq(ok, true)),
    );
    c.check(
        &format!("{t}: a 5000-byte value is refused before sending"),
        match a.write(&format!("{base}/huge"), &[b'x'; 5000]) {
            Err(Error::Invalid { .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    c.check(
        &format!("{t}: mkdir and directory"),
        (|| {
            a.mkdir(&format!("{base}/dir"))?;
            let mut d = a.directory(&base)?;
            d.sort();
            Ok::<_, Error>((d, a.directory(&format!("{base}/dir"))?))
        })()
        .map_err(s)
        .and_then(|(d, e)| {
            eq(
                (d, e),
                (
                    vec!["a".into(), "big".into(), "dir".into()],
                    Vec::<String>::new(),
                ),
            )
        }),
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
    ];
    c.check(
        &format!("{t}: set and get permissions"),
        (|| {
            a.set_perms(&format!("{base}/a"), &perms)?;
            a.get_perms(&format!("{base}/a"))
        })()
        .map_err(s)
        .and_then(|p| eq(p, perms.to_vec())),
    );
    c.check(
        &format!("{t}: get_domain_path"),
        a.get_domain_path(xen::DomId(0))
            .map_err(s)
            .and_then(|p| eq(p.as_str(), "/local/domain/0")),
    );
    c.check(
        &format!("{t}: rm, then the read fails with ENOENT naming the path"),
        (|| {
            a.rm(&format!("{base}/dir"))?;
            Ok::<_, Error>(a.read(&format!("{base}/dir")))
        })()
        .map_err(s)
        .and_then(|r| match r {
            Err(e) if e.is_not_found() => eq(
                e.to_string(),
                format!("XS_READ \"{base}/dir\": ENOENT (errno 2)"),
            ),
            other => Err(format!("{other:?}")),
        }),
    );
    c.check(
        &format!("{t}: a committed transaction is visible"),
        (|| {
            let mut t = a.transaction_start()?;
            t.write(&format!("{base}/tx"), b"committed")?;
            t.commit()?;
            b.read(&format!("{base}/tx"))
        })()
        .map_err(s)
        .and_then(|v| eq(v.as_slice(), b"committed")),
    );
    c.check(
        &format!("{t}: an aborted transaction is not"),
        (|| {
            let mut t = a.transaction_start()?;
            t.write(&format!("{base}/tx"), b"aborted")?;
            t.abort()?;
            b.read(&format!("{base}/tx"))
        })()
        .map_err(s)
        .and_then(|v| eq(v.as_slice(), b"committed")),
    );
    c.check(
        &format!("{t}: a conflicting commit gets EAGAIN"),
        (|| {
            let mut t = a.transaction_start()?;
            let _ = t.read(&format!("{base}/tx"))?;
            t.write(&format!("{base}/tx"), b"mine")?;
            b.write(&format!("{base}/tx"), b"theirs")?;
            Ok::<_, Error>(t.commit())
        })()
        .map_err(s)
        .and_then(|r| match r {
            Err(e) if e.errno() == Some(11) => Ok(()),
            other => Err(format!("{other:?}")),
        }),
    );
    let mut attempts = 0;
    c.check(
        &format!("{t}: transaction() retries a conflict and commits"),
        a.transaction(|t| {
            attempts += 1;
            let v = t.read(&format!("{base}/tx"))?;
            if attempts == 1 {
                b.write(&format!("{base}/tx"), b"interference")?;
            }
            let mut n = v.clone();
            n.extend_from_slice(b"+1");
            t.write(&format!("{base}/tx"), &n)
        })
        .map_err(s)
        .and_then(|()| eq(attempts, 2))
        .and_then(|()| b.read(&format!("{base}/tx")).map_err(s))
        .and_then(|v| eq(v.as_slice(), b"interference+1")),
    );
    c.check(
        &format!("{t}: a watch fires once when set, then for another connection's write"),
        (|| {
            a.watch(&format!("{base}/w"), "tok").map_err(s)?;
            let first = event_within(a, 10)?;
            eq(
                (first.path.as_str(), first.token.as_str()),
                (format!("{base}/w").as_str(), "tok"),
            )?;
            b.write(&format!("{base}/w/x"), b"1").map_err(s)?;
            let ev = event_within(a, 10)?;
            eq(
                (ev.path.as_str(), ev.token.as_str()),
                (format!("{base}/w/x").as_str(), "tok"),
            )?;
            a.unwatch(&format!("{base}/w"), "tok").map_err(s)
        })(),
    );
    let _ = a.rm(&base);
}

fn local() -> ! {
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };
    let sock = xen::xenstore::SOCKET_PATHS[0];
    match (Client::open_socket(sock), Client::open_socket(sock)) {
        (Ok(mut a), Ok(mut b)) => local_checks(&mut c, "socket", &mut a, &mut b),
        (Err(e), _) | (_, Err(e)) => c.check("connect to xenstored's socket", Err(s(e))),
    }
    match (Client::open_xenbus(), Client::open_xenbus()) {
        (Ok(mut a), Ok(mut b)) => local_checks(&mut c, "xenbus", &mut a, &mut b),
        (Err(e), _) | (_, Err(e)) => c.check("open /dev/xen/xenbus", Err(s(e))),
    }
    c.finish()
}

fn frontend(domid: xen::DomId) -> ! {
    let mut c = Checks {
        passed: 0,
        failed: 0,
    };
    let mut xs = Client::open().unwrap_or_else(|e| {
        println!("CHECK connect to xenstored: FAIL ({e})");
        std::process::exit(1)
    });
    let home = format!("/local/domain/{domid}/data");
    if let Err(e) = xs.watch(&home, "frontend") {
        c.check("watch the guest's data/", Err(s(e)));
        c.finish();
    }
    println!("xenstore_grant_check: watching {home}");
    // The guest writes greeting, then gref: wait for each by events (the first is the watch's
    // own firing when set).
    let wait_for = |xs: &mut Client, key: &str| -> Result<Vec<u8>, String> {
        let path = format!("{home}/{key}");
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(v) = xs.read(&path) {
                return Ok(v);
            }
            let left = end.saturating_duration_since(Instant::now()).as_secs();
            if left == 0 {
                return Err(format!("{path} never appeared"));
            }
            event_within(xs, left)?;
        }
    };
    c.check(
        "a watch fired by the guest's own write of data/greeting",
        wait_for(&mut xs, "greeting").and_then(|v| eq(v.as_slice(), b"hello from the PVH guest")),
    );
    let gref = wait_for(&mut xs, "gref").and_then(|v| {
        std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .map(xen::GrantRef)
            .ok_or(format!("gref {v:?}"))
    });
    let gref = match gref {
        Ok(g) => g,
        Err(e) => {
            c.check("the guest's grant reference", Err(e));
            c.finish()
        }
    };
    // The same page through privcmd, as a device model maps guest RAM, next to a range the
    // guest does not have (its 16 MiB end far below 32 MiB): mapped pages and per-page errors.
    c.check(
        "GuestRam maps the guest's page by privcmd; unpopulated pages fail per page",
        (|| -> Result<(), String> {
            let v = wait_for(&mut xs, "gfn")?;
            let gfn: u64 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("gfn")?;
            let linux = xen::linux::Linux::open().map_err(|e| e.to_string())?;
            let ram =
                xen::memory::GuestRam::map(&linux, domid, &[(gfn << 12, 4096), (32 << 20, 0x2000)])
                    .map_err(|e| e.to_string())?;
            let mut b = [0u8; 16];
            ram.read((gfn << 12) + 200, &mut b)
                .map_err(|e| e.to_string())?;
            eq(b.to_vec(), (200..216).map(|i| (i * 3 + 1) as u8).collect())?;
            println!(
                "xenstore_grant_check: GuestRam failed pages {:?}",
                ram.failed_pages()
            );
            let failed: Vec<u64> = ram.failed_pages().iter().map(|p| p.gfn.0).collect();
            eq(failed, vec![0x2000, 0x2001])?;
            match ram.read(32 << 20, &mut b) {
                Err(xen::Error::BadAddress { .. }) => Ok(()),
                other => Err(format!("read of an unmapped page: {other:?}")),
            }
        })(),
    );
    let dev = match Gntdev::open() {
        Ok(d) => d,
        Err(e) => {
            c.check("open /dev/xen/gntdev", Err(e.to_string()));
            c.finish()
        }
    };
    let map = dev.map(domid, &[gref], xen::grant::Access::ReadWrite);
    c.check(
        "gntdev maps the guest's grant writable",
        map.as_ref().map(drop).map_err(|e| e.to_string()),
    );
    let Ok(map) = map else { c.finish() };
    let mut page = vec![0u8; 4096];
    c.check(
        "read what the guest wrote through the mapping",
        map.read_at(0, &mut page)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let bad = (0..4096).find(|&i| page[i] != (i * 3 + 1) as u8);
                eq(bad, None)
            }),
    );
    c.check(
        "write through the mapping",
        map.write_at(0, b"dom0 was here").map_err(|e| e.to_string()),
    );
    #[cfg(feature = "vm-memory")]
    c.check(
        "vm-memory reads the grant at its grant DMA address (a second mapping)",
        (|| -> Result<Vec<u8>, String> {
            use vm_memory::{Bytes, GuestAddress};
            let again = dev
                .map(domid, &[gref], xen::grant::Access::ReadWrite)
                .map_err(|e| e.to_string())?;
            let ram =
                xen::grant::grant_dma_ram(domid, again, &[gref]).map_err(|e| e.to_string())?;
            let mem = ram.vm_memory().map_err(|e| e.to_string())?;
            let mut b = vec![0u8; 16];
            let at = GuestAddress(xen::grant::grant_dma_address(gref) + 100);
            mem.read_slice(&mut b, at).map_err(|e| e.to_string())?;
            Ok(b)
        })()
        .and_then(|b| eq(b, (100..116).map(|i| (i * 3 + 1) as u8).collect())),
    );
    let mut b = [0u8; 16];
    c.check(
        "grant copy from the guest's page",
        copy_from_grant(&dev, domid, gref, 1024, &mut b)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                eq(
                    b.to_vec(),
                    (1024..1040).map(|i| (i * 3 + 1) as u8).collect(),
                )
            }),
    );
    c.check(
        "grant copy into the guest's page",
        copy_to_grant(&dev, domid, gref, 2048, b"copied by dom0!!").map_err(|e| e.to_string()),
    );
    c.check(
        "a grant copy across the page end is refused",
        match copy_to_grant(&dev, domid, gref, 4090, b"0123456789") {
            Err(xen::Error::InvalidArgument { .. }) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let alloc = Gntalloc::open().map_err(|e| e.to_string());
    let shared = alloc.as_ref().map_err(Clone::clone).and_then(|a| {
        a.share(domid, 1, xen::grant::Access::ReadOnly)
            .map_err(|e| e.to_string())
    });
    c.check(
        "gntalloc shares a page with the guest",
        shared.as_ref().map(drop).map_err(Clone::clone),
    );
    if let Ok(sp) = &shared {
        c.check(
            "... its reference in xenstore",
            sp.write_at(0, b"granted by dom0")
                .map_err(|e| e.to_string())
                .and_then(|()| {
                    xs.write(
                        &format!("{home}/dom0-gref"),
                        sp.refs()[0].to_string().as_bytes(),
                    )
                    .map_err(s)
                }),
        );
    }
    c.check(
        "tell the guest (data/ack-map)",
        xs.write(&format!("{home}/ack-map"), b"1").map_err(s),
    );
    c.check(
        "the guest copied our page (data/copied)",
        wait_for(&mut xs, "copied").and_then(|v| eq(v.as_slice(), b"1")),
    );
    drop(map);
    drop(shared);
    c.check(
        "unmapped (GrantMap dropped); tell the guest (data/ack-unmap)",
        xs.write(&format!("{home}/ack-unmap"), b"1").map_err(s),
    );
    c.finish()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("local") => local(),
        Some("frontend") => match args.get(2).and_then(|d| d.parse().ok()).map(xen::DomId) {
            Some(d) => frontend(d),
            None => eprintln!("usage: xenstore_grant_check frontend DOMID"),
        },
        _ => eprintln!("usage: xenstore_grant_check local | frontend DOMID"),
    }
    std::process::exit(2)
}

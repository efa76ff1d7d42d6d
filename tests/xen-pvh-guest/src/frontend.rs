//! The guest's side of the xenstore and grant-table checks (`cmdline = "frontend"`): what a PV
//! front end does, by stable hypercalls and the xenstore ring only (xen-sys's generated types):
//! it writes its own xenstore area (a change dom0 watches), grants dom0 a page and checks what
//! dom0 wrote into it by mapping and by grant copy, copies a page dom0 granted it with
//! `GNTTABOP_copy`, and checks that dom0's unmap released the grant. The grant table goes
//! through `xen::grant::table` (the no_std path stub domains use).

use core::sync::atomic::{fence, Ordering};

use xen::grant::table::{self, GrantTable};
use xen::grant::Access;
use xen::xenstore::wire;
use xen::{DomId, Gfn, GrantRef};
use xen_sys::backend::Direct;
use xen_sys::*;

use crate::Checks;

/// Where the grant table's first frame is placed: far above the guest's 16 MiB of RAM, below
/// 4 GiB (paging is off: physical addresses are used directly).
const GRANT_GFN: u64 = 0x2_0000;
/// The entry granted to dom0 (the first one not reserved).
const GREF: GrantRef = GrantRef(GNTTAB_NR_RESERVED_ENTRIES);

#[repr(C, align(4096))]
struct Page([u8; 4096]);
/// The page granted to dom0.
static mut SHARED: Page = Page([0; 4096]);
/// The page dom0's grant is copied into.
static mut RECEIVED: Page = Page([0; 4096]);

fn xen() -> Direct {
    // SAFETY: a PVH guest kernel issues vmcall/vmmcall directly.
    unsafe { Direct::hvm() }
}

/// Byte `i` of a page, volatile (Xen and dom0 write these pages behind the compiler's back).
fn get(p: *const Page, i: usize) -> u8 {
    // SAFETY: i < 4096 (callers), inside the static page.
    unsafe { p.cast::<u8>().add(i).read_volatile() }
}

fn phys(p: *const Page) -> u64 {
    p as usize as u64 // paging is off
}

fn hvm_param(index: u32) -> Result<u64, XenErrno> {
    let mut p = XenHvmParam {
        domid: DOMID_SELF,
        index: HvmParam(index),
        ..Default::default()
    };
    // SAFETY: our struct.
    unsafe { hvm_op_get_param(&xen(), &mut p) }?;
    Ok(p.value)
}

/// The xenstore ring: requests out through `req`, replies back through `rsp`.
struct Store {
    page: *mut u8,
    port: EvtchnPort,
    req_id: u32,
}

const REQ: usize = core::mem::offset_of!(XenstoreDomainInterface, req);
const RSP: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp);
const REQ_CONS: usize = core::mem::offset_of!(XenstoreDomainInterface, req_cons);
const REQ_PROD: usize = core::mem::offset_of!(XenstoreDomainInterface, req_prod);
const RSP_CONS: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp_cons);
const RSP_PROD: usize = core::mem::offset_of!(XenstoreDomainInterface, rsp_prod);
const RING: u32 = XENSTORE_RING_SIZE;

impl Store {
    fn open() -> Result<Store, &'static str> {
        let pfn = hvm_param(HVM_PARAM_STORE_PFN).map_err(|_| "HVM_PARAM_STORE_PFN")?;
        let port = hvm_param(HVM_PARAM_STORE_EVTCHN).map_err(|_| "HVM_PARAM_STORE_EVTCHN")?;
        if pfn == 0 || pfn >= 1 << 20 {
            return Err("no xenstore ring below 4 GiB");
        }
        Ok(Store {
            page: (pfn << 12) as usize as *mut u8,
            port: port as EvtchnPort,
            req_id: 0,
        })
    }

    /// [`Store::open`] as a check.
    fn open_checked(c: &mut Checks) -> Option<Store> {
        match Store::open() {
            Ok(s) => {
                c.check("xenstore ring and event channel from HVM params", 1, 1);
                Some(s)
            }
            Err(e) => {
                c.check(e, 0, 1);
                None
            }
        }
    }

    fn idx(&self, off: usize) -> u32 {
        // SAFETY: an index of the ring page (identity-mapped), read once.
        unsafe { self.page.add(off).cast::<u32>().read_volatile() }
    }

    fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: our own index of the ring page.
        unsafe { self.page.add(off).cast::<u32>().write_volatile(v) }
    }

    fn notify(&self) {
        let mut s = EvtchnSend { port: self.port };
        // SAFETY: our struct.
        let _ = unsafe { event_channel_op_send(&xen(), &mut s) };
    }

    /// Wait (yielding the vCPU) until `ready()`, for a bounded time.
    fn wait(&self, mut ready: impl FnMut() -> bool) -> Result<(), &'static str> {
        for _ in 0..2_000_000 {
            if ready() {
                return Ok(());
            }
            // SAFETY: no memory.
            let _ = unsafe { sched_op_yield(&xen()) };
        }
        Err("xenstored did not answer")
    }

    fn put(&self, data: &[u8]) -> Result<(), &'static str> {
        for &b in data {
            let prod = self.idx(REQ_PROD);
            self.wait(|| prod.wrapping_sub(self.idx(REQ_CONS)) < RING)?;
            fence(Ordering::SeqCst);
            // SAFETY: inside `req` (index masked to the ring size).
            unsafe {
                self.page
                    .add(REQ + (prod % RING) as usize)
                    .write_volatile(b)
            };
            fence(Ordering::Release);
            self.set_idx(REQ_PROD, prod.wrapping_add(1));
        }
        Ok(())
    }

    fn get(&self, out: &mut [u8]) -> Result<(), &'static str> {
        for o in out.iter_mut() {
            let cons = self.idx(RSP_CONS);
            self.wait(|| {
                let n = self.idx(RSP_PROD).wrapping_sub(cons);
                n != 0 && n <= RING
            })?;
            fence(Ordering::Acquire);
            // SAFETY: inside `rsp`.
            *o = unsafe { self.page.add(RSP + (cons % RING) as usize).read_volatile() };
            fence(Ordering::SeqCst);
            self.set_idx(RSP_CONS, cons.wrapping_add(1));
        }
        self.notify();
        Ok(())
    }

    /// One request; the reply's payload into `reply`, its length returned (an `XS_ERROR`
    /// reply is an error).
    fn call(&mut self, ty: u32, parts: &[&[u8]], reply: &mut [u8]) -> Result<usize, &'static str> {
        self.req_id += 1;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let h = wire::Header {
            ty: XsdSockmsgType(ty),
            req_id: self.req_id,
            tx_id: 0,
            len: len as u32,
        };
        self.put(&h.encode())?;
        for p in parts {
            self.put(p)?;
        }
        self.notify();
        loop {
            let mut hb = [0u8; wire::HEADER_LEN];
            self.get(&mut hb)?;
            let h =
                wire::Header::decode(&hb).map_err(|_| "reply header over XENSTORE_PAYLOAD_MAX")?;
            let n = h.len as usize;
            if n > reply.len() {
                return Err("reply too long");
            }
            self.get(&mut reply[..n])?;
            if h.ty.0 == XS_WATCH_EVENT {
                continue;
            }
            if h.req_id != self.req_id {
                return Err("reply to another request");
            }
            if h.ty.0 == XS_ERROR {
                return Err("xenstored answered XS_ERROR");
            }
            return Ok(n);
        }
    }

    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), &'static str> {
        let mut r = [0u8; 16];
        let n = self.call(XS_WRITE, &[path.as_bytes(), b"\0", value], &mut r)?;
        wire::ok(&r[..n])
            .is_ok()
            .then_some(())
            .ok_or("XS_WRITE not acknowledged")
    }

    fn read<'a>(&mut self, path: &str, buf: &'a mut [u8]) -> Result<&'a [u8], &'static str> {
        let n = self.call(XS_READ, &[path.as_bytes(), b"\0"], buf)?;
        Ok(&buf[..n])
    }

    /// Poll `path` until it reads `want` (dom0 writes it when done).
    fn await_value(&mut self, path: &str, want: &[u8]) -> Result<(), &'static str> {
        for _ in 0..20_000 {
            let mut b = [0u8; 64];
            if self.read(path, &mut b).is_ok_and(|v| v == want) {
                return Ok(());
            }
            for _ in 0..100 {
                // SAFETY: no memory.
                let _ = unsafe { sched_op_yield(&xen()) };
            }
        }
        Err("dom0 never wrote it")
    }
}

fn decimal(v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

fn parse(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u32, |a, &c| {
        a.checked_mul(10)?
            .checked_add(u32::from(c.checked_sub(b'0').filter(|d| *d < 10)?))
    })
}

pub fn checks(c: &mut Checks) {
    let Some(mut xs) = Store::open_checked(c) else {
        return;
    };
    let ok = |r: Result<(), &'static str>| u64::from(r.is_ok());
    c.check(
        "XS_WRITE of data/greeting through the ring",
        ok(xs.write("data/greeting", b"hello from the PVH guest")),
        1,
    );
    let mut b = [0u8; 64];
    c.check(
        "XS_READ of our own name",
        u64::from(xs.read("name", &mut b).is_ok_and(|v| v == b"frontend")),
        1,
    );

    // Grant dom0 a page: the table's first frame into our physmap, then entry GREF.
    let h = xen();
    // SAFETY: GRANT_GFN is above our RAM, used for nothing else; paging is off, so it is
    // reached at its physical address.
    let gt =
        unsafe { GrantTable::map(&h, &[Gfn(GRANT_GFN)], (GRANT_GFN << 12) as usize as *mut u8) };
    c.check(
        "grant table frame 0 mapped (XENMAPSPACE_grant_table)",
        u64::from(gt.is_ok()),
        1,
    );
    let Ok(gt) = gt else { return };
    let q = table::query_size(&h, DomId::SELF);
    c.check(
        "GNTTABOP_query_size: at least one frame",
        u64::from(q.is_ok_and(|q| q.nr_frames >= 1)),
        1,
    );
    // The PV way to find the frames (Xen answers with machine frames, which a translated
    // guest does not use): the call and its status.
    let mut frames = [0 as XenPfn; 1];
    c.check(
        "GNTTABOP_setup_table of one frame",
        u64::from(table::setup_table(&h, DomId::SELF, &mut frames).is_ok() && frames[0] != 0),
        1,
    );
    let shared = core::ptr::addr_of_mut!(SHARED);
    for i in 0..4096 {
        // SAFETY: inside the page; not yet granted.
        unsafe { shared.cast::<u8>().add(i).write_volatile((i * 3 + 1) as u8) };
    }
    c.check(
        "grant dom0 our page (entry GREF)",
        u64::from(
            // SAFETY: SHARED is a page-aligned static used only through raw pointers with
            // volatile accesses while it is granted.
            unsafe {
                gt.grant(
                    GREF,
                    DomId::DOM0,
                    Gfn::containing(phys(shared)),
                    Access::ReadWrite,
                )
            }
            .is_ok(),
        ),
        1,
    );
    let mut nb = [0u8; 10];
    // Where the page is in our RAM, for dom0's privcmd mapping (xen::memory::GuestRam).
    c.check(
        "XS_WRITE of data/gfn",
        ok(xs.write("data/gfn", decimal((phys(shared) >> 12) as u32, &mut nb))),
        1,
    );
    c.check(
        "XS_WRITE of data/gref",
        ok(xs.write("data/gref", decimal(GREF.0, &mut nb))),
        1,
    );
    c.check(
        "dom0 reports its checks of our page",
        ok(xs.await_value("data/ack-map", b"1")),
        1,
    );
    c.check(
        "while dom0 maps our page the entry is in use (GTF_reading/GTF_writing)",
        u64::from(gt.in_use(GREF).unwrap_or(false)),
        1,
    );
    c.check(
        "... so ending access is refused (EBUSY)",
        u64::from(matches!(
            gt.end(GREF),
            Err(xen::Error::Os { errno: 16, .. })
        )),
        1,
    );
    let mut got = [0u8; 13];
    for (i, g) in got.iter_mut().enumerate() {
        *g = get(shared, i);
    }
    c.check(
        "dom0 wrote our page through its mapping",
        u64::from(&got == b"dom0 was here"),
        1,
    );
    let mut got = [0u8; 16];
    for (i, g) in got.iter_mut().enumerate() {
        *g = get(shared, 2048 + i);
    }
    c.check(
        "dom0 grant-copied into our page",
        u64::from(&got == b"copied by dom0!!"),
        1,
    );

    // Copy the page dom0 granted us (gntalloc) with GNTTABOP_copy.
    let mut b = [0u8; 16];
    let dref = xs.read("data/dom0-gref", &mut b).ok().and_then(parse);
    c.check(
        "dom0's gntalloc grant reference in xenstore",
        u64::from(dref.is_some()),
        1,
    );
    if let Some(dref) = dref {
        let recv = core::ptr::addr_of_mut!(RECEIVED);
        let mut op = GnttabCopy::default();
        op.source.u.set_ref(dref);
        op.source.domid = 0;
        op.dest.u.set_gmfn((phys(recv) >> 12) as XenPfn);
        op.dest.domid = DOMID_SELF;
        op.len = 15;
        op.flags = GnttabCopyFlags(GNTCOPY_source_gref);
        // SAFETY: the destination is our own page, 15 bytes of it.
        let r = unsafe { table::copy(&h, core::slice::from_mut(&mut op)) };
        c.check("GNTTABOP_copy from dom0's grant", u64::from(r.is_ok()), 1);
        let mut got = [0u8; 15];
        for (i, g) in got.iter_mut().enumerate() {
            *g = get(recv, i);
        }
        c.check(
            "... the bytes dom0 put in its page",
            u64::from(&got == b"granted by dom0"),
            1,
        );
    }
    c.check(
        "XS_WRITE of data/copied",
        ok(xs.write("data/copied", b"1")),
        1,
    );
    c.check(
        "dom0 unmapped our page",
        ok(xs.await_value("data/ack-unmap", b"1")),
        1,
    );
    c.check(
        "after dom0's unmap the entry is not in use",
        u64::from(gt.in_use(GREF).unwrap_or(true)),
        0,
    );
    c.check("... and access ends", u64::from(gt.end(GREF).is_ok()), 1);
}

/// The page granted to the echo back end as its ring.
static mut ECHO_RING: Page = Page([0; 4096]);
const RING_GREF: GrantRef = GrantRef(GNTTAB_NR_RESERVED_ENTRIES + 1);

fn ring_u32(off: usize) -> u32 {
    let r = core::ptr::addr_of!(ECHO_RING);
    u32::from_le_bytes([
        get(r, off),
        get(r, off + 1),
        get(r, off + 2),
        get(r, off + 3),
    ])
}

fn ring_put(off: usize, data: &[u8]) {
    let r = core::ptr::addr_of_mut!(ECHO_RING).cast::<u8>();
    for (i, b) in data.iter().enumerate() {
        // SAFETY: inside the ring page (callers stay in a slot).
        unsafe { r.add(off + i).write_volatile(*b) };
    }
}

/// The front end of xen's `pv_echo_backend` example (`cmdline = "echo-frontend"`): the xenbus
/// handshake in xenstore, the ring granted, an event channel allocated for the back end,
/// requests sent and their upper-cased echoes checked, then Closing until the back end closes.
pub fn echo_checks(c: &mut Checks) {
    let ok = |r: Result<(), &'static str>| u64::from(r.is_ok());
    let Some(mut xs) = Store::open_checked(c) else {
        return;
    };
    let mut bb = [0u8; 128];
    let be_len = xs.read("device/echo/0/backend", &mut bb).map(<[u8]>::len);
    c.check(
        "the toolstack's device/echo/0/backend",
        u64::from(be_len.is_ok()),
        1,
    );
    let Ok(n) = be_len else { return };
    let mut be_state = [0u8; 140];
    be_state[..n].copy_from_slice(&bb[..n]);
    be_state[n..n + 6].copy_from_slice(b"/state");
    let Ok(be_state) = core::str::from_utf8(&be_state[..n + 6]) else {
        return;
    };
    c.check(
        "the back end waits for us (InitWait)",
        ok(xs.await_value(be_state, b"2")),
        1,
    );

    let h = xen();
    // SAFETY: as in `checks`: GRANT_GFN is ours alone, reached at its physical address.
    let gt =
        unsafe { GrantTable::map(&h, &[Gfn(GRANT_GFN)], (GRANT_GFN << 12) as usize as *mut u8) };
    let Ok(gt) = gt else {
        c.check("grant table mapped", 0, 1);
        return;
    };
    let ring = core::ptr::addr_of!(ECHO_RING);
    c.check(
        "the ring page granted to dom0",
        u64::from(
            // SAFETY: ECHO_RING is a page-aligned static reached only through raw pointers with
            // volatile accesses while it is granted.
            unsafe {
                gt.grant(
                    RING_GREF,
                    DomId::DOM0,
                    Gfn::containing(phys(ring)),
                    Access::ReadWrite,
                )
            }
            .is_ok(),
        ),
        1,
    );
    let mut a = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: 0,
        ..Default::default()
    };
    // SAFETY: our struct.
    let r = unsafe { event_channel_op_alloc_unbound(&h, &mut a) };
    c.check("EVTCHNOP_alloc_unbound for dom0", u64::from(r.is_ok()), 1);
    let mut nb = [0u8; 10];
    let published = xs
        .write("device/echo/0/ring-ref", decimal(RING_GREF.0, &mut nb))
        .and_then(|()| xs.write("device/echo/0/event-channel", decimal(a.port, &mut nb)))
        .and_then(|()| xs.write("device/echo/0/state", b"3"));
    c.check(
        "ring-ref, event-channel, state Initialised",
        ok(published),
        1,
    );
    c.check(
        "the back end connects (Connected)",
        ok(xs.await_value(be_state, b"4")),
        1,
    );

    let mut echoed = 0u32;
    for i in 0..20u32 {
        let slot = (i % 16) as usize;
        let mut msg = *b"hello, back end #00";
        msg[17] = b'0' + (i / 10) as u8;
        msg[18] = b'0' + (i % 10) as u8;
        ring_put(64 + slot * 64, &(msg.len() as u32).to_le_bytes());
        ring_put(64 + slot * 64 + 4, &msg);
        fence(Ordering::Release);
        ring_put(0, &(i + 1).to_le_bytes());
        let mut s = EvtchnSend { port: a.port };
        // SAFETY: our struct.
        let _ = unsafe { event_channel_op_send(&h, &mut s) };
        let mut n = 0u32;
        while ring_u32(4) != i + 1 && n < 2_000_000 {
            // SAFETY: no memory.
            let _ = unsafe { sched_op_yield(&h) };
            n += 1;
        }
        fence(Ordering::Acquire);
        let len = ring_u32(2048 + slot * 64) as usize;
        let mut got = [0u8; 19];
        for (j, g) in got.iter_mut().enumerate() {
            *g = get(ring, 2048 + slot * 64 + 4 + j);
        }
        let mut want = msg;
        want.make_ascii_uppercase();
        if len == msg.len() && got == want {
            echoed += 1;
        }
    }
    c.check(
        "20 requests echoed upper-cased through the ring",
        u64::from(echoed),
        20,
    );
    c.check(
        "state Closing",
        ok(xs.write("device/echo/0/state", b"5")),
        1,
    );
    c.check(
        "the back end closes (Closed)",
        ok(xs.await_value(be_state, b"6")),
        1,
    );
    c.check(
        "... having unmapped our ring",
        u64::from(gt.in_use(RING_GREF).unwrap_or(true)),
        0,
    );
    c.check(
        "... whose grant ends",
        u64::from(gt.end(RING_GREF).is_ok()),
        1,
    );
}

//! A small in-test xenstore daemon over socket pairs, shared by the xenstore and xenbus tests:
//! one store, any number of connections (each served by a thread of its own), watches fired
//! to whichever connection set them. Transactions are ids only (no snapshot), permissions are
//! kept but not enforced.
// Each test crate uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;

use xen::xenstore::wire::{self, Header};
use xen::xenstore::Client;

// Message types (io/xs_wire.h, from the spec).
use xen::sys::{
    XS_DIRECTORY as DIRECTORY, XS_ERROR as ERROR, XS_GET_DOMAIN_PATH as GET_DOMAIN_PATH,
    XS_GET_PERMS as GET_PERMS, XS_MKDIR as MKDIR, XS_READ as READ, XS_RM as RM,
    XS_SET_PERMS as SET_PERMS, XS_TRANSACTION_END as TRANSACTION_END,
    XS_TRANSACTION_START as TRANSACTION_START, XS_UNWATCH as UNWATCH, XS_WATCH as WATCH,
    XS_WATCH_EVENT as WATCH_EVENT, XS_WRITE as WRITE,
};

/// How the daemon misbehaves towards one connection.
#[derive(Clone, Copy, Default)]
pub struct Quirks {
    /// Fail the first N transaction commits with EAGAIN.
    pub conflicts: u32,
    /// Send a watch event for every watch of the connection before each reply.
    pub chatty: bool,
}

#[derive(Default)]
struct Store {
    nodes: BTreeMap<String, (Vec<u8>, Vec<String>)>,
    /// Connection, path, token.
    watches: Vec<(usize, String, String)>,
    /// Each connection's daemon end, for replies and the events of its watches.
    conns: Vec<Option<UnixStream>>,
    next_tx: u32,
}

impl Store {
    fn to(&mut self, conn: usize, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        if let Some(s) = self.conns.get_mut(conn).and_then(Option::as_mut) {
            send(s, ty, req_id, tx_id, payload);
        }
    }

    /// Fire the watches on `changed` or a parent of it, whoever set them.
    fn fire(&mut self, changed: &str) {
        let hits: Vec<(usize, String)> = self
            .watches
            .iter()
            .filter(|(_, wp, _)| changed == wp || changed.starts_with(&format!("{wp}/")))
            .map(|(c, _, tok)| (*c, tok.clone()))
            .collect();
        for (c, tok) in hits {
            self.to(
                c,
                WATCH_EVENT,
                0,
                0,
                format!("{changed}\0{tok}\0").as_bytes(),
            );
        }
    }

    /// Create `path` and its missing parents; set its value if given.
    fn write(&mut self, path: &str, value: Option<&[u8]>) {
        let mut at = Some(path);
        while let Some(a) = at {
            self.nodes
                .entry(a.to_string())
                .or_insert_with(|| (Vec::new(), vec!["n0".into()]));
            at = parent(a);
        }
        if let Some(v) = value {
            self.nodes.get_mut(path).unwrap().0 = v.to_vec();
        }
    }
}

/// The daemon: a store shared by its connections.
#[derive(Clone)]
pub struct Xenstored {
    store: Arc<Mutex<Store>>,
}

impl Default for Xenstored {
    fn default() -> Self {
        Self::new()
    }
}

impl Xenstored {
    /// An empty store (just `/`).
    pub fn new() -> Self {
        let mut st = Store::default();
        st.nodes.insert("/".into(), (Vec::new(), vec!["n0".into()]));
        Xenstored {
            store: Arc::new(Mutex::new(st)),
        }
    }

    /// A new connection, served by a thread until the client hangs up.
    pub fn connect(&self) -> Client<UnixStream> {
        self.connect_with(Quirks::default())
    }

    /// A new connection with quirks.
    pub fn connect_with(&self, q: Quirks) -> Client<UnixStream> {
        let (a, b) = UnixStream::pair().unwrap();
        let conn = {
            let mut st = self.store.lock().unwrap();
            st.conns.push(Some(b.try_clone().unwrap()));
            st.conns.len() - 1
        };
        let store = Arc::clone(&self.store);
        thread::spawn(move || serve(store, conn, b, q));
        Client::new(a)
    }

    /// Write a node as the toolstack would (no connection), firing watches.
    pub fn write(&self, path: &str, value: &[u8]) {
        let mut st = self.store.lock().unwrap();
        st.write(path, Some(value));
        st.fire(path);
    }

    /// A node's value, if it exists.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.store
            .lock()
            .unwrap()
            .nodes
            .get(path)
            .map(|n| n.0.clone())
    }

    /// Remove a node and everything below it, firing watches.
    pub fn rm(&self, path: &str) {
        let mut st = self.store.lock().unwrap();
        let below = format!("{path}/");
        st.nodes.retain(|k, _| k != path && !k.starts_with(&below));
        st.fire(path);
    }
}

/// One message of type `ty` on `s`.
pub fn send(s: &mut UnixStream, ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
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

/// A client of a daemon of its own.
pub fn client(q: Quirks) -> Client<UnixStream> {
    Xenstored::new().connect_with(q)
}

/// Serve connection `conn`'s requests (read from `s`) until it hangs up.
fn serve(store: Arc<Mutex<Store>>, conn: usize, mut s: UnixStream, mut q: Quirks) {
    loop {
        let mut h = [0u8; 16];
        if s.read_exact(&mut h).is_err() {
            let mut st = store.lock().unwrap();
            st.conns[conn] = None;
            st.watches.retain(|w| w.0 != conn);
            return;
        }
        let h = Header::decode(&h).unwrap();
        let mut p = vec![0; h.len as usize];
        s.read_exact(&mut p).unwrap();
        let args: Vec<&[u8]> = p.split(|&b| b == 0).collect();
        let path = String::from_utf8_lossy(args[0]).into_owned();
        let (id, tx) = (h.req_id, h.tx_id);
        let mut st = store.lock().unwrap();
        let st = &mut *st;
        if q.chatty {
            let mine: Vec<(String, String)> = st
                .watches
                .iter()
                .filter(|w| w.0 == conn)
                .map(|w| (w.1.clone(), w.2.clone()))
                .collect();
            for (wp, tok) in mine {
                st.to(conn, WATCH_EVENT, 0, 0, format!("{wp}\0{tok}\0").as_bytes());
            }
        }
        let err = |st: &mut Store, e: &str| st.to(conn, ERROR, id, tx, format!("{e}\0").as_bytes());
        match h.ty.0 {
            READ => match st.nodes.get(&path) {
                Some((v, _)) => {
                    let v = v.clone();
                    st.to(conn, READ, id, tx, &v)
                }
                None => err(st, "ENOENT"),
            },
            WRITE | MKDIR => {
                if h.ty.0 == WRITE {
                    st.write(&path, Some(&p[path.len() + 1..]));
                } else {
                    st.write(&path, None);
                }
                st.to(conn, h.ty.0, id, tx, b"OK\0");
                st.fire(&path);
            }
            RM => {
                if st.nodes.remove(&path).is_none() {
                    err(st, "ENOENT");
                    continue;
                }
                let below = format!("{path}/");
                st.nodes.retain(|k, _| !k.starts_with(&below));
                st.to(conn, RM, id, tx, b"OK\0");
                st.fire(&path);
            }
            DIRECTORY => {
                if !st.nodes.contains_key(&path) {
                    err(st, "ENOENT");
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
                st.to(conn, DIRECTORY, id, tx, &out);
            }
            GET_PERMS => match st.nodes.get(&path) {
                Some((_, perms)) => {
                    let mut out = Vec::new();
                    for x in perms {
                        out.extend_from_slice(x.as_bytes());
                        out.push(0);
                    }
                    st.to(conn, GET_PERMS, id, tx, &out);
                }
                None => err(st, "ENOENT"),
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
                        st.to(conn, SET_PERMS, id, tx, b"OK\0");
                    }
                    None => err(st, "ENOENT"),
                }
            }
            WATCH => {
                let tok = String::from_utf8_lossy(args[1]).into_owned();
                st.watches.push((conn, path.clone(), tok.clone()));
                st.to(conn, WATCH, id, tx, b"OK\0");
                st.to(
                    conn,
                    WATCH_EVENT,
                    0,
                    0,
                    format!("{path}\0{tok}\0").as_bytes(),
                );
            }
            UNWATCH => {
                let tok = String::from_utf8_lossy(args[1]).into_owned();
                let n = st.watches.len();
                st.watches
                    .retain(|w| *w != (conn, path.clone(), tok.clone()));
                if st.watches.len() == n {
                    err(st, "ENOENT");
                } else {
                    st.to(conn, UNWATCH, id, tx, b"OK\0");
                }
            }
            TRANSACTION_START => {
                st.next_tx += 1;
                let t = st.next_tx;
                st.to(conn, TRANSACTION_START, id, 0, format!("{t}\0").as_bytes());
            }
            TRANSACTION_END => {
                if p.first() == Some(&b'T') && q.conflicts > 0 {
                    q.conflicts -= 1;
                    err(st, "EAGAIN");
                } else {
                    st.to(conn, TRANSACTION_END, id, tx, b"OK\0");
                }
            }
            GET_DOMAIN_PATH => st.to(
                conn,
                GET_DOMAIN_PATH,
                id,
                tx,
                format!("/local/domain/{path}\0").as_bytes(),
            ),
            _ => err(st, "EINVAL"),
        }
    }
}

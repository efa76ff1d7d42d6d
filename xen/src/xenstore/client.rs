//! The client: one connection (the xenstored socket or `/dev/xen/xenbus`), one request in
//! flight at a time, its reply matched by request id and transaction id; watch events that
//! arrive meanwhile are queued for [`Client::next_event`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::string::{String, ToString};
use std::time::{Duration, Instant};
use std::vec::Vec;

use super::wire::{self, Header, Malformed, Perm, ABS_PATH_MAX, REL_PATH_MAX};
use super::Error;
use xen_sys::XsdSockmsgType as Ty;

/// What a [`Client`] talks over: anything that reads, writes and has a descriptor to poll.
pub trait Conn: Read + Write + AsFd {}
impl<T: Read + Write + AsFd> Conn for T {}

/// A transaction's id on the wire, or [`Tx::NONE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Tx(pub(crate) u32);

impl Tx {
    /// Outside any transaction.
    pub(crate) const NONE: Tx = Tx(0);
}

/// How a transaction ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum TxEnd {
    /// Apply its changes (fails with `EAGAIN` on a conflict).
    Commit,
    /// Drop its changes.
    Abort,
}

/// A fired watch: the path that changed (or the watched path, once, when the watch is set) and
/// the token given to [`Client::watch`]. The path is absolute or special (`@releaseDomain`), the
/// token is not empty: events with anything else are malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed.
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// How often [`Client::transaction`] tries before giving up with [`Error::Conflict`].
pub const TRANSACTION_ATTEMPTS: u32 = 16;
/// Watch events kept while nobody takes them; beyond this the oldest are dropped (and counted
/// in [`Client::dropped_events`]), so a flood cannot grow the queue without bound.
pub const MAX_QUEUED_EVENTS: usize = 4096;

/// The connection to the daemon: its Unix socket or the kernel's xenbus device.
#[derive(Debug)]
pub enum Connection {
    /// xenstored's socket (dom0).
    Socket(UnixStream),
    /// `/dev/xen/xenbus` (any Linux domain; the kernel forwards to xenstored over the ring).
    Xenbus(File),
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Connection::Socket(s) => s.read(buf),
            Connection::Xenbus(f) => f.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Connection::Socket(s) => s.write(buf),
            Connection::Xenbus(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Connection::Socket(s) => s.as_fd(),
            Connection::Xenbus(f) => f.as_fd(),
        }
    }
}

/// Where xenstored listens unless `XENSTORED_PATH` says otherwise.
pub const SOCKET_PATHS: [&str; 2] = ["/run/xenstored/socket", "/var/run/xenstored/socket"];
/// The kernel's xenbus device.
pub const XENBUS_PATH: &str = "/dev/xen/xenbus";

fn io_error(op: &'static str, path: &str, e: &std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_string(),
        errno: e.raw_os_error().unwrap_or(5),
    }
}

impl Client<Connection> {
    /// Connect as libxenstore does: the socket at `$XENSTORED_PATH` or the usual paths, else
    /// `/dev/xen/xenbus`.
    pub fn open() -> Result<Self, Error> {
        let env = std::env::var("XENSTORED_PATH").ok();
        for p in env.iter().map(String::as_str).chain(SOCKET_PATHS) {
            if let Ok(c) = Self::open_socket(p) {
                return Ok(c);
            }
        }
        Self::open_xenbus()
    }

    /// Connect to xenstored's socket at `path`.
    pub fn open_socket(path: &str) -> Result<Self, Error> {
        UnixStream::connect(path)
            .map(|s| Client::new(Connection::Socket(s)))
            .map_err(|e| io_error("connect", path, &e))
    }

    /// Open `/dev/xen/xenbus`.
    ///
    /// Its watch events are made by Linux, which fills in only their type and length (the ids
    /// are whatever was on the kernel's stack), so this client does not require their request
    /// and transaction ids to be 0 as [`Client::new`]'s does.
    pub fn open_xenbus() -> Result<Self, Error> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(XENBUS_PATH)
            .map(|f| Client {
                check_event_ids: false,
                ..Client::new(Connection::Xenbus(f))
            })
            .map_err(|e| io_error("open", XENBUS_PATH, &e))
    }
}

/// A xenstore client.
///
/// ```no_run
/// use xen::xenstore::Client;
/// let mut xs = Client::open()?;
/// let name = xs.read("/local/domain/0/name")?;
/// xs.watch("/local/domain/1/device", "dev")?;
/// let n = xs.transaction(|t| {
///     let v = t.read("/tool/counter").unwrap_or_default();
///     let n: u64 = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).unwrap_or(0) + 1;
///     t.write("/tool/counter", n.to_string().as_bytes())?;
///     Ok(n)
/// })?;
/// for ev in xs.events() {
///     let ev = ev?;
///     println!("{} changed ({})", ev.path, ev.token);
/// }
/// # Ok::<(), xen::xenstore::Error>(())
/// ```
pub struct Client<C: Conn = Connection> {
    conn: C,
    /// Bytes received and not yet taken as messages.
    rx: Vec<u8>,
    next_id: u32,
    events: VecDeque<WatchEvent>,
    dropped: u64,
    broken: bool,
    /// Whether watch events must have request and transaction id 0 (not over the xenbus
    /// device, see [`Client::open_xenbus`]).
    check_event_ids: bool,
    /// The descriptor of [`Client::event_fd`], once asked for.
    #[cfg(target_os = "linux")]
    ready: Option<Readiness>,
}

/// What [`Client::event_fd`] returns: an epoll instance watching the connection and an eventfd
/// the client keeps signalled while it holds work for [`Client::dispatch`] or
/// [`Client::pending_event`] (queued events, a complete message already read, a broken
/// connection), so the epoll descriptor is readable exactly when a call would not wait.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Readiness {
    epoll: std::os::fd::OwnedFd,
    flag: std::os::fd::OwnedFd,
    /// Whether `flag` holds a count now.
    set: bool,
}

#[cfg(target_os = "linux")]
impl Readiness {
    /// The epoll instance over `conn` and a cleared eventfd.
    fn new(conn: BorrowedFd<'_>) -> Result<Readiness, Error> {
        use rustix::event::{epoll, eventfd, EventfdFlags};
        let err = |op: &'static str| {
            move |e: rustix::io::Errno| Error::Io {
                op,
                path: String::new(),
                errno: e.raw_os_error(),
            }
        };
        let epoll_fd = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(err("epoll_create1"))?;
        let flag =
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(err("eventfd"))?;
        for fd in [conn, flag.as_fd()] {
            epoll::add(
                &epoll_fd,
                fd,
                epoll::EventData::new_u64(0),
                epoll::EventFlags::IN,
            )
            .map_err(err("epoll_ctl"))?;
        }
        Ok(Readiness {
            epoll: epoll_fd,
            flag,
            set: false,
        })
    }

    /// Signal the eventfd (`on`) or clear it. A failure leaves `set` as it was, so the next
    /// call tries again (neither can fail on an eventfd of ours whose count is 0 or 1).
    fn signal(&mut self, on: bool) {
        let ok = if on {
            rustix::io::write(&self.flag, &1u64.to_ne_bytes()).is_ok()
        } else {
            let mut b = [0u8; 8];
            // EAGAIN: already clear.
            matches!(
                rustix::io::read(&self.flag, &mut b),
                Ok(_) | Err(rustix::io::Errno::AGAIN)
            )
        };
        if ok {
            self.set = on;
        }
    }
}

impl<C: Conn> core::fmt::Debug for Client<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("queued_events", &self.events.len())
            .field("dropped", &self.dropped)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<C: Conn> AsFd for Client<C> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.conn.as_fd()
    }
}

/// The operation's name for errors.
fn name(ty: Ty) -> &'static str {
    ty.name().unwrap_or("XS_?")
}

/// Refuse a watch's path or token when its events would be refused: the path must be absolute or
/// special (events on a relative watch have relative paths), the token not empty.
fn check_watch(op: &'static str, path: &str, token: &str) -> Result<(), Error> {
    let what = if token.contains('\0') {
        "a NUL inside the token"
    } else if token.is_empty() {
        "an empty token"
    } else if !(path.starts_with('/') || path.starts_with('@')) {
        "a relative path: a watch's path must be absolute or special (@...)"
    } else {
        return Ok(());
    };
    Err(refused(op, path, what))
}

/// A request refused before sending, with its path cut to 64 characters.
fn refused(op: &'static str, path: &str, what: &'static str) -> Error {
    Error::Invalid {
        op,
        path: path.chars().take(64).collect(),
        what,
    }
}

/// Refuse paths and tokens the daemon would reject (or that would change the message's
/// meaning): a NUL inside, or longer than the protocol's limits.
fn check_path(op: &'static str, path: &str) -> Result<(), Error> {
    let max = if path.starts_with('/') {
        ABS_PATH_MAX
    } else {
        REL_PATH_MAX
    };
    let what = if path.contains('\0') {
        "a NUL inside the path"
    } else if path.is_empty() {
        "an empty path"
    } else if path.len() > max {
        "a path longer than XENSTORE_ABS_PATH_MAX (3072) or, relative, XENSTORE_REL_PATH_MAX (2048)"
    } else {
        return Ok(());
    };
    Err(refused(op, path, what))
}

impl<C: Conn> Client<C> {
    /// A client over an open connection. Watch events must have request and transaction id 0,
    /// as xenstored sends them; over `/dev/xen/xenbus` use [`Client::open_xenbus`].
    pub fn new(conn: C) -> Self {
        Client {
            conn,
            rx: Vec::new(),
            next_id: 1,
            events: VecDeque::new(),
            dropped: 0,
            broken: false,
            check_event_ids: true,
            #[cfg(target_os = "linux")]
            ready: None,
        }
    }

    /// A descriptor for an event loop that is readable whenever the client has something for
    /// it: watch events queued in the client (also those that arrived in the same read as a
    /// reply, which leave nothing on the connection), or bytes to read from the connection
    /// (libxenstore's `xs_fileno`). Once it polls readable, call [`dispatch`](Self::dispatch)
    /// (which then never blocks) and take [`pending_event`](Self::pending_event) until it is
    /// `None`; it stays readable while an event is queued, so none can be missed.
    ///
    /// It is made on the first call (an epoll instance holding the connection and an eventfd
    /// the client signals while its queue is not empty, so no thread) and the same descriptor
    /// is returned after; it lives as long as the client. The connection's own descriptor
    /// ([`AsFd`]) is still there for a loop that calls `pending_event` before every poll. A
    /// connection epoll cannot watch (a regular file) gives [`Error::Io`] (`epoll_ctl`, EPERM).
    /// A broken connection (after [`Error::Malformed`], say) leaves it readable, so the loop's
    /// next `dispatch` reports [`Error::Broken`].
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use rustix::event::{poll, PollFd, PollFlags, Timespec};
    /// use xen::xenstore::{wire, Client};
    ///
    /// let (conn, mut daemon) = UnixStream::pair()?;
    /// let mut xs = Client::new(conn);
    /// let readable = |xs: &mut Client<UnixStream>| -> Result<bool, Box<dyn std::error::Error>> {
    ///     let fd = xs.event_fd()?;
    ///     let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    ///     Ok(poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 }))? == 1)
    /// };
    /// assert!(!readable(&mut xs)?);
    /// // The daemon fires a watch.
    /// daemon.write_all(&wire::request(wire::XsdSockmsgType::WATCH_EVENT, 0, 0, &[b"/a\0tok\0"]).unwrap())?;
    /// assert!(readable(&mut xs)?);
    /// xs.dispatch()?;
    /// assert!(readable(&mut xs)?, "one event queued");
    /// assert_eq!(xs.pending_event().map(|e| e.path).as_deref(), Some("/a"));
    /// assert!(!readable(&mut xs)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(target_os = "linux")]
    pub fn event_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        let r = match self.ready.take() {
            Some(r) => r,
            None => {
                let mut r = Readiness::new(self.conn.as_fd())?;
                if self.wants_dispatch() {
                    r.signal(true);
                }
                r
            }
        };
        Ok(self.ready.insert(r).epoll.as_fd())
    }

    /// Whether a `dispatch` or `pending_event` would not wait for the connection: events
    /// queued, a complete message (or a malformed header) already received, or the connection
    /// broken (`dispatch` then reports it).
    #[cfg(target_os = "linux")]
    fn wants_dispatch(&self) -> bool {
        self.broken || !self.events.is_empty() || !matches!(wire::frame(&self.rx), Ok(None))
    }

    /// Keep [`event_fd`](Self::event_fd)'s eventfd signalled exactly while
    /// [`wants_dispatch`](Self::wants_dispatch).
    fn sync_ready(&mut self) {
        #[cfg(target_os = "linux")]
        if self.ready.is_some() {
            let want = self.wants_dispatch();
            if let Some(r) = self.ready.as_mut().filter(|r| r.set != want) {
                r.signal(want);
            }
        }
    }

    /// The value of `path` (bytes: xenstore values need not be text).
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        self.read_in(Tx::NONE, path)
    }

    /// Set `path` to `value`, creating it (and missing parents) if needed.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.write_in(Tx::NONE, path, value)
    }

    /// Create `path` (and missing parents) with an empty value; an existing node is kept.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        self.mkdir_in(Tx::NONE, path)
    }

    /// Remove `path` and everything below it.
    pub fn rm(&mut self, path: &str) -> Result<(), Error> {
        self.rm_in(Tx::NONE, path)
    }

    /// The names of the children of `path`.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        self.directory_in(Tx::NONE, path)
    }

    /// The permissions of `path`: owner (and everyone's default) first.
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
        self.get_perms_in(Tx::NONE, path)
    }

    /// Set the permissions of `path`: the owner and default access first.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        self.set_perms_in(Tx::NONE, path, perms)
    }

    fn read_in(&mut self, tx: Tx, path: &str) -> Result<Vec<u8>, Error> {
        self.path_call(Ty::READ, tx, path, &[])
    }

    /// Set `path` to `value`, creating it (and missing parents) if needed.
    fn write_in(&mut self, tx: Tx, path: &str, value: &[u8]) -> Result<(), Error> {
        let p = self.path_call(Ty::WRITE, tx, path, value)?;
        self.ack(Ty::WRITE, path, &p)
    }

    /// Create `path` (and missing parents) with an empty value; an existing node is kept.
    fn mkdir_in(&mut self, tx: Tx, path: &str) -> Result<(), Error> {
        let p = self.path_call(Ty::MKDIR, tx, path, &[])?;
        self.ack(Ty::MKDIR, path, &p)
    }

    /// Remove `path` and everything below it.
    fn rm_in(&mut self, tx: Tx, path: &str) -> Result<(), Error> {
        let p = self.path_call(Ty::RM, tx, path, &[])?;
        self.ack(Ty::RM, path, &p)
    }

    /// The names of the children of `path`.
    fn directory_in(&mut self, tx: Tx, path: &str) -> Result<Vec<String>, Error> {
        let p = self.path_call(Ty::DIRECTORY, tx, path, &[])?;
        wire::directory(&p)
            .map(|v| v.into_iter().map(String::from).collect())
            .map_err(|what| self.malformed(Ty::DIRECTORY, path, what))
    }

    /// The permissions of `path`: owner (and everyone's default) first.
    fn get_perms_in(&mut self, tx: Tx, path: &str) -> Result<Vec<Perm>, Error> {
        let p = self.path_call(Ty::GET_PERMS, tx, path, &[])?;
        wire::perms(&p).map_err(|what| self.malformed(Ty::GET_PERMS, path, what))
    }

    /// Set the permissions of `path`: the owner and default access first.
    fn set_perms_in(&mut self, tx: Tx, path: &str, perms: &[Perm]) -> Result<(), Error> {
        let mut list = Vec::new();
        for p in perms {
            list.extend_from_slice(p.to_string().as_bytes());
            list.push(0);
        }
        let p = self.path_call(Ty::SET_PERMS, tx, path, &list)?;
        self.ack(Ty::SET_PERMS, path, &p)
    }

    /// Watch `path` and everything below it; events carry `token`. The daemon fires the watch
    /// once when it is set. `path` is absolute or special (`@releaseDomain`,
    /// `@introduceDomain`) and `token` not empty; anything else is refused before sending.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.watch_op(Ty::WATCH, path, token)
    }

    /// Remove a watch set with the same path and token.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.watch_op(Ty::UNWATCH, path, token)
    }

    /// The home path of `domid` (`/local/domain/N`).
    pub fn get_domain_path(&mut self, domid: crate::DomId) -> Result<String, Error> {
        let d = domid.to_string();
        let p = self.call(Ty::GET_DOMAIN_PATH, Tx::NONE, &d, &[d.as_bytes(), b"\0"])?;
        wire::string(&p)
            .map(String::from)
            .map_err(|what| self.malformed(Ty::GET_DOMAIN_PATH, &d, what))
    }

    /// Start a transaction: its operations see and change a snapshot of the store until
    /// [`Transaction::commit`] (an unfinished one is aborted when dropped).
    /// [`transaction`](Self::transaction) also retries a commit that conflicted.
    pub fn transaction_start(&mut self) -> Result<Transaction<'_, C>, Error> {
        let p = self.call(Ty::TRANSACTION_START, Tx::NONE, "", &[b"\0"])?;
        let tx = wire::transaction_id(&p)
            .map(Tx)
            .map_err(|what| self.malformed(Ty::TRANSACTION_START, "", what))?;
        Ok(Transaction {
            xs: self,
            tx,
            open: true,
        })
    }

    /// End `tx` as `end` says. A commit that conflicted with another change fails with the
    /// daemon's `EAGAIN`: start over.
    fn transaction_end(&mut self, tx: Tx, end: TxEnd) -> Result<(), Error> {
        let arg: &[u8] = match end {
            TxEnd::Commit => b"T\0",
            TxEnd::Abort => b"F\0",
        };
        let p = self.call(Ty::TRANSACTION_END, tx, "", &[arg])?;
        self.ack(Ty::TRANSACTION_END, "", &p)
    }

    /// Run `f` in a transaction and commit it, starting over (up to [`TRANSACTION_ATTEMPTS`]
    /// times) while the daemon answers `EAGAIN`; an error from `f` aborts the transaction and is
    /// returned.
    pub fn transaction<T>(
        &mut self,
        mut f: impl FnMut(&mut Transaction<'_, C>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        const EAGAIN: i32 = 11;
        for _ in 0..TRANSACTION_ATTEMPTS {
            let mut t = self.transaction_start()?;
            match f(&mut t) {
                Ok(v) => match t.commit() {
                    Ok(()) => return Ok(v),
                    Err(e) if e.errno() == Some(EAGAIN) && matches!(e, Error::Daemon { .. }) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // The abort's own failure would hide `f`'s error, which matters more.
                    let _ = t.abort();
                    if !(e.errno() == Some(EAGAIN) && matches!(e, Error::Daemon { .. })) {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::Conflict {
            attempts: TRANSACTION_ATTEMPTS,
        })
    }

    /// The next watch event: a queued one, else the next from the daemon (blocking).
    pub fn next_event(&mut self) -> Result<WatchEvent, Error> {
        let r = self.next_event_inner();
        self.sync_ready();
        r
    }

    fn next_event_inner(&mut self) -> Result<WatchEvent, Error> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let (h, _) = self.message(Ty::WATCH_EVENT, "")?;
            self.expect_event(h)?;
        }
    }

    /// The next watch event, waiting at most `timeout` (`None`: without limit); `Ok(None)`
    /// when it passed. Queued events come first and the descriptor is polled only when none
    /// is queued, so an event that came with an earlier reply is never waited for.
    pub fn wait_event(&mut self, timeout: Option<Duration>) -> Result<Option<WatchEvent>, Error> {
        let r = self.wait_matching(timeout, |_| true);
        self.sync_ready();
        r
    }

    /// The next watch event of the watch with `token`, waiting at most `timeout` (`None`:
    /// without limit); `Ok(None)` when it passed. Events of other watches stay queued, in
    /// order, for [`pending_event`](Self::pending_event) and the others: a helper waiting for
    /// its own watch (as [`crate::xenbus`]'s do) takes nothing from the caller's.
    pub fn wait_event_for(
        &mut self,
        token: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<WatchEvent>, Error> {
        let r = self.wait_matching(timeout, |e| e.token == token);
        self.sync_ready();
        r
    }

    /// Drop the queued events of the watch with `token` (after [`unwatch`](Self::unwatch),
    /// those that came before its reply), keeping the others in order; how many were dropped.
    pub fn discard_events(&mut self, token: &str) -> usize {
        self.queue_buffered_events();
        let before = self.events.len();
        self.events.retain(|e| e.token != token);
        self.sync_ready();
        before - self.events.len()
    }

    /// The first queued event `want` accepts, else one read after another until one comes or
    /// the time is up.
    fn wait_matching(
        &mut self,
        timeout: Option<Duration>,
        want: impl Fn(&WatchEvent) -> bool,
    ) -> Result<Option<WatchEvent>, Error> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let end = timeout.map(|t| Instant::now() + t);
        loop {
            self.queue_buffered_events();
            if let Some(i) = self.events.iter().position(&want) {
                return Ok(self.events.remove(i));
            }
            // Something already here that is not a wanted event (a message no request asked
            // for, a malformed event): reported now rather than after a poll that would wait.
            if self.broken || !matches!(wire::frame(&self.rx), Ok(None)) {
                self.read_events()?;
                continue;
            }
            let ts = match end {
                Some(end) => {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    Some(Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    })
                }
                None => None,
            };
            let r = {
                let fd = self.conn.as_fd();
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                poll(&mut fds, ts.as_ref())
            };
            match r {
                Ok(0) | Err(rustix::io::Errno::INTR) => {}
                Ok(_) => self.read_events()?,
                Err(e) => {
                    return Err(Error::Io {
                        op: "poll",
                        path: String::new(),
                        errno: e.raw_os_error(),
                    })
                }
            }
        }
    }

    /// A queued watch event, without reading from the daemon (events that came in the same
    /// read as an earlier reply count as queued).
    pub fn pending_event(&mut self) -> Option<WatchEvent> {
        self.queue_buffered_events();
        let e = self.events.pop_front();
        self.sync_ready();
        e
    }

    /// Queue the complete watch events already received (a reply and the events after it often
    /// arrive in one read): a caller polling the descriptor would otherwise wait for bytes that
    /// are already here. Stops at anything else, which the next read reports.
    fn queue_buffered_events(&mut self) {
        while !self.broken {
            match wire::frame(&self.rx) {
                // A malformed event stays for the next read to report.
                Ok(Some((h, r)))
                    if h.ty == Ty::WATCH_EVENT && self.event(&h, &self.rx[r.clone()]).is_ok() =>
                {
                    if self.take_frame(Ty::WATCH_EVENT, "").is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    }

    /// Blocking iterator over watch events ([`Client::next_event`]); it ends after the first
    /// error.
    pub fn events(&mut self) -> impl Iterator<Item = Result<WatchEvent, Error>> + '_ {
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let r = self.next_event();
            failed = r.is_err();
            Some(r)
        })
    }

    /// For an event loop, once the descriptor is readable: one read from the connection, every
    /// complete watch event in it queued; returns how many events are queued now.
    ///
    /// Take [`pending_event`](Self::pending_event) until it is `None` before polling the
    /// connection's descriptor ([`AsFd`]) again: a reply often brings watch events with it, and
    /// those are queued already, not left on the descriptor, so poll would not report them.
    /// [`event_fd`](Self::event_fd) is a descriptor that does report them;
    /// [`wait_event`](Self::wait_event) does this for a loop that waits on xenstore alone.
    ///
    /// It does not read while events are queued (it returns their number), nor while a
    /// complete message is already here (one that is not an event is an error with no request
    /// in flight, reported at once): so after [`event_fd`](Self::event_fd) polled readable it
    /// never blocks.
    pub fn dispatch(&mut self) -> Result<usize, Error> {
        let r = self.dispatch_inner();
        self.sync_ready();
        r
    }

    fn dispatch_inner(&mut self) -> Result<usize, Error> {
        self.check_usable(Ty::WATCH_EVENT, "")?;
        self.queue_buffered_events();
        if self.events.is_empty() || !matches!(wire::frame(&self.rx), Ok(None)) {
            self.read_events()?;
        }
        Ok(self.events.len())
    }

    /// One read from the connection (none when a complete message is already here), every
    /// complete message then taken: events queued, anything else malformed.
    fn read_events(&mut self) -> Result<(), Error> {
        self.check_usable(Ty::WATCH_EVENT, "")?;
        if matches!(wire::frame(&self.rx), Ok(None)) {
            self.fill(Ty::WATCH_EVENT, "")?;
        }
        while let Some((h, _)) = self.take_frame(Ty::WATCH_EVENT, "")? {
            self.expect_event(h)?;
        }
        Ok(())
    }

    /// With no request in flight only watch events may come: anything else is malformed.
    fn expect_event(&mut self, h: Header) -> Result<(), Error> {
        if h.ty == Ty::WATCH_EVENT {
            return Ok(());
        }
        Err(self.malformed(
            Ty::WATCH_EVENT,
            "",
            Malformed::WrongType {
                got: h.ty.0,
                want: Ty::WATCH_EVENT.0,
            },
        ))
    }

    /// Watch events dropped because the queue was full ([`MAX_QUEUED_EVENTS`]).
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    fn watch_op(&mut self, ty: Ty, path: &str, token: &str) -> Result<(), Error> {
        check_path(name(ty), path)?;
        check_watch(name(ty), path, token)?;
        let p = self.call(
            ty,
            Tx::NONE,
            path,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )?;
        self.ack(ty, path, &p)
    }

    /// A request of `path` and a NUL, then `rest`.
    fn path_call(&mut self, ty: Ty, tx: Tx, path: &str, rest: &[u8]) -> Result<Vec<u8>, Error> {
        check_path(name(ty), path)?;
        self.call(ty, tx, path, &[path.as_bytes(), b"\0", rest])
    }

    fn ack(&mut self, ty: Ty, path: &str, p: &[u8]) -> Result<(), Error> {
        wire::ok(p).map_err(|what| self.malformed(ty, path, what))
    }

    /// A malformed message: the stream can no longer be trusted.
    fn malformed(&mut self, ty: Ty, path: &str, what: Malformed) -> Error {
        self.broken = true;
        Error::Malformed {
            op: name(ty),
            path: path.to_string(),
            what,
        }
    }

    fn check_usable(&self, ty: Ty, path: &str) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Broken {
                op: name(ty),
                path: path.to_string(),
            });
        }
        Ok(())
    }

    /// Send one request and return its reply's payload (an `XS_ERROR` reply as
    /// [`Error::Daemon`]), queueing the watch events that come first.
    fn call(&mut self, ty: Ty, tx: Tx, path: &str, parts: &[&[u8]]) -> Result<Vec<u8>, Error> {
        let r = self.call_inner(ty, tx, path, parts);
        self.sync_ready();
        r
    }

    fn call_inner(
        &mut self,
        ty: Ty,
        tx: Tx,
        path: &str,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, Error> {
        self.check_usable(ty, path)?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let Some(msg) = wire::request(ty, id, tx.0, parts) else {
            return Err(Error::Invalid {
                op: name(ty),
                path: path.chars().take(64).collect(),
                what: "a payload longer than XENSTORE_PAYLOAD_MAX (4096)",
            });
        };
        // One write per message: the xenbus device takes a message per write.
        if let Err(e) = self.conn.write_all(&msg) {
            self.broken = true;
            return Err(io_error(name(ty), path, &e));
        }
        loop {
            let (h, p) = self.message(ty, path)?;
            if h.ty == Ty::WATCH_EVENT {
                continue; // queued by `message`
            }
            if h.req_id != id {
                return Err(self.malformed(
                    ty,
                    path,
                    Malformed::WrongId {
                        got: h.req_id,
                        want: id,
                    },
                ));
            }
            // xenstored copies the request's tx_id into every reply (xenstore.txt), so another
            // one means the reply is not to this request.
            if h.tx_id != tx.0 {
                return Err(self.malformed(
                    ty,
                    path,
                    Malformed::WrongTransaction {
                        got: h.tx_id,
                        want: tx.0,
                    },
                ));
            }
            if h.ty == Ty::ERROR {
                let name_ = wire::string(&p)
                    .map(String::from)
                    .map_err(|what| self.malformed(ty, path, what))?;
                return Err(Error::Daemon {
                    op: name(ty),
                    path: path.to_string(),
                    errno: wire::errno_of(&name_),
                    name: name_,
                });
            }
            if h.ty != ty {
                return Err(self.malformed(
                    ty,
                    path,
                    Malformed::WrongType {
                        got: h.ty.0,
                        want: ty.0,
                    },
                ));
            }
            self.queue_buffered_events();
            return Ok(p);
        }
    }

    /// The next message (reading as needed); watch events are parsed and queued, and returned
    /// with an empty payload.
    fn message(&mut self, ty: Ty, path: &str) -> Result<(Header, Vec<u8>), Error> {
        self.check_usable(ty, path)?;
        loop {
            if let Some(m) = self.take_frame(ty, path)? {
                return Ok(m);
            }
            self.fill(ty, path)?;
        }
    }

    /// One complete message off the receive buffer, if there is one.
    fn take_frame(&mut self, ty: Ty, path: &str) -> Result<Option<(Header, Vec<u8>)>, Error> {
        let (h, range) = match wire::frame(&self.rx) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(what) => return Err(self.malformed(ty, path, what)),
        };
        let payload = self.rx[range.clone()].to_vec();
        self.rx.drain(..range.end);
        if h.ty == Ty::WATCH_EVENT {
            let ev = self
                .event(&h, &payload)
                .map_err(|what| self.malformed(ty, path, what))?;
            if self.events.len() >= MAX_QUEUED_EVENTS {
                self.events.pop_front();
                self.dropped += 1;
            }
            self.events.push_back(ev);
            return Ok(Some((h, Vec::new())));
        }
        Ok(Some((h, payload)))
    }

    /// A watch event's header and payload checked and parsed.
    fn event(&self, h: &Header, payload: &[u8]) -> Result<WatchEvent, Malformed> {
        // Unsolicited: an id would mean a reply typed as an event (xenstore.txt: both are 0).
        if self.check_event_ids && (h.req_id != 0 || h.tx_id != 0) {
            return Err(Malformed::EventIds {
                req_id: h.req_id,
                tx_id: h.tx_id,
            });
        }
        let (path, token) = wire::watch_event(payload)?;
        Ok(WatchEvent { path, token })
    }

    /// One read into the receive buffer.
    fn fill(&mut self, ty: Ty, path: &str) -> Result<(), Error> {
        let mut buf = [0u8; wire::HEADER_LEN + wire::PAYLOAD_MAX];
        let n = loop {
            match self.conn.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        self.broken = true;
                    }
                    return Err(io_error(name(ty), path, &e));
                }
            }
        };
        if n == 0 {
            self.broken = true;
            if !self.rx.is_empty() {
                return Err(self.malformed(ty, path, Malformed::Truncated));
            }
            return Err(Error::Closed {
                op: name(ty),
                path: path.to_string(),
            });
        }
        self.rx.extend_from_slice(&buf[..n]);
        Ok(())
    }
}

/// A xenstore transaction ([`Client::transaction_start`], [`Client::transaction`]): the node
/// operations of [`Client`], on the transaction's snapshot. Dropped unfinished, it is aborted.
pub struct Transaction<'c, C: Conn = Connection> {
    xs: &'c mut Client<C>,
    tx: Tx,
    /// Neither committed nor aborted yet.
    open: bool,
}

impl<C: Conn> core::fmt::Debug for Transaction<'_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.tx.0)
            .field("open", &self.open)
            .finish()
    }
}

impl<C: Conn> Transaction<'_, C> {
    /// The value of `path` (bytes: xenstore values need not be text).
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        self.xs.read_in(self.tx, path)
    }

    /// Set `path` to `value`, creating it (and missing parents) if needed.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.xs.write_in(self.tx, path, value)
    }

    /// Create `path` (and missing parents) with an empty value; an existing node is kept.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        self.xs.mkdir_in(self.tx, path)
    }

    /// Remove `path` and everything below it.
    pub fn rm(&mut self, path: &str) -> Result<(), Error> {
        self.xs.rm_in(self.tx, path)
    }

    /// The names of the children of `path`.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        self.xs.directory_in(self.tx, path)
    }

    /// The permissions of `path`: owner (and everyone's default) first.
    pub fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
        self.xs.get_perms_in(self.tx, path)
    }

    /// Set the permissions of `path`: the owner and default access first.
    pub fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        self.xs.set_perms_in(self.tx, path, perms)
    }

    /// The transaction's id (the daemon's).
    pub fn id(&self) -> u32 {
        self.tx.0
    }

    /// Apply its changes. A commit that conflicted with another change fails with the daemon's
    /// `EAGAIN` (and the changes are dropped): start over, or use [`Client::transaction`].
    pub fn commit(mut self) -> Result<(), Error> {
        self.open = false;
        self.xs.transaction_end(self.tx, TxEnd::Commit)
    }

    /// Drop its changes.
    pub fn abort(mut self) -> Result<(), Error> {
        self.open = false;
        self.xs.transaction_end(self.tx, TxEnd::Abort)
    }
}

impl<C: Conn> Drop for Transaction<'_, C> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: the daemon drops it with the connection anyway.
            let _ = self.xs.transaction_end(self.tx, TxEnd::Abort);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    /// A client over a socket the daemon side of which has already sent `m`.
    fn with_sent(m: &[u8], check_event_ids: bool) -> Client<UnixStream> {
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(m).unwrap();
        Client {
            check_event_ids,
            ..Client::new(a)
        }
    }

    #[test]
    fn event_ids_are_checked_except_where_the_kernel_leaves_them_unset() {
        let event = wire::request(Ty::WATCH_EVENT, 7, 9, &[b"/a\0t\0"]).unwrap();
        let e = with_sent(&event, true).next_event().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Malformed {
                    what: Malformed::EventIds {
                        req_id: 7,
                        tx_id: 9
                    },
                    ..
                }
            ),
            "{e}"
        );
        // As open_xenbus makes it: Linux's xenbus device fills in only type and length.
        let ev = with_sent(&event, false).next_event().unwrap();
        assert_eq!((ev.path.as_str(), ev.token.as_str()), ("/a", "t"));
    }
}

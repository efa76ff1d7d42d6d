//! The xenstore wire protocol (`io/xs_wire.h`): a 16-byte header of four native-endian `u32`s
//! (type, request id, transaction id, payload length) and at most `XENSTORE_PAYLOAD_MAX` bytes
//! of payload. Everything here parses bytes the daemon (or, over a ring, another domain)
//! controls: every length is checked and nothing panics; a bad message is a [`Malformed`].
//!
//! `no_std` (with `alloc`): the same framing serves the Linux client and a ring client in a
//! freestanding domain.

use alloc::string::String;
use alloc::vec::Vec;

use xen_sys::XsdError;
pub use xen_sys::XsdSockmsgType;

/// Bytes of the header.
pub const HEADER_LEN: usize = core::mem::size_of::<xen_sys::XsdSockmsg>();
/// The largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = xen_sys::XENSTORE_PAYLOAD_MAX as usize;
/// The longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = xen_sys::XENSTORE_ABS_PATH_MAX as usize;
/// The longest relative path (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = xen_sys::XENSTORE_REL_PATH_MAX as usize;

/// A message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub ty: XsdSockmsgType,
    /// Chosen by the client, echoed in the reply; 0 in watch events.
    pub req_id: u32,
    /// The transaction, 0 for none.
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        for (i, v) in [self.ty.0, self.req_id, self.tx_id, self.len]
            .into_iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    /// Decode a header; a length over [`PAYLOAD_MAX`] is refused (the stream cannot be trusted
    /// to resynchronise after it).
    pub fn decode(b: &[u8; HEADER_LEN]) -> Result<Header, Malformed> {
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let h = Header {
            ty: XsdSockmsgType(w(0)),
            req_id: w(4),
            tx_id: w(8),
            len: w(12),
        };
        if h.len as usize > PAYLOAD_MAX {
            return Err(Malformed::Oversized(h.len));
        }
        Ok(h)
    }
}

/// What was wrong with a message from the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The header announced more than `XENSTORE_PAYLOAD_MAX` bytes.
    #[error("a payload of {0} bytes (XENSTORE_PAYLOAD_MAX is 4096)")]
    Oversized(u32),
    /// A reply of another type than the request's (and not `XS_ERROR`).
    #[error("a reply of type {got} to a request of type {want}")]
    WrongType {
        /// The reply's type.
        got: u32,
        /// The request's type.
        want: u32,
    },
    /// A reply whose request id is not the request's.
    #[error("a reply with request id {got}, but the request in flight has id {want}")]
    WrongId {
        /// The reply's id.
        got: u32,
        /// The request's id.
        want: u32,
    },
    /// A reply whose transaction id is not the request's (replies, errors included, copy it
    /// from the request; `XS_TRANSACTION_START`'s is 0 too, the new id is in its payload).
    #[error("a reply in transaction {got} to a request in transaction {want}")]
    WrongTransaction {
        /// The reply's transaction id.
        got: u32,
        /// The request's transaction id.
        want: u32,
    },
    /// A string without its NUL terminator.
    #[error("a string without its NUL terminator")]
    Unterminated,
    /// A NUL inside a value that must be one string.
    #[error("a NUL inside a single string")]
    InteriorNul,
    /// A string that is not UTF-8.
    #[error("a string that is not UTF-8")]
    NotUtf8,
    /// An acknowledgement other than `OK`.
    #[error("an acknowledgement other than \"OK\"")]
    NotOk,
    /// A transaction id that is not a non-zero decimal `u32`.
    #[error("a transaction id that is not a non-zero decimal number")]
    BadTransactionId,
    /// A permission entry not of the form `[nrwb]DOMID`.
    #[error("a permission entry not of the form [nrwb]DOMID")]
    BadPermission,
    /// An empty permission list: every node has at least its owner's entry.
    #[error("an empty permission list (a node always has its owner's entry)")]
    NoPermissions,
    /// An empty child name in a directory listing.
    #[error("an empty child name in a directory listing")]
    EmptyName,
    /// A watch event without exactly a path and a token.
    #[error("a watch event without exactly a path and a token")]
    BadWatchEvent,
    /// A watch event whose path is empty or relative: the client only sets watches on absolute
    /// paths and special `@` paths, and an event's path is the watch's or below it.
    #[error("a watch event whose path is neither absolute nor a special @ path")]
    BadEventPath,
    /// A watch event with an empty token (the client sets no watch without one).
    #[error("a watch event with an empty token")]
    EmptyToken,
    /// A watch event with a request or transaction id: events are unsolicited, both are 0.
    #[error("a watch event with request id {req_id} and transaction id {tx_id} (both must be 0)")]
    EventIds {
        /// The event's request id.
        req_id: u32,
        /// The event's transaction id.
        tx_id: u32,
    },
    /// The connection ended inside a message.
    #[error("the connection ended inside a message")]
    Truncated,
}

/// One NUL-terminated string (`"OK\0"`, `"ENOENT\0"`, a domain path); the terminator is
/// required, and nothing may follow it.
pub fn string(p: &[u8]) -> Result<&str, Malformed> {
    let body = p.strip_suffix(&[0]).ok_or(Malformed::Unterminated)?;
    if body.contains(&0) {
        return Err(Malformed::InteriorNul);
    }
    core::str::from_utf8(body).map_err(|_| Malformed::NotUtf8)
}

/// A list of NUL-terminated strings (`"a\0b\0"`; empty for none), as `XS_DIRECTORY`,
/// `XS_GET_PERMS` and watch events carry them.
pub fn strings(p: &[u8]) -> Result<Vec<&str>, Malformed> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let body = p.strip_suffix(&[0]).ok_or(Malformed::Unterminated)?;
    body.split(|&b| b == 0)
        .map(|s| core::str::from_utf8(s).map_err(|_| Malformed::NotUtf8))
        .collect()
}

/// An `XS_DIRECTORY` reply: the children's names, none of them empty. A node without children
/// is an empty payload (xenstored sends its children's list as is, and that list is empty); a
/// lone NUL would be one empty name.
pub fn directory(p: &[u8]) -> Result<Vec<&str>, Malformed> {
    let names = strings(p)?;
    if names.contains(&"") {
        return Err(Malformed::EmptyName);
    }
    Ok(names)
}

/// The `OK` acknowledgement of writes, removals, watches and transaction ends.
pub fn ok(p: &[u8]) -> Result<(), Malformed> {
    match string(p) {
        Ok("OK") => Ok(()),
        Ok(_) => Err(Malformed::NotOk),
        Err(e) => Err(e),
    }
}

/// The id `XS_TRANSACTION_START` answers.
pub fn transaction_id(p: &[u8]) -> Result<u32, Malformed> {
    let s = string(p)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::BadTransactionId);
    }
    s.parse::<u32>()
        .ok()
        .filter(|&id| id != 0)
        .ok_or(Malformed::BadTransactionId)
}

/// A watch event's payload: the path that changed (absolute, or special such as
/// `@releaseDomain`) and the watch's token (not empty).
pub fn watch_event(p: &[u8]) -> Result<(String, String), Malformed> {
    match strings(p).map_err(|_| Malformed::BadWatchEvent)?.as_slice() {
        [path, _] if !(path.starts_with('/') || path.starts_with('@')) => {
            Err(Malformed::BadEventPath)
        }
        [_, ""] => Err(Malformed::EmptyToken),
        [path, token] => Ok((String::from(*path), String::from(*token))),
        _ => Err(Malformed::BadWatchEvent),
    }
}

/// Who may do what to a node: one entry of `XS_GET_PERMS`/`XS_SET_PERMS`. The first entry of a
/// node's list names its owner (who may do anything) and the access of every domain not listed
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain.
    pub domid: crate::DomId,
    /// What it may do.
    pub access: Access,
}

/// The access of a [`Perm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: neither read nor write.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Perm {
    /// Parse `r5`, `n0`, `b12`.
    pub fn parse(s: &str) -> Result<Perm, Malformed> {
        let mut c = s.chars();
        let access = match c.next() {
            Some('n') => Access::None,
            Some('r') => Access::Read,
            Some('w') => Access::Write,
            Some('b') => Access::Both,
            _ => return Err(Malformed::BadPermission),
        };
        let d = c.as_str();
        if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Malformed::BadPermission);
        }
        let domid = d.parse::<u16>().map_err(|_| Malformed::BadPermission)?;
        Ok(Perm {
            domid: crate::DomId(domid),
            access,
        })
    }

    /// The letter of its access.
    pub fn letter(&self) -> char {
        match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
}

impl core::fmt::Display for Perm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}{}", self.letter(), self.domid)
    }
}

/// Parse an `XS_GET_PERMS` reply: the owner's entry first, so never empty.
pub fn perms(p: &[u8]) -> Result<Vec<Perm>, Malformed> {
    let list = strings(p)?;
    if list.is_empty() {
        return Err(Malformed::NoPermissions);
    }
    list.into_iter().map(Perm::parse).collect()
}

/// The errno of an `XS_ERROR` reply's name (`"ENOENT"` → 2), from the protocol's error table
/// (`xsd_errors`, whose names are the wire strings); `EIO` for a name the table does not have.
pub fn errno_of(name: &str) -> i32 {
    // The table's errno values are small (the largest, EISCONN, is 106).
    (0..256)
        .map(XsdError)
        .find(|e| e.name() == Some(name))
        .unwrap_or(XsdError::EIO)
        .0
}

/// Build a request: header then payload parts, checked against [`PAYLOAD_MAX`]. Returns `None`
/// when the payload would be too long.
pub fn request(ty: XsdSockmsgType, req_id: u32, tx_id: u32, parts: &[&[u8]]) -> Option<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > PAYLOAD_MAX {
        return None;
    }
    let mut m = Vec::with_capacity(HEADER_LEN + len);
    m.extend_from_slice(
        &Header {
            ty,
            req_id,
            tx_id,
            len: len as u32,
        }
        .encode(),
    );
    for p in parts {
        m.extend_from_slice(p);
    }
    Some(m)
}

/// Split one complete message off the front of `buf`: `Ok(None)` when more bytes are needed,
/// else the header and the payload's range in `buf` (the message is `HEADER_LEN + len` bytes).
pub fn frame(buf: &[u8]) -> Result<Option<(Header, core::ops::Range<usize>)>, Malformed> {
    let Some(h) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let h = Header::decode(h)?;
    let end = HEADER_LEN + h.len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((h, HEADER_LEN..end)))
}

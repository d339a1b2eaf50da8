//! The node-link wire format: encoding and decoding of one frame, pure
//! functions over byte slices (no I/O), so the fuzz targets and the tests
//! exercise exactly what the link threads run.
//!
//! A frame is a 4-byte big-endian length of what follows, a kind byte and
//! a body (docs/CLUSTER.md, "The node-link protocol"). Every field is
//! big-endian. Decoding never panics and never allocates more than the
//! input holds: a count is checked against the bytes present before any
//! vector is sized by it.

use std::sync::Arc;

use super::{
    key::{MAC_BYTES, NONCE_BYTES},
    Delivery, PresenceEntry,
};

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// The protocol version a Challenge and a Hello carry. Version 1 had no
/// handshake: nodes of versions 1 and 2 refuse each other's links.
pub const VERSION: u8 = 2;
/// Bytes of one target, (user u64, position u64).
const TARGET_BYTES: usize = 16;
/// Bytes of one presence entry, (user u64, flags u8, last seen u64).
const PRESENCE_BYTES: usize = 17;

/// The kind byte of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The dialler's first frame: who it is, and its MAC.
    Hello = 1,
    /// One live event for some users.
    Deliver = 2,
    /// These users may have missed events.
    CatchUp = 3,
    /// Anyone may have missed events.
    CatchUpAll = 4,
    /// The sender stops cleanly.
    Goodbye = 5,
    /// Keepalive.
    Ping = 6,
    /// Answer to a keepalive.
    Pong = 7,
    /// A frame for some users' devices that is never stored (typing).
    Ephemeral = 8,
    /// Presence changes of the sender's users.
    Presence = 9,
    /// The acceptor's first frame: who it is, and a fresh nonce.
    Challenge = 10,
    /// The acceptor's answer to a good Hello, with its own MAC.
    Welcome = 11,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Hello,
            2 => Kind::Deliver,
            3 => Kind::CatchUp,
            4 => Kind::CatchUpAll,
            5 => Kind::Goodbye,
            6 => Kind::Ping,
            7 => Kind::Pong,
            8 => Kind::Ephemeral,
            9 => Kind::Presence,
            10 => Kind::Challenge,
            11 => Kind::Welcome,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// The dialler's first frame, after the acceptor's Challenge: who is
    /// sending, which run, which version, and the proof that it holds the
    /// fleet's link key (`key`).
    Hello {
        /// The sending node's id.
        node: u16,
        /// The sending node's epoch (its run).
        epoch: u64,
        /// The protocol version ([`VERSION`]).
        version: u8,
        /// The dialler's fresh nonce, for the acceptor's Welcome MAC.
        nonce: [u8; NONCE_BYTES],
        /// HMAC of the handshake transcript under the link key.
        mac: [u8; MAC_BYTES],
    },
    /// The acceptor's first frame, written as soon as it accepts.
    Challenge {
        /// The accepting node's id.
        node: u16,
        /// The accepting node's epoch.
        epoch: u64,
        /// The protocol version ([`VERSION`]).
        version: u8,
        /// A fresh nonce that the Hello's MAC must cover.
        nonce: [u8; NONCE_BYTES],
    },
    /// The acceptor's answer to a good Hello: its own MAC of the
    /// transcript, so the dialler knows it reached a node of its fleet.
    Welcome {
        /// HMAC of the handshake transcript under the link key.
        mac: [u8; MAC_BYTES],
    },
    /// One live event for the users it lists.
    Deliver(Delivery),
    /// These users may have missed events.
    CatchUp(Vec<u64>),
    /// Anyone on the receiving node may have missed events.
    CatchUpAll,
    /// The sender stops cleanly; nothing before it was lost.
    Goodbye,
    /// Keepalive; answered with [`Frame::Pong`].
    Ping,
    /// Answer to a [`Frame::Ping`].
    Pong,
    /// A frame for the devices of `users` on the receiving node, written
    /// to them as is and never stored (a `typing` frame).
    Ephemeral {
        /// The encoded client frame.
        payload: Arc<[u8]>,
        /// Its target users.
        users: Vec<u64>,
    },
    /// Presence of users on the sending node: changes, or a refresh.
    Presence(Vec<PresenceEntry>),
}

impl Frame {
    /// This frame's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Frame::Hello { .. } => Kind::Hello,
            Frame::Deliver(_) => Kind::Deliver,
            Frame::CatchUp(_) => Kind::CatchUp,
            Frame::CatchUpAll => Kind::CatchUpAll,
            Frame::Goodbye => Kind::Goodbye,
            Frame::Ping => Kind::Ping,
            Frame::Pong => Kind::Pong,
            Frame::Ephemeral { .. } => Kind::Ephemeral,
            Frame::Presence(_) => Kind::Presence,
            Frame::Challenge { .. } => Kind::Challenge,
            Frame::Welcome { .. } => Kind::Welcome,
        }
    }
}

/// Why bytes are not a valid frame. Every variant ends the session that
/// sent them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is above the allowed maximum.
    #[error("frame of {len} bytes is over the maximum of {max}")]
    TooLarge {
        /// The announced length (kind byte and body).
        len: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// The length prefix is zero: there is no kind byte.
    #[error("empty frame (length 0)")]
    Empty,
    /// The kind byte is not one of the protocol's.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The body ends before its fields (or a length or count inside it
    /// points past its end).
    #[error("{kind:?} frame body is too short")]
    Short {
        /// The frame's kind.
        kind: Kind,
    },
    /// The body has bytes after its last field.
    #[error("{kind:?} frame has {extra} bytes after its body")]
    Trailing {
        /// The frame's kind.
        kind: Kind,
        /// How many bytes are left over.
        extra: usize,
    },
}

/// The encoded size of `frame`, length prefix included.
pub fn encoded_len(frame: &Frame) -> usize {
    LEN_BYTES + 1 + body_len(frame)
}

fn body_len(frame: &Frame) -> usize {
    match frame {
        Frame::Hello { .. } => 2 + 8 + 1 + NONCE_BYTES + MAC_BYTES,
        Frame::Challenge { .. } => 2 + 8 + 1 + NONCE_BYTES,
        Frame::Welcome { .. } => MAC_BYTES,
        Frame::Deliver(d) => 8 + 4 + d.payload.len() + 4 + TARGET_BYTES * d.targets.len(),
        Frame::CatchUp(users) => 4 + 8 * users.len(),
        Frame::CatchUpAll | Frame::Goodbye | Frame::Ping | Frame::Pong => 0,
        Frame::Ephemeral { payload, users } => 4 + payload.len() + 4 + 8 * users.len(),
        Frame::Presence(entries) => 4 + PRESENCE_BYTES * entries.len(),
    }
}

/// Append `frame`, encoded, to `out`.
///
/// A payload or a list longer than `u32::MAX` cannot be framed; callers
/// refuse anything over their maximum frame size (far below) before
/// encoding, and the counts written here saturate rather than wrap.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let len = 1 + body_len(frame);
    out.reserve(LEN_BYTES + len);
    out.extend_from_slice(&u32_of(len).to_be_bytes());
    out.push(frame.kind() as u8);
    match frame {
        Frame::Hello { node, epoch, version, nonce, mac } => {
            out.extend_from_slice(&node.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.push(*version);
            out.extend_from_slice(nonce);
            out.extend_from_slice(mac);
        }
        Frame::Challenge { node, epoch, version, nonce } => {
            out.extend_from_slice(&node.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.push(*version);
            out.extend_from_slice(nonce);
        }
        Frame::Welcome { mac } => out.extend_from_slice(mac),
        Frame::Deliver(d) => {
            out.extend_from_slice(&d.event.to_be_bytes());
            out.extend_from_slice(&u32_of(d.payload.len()).to_be_bytes());
            out.extend_from_slice(&d.payload);
            out.extend_from_slice(&u32_of(d.targets.len()).to_be_bytes());
            for (user, pos) in &d.targets {
                out.extend_from_slice(&user.to_be_bytes());
                out.extend_from_slice(&pos.to_be_bytes());
            }
        }
        Frame::CatchUp(users) => {
            out.extend_from_slice(&u32_of(users.len()).to_be_bytes());
            for user in users {
                out.extend_from_slice(&user.to_be_bytes());
            }
        }
        Frame::CatchUpAll | Frame::Goodbye | Frame::Ping | Frame::Pong => {}
        Frame::Ephemeral { payload, users } => {
            out.extend_from_slice(&u32_of(payload.len()).to_be_bytes());
            out.extend_from_slice(payload);
            out.extend_from_slice(&u32_of(users.len()).to_be_bytes());
            for user in users {
                out.extend_from_slice(&user.to_be_bytes());
            }
        }
        Frame::Presence(entries) => {
            out.extend_from_slice(&u32_of(entries.len()).to_be_bytes());
            for e in entries {
                out.extend_from_slice(&e.user.to_be_bytes());
                out.push(e.flags);
                out.extend_from_slice(&e.last_seen.to_be_bytes());
            }
        }
    }
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decode the frame at the start of `buf`.
///
/// `Ok(None)` when `buf` does not hold a whole frame yet (read more);
/// `Ok(Some((frame, used)))` with the bytes it took; an error when the
/// bytes can never become a valid frame. A length over `max` is refused as
/// soon as the prefix is read, before its body arrives.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<LEN_BYTES>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let Some(frame) = buf.get(LEN_BYTES..LEN_BYTES + len) else {
        return Ok(None);
    };
    let (&kind_byte, body) = frame.split_first().ok_or(FrameError::Empty)?;
    let kind = Kind::from_byte(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
    let mut r = Reader { rest: body, kind };
    let frame = match kind {
        Kind::Hello => {
            Frame::Hello { node: r.u16()?, epoch: r.u64()?, version: r.u8()?, nonce: r.array()?, mac: r.array()? }
        }
        Kind::Challenge => Frame::Challenge { node: r.u16()?, epoch: r.u64()?, version: r.u8()?, nonce: r.array()? },
        Kind::Welcome => Frame::Welcome { mac: r.array()? },
        Kind::Deliver => {
            let event = r.u64()?;
            let payload_len = r.u32()? as usize;
            let payload: Arc<[u8]> = Arc::from(r.take(payload_len)?);
            let count = r.u32()? as usize;
            r.check_room(count, TARGET_BYTES)?;
            let mut targets = Vec::with_capacity(count);
            for _ in 0..count {
                targets.push((r.u64()?, r.u64()?));
            }
            Frame::Deliver(Delivery { event, payload, targets })
        }
        Kind::CatchUp => {
            let count = r.u32()? as usize;
            r.check_room(count, 8)?;
            let mut users = Vec::with_capacity(count);
            for _ in 0..count {
                users.push(r.u64()?);
            }
            Frame::CatchUp(users)
        }
        Kind::CatchUpAll => Frame::CatchUpAll,
        Kind::Goodbye => Frame::Goodbye,
        Kind::Ping => Frame::Ping,
        Kind::Pong => Frame::Pong,
        Kind::Ephemeral => {
            let payload_len = r.u32()? as usize;
            let payload: Arc<[u8]> = Arc::from(r.take(payload_len)?);
            let count = r.u32()? as usize;
            r.check_room(count, 8)?;
            let mut users = Vec::with_capacity(count);
            for _ in 0..count {
                users.push(r.u64()?);
            }
            Frame::Ephemeral { payload, users }
        }
        Kind::Presence => {
            let count = r.u32()? as usize;
            r.check_room(count, PRESENCE_BYTES)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(PresenceEntry { user: r.u64()?, flags: r.u8()?, last_seen: r.u64()? });
            }
            Frame::Presence(entries)
        }
    };
    if !r.rest.is_empty() {
        return Err(FrameError::Trailing { kind, extra: r.rest.len() });
    }
    Ok(Some((frame, LEN_BYTES + len)))
}

/// Big-endian fields off the front of a body.
struct Reader<'a> {
    rest: &'a [u8],
    kind: Kind,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if n > self.rest.len() {
            return Err(FrameError::Short { kind: self.kind });
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or(FrameError::Short { kind: self.kind })?;
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.array().map(u8::from_be_bytes)
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.array().map(u64::from_be_bytes)
    }

    /// `count` items of `size` bytes fit in what is left (before a vector
    /// is sized by a count the peer chose).
    fn check_room(&self, count: usize, size: usize) -> Result<(), FrameError> {
        match count.checked_mul(size) {
            Some(n) if n <= self.rest.len() => Ok(()),
            _ => Err(FrameError::Short { kind: self.kind }),
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;

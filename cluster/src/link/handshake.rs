//! The handshake that opens every link session: a challenge and two MACs
//! under the fleet's link key ([`LinkKey`]), so that only a node of the
//! fleet can open a session, a captured Hello opens no other one, and the
//! dialler knows it reached a node of its fleet, not whoever holds the
//! address now.
//!
//! ```text
//!   dialler                                           acceptor
//!      ◀──────────── Challenge (node, epoch, version, nonce A) ──
//!      ── Hello (node, epoch, version, nonce D, MAC) ──────────▶  wrong MAC, version
//!                                                                 or frame: close
//!      ◀──────────────────────────────── Welcome (MAC) ──────────
//!   wrong MAC: close
//! ```
//!
//! The MACs cover both nonces, both node ids and epochs and the version
//! (`key`). Nothing of the session is read or acted on before the
//! handshake is through, and the frames it reads are tiny
//! ([`HANDSHAKE_MAX`]), so an unauthenticated peer cannot make a node
//! buffer much. Blocking I/O on the caller's stream, whose read timeout
//! bounds each wait.

use std::io::{self, Read, Write};

pub use super::key::{Side, MAC_BYTES, NONCE_BYTES};
use super::{
    frame::{self, Frame, FrameError, Kind, LEN_BYTES, VERSION},
    key::{self, LinkKey},
};

/// The largest frame read before a session is authenticated (the Hello,
/// 76 bytes with its prefix, is the largest handshake frame).
pub const HANDSHAKE_MAX: usize = 128;

/// Why a link handshake failed. Every variant ends the session.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Reading or writing failed, or timed out.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection before saying anything whole.
    #[error("the peer closed the connection during the handshake")]
    Closed,
    /// The acceptor sent no Challenge in time.
    #[error("the peer sent no Challenge in time (an older chatgw, link version 1?)")]
    NoChallenge,
    /// The acceptor closed the connection after the dialler's Hello.
    #[error("the peer closed the link after this node's Hello: it holds another link key (or speaks another version)")]
    Refused,
    /// The bytes are no frame (or one over [`HANDSHAKE_MAX`]).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame of another kind than the handshake's next one.
    #[error("a {got:?} frame where a {want:?} belongs")]
    Unexpected {
        /// The kind the handshake waited for.
        want: Kind,
        /// The kind that came.
        got: Kind,
    },
    /// The peer speaks another protocol version.
    #[error("link protocol version {0}; this node speaks version {VERSION} only (old and new nodes refuse each other's links)")]
    Version(u8),
    /// The acceptor is another node than the one dialled.
    #[error("the peer is node {got}, not node {want}")]
    WrongNode {
        /// The node dialled.
        want: u16,
        /// The node that answered.
        got: u16,
    },
    /// The MAC is wrong: the peer does not hold this fleet's link key, or
    /// replays another session's frame.
    #[error("wrong MAC: the peer does not hold this fleet's link key")]
    BadMac,
}

impl HandshakeError {
    /// Whether the peer was refused for what it sent (an authentication
    /// failure), rather than the connection failing or closing.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, HandshakeError::Io(_) | HandshakeError::Closed | HandshakeError::NoChallenge)
    }
}

/// The accepting side, as node `node` in its run `epoch`: challenge the
/// peer, check its Hello, and welcome it. The dialler's side on success.
pub fn accept<S: Read + Write>(stream: &mut S, node: u16, epoch: u64, key: &LinkKey) -> Result<Side, HandshakeError> {
    let me = Side { node, epoch, nonce: key::nonce()? };
    write(stream, &Frame::Challenge { node, epoch, version: VERSION, nonce: me.nonce })?;
    let peer = match read_one(stream)? {
        Frame::Hello { version, .. } if version != VERSION => return Err(HandshakeError::Version(version)),
        Frame::Hello { node, epoch, nonce, mac, .. } => {
            let peer = Side { node, epoch, nonce };
            if !key.check_hello(VERSION, &me, &peer, &mac) {
                return Err(HandshakeError::BadMac);
            }
            peer
        }
        other => return Err(HandshakeError::Unexpected { want: Kind::Hello, got: other.kind() }),
    };
    write(stream, &Frame::Welcome { mac: key.welcome_mac(VERSION, &me, &peer) })?;
    Ok(peer)
}

/// The dialling side, as node `node` in its run `epoch`, having dialled
/// node `want`: answer its Challenge and check its Welcome. The
/// acceptor's side on success.
pub fn dial<S: Read + Write>(
    stream: &mut S,
    node: u16,
    epoch: u64,
    want: u16,
    key: &LinkKey,
) -> Result<Side, HandshakeError> {
    let peer = match read_one(stream) {
        Ok(Frame::Challenge { version, .. }) if version != VERSION => return Err(HandshakeError::Version(version)),
        Ok(Frame::Challenge { node: got, .. }) if got != want => return Err(HandshakeError::WrongNode { want, got }),
        Ok(Frame::Challenge { node, epoch, nonce, .. }) => Side { node, epoch, nonce },
        Ok(other) => return Err(HandshakeError::Unexpected { want: Kind::Challenge, got: other.kind() }),
        Err(HandshakeError::Io(e)) if timed_out(&e) => return Err(HandshakeError::NoChallenge),
        Err(e) => return Err(e),
    };
    let me = Side { node, epoch, nonce: key::nonce()? };
    let mac = key.hello_mac(VERSION, &peer, &me);
    write(stream, &Frame::Hello { node, epoch, version: VERSION, nonce: me.nonce, mac })?;
    match read_one(stream) {
        Ok(Frame::Welcome { mac }) if key.check_welcome(VERSION, &peer, &me, &mac) => Ok(peer),
        Ok(Frame::Welcome { .. }) => Err(HandshakeError::BadMac),
        Ok(other) => Err(HandshakeError::Unexpected { want: Kind::Welcome, got: other.kind() }),
        Err(HandshakeError::Closed) => Err(HandshakeError::Refused),
        Err(HandshakeError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => Err(HandshakeError::Refused),
        Err(e) => Err(e),
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn write<S: Write>(stream: &mut S, f: &Frame) -> io::Result<()> {
    let mut out = Vec::with_capacity(frame::encoded_len(f));
    frame::encode(f, &mut out);
    stream.write_all(&out)
}

/// Exactly one frame of at most [`HANDSHAKE_MAX`] bytes: nothing after it
/// is read, so what follows the handshake is the session's.
fn read_one<S: Read>(stream: &mut S) -> Result<Frame, HandshakeError> {
    let mut buf = vec![0u8; LEN_BYTES];
    read_exact(stream, &mut buf)?;
    let len = buf.first_chunk::<LEN_BYTES>().map_or(0, |p| u32::from_be_bytes(*p) as usize);
    if len > HANDSHAKE_MAX {
        return Err(FrameError::TooLarge { len, max: HANDSHAKE_MAX }.into());
    }
    buf.resize(LEN_BYTES + len, 0);
    read_exact(stream, buf.get_mut(LEN_BYTES..).unwrap_or_default())?;
    match frame::decode(&buf, HANDSHAKE_MAX) {
        Ok(Some((f, _))) => Ok(f),
        // A version 1 Hello: node, epoch and version, no nonce, no MAC.
        Err(FrameError::Short { kind: Kind::Hello }) if len == 1 + 2 + 8 + 1 => {
            Err(HandshakeError::Version(buf.last().copied().unwrap_or_default()))
        }
        Err(e) => Err(e.into()),
        // The whole frame is in `buf`; decode never waits for more then.
        Ok(None) => Err(FrameError::Empty.into()),
    }
}

fn read_exact<S: Read>(stream: &mut S, buf: &mut [u8]) -> Result<(), HandshakeError> {
    stream.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => HandshakeError::Closed,
        _ => HandshakeError::Io(e),
    })
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

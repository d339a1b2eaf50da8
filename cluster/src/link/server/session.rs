//! One accepted session: the handshake, then read, decode, hand deliveries
//! to the node in one call per read, answer Pings, and end on the first
//! sign of trouble.
//!
//! The handshake (`handshake::accept`) comes first: a peer whose Hello has
//! a wrong or missing MAC or another version is closed before any other
//! frame is read, counted (`auth_failures`, `Inbound::refused`) and logged
//! at most once a minute per address (`refusals`). After it, a frame too
//! large, of an unknown kind or malformed ends the session (logged and
//! counted): the peer's sender redials and the receiver catches up, which
//! is always safe. A session that read nothing for `dead_after` is dead.

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{atomic::Ordering, Arc},
};

use super::{deadline::ByDeadline, pending::PendingSlot, Shared};
use crate::link::{
    frame::{self, Frame},
    handshake::{self, HandshakeError, Side},
    stats::add,
    Delivery,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 << 10;

pub(super) struct Session {
    pub(super) id: u64,
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) shared: Arc<Shared>,
    /// This connection's place among those in their handshake, given back
    /// when the handshake ends either way.
    pub(super) pending: Option<PendingSlot>,
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Goodbye,
    Closed,
    Io(io::Error),
    Bad(String),
    /// The handshake refused the peer.
    Refused(HandshakeError),
    /// The connection failed or closed before the handshake was through.
    Unopened(HandshakeError),
}

impl Session {
    pub(super) fn run(mut self) {
        let mut from = None;
        let end = self.read(&mut from);
        self.shared.forget(self.id);
        let counters = &self.shared.counters;
        let clean = matches!(end, End::Goodbye);
        match &end {
            End::Goodbye => {}
            End::Closed => tracing::info!(peer = ?from, addr = %self.peer, "a node link closed without a goodbye"),
            End::Io(e) => tracing::info!(peer = ?from, addr = %self.peer, error = %e, "a node link failed"),
            End::Bad(why) => {
                add(&counters.bad_frames, 1);
                tracing::warn!(peer = ?from, addr = %self.peer, why, "a node link sent a bad frame; ending its session");
            }
            End::Refused(e) => {
                add(&counters.auth_failures, 1);
                self.shared.inbound.refused(self.peer);
                if let Some(unlogged) = self.shared.log_refusal(self.peer.ip()) {
                    tracing::warn!(
                        addr = %self.peer, error = %e, unlogged,
                        "refused a node link at the handshake: every node of a fleet needs the same link key (--link-secret-file, or the same --secret) and version; further refusals from this address are logged at most once a minute",
                    );
                }
            }
            End::Unopened(e) => {
                tracing::debug!(addr = %self.peer, error = %e, "a node link closed during the handshake")
            }
        }
        let Some(from) = from else { return };
        add(if clean { &counters.sessions_clean } else { &counters.sessions_unclean }, 1);
        if !self.shared.stopping.load(Ordering::SeqCst) {
            self.shared.inbound.session_ended(from, clean);
        }
    }

    fn read(&mut self, from: &mut Option<u16>) -> End {
        let _ = self.stream.set_nodelay(true);
        let shared = self.shared.clone();
        let settings = &shared.settings;
        let peer = match self.handshake() {
            Ok(side) => side.node,
            Err(e) if e.is_refusal() => return End::Refused(e),
            Err(e) => return End::Unopened(e),
        };
        if let Err(e) = self.stream.set_read_timeout(Some(settings.dead_after)) {
            return End::Io(e);
        }
        if let Err(e) = self.stream.set_write_timeout(Some(settings.dead_after)) {
            return End::Io(e);
        }
        tracing::debug!(peer, me = shared.node, "a node link opened");
        add(&shared.counters.sessions_opened, 1);
        *from = Some(peer);
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return End::Closed,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return End::Io(e),
            };
            add(&self.shared.counters.bytes_received, n as u64);
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            let (used, end) = self.frames(&buf, peer);
            if let Some(end) = end {
                return end;
            }
            buf.drain(..used.min(buf.len()));
            if buf.capacity() > 4 * READ_CHUNK && buf.len() < READ_CHUNK {
                buf.shrink_to(READ_CHUNK);
            }
        }
    }

    /// Handle every whole frame in `buf`: the bytes used, and the end of
    /// the session if a frame ended it. Deliveries go to the node in one
    /// call, flushed before anything that must come after them.
    /// The acceptor's side of the handshake, within `handshake_within` of
    /// now; this connection's pending slot is given back after it.
    fn handshake(&mut self) -> Result<Side, HandshakeError> {
        let shared = self.shared.clone();
        let deadline = std::time::Instant::now() + shared.settings.handshake_within;
        let mut bounded = ByDeadline { stream: &mut self.stream, deadline };
        let side = handshake::accept(&mut bounded, shared.node, shared.epoch, &shared.key);
        self.pending = None;
        side
    }

    fn frames(&mut self, buf: &[u8], peer: u16) -> (usize, Option<End>) {
        let shared = self.shared.clone();
        let inbound = &shared.inbound;
        let mut used = 0;
        let mut deliveries: Vec<Delivery> = Vec::new();
        let mut pongs = 0;
        let flush = |deliveries: &mut Vec<Delivery>, from: u16| {
            if !deliveries.is_empty() {
                add(&shared.counters.deliveries, deliveries.len() as u64);
                inbound.deliver(from, std::mem::take(deliveries));
            }
        };
        let end = loop {
            let frame = match frame::decode(buf.get(used..).unwrap_or_default(), shared.settings.max_frame) {
                Ok(Some((frame, n))) => {
                    used += n;
                    add(&shared.counters.frames_received, 1);
                    frame
                }
                Ok(None) => break None,
                Err(e) => break Some(End::Bad(e.to_string())),
            };
            match frame {
                Frame::Deliver(d) => deliveries.push(d),
                Frame::CatchUp(users) => {
                    flush(&mut deliveries, peer);
                    inbound.catch_up(peer, Some(users));
                }
                Frame::CatchUpAll => {
                    flush(&mut deliveries, peer);
                    inbound.catch_up(peer, None);
                }
                Frame::Ephemeral { payload, users } => {
                    flush(&mut deliveries, peer);
                    inbound.ephemeral(peer, payload, users);
                }
                Frame::Presence(entries) => {
                    flush(&mut deliveries, peer);
                    inbound.presence(peer, entries);
                }
                Frame::Goodbye => break Some(End::Goodbye),
                Frame::Ping => pongs += 1,
                Frame::Pong => {}
                other @ (Frame::Hello { .. } | Frame::Challenge { .. } | Frame::Welcome { .. }) => {
                    break Some(End::Bad(format!("a {:?} after the handshake", other.kind())))
                }
            }
        };
        flush(&mut deliveries, peer);
        if pongs > 0 && end.is_none() {
            let mut out = Vec::with_capacity(pongs * 5);
            (0..pongs).for_each(|_| frame::encode(&Frame::Pong, &mut out));
            if let Err(e) = self.stream.write_all(&out) {
                return (used, Some(End::Io(e)));
            }
        }
        (used, end)
    }
}

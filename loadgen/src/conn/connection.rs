//! One client connection: its phase, its buffers, and the bytes-in,
//! bytes-out logic of the handshake and the WebSocket frame layer.
//!
//! Sized for ~19,000 per thread: the buffers are empty `Vec`s except while
//! the socket holds back bytes or a frame arrived in pieces, and the
//! handshake state is the 24-byte key. The token is written into the output
//! buffer when the connection is opened and not kept.
//!
//! A connection goes Connecting -> Upgrading (request written, waiting for
//! 101) -> AwaitWelcome -> Syncing (`sync` sent, from the cursor the
//! connection was opened with) -> Up (`synced` received; only now do its
//! live frames reach the scenario's `on_text`; the replay before it goes to
//! `on_replay`, which most scenarios leave to be counted) -> Closing ->
//! Closed. [`Conn::kill`] jumps to Closed with a TCP reset, the way a
//! device that loses its network looks to the gateway.

use std::io::{self, Read as _, Write as _};

use chatgw_protocol::{client, MessageId, MAX_PAGE};
use serde::{Deserialize, Serialize};

use crate::{
    conn::{
        event::ServerFrame,
        net, upgrade,
        ws::{self, Opcode, Xorshift},
    },
    report::{
        shared::Live,
        stats::{merge_fields, Latency, Reasons},
    },
};

/// Largest server frame accepted (a sync page of big messages is large).
const MAX_SERVER_FRAME: usize = 64 * 1024 * 1024;
/// Input buffers larger than this are freed once empty rather than kept.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent; waiting for `101`.
    Upgrading,
    /// WebSocket open; waiting for `welcome`.
    AwaitWelcome,
    /// `sync` sent; waiting for `synced`.
    Syncing,
    /// Synced: live traffic flows and reaches the scenario.
    Up,
    /// Close frame sent; waiting for the server to close.
    Closing,
    /// Gone.
    Closed,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Upgrading => "upgrading",
            Phase::AwaitWelcome => "awaiting welcome",
            Phase::Syncing => "syncing",
            Phase::Up => "up",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
        }
    }
}

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A close handshake we started finished (or the server hung up on it).
    Clean,
    /// Anything else, with a short reason for counting.
    Error(String),
}

impl End {
    fn io(what: &str, e: &io::Error) -> End {
        End::Error(format!("{what}: {}", net::error_name(e)))
    }
}

/// What a scenario does with the frames of a connection.
pub(crate) trait Handler {
    /// A text frame arrived on up connection `id`. Text written to `reply`
    /// is sent back on the same connection.
    fn on_text(&mut self, id: usize, frame: &ServerFrame<'_>, now_ns: u64, reply: &mut String);

    /// `welcome` arrived on connection `id`.
    fn on_welcome(&mut self, _id: usize, _now_ns: u64) {}

    /// A frame of the `sync` replay (before `synced`) arrived on connection
    /// `id`; return whether the scenario used it (otherwise it is counted
    /// as replayed and ignored). `reply` as in `on_text`.
    fn on_replay(&mut self, _id: usize, _frame: &ServerFrame<'_>, _now_ns: u64, _reply: &mut String) -> bool {
        false
    }

    /// `synced` arrived on connection `id` (which is now up), with its
    /// cursor. `reply` as in `on_text`.
    fn on_synced(&mut self, _id: usize, _cursor: Option<u64>, _now_ns: u64, _reply: &mut String) {}
}

/// Connection outcomes and handshake latencies of one thread.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct ConnStats {
    /// Connections started.
    pub(crate) opened: u64,
    /// Connections that reached Up.
    pub(crate) established: u64,
    /// Connections that never came up, by reason.
    pub(crate) failed: Reasons,
    /// Connections that were up and then ended other than by our close.
    pub(crate) dropped: Reasons,
    /// Close handshakes completed.
    pub(crate) closed_clean: u64,
    /// TCP connect start to `welcome`.
    pub(crate) handshake: Latency,
    /// TCP connect start to `synced`.
    pub(crate) to_synced: Latency,
    /// Frames replayed by `sync` (before Up; not passed to the scenario).
    pub(crate) replayed: u64,
    /// Text frames on up connections that were not protocol JSON.
    pub(crate) unparsed: u64,
    /// Connections closed abruptly on purpose ([`Conn::kill`]).
    pub(crate) killed: u64,
    /// Reconnections that reached Up (not in `established` or the
    /// handshake latencies, which describe first connections).
    pub(crate) reestablished: u64,
}

merge_fields!(
    ConnStats:
    opened, established, failed, dropped, closed_clean, handshake, to_synced, replayed, unparsed,
    killed, reestablished
);

/// What frame handling needs besides the connection itself.
pub(crate) struct Cx<'a> {
    pub(crate) id: usize,
    pub(crate) now_ns: u64,
    pub(crate) stats: &'a mut ConnStats,
    pub(crate) live: &'a Live,
    pub(crate) handler: &'a mut dyn Handler,
    pub(crate) reply: &'a mut String,
}

/// One client connection.
pub(crate) struct Conn {
    stream: Option<mio::net::TcpStream>,
    pub(crate) phase: Phase,
    started_ns: u64,
    key: [u8; 24],
    rng: Xorshift,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    frag: Vec<u8>,
    in_fragment: bool,
    close_sent: bool,
    /// The cursor `sync` asks from (0: everything).
    after: u64,
    /// A device's reconnection rather than its first connection.
    reconnect: bool,
    /// The server's `retry_after_ms` hint, from a close with 1012
    /// (docs/DRAIN.md): how long to wait before reconnecting.
    retry_hint_ms: Option<u32>,
}

impl Conn {
    /// A connection whose TCP connect has started; the upgrade request
    /// waits in the output buffer for the connect to finish. Its `sync`
    /// will ask for the events after `after`; `reconnect` keeps it out of
    /// the first-connection figures.
    pub(crate) fn new(
        stream: mio::net::TcpStream,
        host: &str,
        token: &str,
        started_ns: u64,
        seed: u64,
        (after, reconnect): (u64, bool),
    ) -> Self {
        let mut rng = Xorshift::new(seed);
        let key = upgrade::new_key(&mut rng);
        let mut outbuf = Vec::with_capacity(256 + token.len());
        upgrade::write_request(&mut outbuf, host, token, &key);
        Conn {
            stream: Some(stream),
            phase: Phase::Connecting,
            started_ns,
            key,
            rng,
            inbuf: Vec::new(),
            outbuf,
            frag: Vec::new(),
            in_fragment: false,
            close_sent: false,
            after,
            reconnect,
            retry_hint_ms: None,
        }
    }

    /// A connection that failed before it had a socket.
    pub(crate) fn failed() -> Self {
        Conn {
            stream: None,
            phase: Phase::Closed,
            started_ns: 0,
            key: [0; 24],
            rng: Xorshift::new(1),
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            frag: Vec::new(),
            in_fragment: false,
            close_sent: true,
            after: 0,
            reconnect: false,
            retry_hint_ms: None,
        }
    }

    /// The `retry_after_ms` the server gave when it closed the connection
    /// with 1012 (service restart), if it did.
    pub(crate) fn retry_hint_ms(&self) -> Option<u32> {
        self.retry_hint_ms
    }

    /// The socket, for (de)registration.
    pub(crate) fn stream_mut(&mut self) -> Option<&mut mio::net::TcpStream> {
        self.stream.as_mut()
    }

    /// The socket is readable or writable (or in error): finish the connect,
    /// write what waits, read and handle everything available.
    pub(crate) fn on_ready(&mut self, rbuf: &mut [u8], cx: &mut Cx<'_>) -> Result<(), End> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(());
        };
        if self.phase == Phase::Connecting {
            match net::connect_result(stream) {
                Ok(true) => self.phase = Phase::Upgrading,
                Ok(false) => return Ok(()),
                Err(e) => return Err(End::io("connect", &e)),
            }
        }
        self.flush()?;
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            match stream.read(rbuf) {
                Ok(0) => {
                    return Err(if self.phase == Phase::Closing {
                        End::Clean
                    } else {
                        End::Error("server closed the TCP connection".into())
                    })
                }
                Ok(n) => {
                    let data = rbuf.get(..n).unwrap_or_default();
                    self.on_bytes(data, cx)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A reset after our close frame: the close still happened.
                Err(_) if self.phase == Phase::Closing => return Err(End::Clean),
                Err(e) => return Err(End::io("read", &e)),
            }
        }
        self.flush()
    }

    /// Send a text frame (the connection must be at least AwaitWelcome).
    pub(crate) fn send_text(&mut self, text: &str) -> Result<(), End> {
        self.queue(Opcode::Text, text.as_bytes());
        self.flush()
    }

    /// Start the close handshake with 1000. Returns whether it was up.
    pub(crate) fn start_close(&mut self) -> Result<bool, End> {
        let was_up = self.phase == Phase::Up;
        match self.phase {
            Phase::Closing | Phase::Closed => return Ok(false),
            Phase::Connecting | Phase::Upgrading => return Err(End::Error("stopped before the upgrade".into())),
            Phase::AwaitWelcome | Phase::Syncing | Phase::Up => {}
        }
        if !self.close_sent {
            self.queue(Opcode::Close, &1000u16.to_be_bytes());
            self.close_sent = true;
        }
        self.phase = Phase::Closing;
        self.flush()?;
        Ok(was_up)
    }

    /// Account for the end of the connection and release its socket.
    pub(crate) fn finish(&mut self, end: End, stats: &mut ConnStats, live: &Live) {
        let _ = self.flush();
        match (end, self.phase) {
            (_, Phase::Closed) => {}
            (End::Clean, _) | (End::Error(_), Phase::Closing) => stats.closed_clean += 1,
            (End::Error(reason), Phase::Up) => {
                stats.dropped.add(&reason);
                Live::unbump(&live.up);
                Live::bump(&live.dropped);
            }
            (End::Error(reason), phase) => {
                stats.failed.add(&format!("{reason} ({})", phase.name()));
                Live::bump(&live.failed);
            }
        }
        self.release();
    }

    /// Close abruptly: no close frame, a TCP reset (SO_LINGER 0), anything
    /// unsent is lost. Returns whether it was up.
    pub(crate) fn kill(&mut self, stats: &mut ConnStats, live: &Live) -> bool {
        let was_up = self.phase == Phase::Up;
        if self.phase == Phase::Closed {
            return false;
        }
        if let Some(s) = self.stream.as_ref() {
            // If the reset cannot be arranged the close is a FIN: still abrupt.
            let _ = socket2::SockRef::from(s).set_linger(Some(std::time::Duration::ZERO));
        }
        stats.killed += 1;
        Live::bump(&live.killed);
        if was_up {
            Live::unbump(&live.up);
        }
        self.release();
        was_up
    }

    /// Closed: the socket and the buffers go.
    fn release(&mut self) {
        self.phase = Phase::Closed;
        self.stream = None;
        self.inbuf = Vec::new();
        self.outbuf = Vec::new();
        self.frag = Vec::new();
    }

    /// Whether a handshake still runs (for the handshake timeout).
    pub(crate) fn handshaking(&self) -> bool {
        self.phase < Phase::Up
    }

    fn queue(&mut self, opcode: Opcode, payload: &[u8]) {
        let mask = self.rng.next_u32().to_le_bytes();
        ws::put_client_frame(&mut self.outbuf, opcode, payload, mask);
    }

    fn flush(&mut self) -> Result<(), End> {
        if self.outbuf.is_empty() || self.phase == Phase::Connecting {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let mut written = 0;
        while written < self.outbuf.len() {
            match stream.write(&self.outbuf[written..]) {
                Ok(0) => return Err(End::Error("write returned 0".into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(End::io("write", &e)),
            }
        }
        if written == self.outbuf.len() {
            self.outbuf.clear();
            if self.outbuf.capacity() > KEEP_CAPACITY {
                self.outbuf = Vec::new();
            }
        } else {
            self.outbuf.drain(..written);
        }
        Ok(())
    }

    fn on_bytes(&mut self, data: &[u8], cx: &mut Cx<'_>) -> Result<(), End> {
        if self.inbuf.is_empty() {
            let used = self.consume(data, cx)?;
            if self.phase != Phase::Closed {
                if let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
                    self.inbuf.extend_from_slice(rest);
                }
            }
        } else {
            let mut buf = std::mem::take(&mut self.inbuf);
            buf.extend_from_slice(data);
            let used = self.consume(&buf, cx)?;
            buf.drain(..used.min(buf.len()));
            if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                buf = Vec::new();
            }
            self.inbuf = buf;
        }
        Ok(())
    }

    /// Handle whole units (the response head, then frames) at the start of
    /// `buf`; returns the bytes used.
    fn consume(&mut self, buf: &[u8], cx: &mut Cx<'_>) -> Result<usize, End> {
        let mut pos = 0;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match self.phase {
                Phase::Connecting | Phase::Closed => return Ok(buf.len()),
                Phase::Upgrading => match upgrade::parse_response(rest, &self.key) {
                    Ok(None) => return Ok(pos),
                    Ok(Some(n)) => {
                        pos += n;
                        self.phase = Phase::AwaitWelcome;
                    }
                    Err(reason) => return Err(End::Error(reason)),
                },
                Phase::AwaitWelcome | Phase::Syncing | Phase::Up | Phase::Closing => {
                    let header = match ws::decode_server_header(rest, MAX_SERVER_FRAME) {
                        Ok(Some(h)) => h,
                        Ok(None) => return Ok(pos),
                        Err(why) => return Err(End::Error(why.to_string())),
                    };
                    let Some(payload) = rest.get(header.header_len..header.frame_len()) else {
                        return Ok(pos);
                    };
                    pos += header.frame_len();
                    self.on_frame(header, payload, cx)?;
                }
            }
        }
    }

    fn on_frame(&mut self, h: ws::ServerHeader, payload: &[u8], cx: &mut Cx<'_>) -> Result<(), End> {
        match h.opcode {
            Opcode::Ping => {
                self.queue(Opcode::Pong, payload);
                Ok(())
            }
            Opcode::Pong => Ok(()),
            Opcode::Close => {
                let code = match payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                if self.phase == Phase::Closing {
                    // The answer to our close; the server closes TCP next.
                    return Ok(());
                }
                if code == 1012 {
                    self.retry_hint_ms = payload.get(2..).and_then(retry_hint);
                }
                if !self.close_sent {
                    let echo: &[u8] = if payload.len() >= 2 { &payload[..2] } else { &[] };
                    self.queue(Opcode::Close, echo);
                    self.close_sent = true;
                }
                Err(End::Error(format!("closed by server with {code}")))
            }
            Opcode::Text if h.fin && !self.in_fragment => self.on_text(payload, cx),
            Opcode::Text if !self.in_fragment => {
                self.in_fragment = true;
                self.frag.clear();
                self.frag.extend_from_slice(payload);
                Ok(())
            }
            Opcode::Continuation if self.in_fragment => {
                self.frag.extend_from_slice(payload);
                if h.fin {
                    self.in_fragment = false;
                    let whole = std::mem::take(&mut self.frag);
                    let r = self.on_text(&whole, cx);
                    if whole.capacity() <= KEEP_CAPACITY {
                        self.frag = whole;
                        self.frag.clear();
                    }
                    r
                } else {
                    Ok(())
                }
            }
            Opcode::Binary => Err(End::Error("binary frame from the server".into())),
            _ => Err(End::Error("bad fragmentation from the server".into())),
        }
    }

    fn on_text(&mut self, payload: &[u8], cx: &mut Cx<'_>) -> Result<(), End> {
        let Ok(text) = std::str::from_utf8(payload) else {
            return Err(End::Error("text frame is not UTF-8".into()));
        };
        let frame = ServerFrame::parse(text);
        let r = match self.phase {
            Phase::AwaitWelcome => match frame {
                Some(f) if f.ty == "welcome" => {
                    if !self.reconnect {
                        cx.stats.handshake.record_ns(cx.now_ns.saturating_sub(self.started_ns));
                    }
                    cx.handler.on_welcome(cx.id, cx.now_ns);
                    self.phase = Phase::Syncing;
                    let mut sync = String::with_capacity(48);
                    client::sync(&mut sync, MessageId(self.after), MAX_PAGE);
                    self.queue(Opcode::Text, sync.as_bytes());
                    Ok(())
                }
                Some(f) => Err(End::Error(format!("`{}` before welcome", f.ty))),
                None => Err(End::Error("unparsable frame before welcome".into())),
            },
            Phase::Syncing => match frame {
                Some(f) if f.ty == "synced" => {
                    if self.reconnect {
                        cx.stats.reestablished += 1;
                    } else {
                        let took = cx.now_ns.saturating_sub(self.started_ns);
                        cx.stats.to_synced.record_ns(took);
                        cx.stats.established += 1;
                        cx.live.sample_ns(took);
                    }
                    Live::bump(&cx.live.up);
                    self.phase = Phase::Up;
                    let cursor = crate::conn::event::parse_id(f.cursor.as_ref());
                    cx.handler.on_synced(cx.id, cursor, cx.now_ns, cx.reply);
                    Ok(())
                }
                Some(f) if f.ty == "error" => {
                    Err(End::Error(format!("error `{}` while syncing", f.code.as_deref().unwrap_or("?"))))
                }
                Some(f) => {
                    if !cx.handler.on_replay(cx.id, &f, cx.now_ns, cx.reply) {
                        cx.stats.replayed += 1;
                    }
                    Ok(())
                }
                None => {
                    cx.stats.replayed += 1;
                    Ok(())
                }
            },
            Phase::Up => {
                match frame {
                    Some(f) => cx.handler.on_text(cx.id, &f, cx.now_ns, cx.reply),
                    None => cx.stats.unparsed += 1,
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if !cx.reply.is_empty() {
            self.queue(Opcode::Text, cx.reply.as_bytes());
            cx.reply.clear();
        }
        r
    }
}

/// The `retry_after_ms=<N>` of a close reason (docs/DRAIN.md), if there
/// is one and it is a number.
fn retry_hint(reason: &[u8]) -> Option<u32> {
    let reason = std::str::from_utf8(reason).ok()?;
    let (_, rest) = reason.split_once("retry_after_ms=")?;
    let digits = rest.find(|c: char| !c.is_ascii_digit()).map_or(rest, |end| &rest[..end]);
    digits.parse().ok()
}

#[cfg(test)]
mod retry_hint_tests {
    use super::retry_hint;

    #[test]
    fn the_hint_is_read_from_the_close_reason() {
        assert_eq!(retry_hint(b"service restart; retry_after_ms=1500"), Some(1500));
        assert_eq!(retry_hint(b"retry_after_ms=20; more"), Some(20));
        assert_eq!(retry_hint(b"service restart"), None);
        assert_eq!(retry_hint(b"retry_after_ms=soon"), None);
        assert_eq!(retry_hint(&[0xff, 0xfe]), None);
    }
}

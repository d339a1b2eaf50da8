//! A test driver for one [`Engine`]: no sockets, no threads, no clock of
//! its own. It plays the part `driver::epoll` plays (bytes in, a flush per
//! turn, actions taken at the end of the turn) over a [`FakeSocket`] whose
//! room the test sets, so the engine's logic is tested turn by turn and
//! deterministically, as a client and the rest of the gateway see it: the
//! server frames written and the actions asked for.

use std::{io, net::SocketAddr, path::PathBuf};

use chatgw_auth::unix_now;
use chatgw_protocol::{MessageId, ServerFrame, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::InboxPos;
use chatgw_websocket::client::{decode_server_header, put_client_frame};

use super::{Action, CoreContext, Engine, Refused};
use crate::{config::Config, events::CoreEvent, ws::frame::Opcode};

/// A socket that takes at most `room` more bytes, then would block.
#[derive(Debug)]
pub(crate) struct FakeSocket {
    pub(crate) room: usize,
}

/// A server frame as the client reads it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Text(String),
    Close(u16),
    Other(Opcode),
}

/// One engine with one authenticated, upgraded connection.
pub(crate) struct Harness {
    pub(crate) engine: Engine<FakeSocket>,
    pub(crate) slot: usize,
    /// Bytes the socket took and the client has not read yet.
    written: Vec<u8>,
    /// Actions taken from the engine and not yet looked at.
    actions: Vec<Action>,
}

/// The user every harness connects as.
pub(crate) const USER: UserId = UserId(7);

impl Harness {
    /// An engine over `config` (tweaked by `tune`) with one connection of
    /// [`USER`], upgraded with a real token; its `welcome` is read.
    pub(crate) fn connect(tune: impl FnOnce(&mut Config)) -> Self {
        Self::connect_as(tune, None)
    }

    /// [`Harness::connect`] with a token naming `device` (its `dev`).
    pub(crate) fn connect_device(device: &str) -> Self {
        Self::connect_as(|_| {}, Some(device))
    }

    fn connect_as(tune: impl FnOnce(&mut Config), device: Option<&str>) -> Self {
        let mut config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "secret".into());
        config.workers = 1;
        tune(&mut config);
        let ctx = CoreContext::standalone(&config);
        let token = match device.and_then(chatgw_protocol::DeviceName::new) {
            Some(d) => ctx.token_key.mint_device(USER, d, unix_now() - 60, unix_now() + 3600),
            None => ctx.token_key.mint(USER, unix_now() + 3600),
        };
        let mut engine = Engine::new(0, ctx);
        engine.update_clock();
        let slot = engine.accept(FakeSocket { room: usize::MAX }, std::net::IpAddr::from([127, 0, 0, 1]));
        let mut h = Harness { engine, slot, written: Vec::new(), actions: Vec::new() };
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        h.engine.on_bytes(slot, &mut request.into_bytes());
        h.turn();
        let head_end = h.written.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response") + 4;
        let head: Vec<u8> = h.written.drain(..head_end).collect();
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        match h.frames().as_slice() {
            [Frame::Text(t)] if matches!(ServerFrame::parse(t), Ok(ServerFrame::Welcome(_))) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
        h
    }

    /// The connection's address, as other threads post to it.
    pub(crate) fn endpoint(&self) -> Endpoint {
        self.engine.endpoint(self.slot).expect("the connection is open")
    }

    /// The client sends one text frame; the turn ends.
    pub(crate) fn send_text(&mut self, text: &str) {
        self.receive_text(text);
        self.turn();
    }

    /// The client's text frame arrives; the turn goes on (the test plays
    /// the rest of the driver's turn itself).
    pub(crate) fn receive_text(&mut self, text: &str) {
        let mut bytes = Vec::new();
        put_client_frame(&mut bytes, Opcode::Text, text.as_bytes(), [1, 2, 3, 4]);
        self.engine.on_bytes(self.slot, &mut bytes);
    }

    /// Other threads post `events` to this core; the turn ends.
    pub(crate) fn mail(&mut self, events: Vec<CoreEvent>) {
        self.engine.on_mailbox(events);
        self.turn();
    }

    /// The socket can take `bytes` more; the turn ends.
    pub(crate) fn drain_socket(&mut self, bytes: usize) {
        if let Some(s) = self.engine.sock_mut(self.slot) {
            s.room = s.room.saturating_add(bytes);
        }
        self.engine.on_writable(self.slot);
        self.turn();
    }

    /// Let the socket take nothing more until [`Harness::drain_socket`].
    pub(crate) fn block_socket(&mut self) {
        if let Some(s) = self.engine.sock_mut(self.slot) {
            s.room = 0;
        }
    }

    /// The end of a driver's loop turn: take the actions, write, and take
    /// what writing asked for (as `driver::hand_off_and_flush` does).
    pub(crate) fn turn(&mut self) {
        let mut taken = Vec::new();
        self.engine.poll_actions(&mut taken);
        self.actions.append(&mut taken);
        let written = &mut self.written;
        self.engine.flush(|sock, bytes| {
            let n = bytes.len().min(sock.room);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            sock.room -= n;
            written.extend_from_slice(&bytes[..n]);
            Ok(n)
        });
        self.engine.poll_actions(&mut taken);
        self.actions.append(&mut taken);
    }

    /// The actions the engine asked for since the last call.
    pub(crate) fn actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The driver reports `action` refused; the turn ends.
    pub(crate) fn refuse(&mut self, action: Action, why: Refused) {
        self.engine.on_action_refused(action, why);
        self.turn();
    }

    /// Every whole server frame written since the last call.
    pub(crate) fn frames(&mut self) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Ok(Some(h)) = decode_server_header(&self.written[pos..], usize::MAX) {
            let Some(payload) = self.written.get(pos + h.header_len..pos + h.frame_len()) else { break };
            out.push(match h.opcode {
                Opcode::Text => Frame::Text(String::from_utf8(payload.to_vec()).expect("text frames are UTF-8")),
                Opcode::Close => Frame::Close(payload.get(..2).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]))),
                other => Frame::Other(other),
            });
            pos += h.frame_len();
        }
        self.written.drain(..pos);
        out
    }

    /// The text frames written since the last call, parsed.
    pub(crate) fn server_frames(&mut self) -> Vec<ServerFrame> {
        self.frames()
            .into_iter()
            .map(|f| match f {
                Frame::Text(t) => ServerFrame::parse(&t).unwrap_or_else(|e| panic!("{t}: {e}")),
                other => panic!("expected a text frame, got {other:?}"),
            })
            .collect()
    }

    /// The connection's cursor.
    pub(crate) fn cursor(&self) -> MessageId {
        self.engine.conns[self.slot].cursor
    }

    /// The connection's inbox position.
    pub(crate) fn pos(&self) -> InboxPos {
        self.engine.conns[self.slot].pos
    }
}

/// A live event `event` for `to` at position `event` (as the embedded
/// store numbers inboxes); its payload is the text `event-N`.
pub(crate) fn deliver(to: Endpoint, event: u64) -> CoreEvent {
    deliver_at(to, event, event)
}

/// A live event `event` for `to` at inbox position `pos`.
pub(crate) fn deliver_at(to: Endpoint, event: u64, pos: u64) -> CoreEvent {
    CoreEvent::Deliver {
        to,
        event: MessageId(event),
        pos: InboxPos(pos),
        payload: format!("event-{event}").into_bytes().into(),
    }
}

/// A sync page for `to` read after position `after`, holding `events` at
/// positions equal to their ids (each with a `bytes`-long payload that
/// starts `event-N`).
pub(crate) fn sync_page(to: Endpoint, after: u64, events: &[u64], bytes: usize, full: bool) -> CoreEvent {
    let positioned: Vec<(u64, u64)> = events.iter().map(|&id| (id, id)).collect();
    sync_page_at(to, after, &positioned, bytes, full)
}

/// A sync page of `(position, event id)` pairs.
pub(crate) fn sync_page_at(to: Endpoint, after: u64, events: &[(u64, u64)], bytes: usize, full: bool) -> CoreEvent {
    let events = events
        .iter()
        .map(|&(pos, id)| {
            let mut p = format!("event-{id}").into_bytes();
            p.resize(bytes.max(p.len()), b' ');
            (InboxPos(pos), MessageId(id), p)
        })
        .collect();
    CoreEvent::SyncPage { to, after: InboxPos(after), events, full, truncated: false }
}

/// The text of every frame in `frames`, payloads trimmed.
pub(crate) fn texts(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Text(t) => t.trim_end(),
            other => panic!("expected a text frame, got {other:?}"),
        })
        .collect()
}

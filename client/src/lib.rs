//! A blocking client for the chatgw protocol v1.
//!
//! Used by the integration tests, the `chatgw chat` CLI and the load
//! generator. One [`Client`] is one device connection. It parses server
//! frames into [`Event`]s and keeps the device's sync cursor: the id of the
//! last inbox event received (a `message` or `receipt` frame, or the cursor
//! of `synced`), which is what a device passes to `sync` when it
//! reconnects. Events arrive in inbox order, which is not id order when
//! several gateways share a store, so the cursor is the last id, not the
//! largest (docs/PROTOCOL.md, section 1.7).
//!
//! Frames are written and read by the protocol crate's encoders and
//! decoders (`chatgw_protocol::client`, `chatgw_protocol::ServerFrame`);
//! this crate adds the connection, the cursor and the waiting, and
//! [`Reconnect`]: back to any gateway after a close, with backoff, then
//! `sync`.
//!
//! It is deliberately simple: a thread per client or a poll loop in the
//! caller; no async runtime.

#![warn(missing_docs)]

mod event;
mod reconnect;

use std::{
    io,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use chatgw_protocol::{client, ClientFrame, GroupChange, MAX_PAGE};
pub use chatgw_protocol::{
    ConversationItem, ConversationRef, DeleteScope, DeviceInfo, DeviceName, DirectFrom, GroupId, MessageId,
    MessageKind, PresenceState, PushProvider, TypingState, UserId,
};
pub use event::{Event, MessageEvent, ReceiptEvent};
pub use reconnect::{Backoff, Reconnect};
use tungstenite::{client::IntoClientRequest, protocol::WebSocket, Message};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect or socket option failed.
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The HTTP upgrade was refused (status and body).
    #[error("upgrade refused with HTTP {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// WebSocket protocol or I/O error.
    #[error("websocket: {0}")]
    WebSocket(#[from] tungstenite::Error),
    /// The server sent a frame this client does not understand.
    #[error("unexpected frame: {0}")]
    Unexpected(String),
    /// No event arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// [`Client::change_members`] was given an operation that is not a
    /// membership change.
    #[error("`{0}` is not add_members, remove_members or promote")]
    UnknownOperation(String),
}

/// One device connection.
pub struct Client {
    ws: WebSocket<TcpStream>,
    cursor: MessageId,
    user: UserId,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("user", &self.user).field("cursor", &self.cursor).finish()
    }
}

impl Client {
    /// Connect to `addr`, authenticate with `token`, and wait for `welcome`.
    pub fn connect(addr: SocketAddr, token: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).map_err(ClientError::Connect)?;
        Self::handshake(stream, &format!("ws://{addr}/ws?token={token}"))
    }

    /// Connect with the token in an `Authorization: Bearer` header, which
    /// stays out of access logs (docs/PROTOCOL.md, "Passing the token").
    pub fn connect_with_header(addr: SocketAddr, token: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).map_err(ClientError::Connect)?;
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::Unexpected("the token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
        Self::open(stream, request, None)
    }

    /// Connect without a token and send it in the first frame (`auth`),
    /// the way a browser, which cannot set headers on a WebSocket, keeps
    /// it out of the URL.
    pub fn connect_with_auth_frame(addr: SocketAddr, token: &str) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).map_err(ClientError::Connect)?;
        let request = format!("ws://{addr}/ws").into_client_request()?;
        Self::open(stream, request, Some(token))
    }

    /// Complete the WebSocket handshake on an already connected stream
    /// (the load generator binds source addresses itself).
    pub fn handshake(stream: TcpStream, url: &str) -> Result<Self, ClientError> {
        Self::open(stream, url.into_client_request()?, None)
    }

    /// The handshake, the `auth` frame if `auth_frame` holds a token, and
    /// the `welcome`.
    fn open(
        stream: TcpStream,
        request: tungstenite::handshake::client::Request,
        auth_frame: Option<&str>,
    ) -> Result<Self, ClientError> {
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(ClientError::Connect)?;
        let (ws, _resp) = match tungstenite::client(request, stream) {
            Ok(ok) => ok,
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                return Err(ClientError::Refused { status, body });
            }
            Err(tungstenite::HandshakeError::Failure(e)) => return Err(e.into()),
            Err(tungstenite::HandshakeError::Interrupted(_)) => return Err(ClientError::Timeout("handshake")),
        };
        let mut c = Client { ws, cursor: MessageId(0), user: UserId(0) };
        if let Some(token) = auth_frame {
            let mut frame = String::new();
            chatgw_protocol::client::auth(&mut frame, token);
            c.send_raw(&frame)?;
        }
        match c.next_event(Duration::from_secs(10))? {
            Some(Event::Welcome { user }) => c.user = user,
            Some(other) => return Err(ClientError::Unexpected(format!("{other:?} before welcome"))),
            None => return Err(ClientError::Timeout("welcome")),
        }
        Ok(c)
    }

    /// The authenticated user.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The highest event id this device has seen.
    pub fn cursor(&self) -> MessageId {
        self.cursor
    }

    /// Start from a cursor kept from an earlier connection.
    pub fn set_cursor(&mut self, cursor: MessageId) {
        self.cursor = cursor;
    }

    /// The underlying socket (for timeouts or polling).
    pub fn socket(&self) -> &TcpStream {
        self.ws.get_ref()
    }

    /// Send a raw text frame.
    pub fn send_raw(&mut self, text: &str) -> Result<(), ClientError> {
        self.ws.send(Message::text(text))?;
        Ok(())
    }

    /// Encode a frame with `write` and send it.
    fn send_with(&mut self, write: impl FnOnce(&mut String)) -> Result<(), ClientError> {
        let mut text = String::new();
        write(&mut text);
        self.send_raw(&text)
    }

    /// Send any client frame.
    pub fn send_frame(&mut self, frame: &ClientFrame<'_>) -> Result<(), ClientError> {
        self.send_with(|out| frame.encode(out))
    }

    /// Send a message to `to` with a client id of the caller's choice;
    /// `body` is the text, encoded here as a JSON string.
    pub fn send_message(
        &mut self,
        to: UserId,
        client_id: &str,
        kind: MessageKind,
        body: &str,
    ) -> Result<(), ClientError> {
        let body = client::body_literal(body);
        self.send_with(|out| client::send(out, client_id, ConversationRef::Peer(to), kind, &body))
    }

    /// Acknowledge delivery of messages from `peer`.
    pub fn ack_delivered(&mut self, peer: UserId, ids: &[MessageId]) -> Result<(), ClientError> {
        self.send_with(|out| client::delivered(out, ConversationRef::Peer(peer), ids.iter().copied()))
    }

    /// Mark the conversation with `peer` read up to `up_to`.
    pub fn mark_read(&mut self, peer: UserId, up_to: MessageId) -> Result<(), ClientError> {
        self.send_with(|out| client::read(out, ConversationRef::Peer(peer), up_to))
    }

    /// Ask for every event after the device's cursor.
    pub fn sync(&mut self) -> Result<(), ClientError> {
        let after = self.cursor;
        self.send_with(|out| client::sync(out, after, MAX_PAGE))
    }

    /// Ask for one page of the conversation with `peer`.
    pub fn history(&mut self, peer: UserId, before: Option<MessageId>, limit: usize) -> Result<(), ClientError> {
        self.send_with(|out| client::history(out, ConversationRef::Peer(peer), before, limit))
    }

    /// Send a message to a group; `body` is the text.
    pub fn send_group(
        &mut self,
        group: GroupId,
        client_id: &str,
        kind: MessageKind,
        body: &str,
    ) -> Result<(), ClientError> {
        let body = client::body_literal(body);
        self.send_with(|out| client::send(out, client_id, ConversationRef::Group(group), kind, &body))
    }

    /// Acknowledge delivery of group messages.
    pub fn ack_group_delivered(&mut self, group: GroupId, ids: &[MessageId]) -> Result<(), ClientError> {
        self.send_with(|out| client::delivered(out, ConversationRef::Group(group), ids.iter().copied()))
    }

    /// Mark a group read up to `up_to`.
    pub fn mark_group_read(&mut self, group: GroupId, up_to: MessageId) -> Result<(), ClientError> {
        self.send_with(|out| client::read(out, ConversationRef::Group(group), up_to))
    }

    /// Ask for one page of a group's messages.
    pub fn group_history(
        &mut self,
        group: GroupId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(), ClientError> {
        self.send_with(|out| client::history(out, ConversationRef::Group(group), before, limit))
    }

    /// Create a group with the given members (besides yourself).
    pub fn create_group(&mut self, request_id: &str, name: &str, members: &[UserId]) -> Result<(), ClientError> {
        self.send_with(|out| client::create_group(out, request_id, name, members.iter().copied()))
    }

    /// Add, remove, promote or demote members (`op` is `add_members`,
    /// `remove_members`, `promote` or `demote`).
    pub fn change_members(&mut self, op: &str, group: GroupId, members: &[UserId]) -> Result<(), ClientError> {
        let members = members.to_vec();
        let change = match op {
            "add_members" => GroupChange::Add(members),
            "remove_members" => GroupChange::Remove(members),
            "promote" => GroupChange::Promote(members),
            "demote" => GroupChange::Demote(members),
            other => return Err(ClientError::UnknownOperation(other.to_owned())),
        };
        self.send_with(|out| client::change_group(out, group, &change))
    }

    /// Rename a group (admins only).
    pub fn rename_group(&mut self, group: GroupId, name: &str) -> Result<(), ClientError> {
        self.send_with(|out| client::change_group(out, group, &GroupChange::Rename(name.to_owned())))
    }

    /// Set a group's description; empty clears it (admins only).
    pub fn set_group_description(&mut self, group: GroupId, description: &str) -> Result<(), ClientError> {
        self.send_with(|out| client::change_group(out, group, &GroupChange::Describe(description.to_owned())))
    }

    /// Let a group's admins delete members' messages for everyone, or stop
    /// (admins only).
    pub fn set_admins_can_delete(&mut self, group: GroupId, on: bool) -> Result<(), ClientError> {
        self.send_with(|out| client::change_group(out, group, &GroupChange::AdminsCanDelete(on)))
    }

    /// Turn a group's admins-only send mode on or off (admins only).
    pub fn set_admins_only(&mut self, group: GroupId, on: bool) -> Result<(), ClientError> {
        self.send_with(|out| client::change_group(out, group, &GroupChange::AdminsOnly(on)))
    }

    /// Leave a group.
    pub fn leave_group(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.send_with(|out| client::change_group(out, group, &GroupChange::Leave))
    }

    /// Ask for a group's name and members.
    pub fn group_info(&mut self, group: GroupId) -> Result<(), ClientError> {
        self.send_with(|out| client::group_info(out, group))
    }

    /// Ask who one of your group messages reached and who read it.
    pub fn message_info(&mut self, group: GroupId, msg: MessageId) -> Result<(), ClientError> {
        self.send_with(|out| client::message_info(out, group, msg))
    }

    /// Block `user`: their direct messages and receipts no longer reach
    /// you. Answered with [`Event::Blocks`].
    pub fn block(&mut self, user: UserId) -> Result<(), ClientError> {
        self.send_with(|out| client::block(out, user))
    }

    /// Unblock `user`. Answered with [`Event::Blocks`].
    pub fn unblock(&mut self, user: UserId) -> Result<(), ClientError> {
        self.send_with(|out| client::unblock(out, user))
    }

    /// Ask for your block list. Answered with [`Event::Blocks`].
    pub fn blocks(&mut self) -> Result<(), ClientError> {
        self.send_with(client::blocks)
    }

    /// Take direct messages from everyone, or only from users you share a
    /// conversation with. Answered with [`Event::DirectFrom`].
    pub fn set_direct_from(&mut self, from: DirectFrom) -> Result<(), ClientError> {
        self.send_with(|out| client::set_direct_from(out, from))
    }

    /// Ask whom you take direct messages from. Answered with [`Event::DirectFrom`].
    pub fn direct_from(&mut self) -> Result<(), ClientError> {
        self.send_with(client::direct_from)
    }

    /// Ask for your named devices. Answered with [`Event::Devices`].
    pub fn devices(&mut self) -> Result<(), ClientError> {
        self.send_with(client::devices)
    }

    /// Log out your device `device`: its connections close with 4004 and
    /// its tokens issued until now are refused. Answered with
    /// [`Event::LoggedOut`] (before this connection closes, if it is that
    /// device).
    pub fn logout_device(&mut self, device: DeviceName) -> Result<(), ClientError> {
        self.send_with(|out| client::logout_device(out, device))
    }

    /// Register where this device is notified while it is not connected:
    /// `provider` and the device's `token` with it (the connection's token
    /// must name a device). Replaces the device's earlier target. Answered
    /// with [`Event::PushRegistered`].
    pub fn register_push(&mut self, provider: PushProvider, token: &str) -> Result<(), ClientError> {
        self.send_with(|out| client::register_push(out, provider, token))
    }

    /// Publish this device's keys and add `one_time_keys` (the connection's
    /// token must name a device; docs/E2EE.md says what is signed).
    /// Answered with [`Event::KeyCount`].
    pub fn upload_keys(
        &mut self,
        keys: &chatgw_protocol::DeviceKeys,
        one_time_keys: &[chatgw_protocol::SignedKey],
    ) -> Result<(), ClientError> {
        self.send_with(|out| client::upload_keys(out, keys, one_time_keys))
    }

    /// Fetch a key bundle for every device of `user`, or for `device` only;
    /// each claims one of that device's one-time keys. Answered with
    /// [`Event::Keys`].
    pub fn fetch_keys(&mut self, user: UserId, device: Option<chatgw_protocol::DeviceName>) -> Result<(), ClientError> {
        self.send_with(|out| client::fetch_keys(out, user, device))
    }

    /// Ask how many one-time keys this device has left. Answered with
    /// [`Event::KeyCount`].
    pub fn key_count(&mut self) -> Result<(), ClientError> {
        self.send_with(client::key_count)
    }

    /// Ask for an upload slot for a file of exactly `size` bytes (as it
    /// will be uploaded, encrypted) for the conversation `to`. Answered
    /// with [`Event::UploadSlot`] (docs/MEDIA.md).
    pub fn upload_media(
        &mut self,
        request_id: &str,
        to: ConversationRef,
        kind: chatgw_protocol::MediaKind,
        size: u64,
        content_type: &str,
    ) -> Result<(), ClientError> {
        self.send_with(|out| client::upload_media(out, request_id, to, kind, size, content_type))
    }

    /// Finish an upload whose parts were all `PUT`; `tags` are the `ETag`s
    /// the part `PUT`s answered, part 1 first. Answered with
    /// [`Event::MediaCompleted`].
    pub fn complete_media(
        &mut self,
        request_id: &str,
        media: &str,
        upload: &str,
        tags: &[String],
    ) -> Result<(), ClientError> {
        self.send_with(|out| client::complete_media(out, request_id, media, upload, tags))
    }

    /// Ask for a download URL of a media id. Answered with
    /// [`Event::DownloadUrl`].
    pub fn download_media(&mut self, request_id: &str, media: &str) -> Result<(), ClientError> {
        self.send_with(|out| client::download_media(out, request_id, media))
    }

    /// Remove this device's push target. Answered with
    /// [`Event::PushUnregistered`], whether or not it had one.
    pub fn unregister_push(&mut self) -> Result<(), ClientError> {
        self.send_with(client::unregister_push)
    }

    /// Ask for a page of your conversation list, most recent first: the
    /// first page with `before` `None`, the next with the `next` cursor of
    /// the previous answer; `limit` 1 to 100. Answered with
    /// [`Event::Conversations`].
    pub fn conversations(&mut self, before: Option<MessageId>, limit: usize) -> Result<(), ClientError> {
        self.send_with(|out| client::conversations(out, before, limit))
    }

    /// Watch the presence of the other members of a conversation (a peer
    /// you exchanged a message with, or a group you are in). Answered with
    /// [`Event::PresenceList`]; changes follow as [`Event::Presence`].
    pub fn subscribe_presence(&mut self, conversation: ConversationRef) -> Result<(), ClientError> {
        self.send_with(|out| client::subscribe_presence(out, conversation))
    }

    /// Stop watching them. Not answered.
    pub fn unsubscribe_presence(&mut self, conversation: ConversationRef) -> Result<(), ClientError> {
        self.send_with(|out| client::unsubscribe_presence(out, conversation))
    }

    /// Show (`true`) or hide your presence. Answered with
    /// [`Event::PresenceSet`].
    pub fn set_presence(&mut self, visible: bool) -> Result<(), ClientError> {
        self.send_with(|out| client::set_presence(out, visible))
    }

    /// Tell the other members' devices you are typing (or stopped). Not
    /// answered; dropped over the typing limit.
    pub fn typing(&mut self, conversation: ConversationRef, state: TypingState) -> Result<(), ClientError> {
        self.send_with(|out| client::typing(out, conversation, state))
    }

    /// Delete one of your messages (or, as an admin where the group allows
    /// it, a member's) for everyone in the conversation, or with
    /// [`DeleteScope::Me`] for yourself only.
    /// Answered with [`Event::Amended`] (or an error).
    pub fn delete_message(
        &mut self,
        conversation: ConversationRef,
        msg: MessageId,
        scope: DeleteScope,
    ) -> Result<(), ClientError> {
        self.send_with(|out| client::delete(out, conversation, msg, scope))
    }

    /// Replace the text of one of your messages. Answered with
    /// [`Event::Amended`] (or an error).
    pub fn edit_message(
        &mut self,
        conversation: ConversationRef,
        msg: MessageId,
        text: &str,
    ) -> Result<(), ClientError> {
        let body = client::body_literal(text);
        self.send_with(|out| client::edit(out, conversation, msg, &body))
    }

    /// Close with 1000 and wait briefly for the server's close.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.ws.read().is_err() {
                break;
            }
        }
    }

    /// The next event, or `None` if nothing arrived within `timeout`.
    /// Pings are answered inside; a close from the server is an
    /// [`Event::Closed`].
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.ws.get_mut().set_read_timeout(Some(left)).map_err(ClientError::Connect)?;
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    let ev = Event::parse(t.as_str())?;
                    if let Some(id) = ev.cursor_id() {
                        self.cursor = id;
                    }
                    return Ok(Some(ev));
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) =
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                    return Ok(Some(Event::Closed { code, reason }));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Read events until `pick` returns `Some`, or fail after `timeout`.
    /// Events `pick` passes over are dropped.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &'static str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(ev) => {
                    if let Some(t) = pick(&ev) {
                        return Ok(t);
                    }
                }
                None => return Err(ClientError::Timeout(what)),
            }
        }
    }

    /// Read every event until nothing arrives for `quiet`.
    pub fn drain(&mut self, quiet: Duration) -> Result<Vec<Event>, ClientError> {
        let mut out = Vec::new();
        while let Some(ev) = self.next_event(quiet)? {
            out.push(ev);
        }
        Ok(out)
    }
}

//! Server frames, read back into types: the inverse of the encoders in
//! [`crate::server`], for clients.
//!
//! Parsing is two steps, like [`ClientFrame::parse`](crate::ClientFrame::parse):
//! serde reads the text into one flat, borrowed struct (every field
//! optional, each kept as its raw JSON), then [`ServerFrame::parse`] checks
//! the fields the frame's `type` needs and converts them. Fields a frame
//! does not use are ignored, as section 1.3 of `docs/PROTOCOL.md` asks of
//! clients. A message body stays the raw JSON string literal the sender
//! wrote ([`Message::body`]); [`Message::body_text`] decodes it.
//!
//! This decoder allocates the strings and lists it returns. A client that
//! reads tens of thousands of frames a second and needs only a few fields
//! uses the borrowed [`crate::view::FrameView`] instead.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{
    server::{Message, ReceiptStatus},
    AmendKind, Amendment, ConversationId, ConversationRef, DeviceInfo, ErrorCode, Group, GroupId, Member, MessageId,
    MessageKind, PresenceState, TypingState, UserId,
};

/// Why a server frame could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object, or a field of the wrong JSON type.
    #[error("not a JSON object of the protocol: {0}")]
    Json(String),
    /// No `type`, or one this decoder does not know.
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    /// A field the frame type needs is missing or malformed.
    #[error("field `{field}` of `{frame}`: {why}")]
    Field {
        /// The frame type.
        frame: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// `welcome`: the first frame of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version (1).
    pub protocol: u32,
    /// The authenticated user.
    pub user: UserId,
    /// Largest `body` literal, in bytes.
    pub max_body: usize,
    /// Largest frame or message the server accepts, in bytes.
    pub max_frame: usize,
}

/// `sent`: a message is durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The client id of the `send`.
    pub client_id: String,
    /// The message id.
    pub msg: MessageId,
    /// Commit time, Unix milliseconds.
    pub ts: u64,
    /// The client id had been stored before; `msg` and `ts` are the originals.
    pub duplicate: bool,
}

/// `receipt`, in one of its three shapes (section 4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptFrame {
    /// Messages of a direct conversation reached a device of `by`.
    Delivered {
        /// Inbox event id.
        event: MessageId,
        /// Who received them.
        by: UserId,
        /// The conversation, as the receiving user names it.
        conversation: ConversationRef,
        /// The messages.
        ids: Vec<MessageId>,
        /// Commit time, Unix milliseconds.
        at: u64,
    },
    /// `by` read the conversation up to `up_to` (direct, or a group read
    /// sent to the reader's other devices).
    Read {
        /// Inbox event id.
        event: MessageId,
        /// Who read.
        by: UserId,
        /// The conversation, as the receiving user names it.
        conversation: ConversationRef,
        /// Last message read.
        up_to: MessageId,
        /// Commit time, Unix milliseconds.
        at: u64,
    },
    /// A batched group receipt for the receiving user's messages.
    Group {
        /// Inbox event id.
        event: MessageId,
        /// The group.
        group: GroupId,
        /// Delivered or read.
        status: ReceiptStatus,
        /// Who acknowledged which messages, ordered by user.
        items: Vec<(UserId, Vec<MessageId>)>,
        /// Commit time, Unix milliseconds.
        at: u64,
    },
}

impl ReceiptFrame {
    /// The inbox event id.
    pub fn event(&self) -> MessageId {
        match self {
            ReceiptFrame::Delivered { event, .. }
            | ReceiptFrame::Read { event, .. }
            | ReceiptFrame::Group { event, .. } => *event,
        }
    }
}

/// `history`: one page of a conversation, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The requested conversation.
    pub conversation: ConversationRef,
    /// The messages, newest first.
    pub messages: Vec<Message>,
    /// Older messages may exist.
    pub more: bool,
}

/// `conversations`: one page of the user's conversation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationsPage {
    /// Most recent first.
    pub items: Vec<ConversationItem>,
    /// The cursor for the next page (`before`), `None` on the last page.
    pub next: Option<MessageId>,
}

/// One conversation of a [`ConversationsPage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationItem {
    /// The conversation, as the user names it.
    pub conversation: ConversationRef,
    /// Its last message as stored (`None` if the store no longer holds it).
    pub last: Option<Message>,
    /// The user's unread count.
    pub unread: u64,
    /// For a group: its name.
    pub name: Option<String>,
    /// For a group: how many members it has.
    pub members: Option<usize>,
    /// For a group: whether the user is still a member.
    pub member: Option<bool>,
}

/// `message_info`: who a group message reached and who read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// The group.
    pub group: GroupId,
    /// The message.
    pub msg: MessageId,
    /// The users it was for.
    pub recipients: usize,
    /// Who received it, and when (Unix ms), by user.
    pub delivered: Vec<(UserId, u64)>,
    /// Who read it, and when (Unix ms), by user.
    pub read: Vec<(UserId, u64)>,
}

/// `error`: a refused request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// The stable code.
    pub code: ErrorCode,
    /// Human-readable reason.
    pub message: String,
    /// Client id or request id of the refused request, when known.
    pub reference: Option<String>,
}

/// A frame the server sends, as a client reads it (section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFrame {
    /// `welcome`.
    Welcome(Welcome),
    /// `sent`.
    Sent(Sent),
    /// `message`: an inbox event (its event id is the message id).
    Message(Message),
    /// `receipt`: an inbox event.
    Receipt(ReceiptFrame),
    /// `amended`: a message was edited or deleted for everyone, shown as it
    /// is now; an inbox event, or with `reply` the answer to this
    /// connection's own `delete` or `edit` (not an event: no cursor move).
    Amended {
        /// The event id.
        event: MessageId,
        /// The message as it is now.
        message: Message,
        /// The answer to this connection's own request, not an inbox event.
        reply: bool,
    },
    /// `synced`: the device has every event up to `cursor`.
    Synced {
        /// The connection's cursor.
        cursor: MessageId,
    },
    /// `history`.
    History(HistoryPage),
    /// `group`: a group's state, with the `create_group` request id in `ref`.
    Group {
        /// The group.
        group: Group,
        /// The request id of a `create_group`.
        reference: Option<String>,
    },
    /// `message_info`.
    MessageInfo(MessageInfo),
    /// `conversations`: a page of the requester's conversation list.
    Conversations(ConversationsPage),
    /// `blocks`: the requester's block list.
    Blocks {
        /// Blocked users, in ascending order.
        users: Vec<UserId>,
    },
    /// `devices`: the requester's named devices.
    Devices {
        /// In name order.
        devices: Vec<DeviceInfo>,
    },
    /// `logged_out`: the answer to `logout_device`.
    LoggedOut {
        /// The device logged out.
        device: String,
    },
    /// `error`.
    Error(ErrorFrame),
    /// `presence`: a watched user's presence changed.
    Presence {
        /// The user.
        user: UserId,
        /// What others see now.
        state: PresenceState,
    },
    /// `presence_list`: the answer to `subscribe_presence`.
    PresenceList {
        /// The conversation, from the receiver's side.
        conversation: ConversationRef,
        /// Every other member and their presence.
        users: Vec<(UserId, PresenceState)>,
    },
    /// `direct_from`: the requester's direct message setting, the answer
    /// to `set_direct_from` and `direct_from`.
    DirectFrom {
        /// Whom they take direct messages from.
        from: crate::DirectFrom,
    },
    /// `push_registered`: the answer to `register_push`.
    PushRegistered {
        /// The device the target belongs to.
        device: String,
        /// Who delivers its notifications now.
        provider: crate::PushProvider,
    },
    /// `push_unregistered`: the answer to `unregister_push`.
    PushUnregistered {
        /// The device that has no push target now.
        device: String,
    },
    /// `key_count`: the answer to `upload_keys` and `key_count`.
    KeyCount {
        /// The requester's device.
        device: String,
        /// Its one-time keys left.
        one_time_keys: u64,
    },
    /// `keys_changed`: an inbox event: `user`'s devices with keys, or a
    /// device's identity, changed; fetch their keys again before the next
    /// encrypted message to them.
    KeysChanged {
        /// Event id (moves the device cursor).
        event: crate::MessageId,
        /// Whose keys changed.
        user: crate::UserId,
    },
    /// `keys`: the answer to `fetch_keys`.
    Keys {
        /// Whose keys.
        user: crate::UserId,
        /// A bundle per device that has keys.
        devices: Vec<crate::KeyBundle>,
    },
    /// `upload_slot`: the answer to `upload_media`.
    UploadSlot(crate::UploadSlotFrame),
    /// `media_completed`: the answer to `complete_media`.
    MediaCompleted {
        /// The request id.
        request_id: String,
        /// The media id, downloadable now.
        media: String,
    },
    /// `download_url`: the answer to `download_media`.
    DownloadUrl {
        /// The request id.
        request_id: String,
        /// The media id.
        media: String,
        /// `GET` this (ranges allowed).
        url: String,
        /// When it stops working, Unix milliseconds.
        expires: u64,
    },
    /// `presence_set`: the answer to `set_presence`.
    PresenceSet {
        /// Whether others see the user's presence now.
        visible: bool,
    },
    /// `typing`: another member is typing (or stopped).
    Typing {
        /// The member.
        from: UserId,
        /// The conversation, from the receiver's side.
        conversation: ConversationRef,
        /// Typing or paused.
        state: TypingState,
        /// Seconds after which a `typing` state lapses unless repeated.
        expires_in: u32,
    },
}

impl ServerFrame {
    /// The inbox event id of a `message`, `receipt`, `amended` or
    /// `keys_changed`: what moves a
    /// device's cursor (with `synced`'s cursor; never a reply's ids).
    pub fn event(&self) -> Option<MessageId> {
        match self {
            ServerFrame::Message(m) => Some(m.id),
            ServerFrame::Receipt(r) => Some(r.event()),
            ServerFrame::Amended { event, reply: false, .. } => Some(*event),
            ServerFrame::KeysChanged { event, .. } => Some(*event),
            _ => None,
        }
    }
}

impl Message {
    /// The body decoded from its JSON string literal.
    pub fn body_text(&self) -> Result<String, DecodeError> {
        serde_json::from_str(&self.body).map_err(|_| field("message", "body", "not a JSON string"))
    }
}

#[derive(Default, Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow)]
    ty: Option<&'a RawValue>,
    #[serde(borrow)]
    protocol: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<&'a RawValue>,
    #[serde(borrow)]
    max_body: Option<&'a RawValue>,
    #[serde(borrow)]
    max_frame: Option<&'a RawValue>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    duplicate: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    from: Option<&'a RawValue>,
    #[serde(borrow)]
    to: Option<&'a RawValue>,
    #[serde(borrow)]
    group: Option<&'a RawValue>,
    #[serde(borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    cid: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<&'a RawValue>,
    #[serde(borrow)]
    by: Option<&'a RawValue>,
    #[serde(borrow)]
    peer: Option<&'a RawValue>,
    #[serde(borrow)]
    ids: Option<&'a RawValue>,
    #[serde(borrow)]
    up_to: Option<&'a RawValue>,
    #[serde(borrow)]
    items: Option<&'a RawValue>,
    #[serde(borrow)]
    at: Option<&'a RawValue>,
    #[serde(borrow)]
    cursor: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    more: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    description: Option<&'a RawValue>,
    #[serde(borrow)]
    admins_only: Option<&'a RawValue>,
    #[serde(borrow)]
    admins_can_delete: Option<&'a RawValue>,
    #[serde(borrow)]
    created_by: Option<&'a RawValue>,
    #[serde(borrow)]
    members: Option<&'a RawValue>,
    #[serde(rename = "ref", borrow)]
    reference: Option<&'a RawValue>,
    #[serde(borrow)]
    recipients: Option<&'a RawValue>,
    #[serde(borrow)]
    delivered: Option<&'a RawValue>,
    #[serde(borrow)]
    read: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
    #[serde(borrow)]
    users: Option<&'a RawValue>,
    #[serde(borrow)]
    device: Option<&'a RawValue>,
    #[serde(borrow)]
    devices: Option<&'a RawValue>,
    #[serde(borrow)]
    conversations: Option<&'a RawValue>,
    #[serde(borrow)]
    next: Option<&'a RawValue>,
    #[serde(borrow)]
    edited: Option<&'a RawValue>,
    #[serde(borrow)]
    deleted: Option<&'a RawValue>,
    #[serde(borrow)]
    hidden: Option<&'a RawValue>,
    #[serde(borrow)]
    reply: Option<&'a RawValue>,
}

fn field(frame: &'static str, field: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Field { frame, field, why }
}

/// Reads the fields of one frame type, naming it in errors.
struct Fields<'r, 'a> {
    raw: &'r Raw<'a>,
    frame: &'static str,
}

impl<'a> Fields<'_, 'a> {
    fn get<T: Deserialize<'a>>(&self, v: Option<&'a RawValue>, name: &'static str) -> Result<T, DecodeError> {
        let v = v.ok_or_else(|| field(self.frame, name, "missing"))?;
        serde_json::from_str(v.get()).map_err(|_| field(self.frame, name, "malformed"))
    }

    fn opt<T: Deserialize<'a>>(&self, v: Option<&'a RawValue>, name: &'static str) -> Result<Option<T>, DecodeError> {
        match v {
            None => Ok(None),
            Some(v) => serde_json::from_str(v.get()).map_err(|_| field(self.frame, name, "malformed")),
        }
    }

    /// Exactly one of `peer_key` and `group`.
    fn conversation(&self, peer: Option<&'a RawValue>, peer_key: &'static str) -> Result<ConversationRef, DecodeError> {
        match (peer, self.raw.group) {
            (Some(_), None) => Ok(ConversationRef::Peer(self.get(peer, peer_key)?)),
            (None, Some(_)) => Ok(ConversationRef::Group(self.get(self.raw.group, "group")?)),
            _ => Err(field(self.frame, "group", "exactly one of it and the peer is required")),
        }
    }

    fn kind(&self) -> Result<MessageKind, DecodeError> {
        let name: String = self.get(self.raw.kind, "kind")?;
        MessageKind::from_name(&name).ok_or_else(|| field(self.frame, "kind", "unknown kind"))
    }

    fn body(&self) -> Result<String, DecodeError> {
        let v = self.raw.body.ok_or_else(|| field(self.frame, "body", "missing"))?;
        serde_json::from_str::<&RawValue>(v.get()).map_err(|_| field(self.frame, "body", "malformed"))?;
        if !v.get().starts_with('"') {
            return Err(field(self.frame, "body", "not a string"));
        }
        Ok(v.get().to_owned())
    }
}

#[derive(Deserialize)]
struct RawStoredMessage<'a> {
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    #[serde(borrow)]
    from: Option<&'a RawValue>,
    #[serde(borrow)]
    to: Option<&'a RawValue>,
    #[serde(borrow)]
    group: Option<&'a RawValue>,
    #[serde(borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    ts: Option<&'a RawValue>,
    #[serde(borrow)]
    cid: Option<&'a RawValue>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    #[serde(borrow)]
    edited: Option<&'a RawValue>,
    #[serde(borrow)]
    deleted: Option<&'a RawValue>,
    #[serde(borrow)]
    hidden: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawMark {
    event: MessageId,
}

/// The `edited`, `deleted` or `hidden` mark of a stored message, if any
/// (at most one).
fn amendment(f: &Fields<'_, '_>) -> Result<Option<Amendment>, DecodeError> {
    let edited: Option<RawMark> = f.opt(f.raw.edited, "edited")?;
    let deleted: Option<RawMark> = f.opt(f.raw.deleted, "deleted")?;
    let hidden: Option<RawMark> = f.opt(f.raw.hidden, "hidden")?;
    Ok(match (edited, deleted, hidden) {
        (None, None, None) => None,
        (Some(e), None, None) => Some(Amendment { kind: AmendKind::Edited, event: e.event }),
        (None, Some(d), None) => Some(Amendment { kind: AmendKind::Deleted, event: d.event }),
        (None, None, Some(h)) => Some(Amendment { kind: AmendKind::Hidden, event: h.event }),
        _ => return Err(field(f.frame, "deleted", "more than one of edited, deleted and hidden")),
    })
}

/// The fields `message` frames and `history` entries share.
fn stored_message(f: &Fields<'_, '_>) -> Result<Message, DecodeError> {
    let raw = f.raw;
    let from: UserId = f.get(raw.from, "from")?;
    let conversation = match f.conversation(raw.to, "to")? {
        ConversationRef::Peer(to) => ConversationId::direct(from, to),
        ConversationRef::Group(g) => ConversationId::Group(g),
    };
    let amended = amendment(f)?;
    // A deleted or hidden message has no body.
    let body = match amended {
        Some(Amendment { kind: AmendKind::Deleted | AmendKind::Hidden, .. }) => String::new(),
        _ => f.body()?,
    };
    Ok(Message {
        id: f.get(raw.msg, "msg")?,
        conversation,
        from,
        kind: f.kind()?,
        client_id: f.get(raw.cid, "cid")?,
        ts: f.get(raw.ts, "ts")?,
        body,
        amended,
    })
}

#[derive(Deserialize)]
struct RawConversationItem<'a> {
    #[serde(borrow)]
    peer: Option<&'a RawValue>,
    #[serde(borrow)]
    group: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    members: Option<&'a RawValue>,
    #[serde(borrow)]
    member: Option<&'a RawValue>,
    #[serde(borrow)]
    unread: Option<&'a RawValue>,
    #[serde(borrow)]
    last: Option<&'a RawValue>,
}

fn conversation_items(f: &Fields<'_, '_>) -> Result<Vec<ConversationItem>, DecodeError> {
    let v = f.raw.conversations.ok_or_else(|| field("conversations", "conversations", "missing"))?;
    let entries: Vec<RawConversationItem<'_>> =
        serde_json::from_str(v.get()).map_err(|_| field("conversations", "conversations", "malformed"))?;
    entries
        .into_iter()
        .map(|e| {
            let raw = Raw { peer: e.peer, group: e.group, ..Raw::default() };
            let item = Fields { raw: &raw, frame: "conversations" };
            let last = match e.last.filter(|v| v.get() != "null") {
                None => None,
                Some(v) => {
                    let m: RawStoredMessage<'_> =
                        serde_json::from_str(v.get()).map_err(|_| field("conversations", "last", "malformed"))?;
                    let raw = Raw {
                        msg: m.msg,
                        from: m.from,
                        to: m.to,
                        group: m.group,
                        kind: m.kind,
                        ts: m.ts,
                        cid: m.cid,
                        body: m.body,
                        edited: m.edited,
                        deleted: m.deleted,
                        hidden: m.hidden,
                        ..Raw::default()
                    };
                    Some(stored_message(&Fields { raw: &raw, frame: "conversations" })?)
                }
            };
            Ok(ConversationItem {
                conversation: item.conversation(e.peer, "peer")?,
                last,
                unread: item.get(e.unread, "unread")?,
                name: item.opt(e.name, "name")?,
                members: item.opt(e.members, "members")?,
                member: item.opt(e.member, "member")?,
            })
        })
        .collect()
}

fn history_messages(f: &Fields<'_, '_>) -> Result<Vec<Message>, DecodeError> {
    let v = f.raw.messages.ok_or_else(|| field("history", "messages", "missing"))?;
    let entries: Vec<RawStoredMessage<'_>> =
        serde_json::from_str(v.get()).map_err(|_| field("history", "messages", "malformed"))?;
    entries
        .into_iter()
        .map(|e| {
            let raw = Raw {
                msg: e.msg,
                from: e.from,
                to: e.to,
                group: e.group,
                kind: e.kind,
                ts: e.ts,
                cid: e.cid,
                body: e.body,
                edited: e.edited,
                deleted: e.deleted,
                hidden: e.hidden,
                ..Raw::default()
            };
            stored_message(&Fields { raw: &raw, frame: "history" })
        })
        .collect()
}

#[derive(Deserialize)]
struct RawItem {
    by: UserId,
    ids: Vec<MessageId>,
}

#[derive(Deserialize)]
struct RawWho {
    user: UserId,
    at: u64,
}

fn receipt(f: &Fields<'_, '_>) -> Result<ReceiptFrame, DecodeError> {
    let raw = f.raw;
    let event = f.get(raw.event, "event")?;
    let at = f.get(raw.at, "at")?;
    let status = match f.get::<String>(raw.status, "status")?.as_str() {
        "delivered" => ReceiptStatus::Delivered,
        "read" => ReceiptStatus::Read,
        _ => return Err(field("receipt", "status", "neither delivered nor read")),
    };
    if raw.items.is_some() {
        let items: Vec<RawItem> = f.get(raw.items, "items")?;
        return Ok(ReceiptFrame::Group {
            event,
            group: f.get(raw.group, "group")?,
            status,
            items: items.into_iter().map(|i| (i.by, i.ids)).collect(),
            at,
        });
    }
    let by = f.get(raw.by, "by")?;
    let conversation = f.conversation(raw.peer, "peer")?;
    Ok(match status {
        ReceiptStatus::Delivered => {
            ReceiptFrame::Delivered { event, by, conversation, ids: f.get(raw.ids, "ids")?, at }
        }
        ReceiptStatus::Read => ReceiptFrame::Read { event, by, conversation, up_to: f.get(raw.up_to, "up_to")?, at },
    })
}

#[derive(Deserialize)]
struct RawDevice {
    device: String,
    first_seen: u64,
    last_active: u64,
    revoked_at: Option<u64>,
    current: bool,
}

#[derive(Deserialize)]
struct RawMember {
    user: UserId,
    admin: bool,
    joined: MessageId,
}

impl ServerFrame {
    /// Parse one server text frame.
    pub fn parse(text: &str) -> Result<ServerFrame, DecodeError> {
        if !text.trim_start().starts_with('{') {
            return Err(DecodeError::Json("a frame is a JSON object".into()));
        }
        let raw: Raw<'_> = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
        let ty: String = match raw.ty {
            Some(t) => serde_json::from_str(t.get()).map_err(|_| DecodeError::UnknownType(t.get().to_owned()))?,
            None => return Err(DecodeError::UnknownType(String::new())),
        };
        let f = |frame: &'static str| Fields { raw: &raw, frame };
        Ok(match ty.as_str() {
            "welcome" => {
                let f = f("welcome");
                ServerFrame::Welcome(Welcome {
                    protocol: f.get(raw.protocol, "protocol")?,
                    user: f.get(raw.user, "user")?,
                    max_body: f.get(raw.max_body, "max_body")?,
                    max_frame: f.get(raw.max_frame, "max_frame")?,
                })
            }
            "sent" => {
                let f = f("sent");
                ServerFrame::Sent(Sent {
                    client_id: f.get(raw.id, "id")?,
                    msg: f.get(raw.msg, "msg")?,
                    ts: f.get(raw.ts, "ts")?,
                    duplicate: f.get(raw.duplicate, "duplicate")?,
                })
            }
            "message" => {
                let f = f("message");
                let m = stored_message(&f)?;
                if f.get::<MessageId>(raw.event, "event")? != m.id {
                    return Err(field("message", "event", "differs from `msg`"));
                }
                ServerFrame::Message(m)
            }
            "amended" => {
                let f = f("amended");
                ServerFrame::Amended {
                    event: f.get(raw.event, "event")?,
                    message: stored_message(&f)?,
                    reply: f.opt(raw.reply, "reply")?.unwrap_or(false),
                }
            }
            "receipt" => ServerFrame::Receipt(receipt(&f("receipt"))?),
            "synced" => ServerFrame::Synced { cursor: f("synced").get(raw.cursor, "cursor")? },
            "history" => {
                let f = f("history");
                ServerFrame::History(HistoryPage {
                    conversation: f.conversation(raw.peer, "peer")?,
                    messages: history_messages(&f)?,
                    more: f.get(raw.more, "more")?,
                })
            }
            "group" => {
                let f = f("group");
                let members: Vec<RawMember> = f.get(raw.members, "members")?;
                ServerFrame::Group {
                    group: Group {
                        id: f.get(raw.group, "group")?,
                        name: f.get(raw.name, "name")?,
                        description: f.get(raw.description, "description")?,
                        admins_only: f.get(raw.admins_only, "admins_only")?,
                        admins_can_delete: f.get(raw.admins_can_delete, "admins_can_delete")?,
                        created_by: f.get(raw.created_by, "created_by")?,
                        members: members
                            .into_iter()
                            .map(|m| Member { user: m.user, admin: m.admin, joined: m.joined })
                            .collect(),
                    },
                    reference: f.opt(raw.reference, "ref")?,
                }
            }
            "blocks" => ServerFrame::Blocks { users: f("blocks").get(raw.users, "users")? },
            "devices" => {
                let devices: Vec<RawDevice> = f("devices").get(raw.devices, "devices")?;
                ServerFrame::Devices {
                    devices: devices
                        .into_iter()
                        .map(|d| DeviceInfo {
                            device: d.device,
                            first_seen: d.first_seen,
                            last_active: d.last_active,
                            revoked_at: d.revoked_at,
                            current: d.current,
                        })
                        .collect(),
                }
            }
            "logged_out" => ServerFrame::LoggedOut { device: f("logged_out").get(raw.device, "device")? },
            "conversations" => {
                let f = f("conversations");
                ServerFrame::Conversations(ConversationsPage {
                    items: conversation_items(&f)?,
                    next: f.opt(raw.next, "next")?,
                })
            }
            "message_info" => {
                let f = f("message_info");
                let list = |v, name| -> Result<Vec<(UserId, u64)>, DecodeError> {
                    let who: Vec<RawWho> = f.get(v, name)?;
                    Ok(who.into_iter().map(|w| (w.user, w.at)).collect())
                };
                ServerFrame::MessageInfo(MessageInfo {
                    group: f.get(raw.group, "group")?,
                    msg: f.get(raw.msg, "msg")?,
                    recipients: f.get(raw.recipients, "recipients")?,
                    delivered: list(raw.delivered, "delivered")?,
                    read: list(raw.read, "read")?,
                })
            }
            "error" => {
                let f = f("error");
                let code: String = f.get(raw.code, "code")?;
                ServerFrame::Error(ErrorFrame {
                    code: ErrorCode::from_name(&code).ok_or_else(|| field("error", "code", "unknown code"))?,
                    message: f.get(raw.message, "message")?,
                    reference: f.opt(raw.reference, "ref")?,
                })
            }
            "presence" | "presence_list" | "presence_set" | "typing" => return crate::presence::decode(&ty, text),
            "direct_from" => return crate::direct_from::decode(text),
            "push_registered" | "push_unregistered" => return crate::push::decode(&ty, text),
            "key_count" | "keys" | "keys_changed" => return crate::keys::decode(&ty, text),
            "upload_slot" | "media_completed" | "download_url" => return crate::media::decode(&ty, text),
            other => return Err(DecodeError::UnknownType(other.chars().take(32).collect())),
        })
    }
}

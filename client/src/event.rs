//! Server frames as the client sees them.

use chatgw_protocol::{GroupId, MessageId, MessageKind, UserId};
use serde::Deserialize;

use crate::ClientError;

/// A delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEvent {
    /// Server id (and inbox event id).
    pub id: MessageId,
    /// Sender.
    pub from: UserId,
    /// Recipient (direct messages).
    pub to: Option<UserId>,
    /// Group (group messages).
    pub group: Option<GroupId>,
    /// Kind.
    pub kind: MessageKind,
    /// Sender's client id.
    pub client_id: String,
    /// Commit time, Unix milliseconds.
    pub ts: u64,
    /// The body, decoded.
    pub body: String,
}

/// A receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptEvent {
    /// Event id.
    pub event: MessageId,
    /// `delivered` or `read`.
    pub status: String,
    /// Who received or read (zero in batched group receipts: see `items`).
    pub by: UserId,
    /// Delivered message ids (for `delivered`).
    pub ids: Vec<MessageId>,
    /// Read up to (for `read`).
    pub up_to: Option<MessageId>,
    /// The direct conversation's other user, as this device's user sees it.
    pub peer: Option<UserId>,
    /// The group, for group receipts.
    pub group: Option<GroupId>,
    /// Group receipts: who acknowledged which of your messages, batched.
    pub items: Vec<(UserId, Vec<MessageId>)>,
    /// When, Unix milliseconds.
    pub at: u64,
}

/// Something the server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// First frame of a connection.
    Welcome {
        /// Authenticated user.
        user: UserId,
    },
    /// A message is durable.
    Sent {
        /// The client id it was sent with.
        client_id: String,
        /// Server id.
        id: MessageId,
        /// It had been stored before (a resend).
        duplicate: bool,
    },
    /// A message for this device.
    Message(MessageEvent),
    /// A receipt for this device.
    Receipt(ReceiptEvent),
    /// Sync finished: the device has everything up to `cursor`.
    Synced {
        /// Cursor.
        cursor: MessageId,
    },
    /// One history page, newest first.
    History {
        /// Messages.
        messages: Vec<MessageEvent>,
        /// Older pages exist.
        more: bool,
    },
    /// A group's membership (reply to group requests).
    Group {
        /// The group.
        id: GroupId,
        /// Name.
        name: String,
        /// Members: user and whether an admin.
        members: Vec<(UserId, bool)>,
        /// The request id of a `create_group`.
        reference: Option<String>,
    },
    /// Delivery details of one of your group messages.
    MessageInfo {
        /// The message.
        msg: MessageId,
        /// Members it was meant for.
        recipients: usize,
        /// Who received it, when.
        delivered: Vec<(UserId, u64)>,
        /// Who read it, when.
        read: Vec<(UserId, u64)>,
    },
    /// A refused request.
    Error {
        /// Stable error code.
        code: String,
        /// Human-readable reason.
        message: String,
        /// Client id of the refused send, if any.
        reference: Option<String>,
    },
    /// The server closed the WebSocket.
    Closed {
        /// Close code.
        code: u16,
        /// Reason.
        reason: String,
    },
}

#[derive(Deserialize)]
struct RawMessage {
    msg: MessageId,
    from: UserId,
    to: Option<UserId>,
    group: Option<GroupId>,
    kind: String,
    cid: String,
    ts: u64,
    body: String,
}

impl RawMessage {
    fn into_event(self) -> Result<MessageEvent, ClientError> {
        Ok(MessageEvent {
            id: self.msg,
            from: self.from,
            to: self.to,
            group: self.group,
            kind: MessageKind::from_name(&self.kind)
                .ok_or_else(|| ClientError::Unexpected(format!("kind {}", self.kind)))?,
            client_id: self.cid,
            ts: self.ts,
            body: self.body,
        })
    }
}

#[derive(Deserialize)]
struct RawItem {
    by: UserId,
    ids: Vec<MessageId>,
}

#[derive(Deserialize)]
struct RawMember {
    user: UserId,
    admin: bool,
}

#[derive(Deserialize)]
struct RawWho {
    user: UserId,
    at: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Raw {
    Welcome {
        user: UserId,
    },
    Sent {
        id: String,
        msg: MessageId,
        duplicate: bool,
    },
    Message(RawMessage),
    Receipt {
        event: MessageId,
        status: String,
        by: Option<UserId>,
        #[serde(default)]
        ids: Vec<MessageId>,
        up_to: Option<MessageId>,
        peer: Option<UserId>,
        group: Option<GroupId>,
        #[serde(default)]
        items: Vec<RawItem>,
        at: u64,
    },
    Group {
        group: GroupId,
        name: String,
        members: Vec<RawMember>,
        #[serde(rename = "ref")]
        reference: Option<String>,
    },
    MessageInfo {
        msg: MessageId,
        recipients: usize,
        delivered: Vec<RawWho>,
        read: Vec<RawWho>,
    },
    Synced {
        cursor: MessageId,
    },
    History {
        messages: Vec<RawMessage>,
        more: bool,
    },
    Error {
        code: String,
        message: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
    },
}

impl Event {
    /// Parse one server text frame.
    pub fn parse(text: &str) -> Result<Event, ClientError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| ClientError::Unexpected(format!("{e}: {text}")))?;
        Ok(match raw {
            Raw::Welcome { user } => Event::Welcome { user },
            Raw::Sent { id, msg, duplicate } => Event::Sent { client_id: id, id: msg, duplicate },
            Raw::Message(m) => Event::Message(m.into_event()?),
            Raw::Receipt { event, status, by, ids, up_to, peer, group, items, at } => Event::Receipt(ReceiptEvent {
                event,
                status,
                by: by.unwrap_or_default(),
                ids,
                up_to,
                peer,
                group,
                items: items.into_iter().map(|i| (i.by, i.ids)).collect(),
                at,
            }),
            Raw::Group { group, name, members, reference } => Event::Group {
                id: group,
                name,
                members: members.into_iter().map(|m| (m.user, m.admin)).collect(),
                reference,
            },
            Raw::MessageInfo { msg, recipients, delivered, read } => Event::MessageInfo {
                msg,
                recipients,
                delivered: delivered.into_iter().map(|w| (w.user, w.at)).collect(),
                read: read.into_iter().map(|w| (w.user, w.at)).collect(),
            },
            Raw::Synced { cursor } => Event::Synced { cursor },
            Raw::History { messages, more } => Event::History {
                messages: messages.into_iter().map(RawMessage::into_event).collect::<Result<_, _>>()?,
                more,
            },
            Raw::Error { code, message, reference } => Event::Error { code, message, reference },
        })
    }

    /// The inbox position this event moves the device's cursor to.
    pub fn cursor_id(&self) -> Option<MessageId> {
        match self {
            Event::Message(m) => Some(m.id),
            Event::Receipt(r) => Some(r.event),
            Event::Synced { cursor } => Some(*cursor),
            _ => None,
        }
    }
}

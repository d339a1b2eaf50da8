//! Server frames as the client sees them: the protocol crate's typed
//! decoder ([`ServerFrame::parse`]), flattened into the events tests and the
//! chat CLI match on, with bodies decoded to text.

use chatgw_protocol::{
    AmendKind, ConversationId, ConversationRef, DeviceInfo, GroupId, Message, MessageId, MessageKind, PresenceState,
    ReceiptFrame, ServerFrame, TypingState, UserId,
};

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
    /// The body, decoded (empty once deleted).
    pub body: String,
    /// When it was last edited (Unix milliseconds), if it was.
    pub edited_at: Option<u64>,
    /// When it was deleted for everyone (Unix milliseconds), if it was.
    pub deleted_at: Option<u64>,
    /// When this user deleted it for themselves only (Unix milliseconds),
    /// if they did: shown to them without a body.
    pub hidden_at: Option<u64>,
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
    /// A message was edited or deleted for everyone: the message as it is
    /// now; with `reply`, the answer to this connection's own `delete` or
    /// `edit` (not an inbox event: it moves no cursor).
    Amended {
        /// Event id.
        event: MessageId,
        /// The message as it is now.
        message: MessageEvent,
        /// The answer to this connection's own request.
        reply: bool,
    },
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
        /// Description (empty when unset).
        description: String,
        /// Only admins may send while this is on.
        admins_only: bool,
        /// Admins may delete members' messages for everyone while this is on.
        admins_can_delete: bool,
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
    /// A page of your conversation list, most recent first (the answer to
    /// `conversations`); `next` is the cursor for the following page.
    Conversations {
        /// The conversations of this page.
        items: Vec<chatgw_protocol::ConversationItem>,
        /// Pass to [`Client::conversations`](crate::Client::conversations)
        /// as `before` for the next page; `None` on the last page.
        next: Option<MessageId>,
    },
    /// Your block list (the answer to `block`, `unblock` and `blocks`).
    Blocks {
        /// Blocked users, ascending.
        users: Vec<UserId>,
    },
    /// Whom you take direct messages from (the answer to
    /// `set_direct_from` and `direct_from`).
    DirectFrom {
        /// Everyone, or contacts only.
        from: chatgw_protocol::DirectFrom,
    },
    /// Your named devices (the answer to `devices`).
    Devices {
        /// In name order.
        devices: Vec<DeviceInfo>,
    },
    /// A device of yours was logged out (the answer to `logout_device`).
    LoggedOut {
        /// Its name.
        device: String,
    },
    /// Your device's push target was registered (the answer to
    /// `register_push`).
    PushRegistered {
        /// The device.
        device: String,
        /// Who delivers its notifications now.
        provider: chatgw_protocol::PushProvider,
    },
    /// Your device has no push target now (the answer to
    /// `unregister_push`).
    PushUnregistered {
        /// The device.
        device: String,
    },
    /// Your device's one-time keys left (the answer to `upload_keys` and
    /// `key_count`).
    KeyCount {
        /// The device.
        device: String,
        /// One-time keys left.
        one_time_keys: u64,
    },
    /// A user's key bundles (the answer to `fetch_keys`).
    Keys {
        /// Whose.
        user: UserId,
        /// A bundle per device; `one_time_key` `None` means use the
        /// fallback key.
        devices: Vec<chatgw_protocol::KeyBundle>,
    },
    /// An inbox event: `user`'s devices with keys, or a device's
    /// identity, changed. Sessions with that user's devices may be stale:
    /// fetch their keys again before the next encrypted message to them.
    KeysChanged {
        /// Event id.
        event: MessageId,
        /// Whose keys changed (a contact, or this user).
        user: UserId,
    },
    /// An upload slot (the answer to `upload_media`): `PUT` part `i` of
    /// the file to `parts[i]`, then `complete_media`.
    UploadSlot(chatgw_protocol::UploadSlotFrame),
    /// An upload is complete and downloadable (the answer to
    /// `complete_media`).
    MediaCompleted {
        /// The request id.
        request_id: String,
        /// The media id.
        media: String,
    },
    /// A download URL (the answer to `download_media`).
    DownloadUrl {
        /// The request id.
        request_id: String,
        /// The media id.
        media: String,
        /// `GET` this; `Range` requests allowed.
        url: String,
        /// When it stops working, Unix milliseconds.
        expires: u64,
    },
    /// A watched user's presence changed.
    Presence {
        /// The user.
        user: UserId,
        /// Online, offline (with the last seen time) or hidden.
        state: PresenceState,
    },
    /// The answer to a presence subscription: every other member now.
    PresenceList {
        /// The conversation.
        conversation: ConversationRef,
        /// Each member and their presence, ascending by user.
        users: Vec<(UserId, PresenceState)>,
    },
    /// The answer to `set_presence`.
    PresenceSet {
        /// Whether others see your presence now.
        visible: bool,
    },
    /// Another member is typing (or stopped) in a conversation.
    Typing {
        /// The member.
        from: UserId,
        /// The conversation (a direct one names `from`).
        conversation: ConversationRef,
        /// Typing or paused.
        state: TypingState,
        /// Seconds after which `typing` lapses unless repeated.
        expires_in: u32,
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

impl MessageEvent {
    fn from_protocol(m: Message, frame: &'static str) -> Result<Self, ClientError> {
        let at = |kind| m.amended.filter(|a| a.kind == kind).map(|a| a.at());
        let (edited_at, deleted_at, hidden_at) = (at(AmendKind::Edited), at(AmendKind::Deleted), at(AmendKind::Hidden));
        let body = match deleted_at.or(hidden_at) {
            Some(_) => String::new(),
            None => m.body_text().map_err(|e| ClientError::Unexpected(format!("{frame}: {e}")))?,
        };
        let (to, group) = match m.conversation {
            ConversationId::Direct { .. } => (Some(m.conversation.peer_of(m.from).unwrap_or(m.from)), None),
            ConversationId::Group(g) => (None, Some(g)),
        };
        Ok(MessageEvent {
            id: m.id,
            from: m.from,
            to,
            group,
            kind: m.kind,
            client_id: m.client_id,
            ts: m.ts,
            body,
            edited_at,
            deleted_at,
            hidden_at,
        })
    }
}

impl From<ReceiptFrame> for ReceiptEvent {
    fn from(r: ReceiptFrame) -> Self {
        fn name(c: ConversationRef) -> (Option<UserId>, Option<GroupId>) {
            match c {
                ConversationRef::Peer(p) => (Some(p), None),
                ConversationRef::Group(g) => (None, Some(g)),
            }
        }
        let empty = ReceiptEvent {
            event: r.event(),
            status: String::new(),
            by: UserId::default(),
            ids: Vec::new(),
            up_to: None,
            peer: None,
            group: None,
            items: Vec::new(),
            at: 0,
        };
        match r {
            ReceiptFrame::Delivered { by, conversation, ids, at, .. } => {
                let (peer, group) = name(conversation);
                ReceiptEvent { status: "delivered".into(), by, ids, peer, group, at, ..empty }
            }
            ReceiptFrame::Read { by, conversation, up_to, at, .. } => {
                let (peer, group) = name(conversation);
                ReceiptEvent { status: "read".into(), by, up_to: Some(up_to), peer, group, at, ..empty }
            }
            ReceiptFrame::Group { group, status, items, at, .. } => {
                ReceiptEvent { status: status.as_str().into(), group: Some(group), items, at, ..empty }
            }
        }
    }
}

impl Event {
    /// Parse one server text frame (with the protocol crate's decoder).
    pub fn parse(text: &str) -> Result<Event, ClientError> {
        let frame = ServerFrame::parse(text).map_err(|e| ClientError::Unexpected(format!("{e}: {text}")))?;
        Ok(match frame {
            ServerFrame::Welcome(w) => Event::Welcome { user: w.user },
            ServerFrame::Sent(s) => Event::Sent { client_id: s.client_id, id: s.msg, duplicate: s.duplicate },
            ServerFrame::Message(m) => Event::Message(MessageEvent::from_protocol(m, "message")?),
            ServerFrame::Receipt(r) => Event::Receipt(r.into()),
            ServerFrame::Amended { event, message, reply } => {
                Event::Amended { event, message: MessageEvent::from_protocol(message, "amended")?, reply }
            }
            ServerFrame::Group { group, reference } => Event::Group {
                id: group.id,
                name: group.name,
                description: group.description,
                admins_only: group.admins_only,
                admins_can_delete: group.admins_can_delete,
                members: group.members.into_iter().map(|m| (m.user, m.admin)).collect(),
                reference,
            },
            ServerFrame::MessageInfo(i) => {
                Event::MessageInfo { msg: i.msg, recipients: i.recipients, delivered: i.delivered, read: i.read }
            }
            ServerFrame::Synced { cursor } => Event::Synced { cursor },
            ServerFrame::Blocks { users } => Event::Blocks { users },
            ServerFrame::DirectFrom { from } => Event::DirectFrom { from },
            ServerFrame::Devices { devices } => Event::Devices { devices },
            ServerFrame::LoggedOut { device } => Event::LoggedOut { device },
            ServerFrame::PushRegistered { device, provider } => Event::PushRegistered { device, provider },
            ServerFrame::PushUnregistered { device } => Event::PushUnregistered { device },
            ServerFrame::KeyCount { device, one_time_keys } => Event::KeyCount { device, one_time_keys },
            ServerFrame::Keys { user, devices } => Event::Keys { user, devices },
            ServerFrame::KeysChanged { event, user } => Event::KeysChanged { event, user },
            ServerFrame::UploadSlot(slot) => Event::UploadSlot(slot),
            ServerFrame::MediaCompleted { request_id, media } => Event::MediaCompleted { request_id, media },
            ServerFrame::DownloadUrl { request_id, media, url, expires } => {
                Event::DownloadUrl { request_id, media, url, expires }
            }
            ServerFrame::Conversations(page) => Event::Conversations { items: page.items, next: page.next },
            ServerFrame::Presence { user, state } => Event::Presence { user, state },
            ServerFrame::PresenceList { conversation, users } => Event::PresenceList { conversation, users },
            ServerFrame::PresenceSet { visible } => Event::PresenceSet { visible },
            ServerFrame::Typing { from, conversation, state, expires_in } => {
                Event::Typing { from, conversation, state, expires_in }
            }
            ServerFrame::History(page) => Event::History {
                messages: page
                    .messages
                    .into_iter()
                    .map(|m| MessageEvent::from_protocol(m, "history"))
                    .collect::<Result<_, _>>()?,
                more: page.more,
            },
            ServerFrame::Error(e) => {
                Event::Error { code: e.code.as_str().into(), message: e.message, reference: e.reference }
            }
        })
    }

    /// The cursor this event moves the device to: its event id (the last
    /// event received is where the next `sync` starts).
    pub fn cursor_id(&self) -> Option<MessageId> {
        match self {
            Event::Message(m) => Some(m.id),
            Event::Receipt(r) => Some(r.event),
            Event::Amended { event, reply: false, .. } => Some(*event),
            Event::KeysChanged { event, .. } => Some(*event),
            Event::Synced { cursor } => Some(*cursor),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_bodies_are_decoded_and_direct_messages_name_the_recipient() {
        let text = r#"{"type":"message","event":"9","msg":"9","from":"51","to":"50","kind":"text","ts":1,"cid":"y-2","body":"caf\\u00e9 \u2615"}"#;
        let Event::Message(m) = Event::parse(text).unwrap() else { panic!("not a message") };
        assert_eq!((m.from, m.to, m.group), (UserId(51), Some(UserId(50)), None));
        assert_eq!(m.body, "caf\\u00e9 \u{2615}");
        let own =
            r#"{"type":"message","event":"9","msg":"9","from":"4","to":"4","kind":"text","ts":1,"cid":"n","body":""}"#;
        let Event::Message(m) = Event::parse(own).unwrap() else { panic!("not a message") };
        assert_eq!(m.to, Some(UserId(4)), "notes to self");
    }

    #[test]
    fn receipts_keep_their_shape() {
        let batched =
            r#"{"type":"receipt","event":"12","status":"read","group":"5","items":[{"by":"1","ids":["3"]}],"at":8}"#;
        let Event::Receipt(r) = Event::parse(batched).unwrap() else { panic!("not a receipt") };
        assert_eq!((r.status.as_str(), r.by, r.group), ("read", UserId(0), Some(GroupId(5))));
        assert_eq!(r.items, vec![(UserId(1), vec![MessageId(3)])]);
        let direct = r#"{"type":"receipt","event":"10","status":"delivered","by":"2","peer":"2","ids":["7"],"at":5}"#;
        let ev = Event::parse(direct).unwrap();
        assert_eq!(ev.cursor_id(), Some(MessageId(10)));
        let Event::Receipt(r) = ev else { panic!("not a receipt") };
        assert_eq!((r.by, r.peer, r.ids), (UserId(2), Some(UserId(2)), vec![MessageId(7)]));
    }

    #[test]
    fn errors_keep_their_code_and_junk_is_unexpected() {
        let e = Event::parse(r#"{"type":"error","code":"bad_field","message":"x","ref":"c-2"}"#).unwrap();
        assert_eq!(e, Event::Error { code: "bad_field".into(), message: "x".into(), reference: Some("c-2".into()) });
        assert!(matches!(Event::parse("[]"), Err(ClientError::Unexpected(_))));
    }
}

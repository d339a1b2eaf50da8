//! Server frames, written straight to JSON bytes.
//!
//! Encoders append to a caller's `Vec<u8>` so that a frame fanned out to many
//! connections is built once and shared, and so that no intermediate
//! `serde_json::Value` is ever allocated. Bodies are spliced in as the raw
//! JSON string literal the sender wrote.

use std::io::Write as _;

use crate::{ConversationId, DeviceInfo, ErrorCode, Group, GroupId, MessageId, MessageKind, UserId, PROTOCOL_VERSION};

/// A stored message, as the server sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Server id (also the event id in each participant's inbox).
    pub id: MessageId,
    /// Where it was sent.
    pub conversation: ConversationId,
    /// Who sent it.
    pub from: UserId,
    /// What the body is.
    pub kind: MessageKind,
    /// The sender's client id.
    pub client_id: String,
    /// Server time of the commit, Unix milliseconds.
    pub ts: u64,
    /// The body as its raw JSON string literal, quotes included; empty
    /// once the message is deleted.
    pub body: String,
    /// The latest edit or delete, if any.
    pub amended: Option<crate::Amendment>,
}

/// Which receipt a group receipt carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// Reached a device.
    Delivered,
    /// Read.
    Read,
}

impl ReceiptStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Read => "read",
        }
    }
}

/// A receipt event, as the server sends it to the message's sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Receipt {
    /// Messages reached a device of `by`.
    Delivered {
        /// Event id in the receiver's inbox.
        event: MessageId,
        /// The conversation.
        conversation: ConversationId,
        /// Who received them.
        by: UserId,
        /// The messages.
        ids: Vec<MessageId>,
        /// When, Unix milliseconds.
        at: u64,
    },
    /// `by` read the conversation up to `up_to`.
    Read {
        /// Event id in the receiver's inbox.
        event: MessageId,
        /// The conversation.
        conversation: ConversationId,
        /// Who read.
        by: UserId,
        /// Last message read.
        up_to: MessageId,
        /// When, Unix milliseconds.
        at: u64,
    },
    /// Receipts of several group members for one sender's messages,
    /// batched: one event however many members acknowledged together.
    Group {
        /// Event id in the sender's inbox.
        event: MessageId,
        /// The group.
        group: GroupId,
        /// Delivered or read.
        status: ReceiptStatus,
        /// Who, and which of the sender's messages.
        items: Vec<(UserId, Vec<MessageId>)>,
        /// When, Unix milliseconds.
        at: u64,
    },
}

impl Receipt {
    /// The event id.
    pub fn event(&self) -> MessageId {
        match self {
            Receipt::Delivered { event, .. } | Receipt::Read { event, .. } | Receipt::Group { event, .. } => *event,
        }
    }
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn conversation_fields(out: &mut Vec<u8>, conversation: &ConversationId, from: UserId) {
    match *conversation {
        ConversationId::Direct { .. } => {
            let to = conversation.peer_of(from).unwrap_or(from);
            let _ = write!(out, r#","from":"{from}","to":"{to}""#);
        }
        ConversationId::Group(g) => {
            let _ = write!(out, r#","from":"{from}","group":"{g}""#);
        }
    }
}

pub(crate) fn message_fields(out: &mut Vec<u8>, m: &Message) {
    let _ = write!(out, r#""msg":"{}""#, m.id);
    conversation_fields(out, &m.conversation, m.from);
    let _ = write!(out, r#","kind":"{}","ts":{},"cid":"#, m.kind.as_str(), m.ts);
    // A system message's client id is the server's own idempotency key.
    json_str(out, if m.kind == MessageKind::System { "" } else { &m.client_id });
    if let Some(a) = &m.amended {
        crate::amend::write_mark(out, a);
        if matches!(a.kind, crate::AmendKind::Deleted | crate::AmendKind::Hidden) {
            return;
        }
    }
    out.extend_from_slice(br#","body":"#);
    out.extend_from_slice(m.body.as_bytes());
}

pub use crate::amend::amended;

/// `{"type":"welcome",...}`: first frame on a new connection.
pub fn welcome(out: &mut Vec<u8>, user: UserId, max_body: usize, max_frame: usize) {
    let _ = write!(
        out,
        r#"{{"type":"welcome","protocol":{PROTOCOL_VERSION},"user":"{user}","max_body":{max_body},"max_frame":{max_frame}}}"#
    );
}

/// `{"type":"sent",...}`: the message is durable.
pub fn sent(out: &mut Vec<u8>, client_id: &str, id: MessageId, ts: u64, duplicate: bool) {
    out.extend_from_slice(br#"{"type":"sent","id":"#);
    json_str(out, client_id);
    let _ = write!(out, r#","msg":"{id}","ts":{ts},"duplicate":{duplicate}}}"#);
}

/// `{"type":"message",...}`: a message for one of the user's devices.
pub fn message(out: &mut Vec<u8>, m: &Message) {
    out.extend_from_slice(br#"{"type":"message","event":""#);
    let _ = write!(out, "{}\",", m.id);
    message_fields(out, m);
    out.push(b'}');
}

fn id_list(out: &mut Vec<u8>, ids: &[MessageId]) {
    out.push(b'[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "\"{id}\"");
    }
    out.push(b']');
}

/// Name the conversation as `viewer` sees it: `group`, or `peer` (the other user).
fn conversation_name(out: &mut Vec<u8>, conversation: &ConversationId, viewer: UserId) {
    match conversation {
        ConversationId::Group(g) => {
            let _ = write!(out, r#","group":"{g}""#);
        }
        ConversationId::Direct { .. } => {
            let peer = conversation.peer_of(viewer).unwrap_or(viewer);
            let _ = write!(out, r#","peer":"{peer}""#);
        }
    }
}

/// `{"type":"receipt",...}` for the inbox of `viewer`.
pub fn receipt(out: &mut Vec<u8>, r: &Receipt, viewer: UserId) {
    match r {
        Receipt::Delivered { event, conversation, by, ids, at } => {
            let _ = write!(out, r#"{{"type":"receipt","event":"{event}","status":"delivered","by":"{by}""#);
            conversation_name(out, conversation, viewer);
            out.extend_from_slice(br#","ids":"#);
            id_list(out, ids);
            let _ = write!(out, r#","at":{at}}}"#);
        }
        Receipt::Read { event, conversation, by, up_to, at } => {
            let _ = write!(out, r#"{{"type":"receipt","event":"{event}","status":"read","by":"{by}""#);
            conversation_name(out, conversation, viewer);
            let _ = write!(out, r#","up_to":"{up_to}","at":{at}}}"#);
        }
        Receipt::Group { event, group, status, items, at } => {
            let _ = write!(
                out,
                r#"{{"type":"receipt","event":"{event}","status":"{}","group":"{group}","items":["#,
                status.as_str()
            );
            for (i, (by, ids)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(out, r#"{{"by":"{by}","ids":"#);
                id_list(out, ids);
                out.push(b'}');
            }
            let _ = write!(out, r#"],"at":{at}}}"#);
        }
    }
}

/// `{"type":"synced","cursor":...}`: the device has every event up to `cursor`.
pub fn synced(out: &mut Vec<u8>, cursor: MessageId) {
    let _ = write!(out, r#"{{"type":"synced","cursor":"{cursor}"}}"#);
}

/// `{"type":"synced","cursor":...,"truncated":true}`: as [`synced`], and
/// events between the `sync`'s cursor and the first event replayed were
/// removed by the inbox retention: the device reloads history.
pub fn synced_truncated(out: &mut Vec<u8>, cursor: MessageId) {
    let _ = write!(out, r#"{{"type":"synced","cursor":"{cursor}","truncated":true}}"#);
}

/// `{"type":"history",...}`: one page of a conversation, newest first, as
/// seen by `viewer` (a direct conversation is named by the other user).
pub fn history(out: &mut Vec<u8>, conversation: &ConversationId, viewer: UserId, messages: &[Message], more: bool) {
    match conversation {
        ConversationId::Group(g) => {
            let _ = write!(out, r#"{{"type":"history","group":"{g}","messages":["#);
        }
        ConversationId::Direct { .. } => {
            let peer = conversation.peer_of(viewer).unwrap_or(viewer);
            let _ = write!(out, r#"{{"type":"history","peer":"{peer}","messages":["#);
        }
    }
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        message_fields(out, m);
        out.push(b'}');
    }
    let _ = write!(out, r#"],"more":{more}}}"#);
}

/// `{"type":"group",...}`: a group's name, description, send mode,
/// members and admins.
pub fn group(out: &mut Vec<u8>, g: &Group, reference: Option<&str>) {
    let _ = write!(out, r#"{{"type":"group","group":"{}","name":"#, g.id);
    json_str(out, &g.name);
    out.extend_from_slice(br#","description":"#);
    json_str(out, &g.description);
    let _ = write!(
        out,
        r#","admins_only":{},"admins_can_delete":{},"created_by":"{}","members":["#,
        g.admins_only, g.admins_can_delete, g.created_by
    );
    for (i, m) in g.members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, r#"{{"user":"{}","admin":{},"joined":"{}"}}"#, m.user, m.admin, m.joined);
    }
    out.push(b']');
    if let Some(r) = reference {
        out.extend_from_slice(br#","ref":"#);
        json_str(out, r);
    }
    out.push(b'}');
}

/// `{"type":"message_info",...}`: who a group message reached and who read it.
pub fn message_info(
    out: &mut Vec<u8>,
    group: GroupId,
    msg: MessageId,
    delivered: &[(UserId, u64)],
    read: &[(UserId, u64)],
    recipients: usize,
) {
    let list = |out: &mut Vec<u8>, xs: &[(UserId, u64)]| {
        out.push(b'[');
        for (i, (u, at)) in xs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write!(out, r#"{{"user":"{u}","at":{at}}}"#);
        }
        out.push(b']');
    };
    let _ = write!(
        out,
        r#"{{"type":"message_info","group":"{group}","msg":"{msg}","recipients":{recipients},"delivered_count":{},"read_count":{},"delivered":"#,
        delivered.len(),
        read.len()
    );
    list(out, delivered);
    out.extend_from_slice(br#","read":"#);
    list(out, read);
    out.push(b'}');
}

/// `{"type":"blocks","users":[...]}`: the requester's block list, the
/// answer to `block`, `unblock` and `blocks` alike.
pub fn blocks(out: &mut Vec<u8>, users: &[UserId]) {
    out.extend_from_slice(br#"{"type":"blocks","users":["#);
    for (i, u) in users.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, r#""{u}""#);
    }
    out.extend_from_slice(b"]}");
}

/// `{"type":"devices","devices":[...]}`: the requester's named devices
/// (docs/PROTOCOL.md, "Devices").
pub fn devices(out: &mut Vec<u8>, devices: &[DeviceInfo]) {
    out.extend_from_slice(br#"{"type":"devices","devices":["#);
    for (i, d) in devices.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"device":"#);
        json_str(out, &d.device);
        let _ = write!(out, r#","first_seen":{},"last_active":{},"revoked_at":"#, d.first_seen, d.last_active);
        match d.revoked_at {
            Some(at) => {
                let _ = write!(out, "{at}");
            }
            None => out.extend_from_slice(b"null"),
        }
        let _ = write!(out, r#","current":{}}}"#, d.current);
    }
    out.extend_from_slice(b"]}");
}

/// `{"type":"logged_out","device":...}`: the answer to `logout_device`.
pub fn logged_out(out: &mut Vec<u8>, device: &str) {
    out.extend_from_slice(br#"{"type":"logged_out","device":"#);
    json_str(out, device);
    out.push(b'}');
}

/// One entry of a `conversations` page, as the gateway has read it.
#[derive(Clone, Copy, Debug)]
pub struct ConversationEntry<'a> {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its last message as stored, `None` if the store no longer holds it.
    pub last: Option<&'a Message>,
    /// The viewer's unread count.
    pub unread: u64,
    /// For a group: its record, if it exists.
    pub group: Option<&'a Group>,
}

/// `{"type":"conversations","conversations":[...],"next":...}`: one page of
/// `viewer`'s conversation list, most recent first. `next` is the cursor
/// for the following page (`null` on the last).
pub fn conversations(out: &mut Vec<u8>, viewer: UserId, items: &[ConversationEntry<'_>], next: Option<MessageId>) {
    out.extend_from_slice(br#"{"type":"conversations","conversations":["#);
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        match e.conversation {
            ConversationId::Group(g) => {
                let _ = write!(out, r#""group":"{g}""#);
                if let Some(grp) = e.group {
                    out.extend_from_slice(br#","name":"#);
                    json_str(out, &grp.name);
                    let _ = write!(out, r#","members":{},"member":{}"#, grp.members.len(), grp.is_member(viewer));
                }
            }
            ConversationId::Direct { .. } => {
                let peer = e.conversation.peer_of(viewer).unwrap_or(viewer);
                let _ = write!(out, r#""peer":"{peer}""#);
            }
        }
        let _ = write!(out, r#","unread":{},"last":"#, e.unread);
        match e.last {
            Some(m) => {
                out.push(b'{');
                message_fields(out, m);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    match next {
        Some(n) => {
            let _ = write!(out, r#"],"next":"{n}"}}"#);
        }
        None => out.extend_from_slice(br#"],"next":null}"#),
    }
}

pub use crate::presence::server_frames::{presence, presence_list, presence_set, typing};

/// `{"type":"error",...}`.
pub fn error(out: &mut Vec<u8>, code: ErrorCode, message: &str, reference: Option<&str>) {
    let _ = write!(out, r#"{{"type":"error","code":"{code}","message":"#);
    json_str(out, message);
    if let Some(r) = reference {
        out.extend_from_slice(br#","ref":"#);
        json_str(out, r);
    }
    out.push(b'}');
}

/// `{"type":"direct_from","from":"contacts"}`: the answer to
/// `set_direct_from` and `direct_from`.
pub use crate::direct_from::encode_direct_from as direct_from;
/// `{"type":"push_registered",...}` and `{"type":"push_unregistered",...}`:
/// the answers to `register_push` and `unregister_push`.
/// `key_count` and `keys`: the key directory's answers (docs/PROTOCOL.md,
/// "Key directory").
pub use crate::keys::{encode_key_count as key_count, encode_keys as keys, encode_keys_changed as keys_changed};
/// `upload_slot`, `media_completed` and `download_url`: the answers of media
/// by signed URL (docs/MEDIA.md).
pub use crate::media::{
    encode_download_url as download_url, encode_media_completed as media_completed, encode_upload_slot as upload_slot,
};
pub use crate::push::{encode_push_registered as push_registered, encode_push_unregistered as push_unregistered};

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).expect("encoder wrote valid JSON")
    }

    fn sample() -> Message {
        Message {
            id: MessageId(42),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(2),
            kind: MessageKind::Text,
            client_id: "c\"1".into(),
            ts: 1000,
            body: r#""hi \"there\"""#.into(),
            amended: None,
        }
    }

    #[test]
    fn message_frame_is_valid_json_with_ids_as_strings() {
        let mut out = Vec::new();
        message(&mut out, &sample());
        assert_eq!(
            parse(&out),
            json!({"type":"message","event":"42","msg":"42","from":"2","to":"1","kind":"text","ts":1000,"cid":"c\"1","body":"hi \"there\""})
        );
    }

    #[test]
    fn receipts_and_control_frames() {
        let mut out = Vec::new();
        let c = ConversationId::direct(UserId(1), UserId(2));
        receipt(
            &mut out,
            &Receipt::Delivered {
                event: MessageId(9),
                conversation: c,
                by: UserId(2),
                ids: vec![MessageId(7), MessageId(8)],
                at: 5,
            },
            UserId(1),
        );
        assert_eq!(
            parse(&out),
            json!({"type":"receipt","event":"9","status":"delivered","by":"2","peer":"2","ids":["7","8"],"at":5})
        );
        out.clear();
        receipt(
            &mut out,
            &Receipt::Read { event: MessageId(10), conversation: c, by: UserId(2), up_to: MessageId(8), at: 6 },
            UserId(2),
        );
        // The reader's own devices see the conversation named by the other user.
        assert_eq!(
            parse(&out),
            json!({"type":"receipt","event":"10","status":"read","by":"2","peer":"1","up_to":"8","at":6})
        );
        out.clear();
        sent(&mut out, "a", MessageId(3), 4, true);
        assert_eq!(parse(&out), json!({"type":"sent","id":"a","msg":"3","ts":4,"duplicate":true}));
        out.clear();
        error(&mut out, ErrorCode::BadField, "x \"y\"", Some("r"));
        assert_eq!(parse(&out), json!({"type":"error","code":"bad_field","message":"x \"y\"","ref":"r"}));
        out.clear();
        synced(&mut out, MessageId(77));
        assert_eq!(parse(&out), json!({"type":"synced","cursor":"77"}));
        out.clear();
        synced_truncated(&mut out, MessageId(78));
        assert_eq!(parse(&out), json!({"type":"synced","cursor":"78","truncated":true}));
        // A decoder that knows no `truncated` still reads the cursor.
        let decoded = crate::ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(decoded, crate::ServerFrame::Synced { cursor: MessageId(78) });
        out.clear();
        history(&mut out, &ConversationId::direct(UserId(1), UserId(2)), UserId(1), &[sample()], false);
        assert_eq!(parse(&out)["peer"], "2");
        out.clear();
        history(&mut out, &ConversationId::direct(UserId(1), UserId(2)), UserId(1), &[sample()], false);
        assert_eq!(parse(&out)["messages"][0]["msg"], "42");
        out.clear();
        welcome(&mut out, UserId(5), 10, 20);
        assert_eq!(parse(&out)["user"], "5");
        out.clear();
        let g = Group {
            id: GroupId(3),
            name: "T\"eam".into(),
            description: "d".into(),
            admins_only: true,
            admins_can_delete: false,
            created_by: UserId(1),
            members: vec![crate::Member { user: UserId(1), admin: true, joined: MessageId(2) }],
        };
        group(&mut out, &g, Some("r"));
        assert_eq!(
            parse(&out),
            json!({"type":"group","group":"3","name":"T\"eam","description":"d","admins_only":true,"admins_can_delete":false,"created_by":"1","members":[{"user":"1","admin":true,"joined":"2"}],"ref":"r"})
        );
        out.clear();
        receipt(
            &mut out,
            &Receipt::Group {
                event: MessageId(8),
                group: GroupId(3),
                status: ReceiptStatus::Read,
                items: vec![(UserId(4), vec![MessageId(1)]), (UserId(5), vec![MessageId(1), MessageId(2)])],
                at: 9,
            },
            UserId(1),
        );
        assert_eq!(
            parse(&out),
            json!({"type":"receipt","event":"8","status":"read","group":"3","items":[{"by":"4","ids":["1"]},{"by":"5","ids":["1","2"]}],"at":9})
        );
        out.clear();
        message_info(&mut out, GroupId(3), MessageId(1), &[(UserId(4), 10)], &[], 2);
        assert_eq!(
            parse(&out),
            json!({"type":"message_info","group":"3","msg":"1","recipients":2,"delivered_count":1,"read_count":0,"delivered":[{"user":"4","at":10}],"read":[]})
        );
    }
}

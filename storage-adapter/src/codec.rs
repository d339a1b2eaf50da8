//! Byte layouts of keys and values in the embedded store.
//!
//! Keys put integers big-endian so that the engine's byte order is id order:
//! a prefix scan over a user's inbox or a conversation is already sorted.
//! Values are small hand-rolled records (a version byte first) rather than a
//! general serialisation format, because an inbox reference is written for
//! every recipient of every message and each byte counts.

use chatgw_protocol::{
    AmendKind, Amendment, ConversationId, Group, GroupId, Member, Message, MessageId, MessageKind, Receipt,
    ReceiptStatus, Snowflake, UserId,
};

use crate::{GroupVersion, MessageHeader, StoreError};

const MESSAGE_V1: u8 = 1;
const INBOX_MESSAGE: u8 = b'm';
const INBOX_DELIVERED: u8 = b'd';
const INBOX_READ: u8 = b'r';
const INBOX_GROUP_RECEIPT: u8 = b'G';
/// An `amended` event: a reference to the edited or deleted message,
/// resolved to the message as it is when read (so an old edit event never
/// shows a body deleted since).
const INBOX_AMENDED: u8 = b'A';
/// An `amended` event in the inbox of a user who hid a message from
/// themselves: the same reference, read as the message's hidden form.
const INBOX_HIDDEN: u8 = b'H';
/// A `keys_changed` event: the tag, then the user whose keys changed.
const INBOX_KEYS_CHANGED: u8 = b'K';
/// Opens a stored body that was amended: `~e<event>:<literal>` after an
/// edit, `~d<event>` after a delete for everyone. A body as sent is a JSON
/// string literal and so always opens with `"`: the two never mix up, and
/// messages stored before amendments existed need no rewriting.
const AMENDED_BODY: char = '~';
/// A group record of name, creator and members.
const GROUP_V1: u8 = 1;
/// A group record that also holds a description and the admins-only mode.
/// Every record is now written in this form; V1 records still read (with
/// no description and the mode off), so no stored record needs rewriting.
const GROUP_V2: u8 = 2;
/// A V2 record followed by the admins-can-delete setting (a byte after the
/// admins-only mode). V1 and V2 records read with the setting off.
const GROUP_V3: u8 = 3;

/// A conversation key as an owned small buffer.
pub(crate) fn conv_key(c: &ConversationId) -> Vec<u8> {
    let (k, n) = c.to_key();
    k[..n].to_vec()
}

pub(crate) fn message_key(c: &ConversationId, id: MessageId) -> Vec<u8> {
    let mut k = conv_key(c);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

pub(crate) fn inbox_key(user: UserId, id: MessageId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&user.0.to_be_bytes());
    k[8..].copy_from_slice(&id.0.to_be_bytes());
    k
}

pub(crate) fn idempotency_key(from: UserId, client_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + client_id.len());
    k.extend_from_slice(&from.0.to_be_bytes());
    k.extend_from_slice(client_id.as_bytes());
    k
}

pub(crate) fn delivered_key(c: &ConversationId, id: MessageId, user: UserId) -> Vec<u8> {
    let mut k = message_key(c, id);
    k.extend_from_slice(&user.0.to_be_bytes());
    k
}

/// A hidden mark's key: user, then the message key, so one user's marks
/// sit together.
pub(crate) fn hidden_key(user: UserId, c: &ConversationId, id: MessageId) -> Vec<u8> {
    let mut k = user.0.to_be_bytes().to_vec();
    k.extend_from_slice(&message_key(c, id));
    k
}

pub(crate) fn read_key(c: &ConversationId, user: UserId) -> Vec<u8> {
    let mut k = conv_key(c);
    k.extend_from_slice(&user.0.to_be_bytes());
    k
}

/// The message id at the end of a message key.
pub(crate) fn id_from_message_key(k: &[u8]) -> Option<MessageId> {
    let tail = k.len().checked_sub(8)?;
    Some(MessageId(u64::from_be_bytes(k.get(tail..)?.try_into().ok()?)))
}

pub(crate) fn encode_message(m: &Message) -> Vec<u8> {
    let cid = m.client_id.as_bytes();
    let mut v = Vec::with_capacity(11 + cid.len() + m.body.len());
    v.push(MESSAGE_V1);
    v.extend_from_slice(&m.from.0.to_be_bytes());
    v.push(m.kind.to_u8());
    // Client ids are at most 64 bytes (protocol limit), so one byte holds the length.
    v.push(cid.len().min(255) as u8);
    v.extend_from_slice(&cid[..cid.len().min(255)]);
    v.extend_from_slice(stored_body(m).as_bytes());
    v
}

/// A message's body as every backend stores it: the literal as sent, or
/// after an amendment the amendment marker (see [`AMENDED_BODY`]) and the
/// literal left (none after a delete).
pub(crate) fn stored_body(m: &Message) -> std::borrow::Cow<'_, str> {
    match m.amended {
        // A hidden form is one user's view, never stored as the message.
        None | Some(Amendment { kind: AmendKind::Hidden, .. }) => std::borrow::Cow::Borrowed(&m.body),
        Some(Amendment { kind: AmendKind::Edited, event }) => format!("{AMENDED_BODY}e{event}:{}", m.body).into(),
        Some(Amendment { kind: AmendKind::Deleted, event }) => format!("{AMENDED_BODY}d{event}").into(),
    }
}

/// The body and amendment of a stored body (the inverse of [`stored_body`]).
pub(crate) fn read_body(stored: String) -> Result<(String, Option<Amendment>), StoreError> {
    let corrupt = || StoreError::Corrupt { table: "messages", what: "bad amended body" };
    let Some(rest) = stored.strip_prefix(AMENDED_BODY) else { return Ok((stored, None)) };
    let (kind, rest) = match rest.as_bytes().first() {
        Some(b'e') => (AmendKind::Edited, &rest[1..]),
        Some(b'd') => (AmendKind::Deleted, &rest[1..]),
        _ => return Err(corrupt()),
    };
    let (event, body) = match kind {
        AmendKind::Edited => rest.split_once(':').ok_or_else(corrupt)?,
        AmendKind::Deleted | AmendKind::Hidden => (rest, ""),
    };
    let event = MessageId(event.parse().map_err(|_| corrupt())?);
    Ok((body.to_owned(), Some(Amendment { kind, event })))
}

pub(crate) fn decode_message(conversation: ConversationId, id: MessageId, v: &[u8]) -> Result<Message, StoreError> {
    let corrupt = |what| StoreError::Corrupt { table: "messages", what };
    let mut r = Reader(v);
    if r.u8() != Some(MESSAGE_V1) {
        return Err(corrupt("unknown record version"));
    }
    let from = UserId(r.u64().ok_or(corrupt("truncated sender"))?);
    let kind = r.u8().and_then(MessageKind::from_u8).ok_or(corrupt("bad kind"))?;
    let cid_len = usize::from(r.u8().ok_or(corrupt("truncated client id"))?);
    let cid = r.take(cid_len).ok_or(corrupt("truncated client id"))?;
    let client_id = String::from_utf8(cid.to_vec()).map_err(|_| corrupt("client id not UTF-8"))?;
    let body = String::from_utf8(r.0.to_vec()).map_err(|_| corrupt("body not UTF-8"))?;
    let (body, amended) = read_body(body)?;
    Ok(Message { id, conversation, from, kind, client_id, ts: Snowflake::unix_ms(id), body, amended })
}

/// The sender and kind of a stored message, read from the head of its
/// record without copying the client id or the body.
pub(crate) fn decode_message_header(id: MessageId, v: &[u8]) -> Result<MessageHeader, StoreError> {
    let corrupt = |what| StoreError::Corrupt { table: "messages", what };
    let mut r = Reader(v);
    if r.u8() != Some(MESSAGE_V1) {
        return Err(corrupt("unknown record version"));
    }
    let from = UserId(r.u64().ok_or(corrupt("truncated sender"))?);
    let kind = r.u8().and_then(MessageKind::from_u8).ok_or(corrupt("bad kind"))?;
    Ok(MessageHeader { id, from, kind })
}

/// The reference layout: the commit writes [`records`]`::inbox_message`.
#[cfg(test)]
pub(crate) fn encode_inbox_message(c: &ConversationId) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + ConversationId::MAX_KEY_LEN);
    v.push(INBOX_MESSAGE);
    v.extend_from_slice(&conv_key(c));
    v
}

/// An `amended` inbox event: the conversation and id of the message.
pub(crate) fn encode_amended(c: &ConversationId, id: MessageId) -> Vec<u8> {
    encode_reference(INBOX_AMENDED, c, id)
}

/// The `amended` event of a hide, in the hiding user's inbox.
pub(crate) fn encode_hidden(c: &ConversationId, id: MessageId) -> Vec<u8> {
    encode_reference(INBOX_HIDDEN, c, id)
}

fn encode_reference(tag: u8, c: &ConversationId, id: MessageId) -> Vec<u8> {
    let k = conv_key(c);
    let mut v = Vec::with_capacity(2 + k.len() + 8);
    v.push(tag);
    v.push(k.len() as u8);
    v.extend_from_slice(&k);
    v.extend_from_slice(&id.0.to_be_bytes());
    v
}

pub(crate) fn encode_receipt(r: &Receipt) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    let put_conv = |v: &mut Vec<u8>, c: &ConversationId| {
        let k = conv_key(c);
        v.push(k.len() as u8);
        v.extend_from_slice(&k);
    };
    match r {
        Receipt::Delivered { conversation, by, ids, at, .. } => {
            v.push(INBOX_DELIVERED);
            put_conv(&mut v, conversation);
            v.extend_from_slice(&by.0.to_be_bytes());
            v.extend_from_slice(&at.to_be_bytes());
            for id in ids {
                v.extend_from_slice(&id.0.to_be_bytes());
            }
        }
        Receipt::Read { conversation, by, up_to, at, .. } => {
            v.push(INBOX_READ);
            put_conv(&mut v, conversation);
            v.extend_from_slice(&by.0.to_be_bytes());
            v.extend_from_slice(&up_to.0.to_be_bytes());
            v.extend_from_slice(&at.to_be_bytes());
        }
        Receipt::Group { group, status, items, at, .. } => {
            v.push(INBOX_GROUP_RECEIPT);
            v.extend_from_slice(&group.0.to_be_bytes());
            v.push(match status {
                ReceiptStatus::Delivered => 0,
                ReceiptStatus::Read => 1,
            });
            v.extend_from_slice(&at.to_be_bytes());
            v.extend_from_slice(&(items.len() as u16).to_be_bytes());
            for (by, ids) in items {
                v.extend_from_slice(&by.0.to_be_bytes());
                v.extend_from_slice(&(ids.len() as u16).to_be_bytes());
                for id in ids {
                    v.extend_from_slice(&id.0.to_be_bytes());
                }
            }
        }
    }
    v
}

fn decode_group_receipt(event: MessageId, r: &mut Reader<'_>) -> Option<Receipt> {
    let group = GroupId(r.u64()?);
    let status = match r.u8()? {
        0 => ReceiptStatus::Delivered,
        1 => ReceiptStatus::Read,
        _ => return None,
    };
    let at = r.u64()?;
    let n = r.u16()?;
    let mut items = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let by = UserId(r.u64()?);
        let k = r.u16()?;
        let ids = (0..k).map(|_| r.u64().map(MessageId)).collect::<Option<Vec<_>>>()?;
        items.push((by, ids));
    }
    r.0.is_empty().then_some(Receipt::Group { event, group, status, items, at })
}

pub(crate) fn encode_group(g: &Group) -> Vec<u8> {
    // Names and descriptions are bounded well below these by the protocol.
    let name = &g.name.as_bytes()[..g.name.len().min(255)];
    let description = &g.description.as_bytes()[..g.description.len().min(usize::from(u16::MAX))];
    let mut v = Vec::with_capacity(15 + name.len() + description.len() + 17 * g.members.len());
    v.push(GROUP_V3);
    v.push(name.len() as u8);
    v.extend_from_slice(name);
    v.extend_from_slice(&(description.len() as u16).to_be_bytes());
    v.extend_from_slice(description);
    v.push(u8::from(g.admins_only));
    v.push(u8::from(g.admins_can_delete));
    v.extend_from_slice(&g.created_by.0.to_be_bytes());
    v.extend_from_slice(&(g.members.len() as u16).to_be_bytes());
    for m in &g.members {
        v.extend_from_slice(&m.user.0.to_be_bytes());
        v.push(u8::from(m.admin));
        v.extend_from_slice(&m.joined.0.to_be_bytes());
    }
    v
}

/// A group record as the embedded store keeps it: the record, then its
/// version (records written before versions existed end after the
/// members and are version 1).
pub(crate) fn encode_versioned_group(g: &Group, version: GroupVersion) -> Vec<u8> {
    let mut v = encode_group(g);
    v.extend_from_slice(&version.0.to_be_bytes());
    v
}

/// The version at the end of an embedded group record.
pub(crate) fn group_version(id: GroupId, v: &[u8]) -> Result<GroupVersion, StoreError> {
    decode_versioned_group(id, v).map(|(_, version)| version)
}

pub(crate) fn decode_group(id: GroupId, v: &[u8]) -> Result<Group, StoreError> {
    decode_versioned_group(id, v).map(|(g, _)| g)
}

pub(crate) fn decode_versioned_group(id: GroupId, v: &[u8]) -> Result<(Group, GroupVersion), StoreError> {
    let corrupt = || StoreError::Corrupt { table: "groups", what: "bad record" };
    let mut r = Reader(v);
    let format = r.u8().ok_or_else(corrupt)?;
    if !matches!(format, GROUP_V1 | GROUP_V2 | GROUP_V3) {
        return Err(corrupt());
    }
    let name_len = usize::from(r.u8().ok_or_else(corrupt)?);
    let name = String::from_utf8(r.take(name_len).ok_or_else(corrupt)?.to_vec()).map_err(|_| corrupt())?;
    let (description, admins_only) = if format >= GROUP_V2 {
        let len = usize::from(r.u16().ok_or_else(corrupt)?);
        let text = String::from_utf8(r.take(len).ok_or_else(corrupt)?.to_vec()).map_err(|_| corrupt())?;
        (text, r.u8().ok_or_else(corrupt)? != 0)
    } else {
        (String::new(), false)
    };
    let admins_can_delete = format >= GROUP_V3 && r.u8().ok_or_else(corrupt)? != 0;
    let created_by = UserId(r.u64().ok_or_else(corrupt)?);
    let n = r.u16().ok_or_else(corrupt)?;
    let mut members = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let user = UserId(r.u64().ok_or_else(corrupt)?);
        let admin = r.u8().ok_or_else(corrupt)? != 0;
        let joined = MessageId(r.u64().ok_or_else(corrupt)?);
        members.push(Member { user, admin, joined });
    }
    let version = if r.0.is_empty() { GroupVersion(1) } else { GroupVersion(r.u64().ok_or_else(corrupt)?) };
    Ok((Group { id, name, description, admins_only, admins_can_delete, created_by, members }, version))
}

/// A decoded inbox value: a reference to a message, a receipt, or a
/// reference to an amended message.
pub(crate) enum InboxRecord {
    Message(ConversationId),
    Receipt(Receipt),
    Amended(ConversationId, MessageId),
    /// A hide: the message, to be shown in its hidden form.
    Hidden(ConversationId, MessageId),
    /// A `keys_changed` event: whose keys changed.
    KeysChanged(UserId),
}

/// The inbox value of a `keys_changed` event naming `user`.
pub(crate) fn encode_keys_changed(user: UserId) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(INBOX_KEYS_CHANGED);
    v.extend_from_slice(&user.0.to_be_bytes());
    v
}

pub(crate) fn decode_inbox(event: MessageId, v: &[u8]) -> Result<InboxRecord, StoreError> {
    let corrupt = |what| StoreError::Corrupt { table: "inbox", what };
    let mut r = Reader(v);
    let tag = r.u8().ok_or(corrupt("empty"))?;
    if tag == INBOX_MESSAGE {
        return ConversationId::from_key(r.0).map(InboxRecord::Message).ok_or(corrupt("bad conversation"));
    }
    if tag == INBOX_KEYS_CHANGED {
        let user = r.u64().ok_or(corrupt("truncated"))?;
        return if r.0.is_empty() {
            Ok(InboxRecord::KeysChanged(UserId(user)))
        } else {
            Err(corrupt("trailing bytes"))
        };
    }
    if tag == INBOX_GROUP_RECEIPT {
        return decode_group_receipt(event, &mut r).map(InboxRecord::Receipt).ok_or(corrupt("bad group receipt"));
    }
    let clen = usize::from(r.u8().ok_or(corrupt("truncated"))?);
    let conversation = r.take(clen).and_then(ConversationId::from_key).ok_or(corrupt("bad conversation"))?;
    if tag == INBOX_AMENDED || tag == INBOX_HIDDEN {
        let id = MessageId(r.u64().ok_or(corrupt("truncated"))?);
        return if !r.0.is_empty() {
            Err(corrupt("trailing bytes"))
        } else if tag == INBOX_HIDDEN {
            Ok(InboxRecord::Hidden(conversation, id))
        } else {
            Ok(InboxRecord::Amended(conversation, id))
        };
    }
    let by = UserId(r.u64().ok_or(corrupt("truncated"))?);
    match tag {
        INBOX_DELIVERED => {
            let at = r.u64().ok_or(corrupt("truncated"))?;
            let mut ids = Vec::with_capacity(r.0.len() / 8);
            while !r.0.is_empty() {
                ids.push(MessageId(r.u64().ok_or(corrupt("truncated id list"))?));
            }
            Ok(InboxRecord::Receipt(Receipt::Delivered { event, conversation, by, ids, at }))
        }
        INBOX_READ => {
            let up_to = MessageId(r.u64().ok_or(corrupt("truncated"))?);
            let at = r.u64().ok_or(corrupt("truncated"))?;
            Ok(InboxRecord::Receipt(Receipt::Read { event, conversation, by, up_to, at }))
        }
        _ => Err(corrupt("unknown tag")),
    }
}

/// The reference layout: the commit writes [`records`]`::idempotency`.
#[cfg(test)]
pub(crate) fn encode_idempotency(c: &ConversationId, id: MessageId) -> Vec<u8> {
    let mut v = conv_key(c);
    v.extend_from_slice(&id.0.to_be_bytes());
    v
}

pub(crate) fn decode_idempotency(v: &[u8]) -> Result<(ConversationId, MessageId), StoreError> {
    let corrupt = || StoreError::Corrupt { table: "idempotency", what: "bad record" };
    let split = v.len().checked_sub(8).ok_or_else(corrupt)?;
    let c = v.get(..split).and_then(ConversationId::from_key).ok_or_else(corrupt)?;
    let id = id_from_message_key(v).ok_or_else(corrupt)?;
    Ok((c, id))
}

/// Records of the embedded commit's hot path (a message row, its inbox
/// reference, its idempotency key, its list rows), built once in the
/// engine's own byte type (`fjall::Slice`) at their exact length. The same bytes as the `Vec` encoders above:
/// a batch item converted from a `Vec` is copied into a fresh allocation,
/// and a message wrote six of them.
pub(crate) mod records {
    use byteview::ByteView;
    use chatgw_protocol::{ConversationId, Message, MessageId, UserId};
    use fjall::Slice;

    /// Fills a record of a length known up front. (Filling an unzeroed
    /// allocation through `Slice::from_reader` instead cost more than the
    /// zeroing it saves.)
    struct Record {
        bytes: byteview::Builder,
        at: usize,
    }

    impl Record {
        fn new(len: usize) -> Self {
            Record { bytes: ByteView::builder(len), at: 0 }
        }

        fn put(mut self, part: &[u8]) -> Self {
            self.bytes[self.at..self.at + part.len()].copy_from_slice(part);
            self.at += part.len();
            self
        }

        fn done(self) -> Slice {
            debug_assert_eq!(self.at, self.bytes.len(), "a record's length is exact");
            Slice::from(self.bytes.freeze())
        }
    }

    fn conv(c: &ConversationId) -> ([u8; ConversationId::MAX_KEY_LEN], usize) {
        c.to_key()
    }

    /// [`super::message_key`].
    pub(crate) fn message_key(c: &ConversationId, id: MessageId) -> Slice {
        let (k, n) = conv(c);
        Record::new(n + 8).put(&k[..n]).put(&id.0.to_be_bytes()).done()
    }

    /// [`super::encode_message`].
    pub(crate) fn message(m: &Message) -> Slice {
        let cid = &m.client_id.as_bytes()[..m.client_id.len().min(255)];
        let body = super::stored_body(m);
        let from = m.from.0.to_be_bytes();
        let head = [super::MESSAGE_V1, from[0], from[1], from[2], from[3], from[4], from[5], from[6], from[7]];
        Record::new(head.len() + 2 + cid.len() + body.len())
            .put(&head)
            .put(&[m.kind.to_u8(), cid.len() as u8])
            .put(cid)
            .put(body.as_bytes())
            .done()
    }

    /// [`super::encode_inbox_message`].
    pub(crate) fn inbox_message(c: &ConversationId) -> Slice {
        let (k, n) = conv(c);
        Record::new(1 + n).put(&[super::INBOX_MESSAGE]).put(&k[..n]).done()
    }

    /// [`super::idempotency_key`].
    pub(crate) fn idempotency_key(from: UserId, client_id: &str) -> Slice {
        Record::new(8 + client_id.len()).put(&from.0.to_be_bytes()).put(client_id.as_bytes()).done()
    }

    /// A conversation list key: the user, then the conversation key.
    pub(crate) fn list_key(user: UserId, c: &ConversationId) -> Slice {
        let (k, n) = conv(c);
        Record::new(8 + n).put(&user.0.to_be_bytes()).put(&k[..n]).done()
    }

    /// A conversation list row: last message id, unread count.
    pub(crate) fn list_row(last: u64, unread: u64) -> Slice {
        Record::new(16).put(&last.to_be_bytes()).put(&unread.to_be_bytes()).done()
    }
}

pub(crate) fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip() {
        let c = ConversationId::direct(UserId(1), UserId(2));
        let id = Snowflake::new(0).next_id();
        let m = Message {
            id,
            conversation: c,
            from: UserId(1),
            kind: MessageKind::Video,
            client_id: "abc".into(),
            ts: Snowflake::unix_ms(id),
            body: "\"x\"".into(),
            amended: None,
        };
        assert_eq!(decode_message(c, id, &encode_message(&m)).unwrap(), m);
        let event = MessageId(id.0 + 1);
        let edited = Message { amended: Some(Amendment { kind: AmendKind::Edited, event }), ..m.clone() };
        assert_eq!(decode_message(c, id, &encode_message(&edited)).unwrap(), edited);
        let deleted =
            Message { body: String::new(), amended: Some(Amendment { kind: AmendKind::Deleted, event }), ..m.clone() };
        assert_eq!(decode_message(c, id, &encode_message(&deleted)).unwrap(), deleted);
        assert!(read_body("~x1".into()).is_err());
        assert!(read_body("~e12".into()).is_err(), "an edit mark without its body");
        match decode_inbox(event, &encode_amended(&c, id)).unwrap() {
            InboxRecord::Amended(conv, msg) => assert_eq!((conv, msg), (c, id)),
            _ => panic!("wrong kind"),
        }
        match decode_inbox(event, &encode_hidden(&c, id)).unwrap() {
            InboxRecord::Hidden(conv, msg) => assert_eq!((conv, msg), (c, id)),
            _ => panic!("wrong kind"),
        }
        assert!(decode_message(c, id, &[9, 9]).is_err());
        assert!(decode_message(c, id, &[1, 0, 0]).is_err());
    }

    #[test]
    fn keys_changed_round_trip() {
        let v = encode_keys_changed(UserId(u64::MAX));
        match decode_inbox(MessageId(5), &v).unwrap() {
            InboxRecord::KeysChanged(user) => assert_eq!(user, UserId(u64::MAX)),
            _ => panic!("wrong kind"),
        }
        assert!(decode_inbox(MessageId(5), &v[..8]).is_err(), "truncated");
        assert!(decode_inbox(MessageId(5), &[v.as_slice(), &[0]].concat()).is_err(), "trailing bytes");
    }

    #[test]
    fn receipt_round_trip() {
        let c = ConversationId::direct(UserId(1), UserId(2));
        let d = Receipt::Delivered {
            event: MessageId(5),
            conversation: c,
            by: UserId(2),
            ids: vec![MessageId(1), MessageId(3)],
            at: 77,
        };
        match decode_inbox(MessageId(5), &encode_receipt(&d)).unwrap() {
            InboxRecord::Receipt(r) => assert_eq!(r, d),
            _ => panic!("wrong kind"),
        }
        let r = Receipt::Read { event: MessageId(6), conversation: c, by: UserId(2), up_to: MessageId(3), at: 78 };
        match decode_inbox(MessageId(6), &encode_receipt(&r)).unwrap() {
            InboxRecord::Receipt(x) => assert_eq!(x, r),
            _ => panic!("wrong kind"),
        }
        assert!(decode_inbox(MessageId(6), b"z").is_err());
    }

    #[test]
    fn group_records_round_trip() {
        let g = Group {
            id: GroupId(4),
            name: "Café".into(),
            description: "about ☕".into(),
            admins_only: true,
            admins_can_delete: false,
            created_by: UserId(1),
            members: vec![
                Member { user: UserId(1), admin: true, joined: MessageId(10) },
                Member { user: UserId(2), admin: false, joined: MessageId(11) },
            ],
        };
        assert_eq!(decode_group(GroupId(4), &encode_group(&g)).unwrap(), g);
        // A V1 record (no description, no mode) still reads, with both unset.
        let mut v1 = vec![GROUP_V1, 5];
        v1.extend_from_slice("Café".as_bytes());
        v1.extend_from_slice(&1u64.to_be_bytes());
        v1.extend_from_slice(&1u16.to_be_bytes());
        v1.extend_from_slice(&1u64.to_be_bytes());
        v1.push(1);
        v1.extend_from_slice(&10u64.to_be_bytes());
        let old = decode_group(GroupId(4), &v1).unwrap();
        assert_eq!((old.name.as_str(), old.description.as_str(), old.admins_only), ("Café", "", false));
        assert_eq!(old.members, g.members[..1]);
        assert!(decode_group(GroupId(4), &[2, 0, 0]).is_err(), "a V2 record cut short");
        assert!(decode_group(GroupId(4), &[4]).is_err(), "an unknown format");
        let mut v2 = encode_group(&Group { admins_can_delete: false, ..g.clone() });
        v2[0] = GROUP_V2;
        let at = v2.len() - (8 + 2 + 17 * g.members.len()) - 1;
        assert_eq!(v2.remove(at), 0, "the setting's byte");
        let read = decode_group(GroupId(4), &v2).unwrap();
        assert_eq!((read.admins_only, read.admins_can_delete), (true, false), "a V2 record reads with the setting off");
        let on = Group { admins_can_delete: true, ..g.clone() };
        assert_eq!(decode_group(GroupId(4), &encode_group(&on)).unwrap(), on);
        assert!(decode_group(GroupId(4), &[1, 200]).is_err());
        let r = Receipt::Group {
            event: MessageId(20),
            group: GroupId(4),
            status: ReceiptStatus::Read,
            items: vec![(UserId(2), vec![MessageId(12), MessageId(13)]), (UserId(3), vec![MessageId(12)])],
            at: 99,
        };
        match decode_inbox(MessageId(20), &encode_receipt(&r)).unwrap() {
            InboxRecord::Receipt(x) => assert_eq!(x, r),
            _ => panic!("wrong kind"),
        }
        let mut truncated = encode_receipt(&r);
        truncated.pop();
        assert!(decode_inbox(MessageId(20), &truncated).is_err());
    }

    #[test]
    fn records_built_in_place_match_the_vec_encoders() {
        let c = ConversationId::direct(UserId(3), UserId(900));
        let g = ConversationId::Group(GroupId(5));
        let id = MessageId(0x0102_0304_0506_0708);
        let m = Message {
            id,
            conversation: c,
            from: UserId(900),
            kind: MessageKind::Text,
            client_id: "0c1d9a3e-4e1c-4b7a-9f3d-000000000001".into(),
            ts: Snowflake::unix_ms(id),
            body: format!("\"{}\"", "b".repeat(100)),
            amended: None,
        };
        let edited = Message { amended: Some(Amendment { kind: AmendKind::Edited, event: MessageId(9) }), ..m.clone() };
        let bare = Message { client_id: String::new(), body: "\"\"".into(), ..m.clone() };
        for m in [&m, &edited, &bare] {
            assert_eq!(&*records::message(m), &encode_message(m)[..]);
        }
        for c in [&c, &g] {
            assert_eq!(&*records::message_key(c, id), &message_key(c, id)[..]);
            assert_eq!(&*records::inbox_message(c), &encode_inbox_message(c)[..]);
            assert_eq!(
                &*records::message_key(c, id),
                &encode_idempotency(c, id)[..],
                "an idempotency value is a message key"
            );
            let mut list_key = 7u64.to_be_bytes().to_vec();
            list_key.extend_from_slice(&conv_key(c));
            assert_eq!(&*records::list_key(UserId(7), c), &list_key[..]);
        }
        assert_eq!(&*records::idempotency_key(UserId(4), "abc"), &idempotency_key(UserId(4), "abc")[..]);
        assert_eq!(&*records::idempotency_key(UserId(4), &m.client_id), &idempotency_key(UserId(4), &m.client_id)[..]);
        let mut row = 11u64.to_be_bytes().to_vec();
        row.extend_from_slice(&2u64.to_be_bytes());
        assert_eq!(&*records::list_row(11, 2), &row[..]);
    }

    #[test]
    fn idempotency_round_trip() {
        let c = ConversationId::direct(UserId(1), UserId(2));
        assert_eq!(decode_idempotency(&encode_idempotency(&c, MessageId(9))).unwrap(), (c, MessageId(9)));
        assert!(decode_idempotency(b"short").is_err());
    }
}

//! The outbox: one record per applied write, kept by the store in the same
//! atomic, durable batch as the write itself, for consumers outside the
//! commit path (the Kafka publisher, a push worker).
//!
//! Why in the store: an event published from memory after `sent` is lost
//! when the process dies between the commit and the publish, and an event
//! published before the commit may describe something that never commits.
//! A record committed with the write is neither: a consumer reads the
//! outbox after its own durable cursor, publishes, then moves the cursor,
//! so after any crash it publishes again from the cursor (at least once).
//! The backlog of a slow consumer waits on disk, never in memory.
//!
//! Positions ([`OutboxPos`]) are assigned by the store in commit order and
//! only increase, so a consumer paging `pos > after` never skips a record
//! that becomes visible later. Records at or below the lowest cursor of all
//! consumers are removed when a cursor moves.
//!
//! This module holds what every backend shares: the record, how one is
//! derived from a write and its outcome, and its byte encoding.

use chatgw_protocol::{AmendKind, ConversationId, Message, MessageId, MessageKind, Receipt, ReceiptStatus, UserId};

use crate::{Committed, StoreError, Write, WriteOutcome};

/// A position in the outbox, assigned by the store at commit; zero is
/// "before the first record".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxPos(pub u64);

/// What the outbox keeps (see [`MessageStore::enable_outbox`](crate::MessageStore::enable_outbox)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxOptions {
    /// Keep message bodies in the records (otherwise only their size).
    pub bodies: bool,
    /// The node id of the gateway committing through this handle: a store
    /// shared by several gateways (PostgreSQL) keeps one outbox per node,
    /// and this handle appends to and reads that one. Ignored by the
    /// embedded store, which has one writer.
    pub node: u16,
}

/// One committed event, as the outbox keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Where it is in the outbox.
    pub pos: OutboxPos,
    /// The event's id, unique across all events (the message id for a
    /// message, the receipt's or amendment's event id otherwise).
    pub event: MessageId,
    /// The conversation it belongs to.
    pub conversation: ConversationId,
    /// The sender, or the user who acted (read, edited, hid).
    pub from: UserId,
    /// Users whose inbox got the event, other than `from`.
    pub recipients: Vec<UserId>,
    /// When it was committed, Unix milliseconds (the time its id carries).
    pub at: u64,
    /// What happened.
    pub detail: OutboxDetail,
}

/// The kind-specific part of an [`OutboxRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxDetail {
    /// A message was stored (a group's membership change is a `System`
    /// message announcing it).
    Message {
        /// The message id (the same as the event id).
        id: MessageId,
        /// Its kind.
        kind: MessageKind,
        /// Bytes of its body as the JSON string literal the client sent.
        size: u64,
        /// That literal, when the outbox keeps bodies.
        body: Option<String>,
    },
    /// Messages were delivered to or read by `from`.
    Receipt {
        /// Delivered or read.
        status: ReceiptStatus,
        /// The messages acknowledged (for a read, the last one read).
        ids: Vec<MessageId>,
        /// For a group receipt batching several members: each member and
        /// their messages (`from` is the first); empty otherwise.
        by: Vec<(UserId, Vec<MessageId>)>,
    },
    /// A message was edited or deleted for everyone, or hidden by `from`
    /// from themselves (`op` is [`AmendKind::Hidden`]).
    Amended {
        /// The message.
        id: MessageId,
        /// Edited, deleted or hidden.
        op: AmendKind,
        /// Bytes of the new body (zero for a delete or a hide).
        size: u64,
        /// The new body, when the outbox keeps bodies and it is an edit.
        body: Option<String>,
    },
}

/// The outbox records of a committed batch: one per applied write that put
/// an event in an inbox, in batch order, positions still zero (the store
/// assigns them).
pub(crate) fn records_of(writes: &[Write<'_>], committed: &Committed, options: OutboxOptions) -> Vec<OutboxRecord> {
    let mut out = Vec::with_capacity(writes.len());
    for (i, write) in writes.iter().enumerate() {
        if committed.outcome(i) != Some(WriteOutcome::Applied) {
            continue;
        }
        if let Some(r) = record_of(write, options) {
            out.push(r);
        }
    }
    out
}

fn others(inboxes: &[UserId], from: UserId) -> Vec<UserId> {
    inboxes.iter().copied().filter(|u| *u != from).collect()
}

fn message_record(m: &Message, inboxes: &[UserId], options: OutboxOptions) -> OutboxRecord {
    OutboxRecord {
        pos: OutboxPos(0),
        event: m.id,
        conversation: m.conversation,
        from: m.from,
        recipients: others(inboxes, m.from),
        at: m.ts,
        detail: OutboxDetail::Message {
            id: m.id,
            kind: m.kind,
            size: m.body.len() as u64,
            body: options.bodies.then(|| m.body.clone()),
        },
    }
}

fn record_of(write: &Write<'_>, options: OutboxOptions) -> Option<OutboxRecord> {
    Some(match *write {
        Write::Message { message, inboxes, .. } => message_record(message, inboxes, options),
        Write::Group { announce, inboxes, .. } => message_record(announce?, inboxes, options),
        Write::Receipt { receipt, inboxes } => receipt_record(receipt, inboxes),
        Write::Amend { message, inboxes } => {
            let a = message.amended?;
            OutboxRecord {
                pos: OutboxPos(0),
                event: a.event,
                conversation: message.conversation,
                from: message.from,
                recipients: others(inboxes, message.from),
                at: a.at(),
                detail: OutboxDetail::Amended {
                    id: message.id,
                    op: a.kind,
                    size: message.body.len() as u64,
                    body: (options.bodies && a.kind == AmendKind::Edited).then(|| message.body.clone()),
                },
            }
        }
        // Not a conversation's event: the key directory is not published.
        Write::KeysChanged { .. } => return None,
        Write::Hide { user, conversation, msg, event } => OutboxRecord {
            pos: OutboxPos(0),
            event,
            conversation,
            from: *user,
            recipients: Vec::new(),
            at: chatgw_protocol::Snowflake::unix_ms(event),
            detail: OutboxDetail::Amended { id: msg, op: AmendKind::Hidden, size: 0, body: None },
        },
    })
}

fn receipt_record(receipt: &Receipt, inboxes: &[UserId]) -> OutboxRecord {
    let (event, conversation, from, status, ids, by, at) = match receipt {
        Receipt::Delivered { event, conversation, by, ids, at } => {
            (*event, *conversation, *by, ReceiptStatus::Delivered, ids.clone(), Vec::new(), *at)
        }
        Receipt::Read { event, conversation, by, up_to, at } => {
            (*event, *conversation, *by, ReceiptStatus::Read, vec![*up_to], Vec::new(), *at)
        }
        Receipt::Group { event, group, status, items, at } => {
            let from = items.first().map_or(UserId(0), |(u, _)| *u);
            let ids = items.iter().flat_map(|(_, ids)| ids.iter().copied()).collect();
            (*event, ConversationId::Group(*group), from, *status, ids, items.clone(), *at)
        }
    };
    OutboxRecord {
        pos: OutboxPos(0),
        event,
        conversation,
        from,
        recipients: others(inboxes, from),
        at,
        detail: OutboxDetail::Receipt { status, ids, by },
    }
}

const RECORD_V1: u8 = 1;
const MESSAGE: u8 = b'm';
const RECEIPT: u8 = b'r';
const AMENDED: u8 = b'a';

/// The record's bytes (its position is the key, not part of the value).
pub(crate) fn encode(r: &OutboxRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 8 * r.recipients.len());
    let (conv, n) = r.conversation.to_key();
    out.push(RECORD_V1);
    out.push(n as u8);
    out.extend_from_slice(&conv[..n]);
    for v in [r.event.0, r.from.0, r.at] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    put_ids(&mut out, r.recipients.iter().map(|u| u.0));
    match &r.detail {
        OutboxDetail::Message { id, kind, size, body } => {
            out.push(MESSAGE);
            out.extend_from_slice(&id.0.to_be_bytes());
            out.push(kind.to_u8());
            out.extend_from_slice(&size.to_be_bytes());
            put_body(&mut out, body.as_deref());
        }
        OutboxDetail::Receipt { status, ids, by } => {
            out.push(RECEIPT);
            out.push(matches!(status, ReceiptStatus::Read) as u8);
            put_ids(&mut out, ids.iter().map(|i| i.0));
            out.extend_from_slice(&(by.len() as u32).to_be_bytes());
            for (user, ids) in by {
                out.extend_from_slice(&user.0.to_be_bytes());
                put_ids(&mut out, ids.iter().map(|i| i.0));
            }
        }
        OutboxDetail::Amended { id, op, size, body } => {
            out.push(AMENDED);
            out.extend_from_slice(&id.0.to_be_bytes());
            out.push(match op {
                AmendKind::Edited => 0,
                AmendKind::Deleted => 1,
                AmendKind::Hidden => 2,
            });
            out.extend_from_slice(&size.to_be_bytes());
            put_body(&mut out, body.as_deref());
        }
    }
    out
}

fn put_ids(out: &mut Vec<u8>, ids: impl ExactSizeIterator<Item = u64>) {
    out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
}

fn put_body(out: &mut Vec<u8>, body: Option<&str>) {
    match body {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b.as_bytes());
        }
    }
}

const CORRUPT: StoreError = StoreError::Corrupt { table: "outbox", what: "undecodable record" };

/// Inverse of [`encode`].
pub(crate) fn decode(pos: OutboxPos, v: &[u8]) -> Result<OutboxRecord, StoreError> {
    decode_fields(pos, &mut Bytes(v)).ok_or(CORRUPT)
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn ids(&mut self) -> Option<Vec<u64>> {
        let n = self.u32()? as usize;
        // Never trust a length beyond the bytes that are there.
        if n > self.0.len() / 8 {
            return None;
        }
        (0..n).map(|_| self.u64()).collect()
    }
    fn body(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            _ => {
                let n = self.u32()? as usize;
                Some(Some(String::from_utf8(self.take(n)?.to_vec()).ok()?))
            }
        }
    }
}

fn decode_fields(pos: OutboxPos, b: &mut Bytes<'_>) -> Option<OutboxRecord> {
    if b.u8()? != RECORD_V1 {
        return None;
    }
    let n = b.u8()? as usize;
    let conversation = ConversationId::from_key(b.take(n)?)?;
    let (event, from, at) = (MessageId(b.u64()?), UserId(b.u64()?), b.u64()?);
    let recipients = b.ids()?.into_iter().map(UserId).collect();
    let detail = match b.u8()? {
        MESSAGE => OutboxDetail::Message {
            id: MessageId(b.u64()?),
            kind: MessageKind::from_u8(b.u8()?)?,
            size: b.u64()?,
            body: b.body()?,
        },
        RECEIPT => {
            let status = if b.u8()? == 1 { ReceiptStatus::Read } else { ReceiptStatus::Delivered };
            let ids = b.ids()?.into_iter().map(MessageId).collect();
            let members = b.u32()? as usize;
            if members > b.0.len() / 12 {
                return None;
            }
            let mut by = Vec::with_capacity(members);
            for _ in 0..members {
                let user = UserId(b.u64()?);
                by.push((user, b.ids()?.into_iter().map(MessageId).collect()));
            }
            OutboxDetail::Receipt { status, ids, by }
        }
        AMENDED => OutboxDetail::Amended {
            id: MessageId(b.u64()?),
            op: match b.u8()? {
                0 => AmendKind::Edited,
                1 => AmendKind::Deleted,
                2 => AmendKind::Hidden,
                _ => return None,
            },
            size: b.u64()?,
            body: b.body()?,
        },
        _ => return None,
    };
    Some(OutboxRecord { pos, event, conversation, from, recipients, at, detail })
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::GroupId;

    use super::*;

    fn round_trip(r: OutboxRecord) {
        assert_eq!(decode(r.pos, &encode(&r)).unwrap(), r);
    }

    #[test]
    fn records_round_trip() {
        let base = OutboxRecord {
            pos: OutboxPos(7),
            event: MessageId(99),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(1),
            recipients: vec![UserId(2)],
            at: 1_700_000_000_000,
            detail: OutboxDetail::Message {
                id: MessageId(99),
                kind: MessageKind::Image,
                size: 5,
                body: Some("\"hé\"".into()),
            },
        };
        round_trip(base.clone());
        round_trip(OutboxRecord {
            conversation: ConversationId::Group(GroupId(5)),
            detail: OutboxDetail::Receipt {
                status: ReceiptStatus::Read,
                ids: vec![MessageId(3), MessageId(4)],
                by: vec![(UserId(1), vec![MessageId(3)]), (UserId(9), vec![MessageId(4)])],
            },
            ..base.clone()
        });
        round_trip(OutboxRecord {
            detail: OutboxDetail::Amended { id: MessageId(3), op: AmendKind::Deleted, size: 0, body: None },
            ..base
        });
    }

    #[test]
    fn truncated_bytes_are_corrupt_not_a_panic() {
        let r = OutboxRecord {
            pos: OutboxPos(1),
            event: MessageId(1),
            conversation: ConversationId::Group(GroupId(5)),
            from: UserId(1),
            recipients: vec![UserId(2), UserId(3)],
            at: 1,
            detail: OutboxDetail::Message { id: MessageId(1), kind: MessageKind::Text, size: 2, body: None },
        };
        let bytes = encode(&r);
        for n in 0..bytes.len() {
            assert!(decode(r.pos, &bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }
}

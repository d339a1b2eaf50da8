//! Every read: batched lookups join `unnest(...) WITH ORDINALITY` so that a
//! batch of keys is one round trip answered in input order; scans are
//! index range scans on the primary keys, `LIMIT`ed.

use chatgw_protocol::{ConversationId, Group, GroupId, Message, MessageId, MessageKind, Snowflake, UserId};
use postgres::Row;

use super::{pg_bound, pg_id, pg_limit, pg_u64, pool::Connection};
use crate::{
    codec::{self, InboxRecord},
    ConversationSummary, GroupVersion, InboxEntry, InboxEvent, InboxPos, MessageHeader, MessageReceipts, StoreError,
};

type Result<T> = std::result::Result<T, postgres::Error>;

/// The high water of one generator (its 10 bits are the row's slot).
pub(super) fn high_water(c: &mut Connection, node: u16) -> Result<MessageId> {
    let s = c.prepared("SELECT coalesce((SELECT id FROM high_water WHERE slot = $1), 0)")?;
    let slot = (node & 0x3ff) as i16;
    Ok(MessageId(c.client().query_one(&s, &[&slot])?.get::<_, i64>(0) as u64))
}

/// Upsert `user`'s revocation time, never moving it back. A write, but
/// one statement that is safe to run twice, so it goes through the same
/// retry as a read.
pub(super) fn revoke_sessions(c: &mut Connection, user: UserId, at: u64) -> Result<()> {
    let s = c.prepared(
        "INSERT INTO revocations (user_id, at) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET at = GREATEST(revocations.at, EXCLUDED.at)",
    )?;
    c.client().execute(&s, &[&pg_u64(user.0), &pg_u64(at)])?;
    Ok(())
}

/// Every revocation. A database whose schema predates the table has none.
pub(super) fn revocations(c: &mut Connection) -> Result<Vec<(UserId, u64)>> {
    let s = match c.prepared("SELECT user_id, at FROM revocations") {
        Ok(s) => s,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rows = c.client().query(&s, &[])?;
    Ok(rows.iter().map(|r| (UserId(r.get::<_, i64>(0) as u64), r.get::<_, i64>(1) as u64)).collect())
}

fn conversation(bytes: &[u8], table: &'static str) -> std::result::Result<ConversationId, StoreError> {
    ConversationId::from_key(bytes).ok_or(StoreError::Corrupt { table, what: "bad conversation key" })
}

fn kind(k: i16) -> std::result::Result<MessageKind, StoreError> {
    u8::try_from(k)
        .ok()
        .and_then(MessageKind::from_u8)
        .ok_or(StoreError::Corrupt { table: "messages", what: "bad kind" })
}

/// A message from columns `sender, kind, client_id, body` starting at `at`.
fn message_of(
    row: &Row,
    at: usize,
    conversation: ConversationId,
    id: MessageId,
) -> std::result::Result<Message, StoreError> {
    let corrupt = |what| StoreError::Corrupt { table: "messages", what };
    let client_id = String::from_utf8(row.get::<_, Vec<u8>>(at + 2)).map_err(|_| corrupt("client id not UTF-8"))?;
    let body = String::from_utf8(row.get::<_, Vec<u8>>(at + 3)).map_err(|_| corrupt("body not UTF-8"))?;
    let (body, amended) = codec::read_body(body)?;
    Ok(Message {
        id,
        conversation,
        from: UserId(row.get::<_, i64>(at) as u64),
        kind: kind(row.get(at + 1))?,
        client_id,
        ts: Snowflake::unix_ms(id),
        body,
        amended,
    })
}

pub(super) fn message(c: &mut Connection, conv: ConversationId, id: MessageId) -> Result<Option<Row>> {
    let s = c.prepared("SELECT sender, kind, client_id, body FROM messages WHERE conversation = $1 AND id = $2")?;
    c.client().query_opt(&s, &[&codec::conv_key(&conv), &pg_id(id)])
}

pub(super) fn decode_message(
    row: Option<Row>,
    conv: ConversationId,
    id: MessageId,
) -> std::result::Result<Option<Message>, StoreError> {
    row.map(|r| message_of(&r, 0, conv, id)).transpose()
}

/// Rows of a batched lookup, placed by their 1-based ordinality.
fn by_ordinal<T: Clone>(
    rows: &[Row],
    n: usize,
    empty: T,
    f: impl Fn(&Row) -> std::result::Result<T, StoreError>,
) -> std::result::Result<Vec<T>, StoreError> {
    let mut out = vec![empty; n];
    for row in rows {
        let slot = usize::try_from(row.get::<_, i64>(0) - 1).ok().and_then(|i| out.get_mut(i));
        let slot = slot.ok_or(StoreError::Corrupt { table: "lookup", what: "an answer for a key not asked" })?;
        *slot = f(row)?;
    }
    Ok(out)
}

pub(super) fn messages_by_client_ids(c: &mut Connection, keys: &[(UserId, &str)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, i.conversation, i.id FROM unnest($1::int8[], $2::bytea[]) WITH ORDINALITY AS k(sender, client_id, n)
         JOIN idempotency i ON i.sender = k.sender AND i.client_id = k.client_id",
    )?;
    let senders: Vec<i64> = keys.iter().map(|(u, _)| pg_u64(u.0)).collect();
    let ids: Vec<&[u8]> = keys.iter().map(|(_, c)| c.as_bytes()).collect();
    c.client().query(&s, &[&senders, &ids])
}

pub(super) fn decode_client_ids(
    rows: &[Row],
    n: usize,
) -> std::result::Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
    by_ordinal(rows, n, None, |r| {
        Ok(Some((conversation(r.get(1), "idempotency")?, MessageId(r.get::<_, i64>(2) as u64))))
    })
}

pub(super) fn messages(c: &mut Connection, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, m.sender, m.kind, m.client_id, m.body
         FROM unnest($1::bytea[], $2::int8[]) WITH ORDINALITY AS k(conversation, id, n)
         JOIN messages m ON m.conversation = k.conversation AND m.id = k.id",
    )?;
    let convs: Vec<Vec<u8>> = keys.iter().map(|(c, _)| codec::conv_key(c)).collect();
    let ids: Vec<i64> = keys.iter().map(|(_, id)| pg_id(*id)).collect();
    c.client().query(&s, &[&convs, &ids])
}

pub(super) fn decode_messages(
    rows: &[Row],
    keys: &[(ConversationId, MessageId)],
) -> std::result::Result<Vec<Option<Message>>, StoreError> {
    by_ordinal(rows, keys.len(), None, |r| {
        let key = usize::try_from(r.get::<_, i64>(0) - 1).ok().and_then(|i| keys.get(i));
        let &(conversation, id) =
            key.ok_or(StoreError::Corrupt { table: "lookup", what: "an answer for a key not asked" })?;
        message_of(r, 1, conversation, id).map(Some)
    })
}

pub(super) fn message_headers(c: &mut Connection, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, m.id, m.sender, m.kind FROM unnest($1::bytea[], $2::int8[]) WITH ORDINALITY AS k(conversation, id, n)
         JOIN messages m ON m.conversation = k.conversation AND m.id = k.id",
    )?;
    let convs: Vec<Vec<u8>> = keys.iter().map(|(c, _)| codec::conv_key(c)).collect();
    let ids: Vec<i64> = keys.iter().map(|(_, id)| pg_id(*id)).collect();
    c.client().query(&s, &[&convs, &ids])
}

fn header(r: &Row, at: usize) -> std::result::Result<MessageHeader, StoreError> {
    Ok(MessageHeader {
        id: MessageId(r.get::<_, i64>(at) as u64),
        from: UserId(r.get::<_, i64>(at + 1) as u64),
        kind: kind(r.get(at + 2))?,
    })
}

pub(super) fn decode_headers(rows: &[Row], n: usize) -> std::result::Result<Vec<Option<MessageHeader>>, StoreError> {
    by_ordinal(rows, n, None, |r| header(r, 1).map(Some))
}

pub(super) fn delivery_marks(c: &mut Connection, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n FROM unnest($1::bytea[], $2::int8[], $3::int8[]) WITH ORDINALITY AS k(conversation, id, user_id, n)
         JOIN delivered d ON d.conversation = k.conversation AND d.id = k.id AND d.user_id = k.user_id",
    )?;
    let convs: Vec<Vec<u8>> = keys.iter().map(|(c, _, _)| codec::conv_key(c)).collect();
    let ids: Vec<i64> = keys.iter().map(|(_, id, _)| pg_id(*id)).collect();
    let users: Vec<i64> = keys.iter().map(|(_, _, u)| pg_u64(u.0)).collect();
    c.client().query(&s, &[&convs, &ids, &users])
}

pub(super) fn decode_marks(rows: &[Row], n: usize) -> std::result::Result<Vec<bool>, StoreError> {
    by_ordinal(rows, n, false, |_| Ok(true))
}

pub(super) fn read_marks(c: &mut Connection, keys: &[(ConversationId, UserId)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, r.up_to FROM unnest($1::bytea[], $2::int8[]) WITH ORDINALITY AS k(conversation, reader, n)
         JOIN read_marks r ON r.conversation = k.conversation AND r.reader = k.reader",
    )?;
    let convs: Vec<Vec<u8>> = keys.iter().map(|(c, _)| codec::conv_key(c)).collect();
    let readers: Vec<i64> = keys.iter().map(|(_, u)| pg_u64(u.0)).collect();
    c.client().query(&s, &[&convs, &readers])
}

pub(super) fn decode_read_marks(rows: &[Row], n: usize) -> std::result::Result<Vec<Option<MessageId>>, StoreError> {
    by_ordinal(rows, n, None, |r| Ok(Some(MessageId(r.get::<_, i64>(1) as u64))))
}

pub(super) fn hidden_marks(c: &mut Connection, user: UserId, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, h.event FROM unnest($2::bytea[], $3::int8[]) WITH ORDINALITY AS k(conversation, msg, n)
         JOIN hidden h ON h.user_id = $1 AND h.conversation = k.conversation AND h.msg = k.msg",
    )?;
    let convs: Vec<Vec<u8>> = keys.iter().map(|(c, _)| codec::conv_key(c)).collect();
    let ids: Vec<i64> = keys.iter().map(|(_, id)| pg_id(*id)).collect();
    c.client().query(&s, &[&pg_u64(user.0), &convs, &ids])
}

pub(super) fn headers_between(
    c: &mut Connection,
    conv: ConversationId,
    after: MessageId,
    up_to: MessageId,
    limit: usize,
) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT id, sender, kind FROM messages WHERE conversation = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4",
    )?;
    c.client().query(&s, &[&codec::conv_key(&conv), &pg_bound(after), &pg_bound(up_to), &pg_limit(limit)])
}

pub(super) fn decode_headers_between(rows: &[Row]) -> std::result::Result<Vec<MessageHeader>, StoreError> {
    rows.iter().map(|r| header(r, 0)).collect()
}

pub(super) fn receipts_of(c: &mut Connection, conv: ConversationId, id: MessageId) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT false, user_id, at FROM delivered WHERE conversation = $1 AND id = $2
         UNION ALL SELECT true, user_id, at FROM read_by WHERE conversation = $1 AND id = $2",
    )?;
    c.client().query(&s, &[&codec::conv_key(&conv), &pg_id(id)])
}

pub(super) fn decode_receipts(rows: &[Row]) -> MessageReceipts {
    let mut out = MessageReceipts::default();
    for r in rows {
        let entry = (UserId(r.get::<_, i64>(1) as u64), r.get::<_, i64>(2) as u64);
        if r.get::<_, bool>(0) {
            out.read.push(entry)
        } else {
            out.delivered.push(entry)
        }
    }
    // Ordered by user as unsigned numbers (stored bit-for-bit in bigint).
    out.delivered.sort_unstable();
    out.read.sort_unstable();
    out
}

pub(super) fn group(c: &mut Connection, id: GroupId) -> Result<Option<Row>> {
    let s = c.prepared("SELECT record, version FROM groups WHERE id = $1")?;
    c.client().query_opt(&s, &[&pg_u64(id.0)])
}

pub(super) fn decode_group(
    row: Option<Row>,
    id: GroupId,
) -> std::result::Result<Option<(Group, GroupVersion)>, StoreError> {
    row.map(|r| Ok((codec::decode_group(id, r.get::<_, &[u8]>(0))?, GroupVersion(r.get::<_, i64>(1) as u64))))
        .transpose()
}

pub(super) fn inbox_after(c: &mut Connection, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT i.event, i.conversation, i.receipt, m.sender, m.kind, m.client_id, m.body, i.pos
         FROM inbox i LEFT JOIN messages m ON m.conversation = i.conversation AND m.id = i.event
         WHERE i.user_id = $1 AND i.pos > $2 ORDER BY i.pos LIMIT $3",
    )?;
    let after = i64::try_from(after.0).unwrap_or(i64::MAX);
    c.client().query(&s, &[&pg_u64(user.0), &after, &pg_limit(limit)])
}

/// The position of the cursor's event; for an unknown cursor the highest
/// position of an event with an id at or below it (a scan of the ids
/// below the cursor, only then); zero if there is none.
pub(super) fn inbox_position(c: &mut Connection, user: UserId, cursor: MessageId) -> Result<InboxPos> {
    let s = c.prepared(
        "SELECT coalesce(
             (SELECT pos FROM inbox WHERE user_id = $1 AND event = $2),
             (SELECT max(pos) FROM inbox WHERE user_id = $1 AND event <= $2),
             0)",
    )?;
    let pos: i64 = c.client().query_one(&s, &[&pg_u64(user.0), &pg_bound(cursor)])?.get(0);
    Ok(InboxPos(u64::try_from(pos).unwrap_or(0)))
}

/// The stand-in for an amended message until it is read: only its
/// conversation and id are known from the inbox row.
pub(super) fn unresolved(conversation: ConversationId, id: MessageId) -> Message {
    Message {
        id,
        conversation,
        from: UserId(0),
        kind: chatgw_protocol::MessageKind::Text,
        client_id: String::new(),
        ts: 0,
        body: String::new(),
        amended: None,
    }
}

pub(super) fn decode_inbox(rows: &[Row]) -> std::result::Result<Vec<InboxEntry>, StoreError> {
    let corrupt = |what| StoreError::Corrupt { table: "inbox", what };
    rows.iter()
        .map(|r| {
            let event = MessageId(r.get::<_, i64>(0) as u64);
            match (r.get::<_, Option<&[u8]>>(1), r.get::<_, Option<&[u8]>>(2)) {
                (Some(conv), None) => {
                    // The reference and the message are written by one
                    // statement, so a reference to nothing is damage.
                    if r.get::<_, Option<i64>>(3).is_none() {
                        return Err(corrupt("reference to a missing message"));
                    }
                    Ok(InboxEvent::Message(message_of(r, 3, conversation(conv, "inbox")?, event)?))
                }
                (None, Some(receipt)) => match codec::decode_inbox(event, receipt)? {
                    InboxRecord::Receipt(r) => Ok(InboxEvent::Receipt(r)),
                    // Resolved by the caller, with one read for the page.
                    InboxRecord::Amended(conversation, id) => {
                        Ok(InboxEvent::Amended { event, message: unresolved(conversation, id) })
                    }
                    // Marked hidden so the caller shows the resolved message hidden.
                    InboxRecord::Hidden(conversation, id) => Ok(InboxEvent::Amended {
                        event,
                        message: chatgw_protocol::hidden_view(unresolved(conversation, id), event),
                    }),
                    InboxRecord::KeysChanged(user) => Ok(InboxEvent::KeysChanged { event, user }),
                    InboxRecord::Message(_) => Err(corrupt("a message reference stored as a receipt")),
                },
                _ => Err(corrupt("neither a message nor a receipt")),
            }
            .map(|event| InboxEntry { pos: InboxPos(r.get::<_, i64>(7) as u64), event })
        })
        .collect()
}

pub(super) fn history(
    c: &mut Connection,
    conv: ConversationId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT id, sender, kind, client_id, body FROM messages WHERE conversation = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )?;
    // No cursor: everything, i.e. below the largest id there can be.
    let before = before.map_or(i64::MAX, pg_bound);
    c.client().query(&s, &[&codec::conv_key(&conv), &before, &pg_limit(limit)])
}

pub(super) fn decode_history(rows: &[Row], conv: ConversationId) -> std::result::Result<Vec<Message>, StoreError> {
    rows.iter().map(|r| message_of(r, 1, conv, MessageId(r.get::<_, i64>(0) as u64))).collect()
}

/// One page of `user`'s conversation list, newest first: rows
/// `(conversation, last, unread)` (the `conversation_list_recent` index).
pub(super) fn conversations(
    c: &mut Connection,
    user: UserId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT conversation, last, unread FROM conversation_list WHERE user_id = $1 AND last < $2 \
         ORDER BY last DESC LIMIT $3",
    )?;
    let before = before.map_or(i64::MAX, pg_bound);
    c.client().query(&s, &[&pg_u64(user.0), &before, &pg_limit(limit)])
}

pub(super) fn decode_conversations(rows: &[Row]) -> std::result::Result<Vec<ConversationSummary>, StoreError> {
    rows.iter()
        .map(|r| {
            let conversation = ConversationId::from_key(r.get(0))
                .ok_or(StoreError::Corrupt { table: "conversation_list", what: "bad conversation key" })?;
            Ok(ConversationSummary {
                conversation,
                last: MessageId(r.get::<_, i64>(1) as u64),
                unread: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
        })
        .collect()
}

/// Whom each of `users` blocks: rows `(ordinal, blocked)`, ascending.
pub(super) fn blocked_by(c: &mut Connection, users: &[UserId]) -> Result<Vec<Row>> {
    let s = c.prepared(
        "SELECT k.n, b.blocked FROM unnest($1::int8[]) WITH ORDINALITY AS k(blocker, n)
         JOIN blocks b ON b.blocker = k.blocker ORDER BY k.n, b.blocked",
    )?;
    let keys: Vec<i64> = users.iter().map(|u| pg_u64(u.0)).collect();
    c.client().query(&s, &[&keys])
}

/// One list per asked user, from [`blocked_by`]'s rows.
pub(super) fn decode_blocks(rows: &[Row], n: usize) -> std::result::Result<Vec<Vec<UserId>>, StoreError> {
    let mut out = vec![Vec::new(); n];
    for row in rows {
        let slot = usize::try_from(row.get::<_, i64>(0) - 1).ok().and_then(|i| out.get_mut(i));
        let slot = slot.ok_or(StoreError::Corrupt { table: "blocks", what: "an answer for a key not asked" })?;
        slot.push(UserId(row.get::<_, i64>(1) as u64));
    }
    Ok(out)
}

/// Add or remove one `(blocker, blocked)` pair (one autocommitted statement).
pub(super) fn set_block(c: &mut Connection, blocker: UserId, target: UserId, on: bool) -> Result<()> {
    let s = if on {
        c.prepared("INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING")?
    } else {
        c.prepared("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")?
    };
    c.client().execute(&s, &[&pg_u64(blocker.0), &pg_u64(target.0)])?;
    Ok(())
}

/// Whether each of `users` has a `contacts_only` row, in input order.
pub(super) fn contacts_only(c: &mut Connection, users: &[UserId]) -> Result<Vec<bool>> {
    let s = c.prepared(
        "SELECT o.user_id IS NOT NULL FROM unnest($1::int8[]) WITH ORDINALITY AS k(user_id, n)
         LEFT JOIN contacts_only o ON o.user_id = k.user_id ORDER BY k.n",
    )?;
    let keys: Vec<i64> = users.iter().map(|u| pg_u64(u.0)).collect();
    Ok(c.client().query(&s, &[&keys])?.iter().map(|r| r.get::<_, bool>(0)).collect())
}

/// Add or remove `user`'s `contacts_only` row (one autocommitted statement).
pub(super) fn set_contacts_only(c: &mut Connection, user: UserId, on: bool) -> Result<()> {
    let s = if on {
        c.prepared("INSERT INTO contacts_only (user_id) VALUES ($1) ON CONFLICT DO NOTHING")?
    } else {
        c.prepared("DELETE FROM contacts_only WHERE user_id = $1")?
    };
    c.client().execute(&s, &[&pg_u64(user.0)])?;
    Ok(())
}

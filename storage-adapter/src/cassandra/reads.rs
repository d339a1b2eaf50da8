//! Every read. Batched lookups send one point query per key, all at once
//! (the driver routes each to a replica of its partition), and answer in
//! input order. Scans walk the buckets the bucket index lists (or, for the
//! inbox, the position buckets up to the head), in order, and stop as soon
//! as `limit` rows are found, so their cost follows what they return, never
//! the age of the conversation or inbox. The inbox is read by the rule of
//! `walk`: only gap-free runs of positions.

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, Group, GroupId, Message, MessageId, MessageKind, Snowflake, UserId};
use futures::{stream, StreamExt, TryStreamExt};

use super::{
    answer::Answer,
    bucket::{inbox_bucket, message_bucket, pos_bucket},
    plan::{big, id_bound},
    statements as cql,
    walk::{self, Found},
    Cql, CONCURRENCY,
};
use crate::{
    codec::{self, InboxRecord},
    conversation_list::{self, ConversationSummary, MAX_RECOUNT},
    GroupVersion, InboxEntry, InboxEvent, InboxPos, MessageHeader, MessageReceipts, StoreError,
};

/// Events of `inbox_ids` just below an unknown cursor among which
/// `inbox_position` takes the highest position.
const IDS_BELOW: i32 = 256;

/// Bucket index rows read per request of a scan.
const BUCKETS_PER_READ: i32 = 32;

type Result<T> = std::result::Result<T, StoreError>;

fn limit_of(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Answers to `keys`, looked up at most [`CONCURRENCY`] at once, in input order.
async fn each<K, T, F>(keys: impl IntoIterator<Item = K>, f: impl Fn(K) -> F) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>>,
{
    stream::iter(keys.into_iter().map(f)).buffered(CONCURRENCY).try_collect().await
}

fn kind(k: i32) -> Result<MessageKind> {
    u8::try_from(k)
        .ok()
        .and_then(MessageKind::from_u8)
        .ok_or(StoreError::Corrupt { table: "messages", what: "bad kind" })
}

fn conversation(bytes: &[u8], table: &'static str) -> Result<ConversationId> {
    ConversationId::from_key(bytes).ok_or(StoreError::Corrupt { table, what: "bad conversation key" })
}

/// The high water of generator `node` (its 10 bits are the partition).
pub(super) async fn high_water(c: &Cql, node: u16) -> Result<MessageId> {
    let slot = i32::from(node & 0x3ff);
    let rows: Vec<(i64,)> = c.rows("high_water", cql::HIGH_WATER, (slot,)).await?;
    Ok(MessageId(rows.into_iter().map(|(id,)| id.max(0) as u64).max().unwrap_or(0)))
}

/// Every user's latest revocation time (the largest of its rows).
pub(super) async fn revocations(c: &Cql) -> Result<Vec<(UserId, u64)>> {
    let rows: Vec<(i64, i64)> = c.rows("revocations", cql::REVOCATIONS, ()).await?;
    let mut latest = std::collections::HashMap::<u64, u64>::new();
    for (user, at) in rows {
        let at = at.max(0) as u64;
        let e = latest.entry(user as u64).or_insert(at);
        *e = (*e).max(at);
    }
    Ok(latest.into_iter().map(|(u, at)| (UserId(u), at)).collect())
}

pub(super) async fn message(c: &Cql, conv: ConversationId, id: MessageId) -> Result<Option<Message>> {
    let key = (codec::conv_key(&conv), message_bucket(id), id_bound(id));
    let rows: Vec<(i64, i32, String, String)> = c.rows("messages", cql::MESSAGE, key).await?;
    let Some((sender, k, client_id, body)) = rows.into_iter().next() else { return Ok(None) };
    let (body, amended) = codec::read_body(body)?;
    Ok(Some(Message {
        id,
        conversation: conv,
        from: UserId(sender as u64),
        kind: kind(k)?,
        client_id,
        ts: Snowflake::unix_ms(id),
        body,
        amended,
    }))
}

pub(super) async fn messages_by_client_ids(
    c: &Cql,
    keys: &[(UserId, &str)],
) -> Result<Vec<Option<(ConversationId, MessageId)>>> {
    each(keys.iter().copied(), |(sender, client_id)| async move {
        // The empty client id (system messages) binds nothing.
        if client_id.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(Vec<u8>, i64)> = c.rows("idempotency", cql::KEY, (big(sender.0), client_id)).await?;
        match rows.into_iter().next() {
            Some((conv, id)) => Ok(Some((conversation(&conv, "idempotency")?, MessageId(id as u64)))),
            None => Ok(None),
        }
    })
    .await
}

pub(super) async fn messages(c: &Cql, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>> {
    each(keys.iter().copied(), |(conv, id)| async move { message(c, conv, id).await }).await
}

pub(super) async fn message_headers(
    c: &Cql,
    keys: &[(ConversationId, MessageId)],
) -> Result<Vec<Option<MessageHeader>>> {
    each(keys.iter().copied(), |(conv, id)| async move {
        let key = (codec::conv_key(&conv), message_bucket(id), id_bound(id));
        let rows: Vec<(i64, i32)> = c.rows("messages", cql::HEADER, key).await?;
        match rows.into_iter().next() {
            Some((sender, k)) => Ok(Some(MessageHeader { id, from: UserId(sender as u64), kind: kind(k)? })),
            None => Ok(None),
        }
    })
    .await
}

pub(super) async fn delivery_marks(c: &Cql, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>> {
    each(keys.iter().copied(), |(conv, id, user)| async move {
        let key = (codec::conv_key(&conv), id_bound(id), big(user.0));
        let rows: Vec<(i64,)> = c.rows("delivered", cql::DELIVERY_MARK, key).await?;
        Ok(!rows.is_empty())
    })
    .await
}

pub(super) async fn read_marks(c: &Cql, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>> {
    each(keys.iter().copied(), |(conv, reader)| async move {
        // Clustered by `up_to` descending: the first row is the furthest.
        let rows: Vec<(i64,)> = c.rows("read_marks", cql::READ_MARK, (codec::conv_key(&conv), big(reader.0))).await?;
        Ok(rows.into_iter().map(|(up_to,)| MessageId(up_to as u64)).max())
    })
    .await
}

/// The event that hid each message from `user`, if one did: the smallest
/// of its rows (see `statements::INSERT_HIDDEN`).
pub(super) async fn hidden_marks(
    c: &Cql,
    user: UserId,
    keys: &[(ConversationId, MessageId)],
) -> Result<Vec<Option<MessageId>>> {
    each(keys.iter().copied(), |(conv, id)| async move {
        let key = (big(user.0), codec::conv_key(&conv), big(id.0));
        let rows: Vec<(i64,)> = c.rows("hidden", cql::HIDDEN_MARK, key).await?;
        Ok(rows.into_iter().map(|(event,)| MessageId(event as u64)).min())
    })
    .await
}

/// One page of `user`'s conversation list: the whole partition of
/// `conversation_last` (one user's conversations; the largest `last` of
/// each conversation is its last message), ordered and cut here; then, for
/// the page only, the read marks and the unread rows after them.
pub(super) async fn conversations(
    c: &Cql,
    user: UserId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<Vec<ConversationSummary>> {
    let rows: Vec<(Vec<u8>, i64)> = c.rows("conversation_last", cql::CONVERSATION_LIST, (big(user.0),)).await?;
    let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
    for (conv, id) in rows {
        let e = last.entry(conv).or_insert(id);
        *e = (*e).max(id);
    }
    let mut summaries = Vec::with_capacity(last.len());
    for (conv, id) in last {
        let conversation = ConversationId::from_key(&conv)
            .ok_or(StoreError::Corrupt { table: "conversation_last", what: "bad conversation key" })?;
        summaries.push(ConversationSummary { conversation, last: MessageId(id as u64), unread: 0 });
    }
    let mut page = conversation_list::page(summaries, before, limit);
    let keys: Vec<_> = page.iter().map(|s| (s.conversation, user)).collect();
    let marks = read_marks(c, &keys).await?;
    let counts = each(page.iter().zip(marks).map(|(s, m)| (s.conversation, m)), |(conv, mark)| async move {
        let rows: Vec<(i64,)> = c.rows("unread", cql::UNREAD_OF, (big(user.0), codec::conv_key(&conv))).await?;
        let mark = mark.map_or(0, id_bound);
        Ok(rows.iter().filter(|(id,)| *id > mark).count().min(MAX_RECOUNT) as u64)
    })
    .await?;
    for (s, n) in page.iter_mut().zip(counts) {
        s.unread = n;
    }
    Ok(page)
}

pub(super) async fn headers_between(
    c: &Cql,
    conv: ConversationId,
    after: MessageId,
    up_to: MessageId,
    limit: usize,
) -> Result<Vec<MessageHeader>> {
    let key = codec::conv_key(&conv);
    let (mut from, last) = (message_bucket(after), message_bucket(up_to));
    let mut out = Vec::new();
    loop {
        let values = (key.clone(), from, last, BUCKETS_PER_READ);
        let buckets: Vec<(i32,)> = c.rows("conversation_buckets", cql::CONVERSATION_BUCKETS_UP, values).await?;
        for (bucket,) in &buckets {
            let want = limit_of(limit - out.len());
            let values = (key.clone(), *bucket, id_bound(after), id_bound(up_to), want);
            let rows: Vec<(i64, i64, i32)> = c.rows("messages", cql::HEADERS_BETWEEN, values).await?;
            for (id, sender, k) in rows {
                out.push(MessageHeader { id: MessageId(id as u64), from: UserId(sender as u64), kind: kind(k)? });
            }
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
        match buckets.last() {
            Some((bucket,)) if buckets.len() == BUCKETS_PER_READ as usize && *bucket < last => from = bucket + 1,
            _ => return Ok(out),
        }
    }
}

pub(super) async fn receipts_of(c: &Cql, conv: ConversationId, id: MessageId) -> Result<MessageReceipts> {
    let key = (codec::conv_key(&conv), id_bound(id));
    let (delivered, read) = futures::try_join!(
        c.rows::<(i64, i64)>("delivered", cql::DELIVERED_OF, key.clone()),
        c.rows::<(i64, i64)>("read_by", cql::READ_BY_OF, key),
    )?;
    let entries = |rows: Vec<(i64, i64)>| {
        let mut v: Vec<(UserId, u64)> = rows.into_iter().map(|(u, at)| (UserId(u as u64), at as u64)).collect();
        // Ordered by user as unsigned numbers (stored bit for bit).
        v.sort_unstable();
        v
    };
    Ok(MessageReceipts { delivered: entries(delivered), read: entries(read) })
}

pub(super) async fn group(c: &Cql, id: GroupId) -> Result<Option<(Group, GroupVersion)>> {
    let rows: Vec<(Vec<u8>, Option<i64>)> = c.rows("groups", cql::GROUP, (big(id.0),)).await?;
    let Some((record, version)) = rows.into_iter().next() else { return Ok(None) };
    let version = version.ok_or(StoreError::Corrupt { table: "groups", what: "a record without a version" })?;
    Ok(Some((codec::decode_group(id, &record)?, GroupVersion(version.max(0) as u64))))
}

/// An inbox row: position, event id, the conversation of a message or the
/// encoded receipt, the hole mark, the event's write time.
type InboxRow = (i64, Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>, Option<bool>, Option<i64>);

fn found(row: &InboxRow) -> Found {
    if row.4 == Some(true) {
        Found::Hole
    } else {
        Found::Event(row.5)
    }
}

fn now_us() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

/// The inbox head of `user` and when it was last claimed, `None` before
/// the first claim.
async fn head(c: &Cql, user: UserId) -> Result<Option<(u64, Option<i64>)>> {
    let rows: Vec<(Option<i64>, Option<i64>)> = c.rows("inbox_heads", cql::HEAD, (big(user.0),)).await?;
    Ok(rows.into_iter().next().and_then(|(head, at)| Some((head?.max(0) as u64, at))))
}

/// Close positions `range` of `user`'s inbox as holes, each unless an
/// event took it first. Returns whether every one became a hole.
async fn close(c: &Cql, user: UserId, range: std::ops::Range<u64>) -> Result<bool> {
    let mut all = true;
    for pos in range {
        let values = (big(user.0), pos_bucket(pos), big(pos));
        let result = c.execute(cql::INSERT_INBOX_HOLE, values).await.map_err(|e| StoreError::backend("inbox", e))?;
        let answer = Answer::of(result).map_err(|e| StoreError::backend("inbox", e))?;
        if answer.applied {
            tracing::warn!(user = user.0, pos, "closed an inbox position left unwritten by a failed commit");
        }
        all &= answer.applied;
    }
    Ok(all)
}

/// The inbox table as `walk` reads it.
struct Inbox<'a> {
    c: &'a Cql,
    user: UserId,
}

impl walk::Pages for Inbox<'_> {
    type Row = InboxRow;

    async fn page(&mut self, bucket: i32, from: u64, want: usize) -> Result<Vec<(u64, Found, InboxRow)>> {
        let values = (big(self.user.0), bucket, big(from), limit_of(want));
        let rows: Vec<InboxRow> = self.c.rows("inbox", cql::INBOX_PAGE, values).await?;
        Ok(rows.into_iter().map(|r| (r.0.max(0) as u64, found(&r), r)).collect())
    }

    async fn close(&mut self, range: std::ops::Range<u64>) -> Result<bool> {
        close(self.c, self.user, range).await
    }
}

pub(super) async fn inbox_after(c: &Cql, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>> {
    let Some((head, head_at)) = head(c, user).await? else { return Ok(Vec::new()) };
    let rows = walk::read(&mut Inbox { c, user }, head, head_at, after.0, limit, now_us()).await?;
    each(rows, |row| resolve(c, row)).await
}

/// The position of the cursor's event; for an unknown cursor the highest
/// position among the [`IDS_BELOW`] events with the largest ids at or
/// below it; zero if there is none.
pub(super) async fn inbox_position(c: &Cql, user: UserId, cursor: MessageId) -> Result<InboxPos> {
    if cursor == MessageId(0) {
        return Ok(InboxPos(0));
    }
    let (bucket, event) = (inbox_bucket(cursor), id_bound(cursor));
    let exact: Vec<(i64,)> = c.rows("inbox_ids", cql::INBOX_ID, (big(user.0), bucket, event)).await?;
    if let Some((pos,)) = exact.into_iter().next() {
        return Ok(InboxPos(pos.max(0) as u64));
    }
    let mut to = bucket;
    loop {
        let values = (big(user.0), to, BUCKETS_PER_READ);
        let buckets: Vec<(i32,)> = c.rows("inbox_buckets", cql::INBOX_BUCKETS_DOWN, values).await?;
        for (b,) in &buckets {
            let values = (big(user.0), *b, event, IDS_BELOW);
            let below: Vec<(i64,)> = c.rows("inbox_ids", cql::INBOX_IDS_BELOW, values).await?;
            if let Some(pos) = below.into_iter().map(|(p,)| p.max(0) as u64).max() {
                return Ok(InboxPos(pos));
            }
        }
        match buckets.last() {
            Some((b,)) if buckets.len() == BUCKETS_PER_READ as usize && *b > i32::MIN => to = b - 1,
            _ => return Ok(InboxPos(0)),
        }
    }
}

/// An inbox row as an event: a message reference read from its table.
async fn resolve(c: &Cql, (pos, event, conv, receipt, _, _): InboxRow) -> Result<InboxEntry> {
    let corrupt = |what| StoreError::Corrupt { table: "inbox", what };
    let event = MessageId(event.ok_or(corrupt("an entry without an event id"))? as u64);
    let event = match (conv, receipt) {
        (Some(conv), None) => {
            // A reference is written only after its message was stored
            // (`plan`), so a reference to nothing is damage.
            let m = message(c, conversation(&conv, "inbox")?, event).await?;
            m.map(InboxEvent::Message).ok_or(corrupt("reference to a missing message"))
        }
        (None, Some(receipt)) => match codec::decode_inbox(event, &receipt)? {
            InboxRecord::Receipt(r) => Ok(InboxEvent::Receipt(r)),
            InboxRecord::Amended(conv, id) => {
                // Written only after the amended row (`plan`'s first phase).
                let m = message(c, conv, id).await?;
                m.map(|message| InboxEvent::Amended { event, message }).ok_or(corrupt("amendment of a missing message"))
            }
            InboxRecord::Hidden(conv, id) => {
                let m = message(c, conv, id).await?;
                m.map(|m| InboxEvent::Amended { event, message: chatgw_protocol::hidden_view(m, event) })
                    .ok_or(corrupt("hidden mark of a missing message"))
            }
            InboxRecord::KeysChanged(user) => Ok(InboxEvent::KeysChanged { event, user }),
            InboxRecord::Message(_) => Err(corrupt("a message reference stored as a receipt")),
        },
        _ => Err(corrupt("neither a message nor a receipt")),
    }?;
    Ok(InboxEntry { pos: InboxPos(pos.max(0) as u64), event })
}

pub(super) async fn history(
    c: &Cql,
    conv: ConversationId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<Vec<Message>> {
    let key = codec::conv_key(&conv);
    // No cursor: everything, i.e. below the largest id there can be.
    let before_id = before.map_or(i64::MAX, id_bound);
    let mut to = before.map_or(i32::MAX, message_bucket);
    let mut out = Vec::new();
    loop {
        let values = (key.clone(), to, BUCKETS_PER_READ);
        let buckets: Vec<(i32,)> = c.rows("conversation_buckets", cql::CONVERSATION_BUCKETS_DOWN, values).await?;
        for (bucket,) in &buckets {
            let values = (key.clone(), *bucket, before_id, limit_of(limit - out.len()));
            let rows: Vec<(i64, i64, i32, String, String)> = c.rows("messages", cql::HISTORY, values).await?;
            for (id, sender, k, client_id, body) in rows {
                let id = MessageId(id as u64);
                let from = UserId(sender as u64);
                let (body, amended) = codec::read_body(body)?;
                out.push(Message {
                    id,
                    conversation: conv,
                    from,
                    kind: kind(k)?,
                    client_id,
                    ts: Snowflake::unix_ms(id),
                    body,
                    amended,
                });
            }
            if out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
        match buckets.last() {
            Some((bucket,)) if buckets.len() == BUCKETS_PER_READ as usize && *bucket > i32::MIN => to = bucket - 1,
            _ => return Ok(out),
        }
    }
}

//! Every read. Batched lookups send one point query per key, all at once
//! (the driver routes each to a replica of its partition), and answer in
//! input order. Scans walk the buckets the bucket index lists, in order,
//! and stop as soon as `limit` rows are found, so their cost follows what
//! they return, never the age of the conversation or inbox.

use chatgw_protocol::{ConversationId, Group, GroupId, Message, MessageId, MessageKind, Snowflake, UserId};
use futures::{stream, StreamExt, TryStreamExt};

use super::{
    bucket::{inbox_bucket, message_bucket},
    plan::{big, id_bound},
    statements as cql, Cql, CONCURRENCY,
};
use crate::{
    codec::{self, InboxRecord},
    InboxEvent, MessageHeader, MessageReceipts, StoreError,
};

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

pub(super) async fn high_water(c: &Cql) -> Result<MessageId> {
    let rows: Vec<(i64,)> = c.rows("high_water", cql::HIGH_WATER, ()).await?;
    Ok(MessageId(rows.into_iter().map(|(id,)| id.max(0) as u64).max().unwrap_or(0)))
}

pub(super) async fn message(c: &Cql, conv: ConversationId, id: MessageId) -> Result<Option<Message>> {
    let key = (codec::conv_key(&conv), message_bucket(id), id_bound(id));
    let rows: Vec<(i64, i32, String, String)> = c.rows("messages", cql::MESSAGE, key).await?;
    let Some((sender, k, client_id, body)) = rows.into_iter().next() else { return Ok(None) };
    Ok(Some(Message {
        id,
        conversation: conv,
        from: UserId(sender as u64),
        kind: kind(k)?,
        client_id,
        ts: Snowflake::unix_ms(id),
        body,
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

pub(super) async fn group(c: &Cql, id: GroupId) -> Result<Option<Group>> {
    let rows: Vec<(Vec<u8>,)> = c.rows("groups", cql::GROUP, (big(id.0),)).await?;
    rows.into_iter().next().map(|(record,)| codec::decode_group(id, &record)).transpose()
}

/// An inbox row: event id, then the conversation of a message or the
/// encoded receipt.
type InboxRow = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

pub(super) async fn inbox_after(c: &Cql, user: UserId, after: MessageId, limit: usize) -> Result<Vec<InboxEvent>> {
    let mut rows: Vec<InboxRow> = Vec::new();
    let mut from = inbox_bucket(after);
    'walk: loop {
        let values = (big(user.0), from, BUCKETS_PER_READ);
        let buckets: Vec<(i32,)> = c.rows("inbox_buckets", cql::INBOX_BUCKETS, values).await?;
        for (bucket,) in &buckets {
            let values = (big(user.0), *bucket, id_bound(after), limit_of(limit - rows.len()));
            rows.extend(c.rows::<InboxRow>("inbox", cql::INBOX_PAGE, values).await?);
            if rows.len() >= limit {
                rows.truncate(limit);
                break 'walk;
            }
        }
        match buckets.last() {
            Some((bucket,)) if buckets.len() == BUCKETS_PER_READ as usize => from = bucket + 1,
            _ => break,
        }
    }
    each(rows, |row| resolve(c, row)).await
}

/// An inbox row as an event: a message reference read from its table.
async fn resolve(c: &Cql, (event, conv, receipt): InboxRow) -> Result<InboxEvent> {
    let corrupt = |what| StoreError::Corrupt { table: "inbox", what };
    let event = MessageId(event as u64);
    match (conv, receipt) {
        (Some(conv), None) => {
            // A reference is written only after its message was stored
            // (`plan`), so a reference to nothing is damage.
            let m = message(c, conversation(&conv, "inbox")?, event).await?;
            m.map(InboxEvent::Message).ok_or(corrupt("reference to a missing message"))
        }
        (None, Some(receipt)) => match codec::decode_inbox(event, &receipt)? {
            InboxRecord::Receipt(r) => Ok(InboxEvent::Receipt(r)),
            InboxRecord::Message(_) => Err(corrupt("a message reference stored as a receipt")),
        },
        _ => Err(corrupt("neither a message nor a receipt")),
    }
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
                out.push(Message {
                    id,
                    conversation: conv,
                    from,
                    kind: kind(k)?,
                    client_id,
                    ts: Snowflake::unix_ms(id),
                    body,
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

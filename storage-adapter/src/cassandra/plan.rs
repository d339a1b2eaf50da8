//! A commit batch turned into CQL writes, grouped by partition, with no I/O.
//!
//! Why this shape (docs/STORAGE.md has the cost per message):
//! - What must be unique across writers is decided first, by lightweight
//!   transactions (`decide`: idempotency keys, group versions), and only
//!   the writes that won are planned here: a write refused there leaves no
//!   row at all.
//! - Rows of one partition go in one UNLOGGED batch: Cassandra applies a
//!   single-partition batch atomically and in isolation, in one mutation.
//!   Rows of different partitions are never batched together (that would
//!   make one coordinator wait on many replica sets); they are separate
//!   writes sent at once ([`Unit`]s of a phase run concurrently).
//! - A batch is cut into chunks of at most [`CHUNK_BYTES`], under the
//!   servers' batch size limits (Cassandra refuses batches over 50 KiB by
//!   default).
//! - Everything an inbox entry points at (messages, marks, bucket index
//!   rows, high water) is written in the first phase, the inbox entries
//!   only once their positions are claimed (`positions`) and the first
//!   phase is acknowledged, so a reader never finds an inbox reference to a
//!   message that is not stored, even after a commit that failed half way.
//! - Inbox entries of one inbox are conditional inserts (one Paxos round
//!   per partition and chunk, `IF NOT EXISTS` on every position), written
//!   last position first ([`inbox_rows`]): readers return only positions
//!   without a gap below them (`walk`), so a commit's events in one inbox
//!   appear to them all at once, when the chunk holding its first position
//!   lands.
//! - No read before any other write: read marks and high waters are rows
//!   per value whose maximum is read ([`Unit`]: insert plus a range delete
//!   of the smaller ones).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chatgw_protocol::{ConversationId, Message, MessageId, Receipt, ReceiptStatus, UserId};
use scylla::value::CqlValue;

use super::{
    bucket::{inbox_bucket, message_bucket, pos_bucket},
    statements as cql,
};
use crate::{codec, counts_as_unread, CommitStats, Write};

/// Largest batch sent as one request, in bytes of bound values.
pub(super) const CHUNK_BYTES: usize = 32 * 1024;

/// Most statements in one batch.
const CHUNK_ROWS: usize = 256;

/// One statement and its bound values.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Stmt {
    pub(super) cql: &'static str,
    pub(super) values: Vec<CqlValue>,
}

impl Stmt {
    fn new(cql: &'static str, values: Vec<CqlValue>) -> Self {
        Stmt { cql, values }
    }

    /// Bytes of the bound values.
    fn bytes(&self) -> usize {
        self.values.iter().map(value_bytes).sum()
    }
}

fn value_bytes(v: &CqlValue) -> usize {
    match v {
        CqlValue::Blob(b) => b.len(),
        CqlValue::Text(s) => s.len(),
        CqlValue::Int(_) => 4,
        _ => 8,
    }
}

/// Statements of one partition sent as one request: a single statement, or
/// an unlogged batch.
pub(super) type Chunk = Vec<Stmt>;

/// Chunks written one after the other (all of one partition, or of one
/// inbox owner's partitions). Units of a phase run at once.
pub(super) type Unit = Vec<Chunk>;

/// A bucket index row: the first write of a bucket records it so that scans
/// visit only buckets that hold data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum BucketRow {
    /// `conversation_buckets`.
    Conversation(Vec<u8>, i32),
    /// `inbox_buckets` (the time buckets of `inbox_ids`).
    Inbox(u64, i32),
}

/// What an inbox entry holds besides its event id.
#[derive(Clone, Debug, PartialEq)]
enum Payload {
    /// A message reference: the message's conversation key.
    Message(Vec<u8>),
    /// An encoded receipt.
    Receipt(Vec<u8>),
}

/// One inbox event of a commit, before it has a position.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Event {
    pub(super) id: MessageId,
    payload: Payload,
}

/// Bound values of an inbox entry besides the payload (user, bucket,
/// position, event) and of its `inbox_ids` row (user, bucket, event,
/// position), counted before positions are known.
const INBOX_ROW_BYTES: usize = 28;

/// Everything one commit writes after its lightweight transactions, but
/// the inbox entries, which wait for their positions.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// What inbox entries point at.
    pub(super) first: Vec<Unit>,
    /// The inbox events of each inbox owner, in batch order.
    pub(super) events: BTreeMap<u64, Vec<Event>>,
    /// Bucket index rows written by this plan (to remember once it commits).
    pub(super) buckets: Vec<BucketRow>,
    pub(super) stats: CommitStats,
}

/// Ids as CQL `bigint`: Snowflakes have the top bit clear, so they keep
/// their order; other numbers are stored bit for bit.
pub(super) fn big(v: u64) -> CqlValue {
    CqlValue::BigInt(v as i64)
}

/// A bound from a caller: ids past `i64::MAX` cannot be stored, so they
/// bound like `i64::MAX`.
pub(super) fn id_bound(id: MessageId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// The high-water partition a Snowflake id belongs to: its generator bits.
fn slot_of(id: MessageId) -> i32 {
    ((id.0 >> 12) & 0x3ff) as i32
}

#[derive(Default)]
struct Builder {
    messages: BTreeMap<(Vec<u8>, i32), Vec<Stmt>>,
    conversation_buckets: BTreeSet<(Vec<u8>, i32)>,
    events: BTreeMap<u64, Vec<Event>>,
    inbox_buckets: BTreeSet<(u64, i32)>,
    marks: BTreeMap<(&'static str, Vec<u8>, u64), Vec<Stmt>>,
    read_marks: HashMap<(Vec<u8>, u64), (MessageId, u64)>,
    /// The newest message of this batch per `(user, conversation)`.
    list_last: BTreeMap<(u64, Vec<u8>), MessageId>,
    /// Unread rows per `(user, conversation)` partition.
    unread: BTreeMap<(u64, Vec<u8>), Vec<Stmt>>,
    stats: CommitStats,
}

/// The message row as it is stored now (the body behind its amendment
/// mark, if any): what a new message and an amendment both write.
fn message_row(m: &Message, conv: &[u8], bucket: i32) -> Stmt {
    Stmt::new(
        cql::INSERT_MESSAGE,
        vec![
            CqlValue::Blob(conv.to_vec()),
            CqlValue::Int(bucket),
            big(m.id.0),
            big(m.from.0),
            CqlValue::Int(i32::from(m.kind.to_u8())),
            CqlValue::Text(m.client_id.clone()),
            CqlValue::Text(codec::stored_body(m).into_owned()),
        ],
    )
}

impl Builder {
    fn message(&mut self, m: &Message, inboxes: &[UserId]) {
        let conv = codec::conv_key(&m.conversation);
        let bucket = message_bucket(m.id);
        let row = message_row(m, &conv, bucket);
        self.count(&row);
        self.messages.entry((conv.clone(), bucket)).or_default().push(row);
        self.conversation_buckets.insert((conv.clone(), bucket));
        // The idempotency key was bound before (`decide`); counted here.
        if !m.client_id.is_empty() {
            self.stats.records += 1;
            self.stats.bytes += 8 + m.client_id.len() + conv.len() + 8;
        }
        for user in inboxes {
            self.event(*user, Event { id: m.id, payload: Payload::Message(conv.clone()) });
            let last = self.list_last.entry((user.0, conv.clone())).or_insert(m.id);
            *last = (*last).max(m.id);
            if counts_as_unread(*user, m.from, m.kind) {
                let row = Stmt::new(cql::INSERT_UNREAD, vec![big(user.0), CqlValue::Blob(conv.clone()), big(m.id.0)]);
                self.count(&row);
                self.unread.entry((user.0, conv.clone())).or_default().push(row);
            }
        }
    }

    /// An amendment: the message row rewritten (`row`: unless a later
    /// amendment of the same batch rewrites it) and an `amended` event,
    /// referring to the message, in each inbox.
    fn amend(&mut self, m: &Message, inboxes: &[UserId], row: bool) {
        let conv = codec::conv_key(&m.conversation);
        if row {
            let bucket = message_bucket(m.id);
            let stmt = message_row(m, &conv, bucket);
            self.count(&stmt);
            self.messages.entry((conv, bucket)).or_default().push(stmt);
        }
        let event = m.amended.map_or(MessageId(0), |a| a.event);
        let encoded = codec::encode_amended(&m.conversation, m.id);
        for user in inboxes {
            self.event(*user, Event { id: event, payload: Payload::Receipt(encoded.clone()) });
        }
    }

    /// A hide: the mark (a row of the user's `hidden` partition) and the
    /// `amended` event in that user's inbox only.
    fn hide(&mut self, user: UserId, conversation: &ConversationId, msg: MessageId, event: MessageId) {
        let conv = codec::conv_key(conversation);
        let row = Stmt::new(cql::INSERT_HIDDEN, vec![big(user.0), CqlValue::Blob(conv), big(msg.0), big(event.0)]);
        self.count(&row);
        self.marks.entry((cql::INSERT_HIDDEN, user.0.to_be_bytes().to_vec(), 0)).or_default().push(row);
        let encoded = codec::encode_hidden(conversation, msg);
        self.event(user, Event { id: event, payload: Payload::Receipt(encoded) });
    }

    fn event(&mut self, user: UserId, event: Event) {
        let payload = match &event.payload {
            Payload::Message(b) | Payload::Receipt(b) => b.len(),
        };
        self.stats.records += 2;
        self.stats.bytes += 2 * INBOX_ROW_BYTES + payload;
        self.inbox_buckets.insert((user.0, inbox_bucket(event.id)));
        self.events.entry(user.0).or_default().push(event);
    }

    fn mark(&mut self, table: &'static str, conversation: &ConversationId, id: MessageId, user: UserId, at: u64) {
        let conv = codec::conv_key(conversation);
        let row = Stmt::new(table, vec![CqlValue::Blob(conv.clone()), big(id.0), big(user.0), big(at)]);
        self.count(&row);
        self.marks.entry((table, conv, id.0)).or_default().push(row);
    }

    fn receipt(&mut self, receipt: &Receipt, inboxes: &[UserId]) {
        match receipt {
            Receipt::Delivered { conversation, by, ids, at, .. } => {
                for id in ids {
                    self.mark(cql::INSERT_DELIVERED, conversation, *id, *by, *at);
                }
            }
            Receipt::Read { conversation, by, up_to, at, .. } => {
                let mark = self.read_marks.entry((codec::conv_key(conversation), by.0)).or_insert((*up_to, *at));
                if *up_to > mark.0 {
                    *mark = (*up_to, *at);
                }
            }
            Receipt::Group { group, status, items, at, .. } => {
                let conversation = ConversationId::Group(*group);
                let table = match status {
                    ReceiptStatus::Delivered => cql::INSERT_DELIVERED,
                    ReceiptStatus::Read => cql::INSERT_READ_BY,
                };
                for (by, ids) in items {
                    for id in ids {
                        self.mark(table, &conversation, *id, *by, *at);
                    }
                }
            }
        }
        let encoded = codec::encode_receipt(receipt);
        for user in inboxes {
            self.event(*user, Event { id: receipt.event(), payload: Payload::Receipt(encoded.clone()) });
        }
    }

    fn count(&mut self, row: &Stmt) {
        self.stats.bytes += row.bytes();
        self.stats.records += 1;
    }

    fn finish(mut self, high_water: MessageId, recorded: &dyn Fn(&BucketRow) -> bool) -> Plan {
        let mut plan = Plan::default();
        plan.first.extend(self.messages.into_values().map(chunks));
        let mut by_conversation: BTreeMap<Vec<u8>, Vec<i32>> = BTreeMap::new();
        for (conv, bucket) in self.conversation_buckets {
            let row = BucketRow::Conversation(conv.clone(), bucket);
            if !recorded(&row) {
                by_conversation.entry(conv).or_default().push(bucket);
                plan.buckets.push(row);
            }
        }
        for (conv, buckets) in by_conversation {
            let rows: Vec<Stmt> = buckets
                .into_iter()
                .map(|b| {
                    Stmt::new(cql::INSERT_CONVERSATION_BUCKET, vec![CqlValue::Blob(conv.clone()), CqlValue::Int(b)])
                })
                .collect();
            rows.iter().for_each(|r| {
                self.stats.bytes += r.bytes();
                self.stats.records += 1;
            });
            plan.first.push(chunks(rows));
        }
        let mut by_user: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
        for (user, bucket) in self.inbox_buckets {
            let row = BucketRow::Inbox(user, bucket);
            if !recorded(&row) {
                by_user.entry(user).or_default().push(bucket);
                plan.buckets.push(row);
            }
        }
        for (user, buckets) in by_user {
            let rows: Vec<Stmt> = buckets
                .into_iter()
                .map(|b| Stmt::new(cql::INSERT_INBOX_BUCKET, vec![big(user), CqlValue::Int(b)]))
                .collect();
            rows.iter().for_each(|r| {
                self.stats.bytes += r.bytes();
                self.stats.records += 1;
            });
            plan.first.push(chunks(rows));
        }
        // A read clears the reader's unread rows up to its mark, in the
        // partition's batch (a tombstone wins over an insert of the same
        // batch, which is right: those messages are read).
        for ((conv, reader), (up_to, _)) in &self.read_marks {
            let clear = Stmt::new(
                cql::CLEAR_UNREAD,
                vec![big(*reader), CqlValue::Blob(conv.clone()), CqlValue::BigInt(id_bound(*up_to))],
            );
            self.unread.entry((*reader, conv.clone())).or_default().push(clear);
        }
        plan.first.extend(std::mem::take(&mut self.unread).into_values().map(chunks));
        plan.first.extend(self.marks.into_values().map(chunks));
        for ((conv, reader), (up_to, at)) in self.read_marks {
            let up_to = id_bound(up_to);
            let insert = Stmt::new(
                cql::INSERT_READ_MARK,
                vec![CqlValue::Blob(conv.clone()), big(reader), CqlValue::BigInt(up_to), big(at)],
            );
            let prune =
                Stmt::new(cql::PRUNE_READ_MARKS, vec![CqlValue::Blob(conv), big(reader), CqlValue::BigInt(up_to)]);
            self.stats.bytes += insert.bytes();
            self.stats.records += 1;
            plan.first.push(vec![vec![insert, prune]]);
        }
        let mut lists: BTreeMap<u64, Vec<Stmt>> = BTreeMap::new();
        for ((user, conv), last) in std::mem::take(&mut self.list_last) {
            let values = vec![big(user), CqlValue::Blob(conv), CqlValue::BigInt(id_bound(last))];
            let insert = Stmt::new(cql::INSERT_CONVERSATION_LAST, values.clone());
            self.stats.bytes += insert.bytes();
            self.stats.records += 1;
            let rows = lists.entry(user).or_default();
            rows.push(insert);
            rows.push(Stmt::new(cql::PRUNE_CONVERSATION_LAST, values));
        }
        plan.first.extend(lists.into_values().map(chunks));
        let (slot, id) = (CqlValue::Int(slot_of(high_water)), CqlValue::BigInt(id_bound(high_water)));
        let insert = Stmt::new(cql::INSERT_HIGH_WATER, vec![slot.clone(), id.clone()]);
        self.stats.bytes += insert.bytes();
        self.stats.records += 1;
        plan.first.push(vec![vec![insert, Stmt::new(cql::PRUNE_HIGH_WATER, vec![slot, id])]]);
        plan.events = self.events;
        plan.stats = self.stats;
        plan
    }
}

/// Rows of one partition cut into chunks of at most [`CHUNK_BYTES`] and
/// [`CHUNK_ROWS`] (a single larger row is a chunk of its own).
fn chunks(rows: Vec<Stmt>) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = Vec::new();
    let mut size = 0;
    for row in rows {
        let bytes = row.bytes();
        match out.last_mut() {
            Some(chunk) if size + bytes <= CHUNK_BYTES && chunk.len() < CHUNK_ROWS => {
                size += bytes;
                chunk.push(row);
            }
            _ => {
                size = bytes;
                out.push(vec![row]);
            }
        }
    }
    out
}

/// The writes of one commit but its inbox entries, leaving out the writes
/// `applied` says were refused (their key was taken, their group changed).
/// Group records are written by their compare-and-set (`decide`); only an
/// applied group write's announcement is planned. `recorded` says which
/// bucket index rows this store already wrote (they are not written again).
pub(super) fn plan(
    writes: &[Write<'_>],
    applied: &dyn Fn(usize) -> bool,
    high_water: MessageId,
    recorded: &dyn Fn(&BucketRow) -> bool,
) -> Plan {
    let mut b = Builder::default();
    // The last amendment of each message in the batch: the row it leaves
    // (rows of one batch share a timestamp, so two would not be ordered).
    let mut last_amend: HashMap<(ConversationId, MessageId), usize> = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::Amend { message, .. } = w {
            last_amend.insert((message.conversation, message.id), i);
        }
    }
    for (i, w) in writes.iter().enumerate() {
        if !applied(i) {
            continue;
        }
        match *w {
            Write::Message { message, inboxes, .. } => b.message(message, inboxes),
            Write::Amend { message, inboxes } => {
                let row = last_amend.get(&(message.conversation, message.id)) == Some(&i);
                b.amend(message, inboxes, row)
            }
            Write::Receipt { receipt, inboxes } => b.receipt(receipt, inboxes),
            Write::Hide { user, conversation, msg, event } => b.hide(*user, &conversation, msg, event),
            Write::KeysChanged { user, event, inboxes } => {
                let encoded = codec::encode_keys_changed(*user);
                for to in inboxes {
                    b.event(*to, Event { id: event, payload: Payload::Receipt(encoded.clone()) });
                }
            }
            Write::Group { group, announce, inboxes, .. } => {
                b.stats.records += 1;
                b.stats.bytes += 16 + codec::encode_group(group).len();
                if let Some(m) = announce {
                    b.message(m, inboxes);
                }
            }
        }
    }
    b.finish(high_water, recorded)
}

/// The inbox entries of `user`'s `events` at positions `first`,
/// `first + 1`, ...: the conditional inserts, one unit cut by partition and
/// size and ordered last position first (so the chunk holding `first`, the
/// one that makes the others visible to readers, lands last); and the
/// `inbox_ids` rows, a unit per partition.
pub(super) fn inbox_rows(user: u64, first: u64, events: &[Event]) -> (Unit, Vec<Unit>) {
    let mut entries: BTreeMap<i32, Vec<Stmt>> = BTreeMap::new();
    let mut ids: BTreeMap<i32, Vec<Stmt>> = BTreeMap::new();
    for (pos, event) in (first..).zip(events) {
        let bucket = pos_bucket(pos);
        let (cql, payload) = match &event.payload {
            Payload::Message(conv) => (cql::INSERT_INBOX_MESSAGE, conv),
            Payload::Receipt(receipt) => (cql::INSERT_INBOX_RECEIPT, receipt),
        };
        let values = vec![big(user), CqlValue::Int(bucket), big(pos), big(event.id.0), CqlValue::Blob(payload.clone())];
        entries.entry(bucket).or_default().push(Stmt::new(cql, values));
        let id_bucket = inbox_bucket(event.id);
        let values = vec![big(user), CqlValue::Int(id_bucket), big(event.id.0), big(pos)];
        ids.entry(id_bucket).or_default().push(Stmt::new(cql::INSERT_INBOX_ID, values));
    }
    let mut unit: Unit = entries.into_values().flat_map(chunks).collect();
    unit.reverse();
    (unit, ids.into_values().map(chunks).collect())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

//! The Cassandra store's outbox: one outbox per node id, like PostgreSQL's,
//! since several gateways share the keyspace and each publishes its own
//! events.
//!
//! Why positions need no lightweight transaction: a node has one committer,
//! so the handle that enabled the outbox numbers its records itself, from
//! the head it read at enable time and keeps in memory. A commit's records
//! are written first, then the node's head (`outbox_heads`); a reader reads
//! the head first and returns only positions at or below it. Every record
//! below a head it can read was acknowledged before that head was written,
//! so a reader paging `pos > after` never passes a record that becomes
//! visible later, without any order or range from the server. Appends are
//! serialised by a lock in the handle, so heads only grow.
//!
//! Why positions do not repeat: the head is durable and read at enable,
//! and a handle numbers from [`SKIP`] positions above it. A process that
//! died between its records and its head (or whose head write timed out
//! and lands late) left at most [`SKIP`] records above the head (appends
//! are sent that many at a time, each followed by its head); they are never
//! overwritten, and are read (they describe writes that were applied) once
//! the next head passes them. One of them that lands only after a reader
//! passed its position is not published: it belongs to a commit whose
//! `sent` was never given. Readers skip positions
//! that hold nothing, so the skipped ones cost one point read each, once.
//! A failed append keeps its records and re-sends them (same positions,
//! same bytes: idempotent) before anything else is appended, so a commit
//! reported failed cannot leave a hidden record either.
//!
//! Partitions: records live in partitions of one node and one bucket of
//! [`BUCKET`] positions, so none grows without bound and trimming drops
//! whole partitions. Every read and delete is an equality on the full key
//! or the partition key (the in-memory test server takes no ranges).
//!
//! Trimming: `outbox_trimmed` holds how far records are gone; moving a
//! cursor deletes from there up to the lowest cursor, whole buckets by
//! partition and the last partial bucket row by row.

use futures::{stream, StreamExt, TryStreamExt};

use super::{Cql, CONCURRENCY};
use crate::{outbox, Committed, OutboxOptions, OutboxPos, OutboxRecord, StoreError, Write};

/// Positions per partition.
pub(super) const BUCKET: u64 = 1024;

/// Positions a handle leaves unused above the head it read at enable:
/// more than the records of one append, so a late write of an append cut
/// short is never overwritten.
pub(super) const SKIP: u64 = 4096;

/// Fewest positions one step of a read looks at, so a run of skipped
/// positions is crossed in few steps.
const WINDOW: u64 = 256;

const APPEND: &str = "INSERT INTO {ks}.outbox (node, bucket, pos, record) VALUES (?, ?, ?, ?)";
const RECORD: &str = "SELECT pos, record FROM {ks}.outbox WHERE node = ? AND bucket = ? AND pos = ?";
const DROP_BUCKET: &str = "DELETE FROM {ks}.outbox WHERE node = ? AND bucket = ?";
const DROP_RECORD: &str = "DELETE FROM {ks}.outbox WHERE node = ? AND bucket = ? AND pos = ?";
const SET_HEAD: &str = "INSERT INTO {ks}.outbox_heads (node, pos) VALUES (?, ?)";
const HEAD: &str = "SELECT pos FROM {ks}.outbox_heads WHERE node = ?";
const SET_TRIMMED: &str = "INSERT INTO {ks}.outbox_trimmed (node, pos) VALUES (?, ?)";
const TRIMMED: &str = "SELECT pos FROM {ks}.outbox_trimmed WHERE node = ?";
const SET_CURSOR: &str = "INSERT INTO {ks}.outbox_cursors (node, consumer, pos) VALUES (?, ?, ?)";
const CURSORS: &str = "SELECT consumer, pos FROM {ks}.outbox_cursors WHERE node = ?";

type Result<T> = std::result::Result<T, StoreError>;

/// What a handle with the outbox enabled appends with.
pub(super) struct Outbox {
    pub(super) options: OutboxOptions,
    appender: tokio::sync::Mutex<Appender>,
}

/// The node's head as this handle numbered it, and the records of an
/// append that failed, to be sent again before the next one.
struct Appender {
    head: u64,
    unsent: Vec<(u64, Vec<u8>)>,
}

fn big(v: u64) -> i64 {
    v as i64
}

fn bucket(pos: u64) -> i64 {
    big(pos / BUCKET)
}

/// A position read back: stored bit for bit, never negative.
fn pos_of(v: i64) -> u64 {
    v.max(0) as u64
}

async fn one_pos(c: &Cql, op: &'static str, cql: &'static str, node: u16) -> Result<u64> {
    let rows: Vec<(Option<i64>,)> = c.rows(op, cql, (i32::from(node),)).await?;
    Ok(rows.into_iter().find_map(|(p,)| p).map_or(0, pos_of))
}

/// The node's durable head: every record at or below it was written.
pub(super) async fn head(c: &Cql, node: u16) -> Result<u64> {
    one_pos(c, "outbox_heads", HEAD, node).await
}

async fn trimmed(c: &Cql, node: u16) -> Result<u64> {
    one_pos(c, "outbox_trimmed", TRIMMED, node).await
}

impl Outbox {
    /// Read the node's head (which fails, naming `init`, where the tables
    /// are missing) and number from there.
    pub(super) async fn enable(c: &Cql, options: OutboxOptions) -> Result<Self> {
        let head = head(c, options.node).await.map_err(|e| match e {
            StoreError::Backend { source, .. } => StoreError::Backend {
                op: "enable the outbox (are its tables missing? run `chatgw store init`)",
                source,
            },
            other => other,
        })?;
        let head = head.saturating_add(SKIP);
        Ok(Outbox { options, appender: tokio::sync::Mutex::new(Appender { head, unsent: Vec::new() }) })
    }

    /// After the commit's own writes: its records, then the new head.
    pub(super) async fn append(&self, c: &Cql, writes: &[Write<'_>], committed: &Committed) -> Result<()> {
        let records = outbox::records_of(writes, committed, self.options);
        let mut appender = self.appender.lock().await;
        self.resend(c, &mut appender).await?;
        if records.is_empty() {
            return Ok(());
        }
        let first = appender.head + 1;
        appender.head += records.len() as u64;
        appender.unsent = (first..).zip(records.iter().map(outbox::encode)).collect();
        self.resend(c, &mut appender).await
    }

    /// Send what is numbered and not yet sent: records, then the head
    /// above them, at most [`SKIP`] records at a time, so a died process
    /// leaves no more than that above its head.
    async fn resend(&self, c: &Cql, appender: &mut Appender) -> Result<()> {
        let node = i32::from(self.options.node);
        let fail = |e| StoreError::backend("append to the outbox", e);
        while let Some(&(last, _)) = appender.unsent.get(SKIP as usize - 1).or(appender.unsent.last()) {
            let n = appender.unsent.len().min(SKIP as usize);
            stream::iter(appender.unsent.iter().take(n))
                .map(|(pos, record)| c.execute(APPEND, (node, bucket(*pos), big(*pos), record.as_slice())))
                .buffer_unordered(CONCURRENCY)
                .try_for_each(|_| async { Ok(()) })
                .await
                .map_err(fail)?;
            c.execute(SET_HEAD, (node, big(last))).await.map_err(fail)?;
            appender.unsent.drain(..n);
        }
        Ok(())
    }

    /// Called by `recover`: a failed append is completed before the store
    /// takes writes again, so readers are not held behind it.
    pub(super) async fn flush(&self, c: &Cql) -> Result<()> {
        let mut appender = self.appender.lock().await;
        self.resend(c, &mut appender).await
    }
}

/// Up to `limit` records above `after` and at or below the durable head,
/// in windows of point reads, all of a window in flight at once, until
/// `limit` are found or the head is reached. Positions at or below the
/// trimmed mark are gone and not read; a position that holds nothing (left
/// unused at a restart, or trimmed between the reads of the marks and of
/// the record) is passed.
pub(super) async fn after(c: &Cql, node: u16, after: OutboxPos, limit: usize) -> Result<Vec<OutboxRecord>> {
    let (head, trimmed) = futures::try_join!(head(c, node), trimmed(c, node))?;
    let mut from = after.0.max(trimmed);
    let mut out = Vec::new();
    while out.len() < limit && from < head {
        let to = head.min(from.saturating_add(((limit - out.len()) as u64).max(WINDOW)));
        let reads = (from + 1..=to).map(|pos| async move {
            let values = (i32::from(node), bucket(pos), big(pos));
            let rows: Vec<(i64, Vec<u8>)> = c.rows("outbox", RECORD, values).await?;
            // Only the row asked for: a server that seeks rather than
            // matches (the in-memory test server) answers the next one.
            let row = rows.into_iter().find(|(p, _)| *p == big(pos));
            row.map(|(_, v)| outbox::decode(OutboxPos(pos), &v)).transpose()
        });
        let found: Vec<Option<OutboxRecord>> = stream::iter(reads).buffered(CONCURRENCY).try_collect().await?;
        out.extend(found.into_iter().flatten());
        from = to;
    }
    out.truncate(limit);
    Ok(out)
}

/// Every cursor of the node.
async fn cursors(c: &Cql, node: u16) -> Result<Vec<(String, u64)>> {
    let rows: Vec<(String, Option<i64>)> = c.rows("outbox_cursors", CURSORS, (i32::from(node),)).await?;
    Ok(rows.into_iter().map(|(name, p)| (name, p.map_or(0, pos_of))).collect())
}

pub(super) async fn cursor(c: &Cql, node: u16, consumer: &str) -> Result<OutboxPos> {
    let all = cursors(c, node).await?;
    Ok(OutboxPos(all.into_iter().find(|(name, _)| name == consumer).map_or(0, |(_, p)| p)))
}

/// Move the cursor up (never back), then remove what every consumer of the
/// node is done with. A crash between the two leaves records below the
/// lowest cursor, which the next move removes (the trimmed mark moves
/// last).
pub(super) async fn set_cursor(c: &Cql, node: u16, consumer: &str, pos: OutboxPos) -> Result<()> {
    let fail = |e| StoreError::backend("move an outbox cursor", e);
    let mut all = cursors(c, node).await?;
    let old = all.iter().find(|(name, _)| name == consumer).map(|(_, p)| *p);
    if old.is_none_or(|old| old < pos.0) {
        c.execute(SET_CURSOR, (i32::from(node), consumer, big(pos.0))).await.map_err(fail)?;
        all.retain(|(name, _)| name != consumer);
        all.push((consumer.to_owned(), pos.0));
    }
    let lowest = all.iter().map(|(_, p)| *p).min().unwrap_or(0);
    let done = trimmed(c, node).await?;
    if lowest <= done {
        return Ok(());
    }
    trim(c, node, done, lowest).await.map_err(fail)?;
    c.execute(SET_TRIMMED, (i32::from(node), big(lowest))).await.map_err(fail)?;
    Ok(())
}

/// Delete positions in `(from, to]`: a bucket that ends at or below `to`
/// as a partition, the rest of the last bucket row by row.
async fn trim(c: &Cql, node: u16, from: u64, to: u64) -> std::result::Result<(), super::CqlError> {
    let node = i32::from(node);
    let mut deletes = Vec::new();
    for b in (from + 1) / BUCKET..=to / BUCKET {
        if (b + 1) * BUCKET - 1 <= to {
            deletes.push((DROP_BUCKET, big(b), None));
        } else {
            deletes.extend(((from + 1).max(b * BUCKET)..=to).map(|p| (DROP_RECORD, big(b), Some(big(p)))));
        }
    }
    stream::iter(deletes)
        .map(|(cql, b, p)| async move {
            match p {
                None => c.execute(cql, (node, b)).await,
                Some(p) => c.execute(cql, (node, b, p)).await,
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_for_each(|_| async { Ok(()) })
        .await
}

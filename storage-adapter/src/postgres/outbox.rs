//! The PostgreSQL store's outbox: one outbox per node id (the generator
//! bits of the ids it commits), since several gateways share the database
//! and each publishes its own events.
//!
//! Why positions cannot be skipped: a commit bumps its node's row of
//! `outbox_heads` inside its transaction and takes its positions below the
//! new head; the row stays locked until COMMIT, so the next commit of the
//! node gets higher positions only after this one is visible, and a reader
//! paging `pos > after` never passes a position that commits later.
//!
//! The tables are new ones that nothing else reads (like `revocations`):
//! `chatgw store init` creates them, no schema version changes, and
//! enabling the outbox on a database initialised by an older release fails
//! with a message naming `init`.

use postgres::Client;

use super::{pg_u64, pool::Connection};
use crate::{outbox, Committed, OutboxOptions, OutboxPos, OutboxRecord, StoreError, Write};

const BUMP_HEAD: &str = "INSERT INTO outbox_heads (node, pos) VALUES ($1, $2) \
     ON CONFLICT (node) DO UPDATE SET pos = outbox_heads.pos + EXCLUDED.pos RETURNING pos";
const APPEND: &str =
    "INSERT INTO outbox (node, pos, record) SELECT $1, p, r FROM UNNEST($2::bigint[], $3::bytea[]) AS t(p, r)";

/// Inside the commit's transaction, before COMMIT: append the records of
/// the writes `committed` reports applied.
pub(super) fn append(
    client: &mut Client,
    writes: &[Write<'_>],
    committed: &Committed,
    options: OutboxOptions,
) -> Result<(), postgres::Error> {
    let records: Vec<Vec<u8>> = outbox::records_of(writes, committed, options).iter().map(outbox::encode).collect();
    if records.is_empty() {
        return Ok(());
    }
    let node = options.node as i16;
    let n = records.len() as i64;
    let head: i64 = client.query_one(BUMP_HEAD, &[&node, &n])?.get(0);
    let positions: Vec<i64> = (head - n + 1..=head).collect();
    client.execute(APPEND, &[&node, &positions, &records])?;
    Ok(())
}

/// Fails, naming `chatgw store init`, where the outbox tables are missing.
pub(super) fn check_tables(c: &mut Connection) -> Result<(), postgres::Error> {
    c.client().batch_execute("SELECT 1 FROM outbox_heads LIMIT 0; SELECT 1 FROM outbox_cursors LIMIT 0")
}

pub(super) fn after(
    c: &mut Connection,
    node: u16,
    after: OutboxPos,
    limit: usize,
) -> Result<Vec<(i64, Vec<u8>)>, postgres::Error> {
    let s = c.prepared("SELECT pos, record FROM outbox WHERE node = $1 AND pos > $2 ORDER BY pos LIMIT $3")?;
    let rows = c.client().query(&s, &[&(node as i16), &pg_u64(after.0), &(limit as i64)])?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) fn decode(rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<OutboxRecord>, StoreError> {
    rows.into_iter().map(|(pos, v)| outbox::decode(OutboxPos(pos as u64), &v)).collect()
}

pub(super) fn head(c: &mut Connection, node: u16) -> Result<OutboxPos, postgres::Error> {
    let s = c.prepared("SELECT pos FROM outbox_heads WHERE node = $1")?;
    let row = c.client().query_opt(&s, &[&(node as i16)])?;
    Ok(OutboxPos(row.map_or(0, |r| r.get::<_, i64>(0) as u64)))
}

pub(super) fn cursor(c: &mut Connection, node: u16, consumer: &str) -> Result<OutboxPos, postgres::Error> {
    let s = c.prepared("SELECT pos FROM outbox_cursors WHERE node = $1 AND consumer = $2")?;
    let row = c.client().query_opt(&s, &[&(node as i16), &consumer])?;
    Ok(OutboxPos(row.map_or(0, |r| r.get::<_, i64>(0) as u64)))
}

/// Move the cursor up (never back) and remove what every consumer of the
/// node is done with, in one transaction.
pub(super) fn set_cursor(c: &mut Connection, node: u16, consumer: &str, pos: OutboxPos) -> Result<(), postgres::Error> {
    let node = node as i16;
    let mut tx = c.client().transaction()?;
    tx.execute(
        "INSERT INTO outbox_cursors (node, consumer, pos) VALUES ($1, $2, $3) \
         ON CONFLICT (node, consumer) DO UPDATE SET pos = GREATEST(outbox_cursors.pos, EXCLUDED.pos)",
        &[&node, &consumer, &pg_u64(pos.0)],
    )?;
    tx.execute(
        "DELETE FROM outbox WHERE node = $1 AND pos <= (SELECT min(pos) FROM outbox_cursors WHERE node = $1)",
        &[&node],
    )?;
    tx.commit()
}

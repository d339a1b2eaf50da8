//! The keyspace, its tables, the schema version, and `init`.
//!
//! Why versioned, as for PostgreSQL: several gateways and `chatgw store
//! init` of possibly different releases meet one keyspace. `init` creates
//! what is missing (`IF NOT EXISTS` everywhere, so a second or concurrent
//! init changes nothing) and records [`VERSION`]; opening a store never
//! creates anything, so a gateway pointed at the wrong keyspace refuses to
//! start instead of filling it.
//!
//! Version 2 (several writers): inbox rows are clustered by a position
//! assigned at commit (`positions`), found by event id through
//! `inbox_ids`, and group records carry a version for compare-and-set. A
//! version-1 keyspace is refused by `open` and `init` alike: there is no
//! migration (its inbox rows have no positions to keep); point the store at
//! a new keyspace.
//!
//! A group's description and admins-only mode are inside `groups.record`
//! (a format-numbered encoding that still reads the older records), so
//! they needed no new table, column or version.
//!
//! Block lists (`blocks`) came later without a new version: the table is
//! new and nothing else changed, so `init` on an existing version-2
//! keyspace creates it (every table is `IF NOT EXISTS`) and the version
//! stays. A keyspace made by an older release needs that `init` before a
//! gateway of this release takes `block` requests. The same holds for
//! `contacts_only` (who takes direct messages from contacts only) and
//! `set_direct_from` requests. Push targets (`push_targets`) too: a
//! keyspace of an older release needs `init` before a gateway of this
//! release takes `register_push`.
//!
//! Hidden marks (`hidden`, delete for me) came the same way as block
//! lists: a new table that nothing else reads, created by `init` on an
//! existing version-3 keyspace, with no new version.
//!
//! The event outbox (`outbox`, `outbox_heads`, `outbox_trimmed`,
//! `outbox_cursors`; see `cassandra::outbox`) came the same way: new tables
//! only, so a keyspace of an older release needs `init` before a gateway
//! of this release runs with `--events` or `--push`.
//!
//! DDL is sent unprepared (CQL cannot prepare it) and waits for schema
//! agreement, so that every node knows the tables before a gateway
//! prepares statements against them. docs/STORAGE.md explains each table.

use scylla::{client::session::Session, errors::ExecutionError};

use super::{options::CassandraOptions, CqlError};
use crate::StoreError;

/// The schema this release reads and writes.
pub const VERSION: i32 = 3;

/// The key of the one row of `schema_version`.
const COMPONENT: &str = "chatgw";

/// Tables of version 2, in the order `init` creates them. Integers that are
/// unsigned in Rust are stored bit for bit in `bigint` (Snowflake ids have
/// the top bit clear, so their order is kept); `kind` is an `int` because
/// every server the store was tried on takes it.
pub(super) const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS schema_version (component text PRIMARY KEY, version int)",
    "CREATE TABLE IF NOT EXISTS messages (
        conversation blob, bucket int, id bigint,
        sender bigint, kind int, client_id text, body text,
        PRIMARY KEY ((conversation, bucket), id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
    "CREATE TABLE IF NOT EXISTS conversation_buckets (
        conversation blob, bucket int,
        PRIMARY KEY (conversation, bucket)
    ) WITH CLUSTERING ORDER BY (bucket DESC)",
    "CREATE TABLE IF NOT EXISTS inbox (
        user_id bigint, bucket int, pos bigint,
        event bigint, conversation blob, receipt blob, hole boolean,
        PRIMARY KEY ((user_id, bucket), pos)
    )",
    "CREATE TABLE IF NOT EXISTS inbox_heads (user_id bigint PRIMARY KEY, head bigint)",
    "CREATE TABLE IF NOT EXISTS inbox_ids (
        user_id bigint, bucket int, event bigint, pos bigint,
        PRIMARY KEY ((user_id, bucket), event)
    )",
    "CREATE TABLE IF NOT EXISTS inbox_buckets (
        user_id bigint, bucket int,
        PRIMARY KEY (user_id, bucket)
    )",
    "CREATE TABLE IF NOT EXISTS idempotency (
        sender bigint, client_id text, conversation blob, id bigint,
        PRIMARY KEY ((sender, client_id))
    )",
    "CREATE TABLE IF NOT EXISTS delivered (
        conversation blob, id bigint, user_id bigint, at bigint,
        PRIMARY KEY ((conversation, id), user_id)
    )",
    "CREATE TABLE IF NOT EXISTS read_by (
        conversation blob, id bigint, user_id bigint, at bigint,
        PRIMARY KEY ((conversation, id), user_id)
    )",
    "CREATE TABLE IF NOT EXISTS read_marks (
        conversation blob, reader bigint, up_to bigint, at bigint,
        PRIMARY KEY ((conversation, reader), up_to)
    ) WITH CLUSTERING ORDER BY (up_to DESC)",
    "CREATE TABLE IF NOT EXISTS groups (id bigint PRIMARY KEY, record blob, version bigint)",
    "CREATE TABLE IF NOT EXISTS high_water (
        slot int, id bigint,
        PRIMARY KEY (slot, id)
    ) WITH CLUSTERING ORDER BY (id DESC)",
    "CREATE TABLE IF NOT EXISTS write_probe (id int PRIMARY KEY, at bigint)",
    // Not a new version: a table nothing else reads. A keyspace an older
    // release initialised gets it from `init`, which is safe to run again.
    "CREATE TABLE IF NOT EXISTS revocations (
        user_id bigint, at bigint,
        PRIMARY KEY (user_id, at)
    ) WITH CLUSTERING ORDER BY (at DESC)",
    // Named devices: new tables nothing else reads, like revocations.
    "CREATE TABLE IF NOT EXISTS devices (
        user_id bigint, device text, first_seen bigint, last_active bigint, token_iat bigint,
        PRIMARY KEY (user_id, device)
    )",
    "CREATE TABLE IF NOT EXISTS device_revocations (
        user_id bigint, device text, at bigint,
        PRIMARY KEY (user_id, device, at)
    ) WITH CLUSTERING ORDER BY (device ASC, at DESC)",
    "CREATE TABLE IF NOT EXISTS blocks (
        blocker bigint, blocked bigint,
        PRIMARY KEY (blocker, blocked)
    )",
    // A push target per named device: new, nothing else reads it.
    "CREATE TABLE IF NOT EXISTS push_targets (
        user_id bigint, device text, provider text, token text,
        PRIMARY KEY (user_id, device)
    )",
    // The key directory (key_directory.rs): new, nothing else reads it.
    "CREATE TABLE IF NOT EXISTS device_keys (
        user_id bigint, device text, signing_key blob, identity_key blob, identity_signature blob,
        fallback_id text, fallback_key blob, fallback_signature blob,
        PRIMARY KEY (user_id, device)
    )",
    "CREATE TABLE IF NOT EXISTS one_time_keys (
        user_id bigint, device text, key_id text, public_key blob, signature blob,
        PRIMARY KEY ((user_id, device), key_id)
    )",
    // Who takes direct messages from contacts only: new, nothing else reads it.
    "CREATE TABLE IF NOT EXISTS contacts_only (user_id bigint PRIMARY KEY)",
    // Version 3: the conversation list. One partition per user, so a
    // user's list is one partition read.
    "CREATE TABLE IF NOT EXISTS conversation_last (
        user_id bigint, conversation blob, last bigint,
        PRIMARY KEY (user_id, conversation, last)
    ) WITH CLUSTERING ORDER BY (conversation ASC, last DESC)",
    "CREATE TABLE IF NOT EXISTS unread (
        user_id bigint, conversation blob, id bigint,
        PRIMARY KEY ((user_id, conversation), id)
    )",
    // Delete for me: one partition per user, a row per hidden message and
    // hiding event (the smallest event of a message stands).
    "CREATE TABLE IF NOT EXISTS hidden (
        user_id bigint, conversation blob, msg bigint, event bigint,
        PRIMARY KEY (user_id, conversation, msg, event)
    )",
    // The event outbox, per node (`outbox`): records in partitions of one
    // node and one bucket of positions, the head, how far records are
    // gone, and each consumer's cursor.
    "CREATE TABLE IF NOT EXISTS outbox (
        node int, bucket bigint, pos bigint, record blob,
        PRIMARY KEY ((node, bucket), pos)
    )",
    "CREATE TABLE IF NOT EXISTS outbox_heads (node int PRIMARY KEY, pos bigint)",
    "CREATE TABLE IF NOT EXISTS outbox_trimmed (node int PRIMARY KEY, pos bigint)",
    "CREATE TABLE IF NOT EXISTS outbox_cursors (
        node int, consumer text, pos bigint,
        PRIMARY KEY (node, consumer)
    )",
];

/// The version before the conversation list: its keyspace gets the new
/// tables from `init` (which creates what is missing) and is then recorded
/// as [`VERSION`]. Conversations from before have no rows until their next
/// message (docs/STORAGE.md).
const BEFORE_CONVERSATION_LIST: i32 = 2;

fn ddl_failed(e: ExecutionError) -> StoreError {
    StoreError::backend("init schema", e)
}

/// Create or complete the keyspace and its tables, then record
/// [`VERSION`]. Fails with [`StoreError::SchemaVersion`] if the keyspace
/// holds another version. An existing keyspace keeps its replication: that
/// is changed with `ALTER KEYSPACE` and a repair, never behind an
/// operator's back.
pub(super) async fn init(session: &Session, options: &CassandraOptions) -> Result<(), StoreError> {
    let keyspace = &options.keyspace;
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {} AND durable_writes = true",
        options.replication.cql()
    );
    session.query_unpaged(create, ()).await.map_err(ddl_failed)?;
    for table in TABLES {
        let create = table.replacen("IF NOT EXISTS ", &format!("IF NOT EXISTS {keyspace}."), 1);
        session.query_unpaged(create, ()).await.map_err(ddl_failed)?;
    }
    await_agreement(session).await?;
    match version(session, keyspace).await? {
        None => {
            let insert = format!("INSERT INTO {keyspace}.schema_version (component, version) VALUES (?, ?)");
            let insert = session.prepare(insert).await.map_err(|e| StoreError::backend("init schema", e))?;
            session.execute_unpaged(&insert, (COMPONENT, VERSION)).await.map_err(ddl_failed)?;
            Ok(())
        }
        Some(BEFORE_CONVERSATION_LIST) => {
            let update = format!("INSERT INTO {keyspace}.schema_version (component, version) VALUES (?, ?)");
            let update = session.prepare(update).await.map_err(|e| StoreError::backend("init schema", e))?;
            session.execute_unpaged(&update, (COMPONENT, VERSION)).await.map_err(ddl_failed)?;
            Ok(())
        }
        Some(VERSION) => Ok(()),
        Some(found) => Err(StoreError::SchemaVersion { found, expected: VERSION }),
    }
}

/// Wait until every node reports the same schema. A server that publishes
/// no topology at all (an in-memory test server) has nobody to disagree
/// with, so the wait is skipped for it, with a warning.
async fn await_agreement(session: &Session) -> Result<(), StoreError> {
    match session.await_schema_agreement().await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("Peers list is empty") => {
            tracing::warn!("the CQL server lists no nodes; not waiting for schema agreement");
            Ok(())
        }
        Err(e) => Err(StoreError::backend("wait for schema agreement", e)),
    }
}

/// Check that the keyspace holds this release's schema.
pub(super) async fn check(session: &Session, keyspace: &str) -> Result<(), StoreError> {
    match version(session, keyspace).await? {
        Some(VERSION) => Ok(()),
        Some(found) => Err(StoreError::SchemaVersion { found, expected: VERSION }),
        None => Err(StoreError::SchemaMissing),
    }
}

/// The recorded version, `None` if the keyspace, the table or the row is
/// missing. Looks in `system_schema` first, so that a missing table is an
/// answer rather than a server error.
async fn version(session: &Session, keyspace: &str) -> Result<Option<i32>, StoreError> {
    let fail = |e| StoreError::backend("read schema version", e);
    let tables = session
        .prepare("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?")
        .await
        .map_err(|e| StoreError::backend("read schema version", e))?;
    let rows = session.execute_unpaged(&tables, (keyspace,)).await.map_err(fail)?;
    let names = rows_of::<(String,)>(rows, "system_schema.tables")?;
    if !names.iter().any(|(name,)| name == "schema_version") {
        return Ok(None);
    }
    let select = format!("SELECT version FROM {keyspace}.schema_version WHERE component = ?");
    let select = session.prepare(select).await.map_err(|e| StoreError::backend("read schema version", e))?;
    let rows = session.execute_unpaged(&select, (COMPONENT,)).await.map_err(fail)?;
    Ok(rows_of::<(Option<i32>,)>(rows, "schema_version")?.into_iter().find_map(|(v,)| v))
}

/// Every row of a result as `R`, or a typed error naming the table.
pub(super) fn rows_of<R>(
    result: scylla::response::query_result::QueryResult,
    table: &'static str,
) -> Result<Vec<R>, StoreError>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let rows = result
        .into_rows_result()
        .map_err(|_| StoreError::backend(table, CqlError::Unexpected("a SELECT answered without rows")))?;
    let rows = rows.rows::<R>().map_err(|_| StoreError::Corrupt { table, what: "columns of another type" })?;
    rows.collect::<Result<Vec<R>, _>>().map_err(|_| StoreError::Corrupt { table, what: "a value that does not decode" })
}

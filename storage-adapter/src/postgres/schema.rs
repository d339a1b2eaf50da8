//! The schema, its version, and `init`.
//!
//! Why versioned: several gateways (and `chatgw store init`) meet one
//! database, possibly of an older or newer release. `init` creates what is
//! missing and records [`VERSION`] under an advisory lock, so two inits at
//! once are safe and a second init changes nothing. Opening a store never
//! creates tables: a missing or foreign schema is a typed error that says
//! what to run, rather than a half-created database.
//!
//! Version 2 (several writers): inbox rows carry a position `pos`, unique
//! per user, numbered from `inbox_heads`; group records carry a `version`
//! for compare-and-set. `init` on a version-1 database migrates it in the
//! same locked transaction (see [`MIGRATE_1_TO_2`]), so a migration is
//! all or nothing and a second `init` finds version 2 and changes nothing.
//!
//! Version 3 (blocking): a `blocks` table of `(blocker, blocked)` pairs.
//! Nothing existing changes, so the migration from 2 is creating the table
//! (done by [`TABLES`], `IF NOT EXISTS`) and recording the version; a
//! version-1 database is migrated to 2 and then to 3 in one transaction.
//!
//! A group's description and admins-only mode needed no new version: they
//! live inside `groups.record`, whose bytes open with a format number (see
//! `codec::encode_group`). Records are written in the newer format and the
//! older one still reads, so no row is rewritten and the mode shares the
//! record's `version`, the one group messages are checked against.
//!
//! Version 4 (conversation list, named devices): a `conversation_list` table, one row per
//! `(user, conversation)` with the last message id and the unread count,
//! indexed by `(user_id, last DESC)` for paging newest first. The migration
//! from 3 fills it from the inbox, the messages and the read marks, in
//! `init`'s transaction ([`MIGRATE_3_TO_4`]), so conversations from before
//! the upgrade are listed with their unread counts.
//!
//! Session revocations needed no new version either: `revocations` is a
//! table of its own that nothing else reads. `init` creates it on a new
//! database and on one an older release initialised (`init` is safe to run
//! again); until then the store reads no revocations and refuses to record
//! one, with the database's "relation does not exist" error.
//!
//! The named devices of version 4: `devices` (first seen, last active and
//! token issue time per `(user_id, device)`) and `device_revocations`. New
//! tables only: [`TABLES`] creates them before the migration runs, so a
//! gateway of this release never meets a database without them.
//!
//! Version 5 (delete for me): a `hidden` table, one row per
//! `(user_id, conversation, msg)` a user hid from themselves, holding the
//! event that hid it. A new table only: [`TABLES`] creates it and
//! [`MIGRATE_4_TO_5`] records the version, so nothing stored is rewritten.
//!
//! Who may send a user direct messages (`contacts_only`, one row per user
//! who takes them from contacts only) needed no new version either: a new
//! table nothing else reads, created by [`TABLES`] like `revocations`.
//! Nor did push targets (`push_targets`, one row per `(user_id, device)`
//! with its provider and token), for the same reason: a database an older
//! release initialised gets the table from `init`, which is safe to run
//! again. The key directory's `device_keys` and `one_time_keys` came the
//! same way.
//!
//! The event outbox (`outbox`, `outbox_heads`, `outbox_cursors`, per node
//! id; see `postgres::outbox`) needed no new version either, for the same
//! reason.

use postgres::{error::SqlState, Client};

use crate::StoreError;

/// The schema this release reads and writes.
pub const VERSION: i32 = 5;

/// Any constant: serialises concurrent `init`s on one database.
const INIT_LOCK: i64 = 0x6368_6174_6777; // "chatgw"

/// Tables of version 5. Integers that are unsigned in Rust are stored
/// bit-for-bit in `bigint`: ids are Snowflakes (top bit zero, so their
/// order is kept), users and groups are only compared for equality.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    conversation bytea NOT NULL,
    id bigint NOT NULL,
    sender bigint NOT NULL,
    kind smallint NOT NULL,
    client_id bytea NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (conversation, id)
);
CREATE TABLE IF NOT EXISTS inbox (
    user_id bigint NOT NULL,
    event bigint NOT NULL,
    pos bigint NOT NULL,
    conversation bytea,
    receipt bytea,
    PRIMARY KEY (user_id, event),
    CONSTRAINT inbox_user_pos UNIQUE (user_id, pos),
    CHECK ((conversation IS NULL) <> (receipt IS NULL))
);
CREATE TABLE IF NOT EXISTS inbox_heads (user_id bigint PRIMARY KEY, head bigint NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (
    sender bigint NOT NULL,
    client_id bytea NOT NULL,
    conversation bytea NOT NULL,
    id bigint NOT NULL,
    PRIMARY KEY (sender, client_id)
);
CREATE TABLE IF NOT EXISTS delivered (
    conversation bytea NOT NULL,
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (conversation, id, user_id)
);
CREATE TABLE IF NOT EXISTS read_by (
    conversation bytea NOT NULL,
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (conversation, id, user_id)
);
CREATE TABLE IF NOT EXISTS read_marks (
    conversation bytea NOT NULL,
    reader bigint NOT NULL,
    up_to bigint NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (conversation, reader)
);
CREATE TABLE IF NOT EXISTS groups (id bigint PRIMARY KEY, record bytea NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS blocks (
    blocker bigint NOT NULL,
    blocked bigint NOT NULL,
    PRIMARY KEY (blocker, blocked)
);
CREATE TABLE IF NOT EXISTS high_water (slot smallint PRIMARY KEY, id bigint NOT NULL);
CREATE TABLE IF NOT EXISTS write_probe (id smallint PRIMARY KEY, at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (user_id bigint PRIMARY KEY, at bigint NOT NULL);
CREATE TABLE IF NOT EXISTS contacts_only (user_id bigint PRIMARY KEY);
CREATE TABLE IF NOT EXISTS devices (
    user_id bigint NOT NULL,
    device text NOT NULL,
    first_seen bigint NOT NULL,
    last_active bigint NOT NULL,
    token_iat bigint NOT NULL,
    PRIMARY KEY (user_id, device)
);
CREATE TABLE IF NOT EXISTS device_revocations (
    user_id bigint NOT NULL,
    device text NOT NULL,
    at bigint NOT NULL,
    PRIMARY KEY (user_id, device)
);
CREATE TABLE IF NOT EXISTS push_targets (
    user_id bigint NOT NULL,
    device text NOT NULL,
    provider text NOT NULL,
    token text NOT NULL,
    PRIMARY KEY (user_id, device)
);
CREATE TABLE IF NOT EXISTS device_keys (
    user_id bigint NOT NULL,
    device text NOT NULL,
    signing_key bytea NOT NULL,
    identity_key bytea NOT NULL,
    identity_signature bytea NOT NULL,
    fallback_id text NOT NULL,
    fallback_key bytea NOT NULL,
    fallback_signature bytea NOT NULL,
    PRIMARY KEY (user_id, device)
);
CREATE TABLE IF NOT EXISTS one_time_keys (
    user_id bigint NOT NULL,
    device text NOT NULL,
    key_id text NOT NULL,
    key bytea NOT NULL,
    signature bytea NOT NULL,
    PRIMARY KEY (user_id, device, key_id)
);
CREATE TABLE IF NOT EXISTS conversation_list (
    user_id bigint NOT NULL,
    conversation bytea NOT NULL,
    last bigint NOT NULL,
    unread bigint NOT NULL,
    PRIMARY KEY (user_id, conversation)
);
CREATE INDEX IF NOT EXISTS conversation_list_recent ON conversation_list (user_id, last DESC);
CREATE TABLE IF NOT EXISTS hidden (
    user_id bigint NOT NULL,
    conversation bytea NOT NULL,
    msg bigint NOT NULL,
    event bigint NOT NULL,
    PRIMARY KEY (user_id, conversation, msg)
);
CREATE TABLE IF NOT EXISTS outbox (node smallint NOT NULL, pos bigint NOT NULL, record bytea NOT NULL, PRIMARY KEY (node, pos));
CREATE TABLE IF NOT EXISTS outbox_heads (node smallint PRIMARY KEY, pos bigint NOT NULL);
CREATE TABLE IF NOT EXISTS outbox_cursors (
    node smallint NOT NULL,
    consumer text NOT NULL,
    pos bigint NOT NULL,
    PRIMARY KEY (node, consumer)
);
";

/// Version 1 to 2, on the tables version 1 created: number every inbox in
/// event id order (which was commit order while one gateway wrote), start
/// each inbox's head at its last position, and give every group record
/// version 1. Runs inside `init`'s transaction, after the version-2 tables
/// that did not exist (`inbox_heads`) were created.
pub(super) const MIGRATE_1_TO_2: &str = "
ALTER TABLE inbox ADD COLUMN IF NOT EXISTS pos bigint;
UPDATE inbox i SET pos = n.pos
FROM (SELECT user_id, event, row_number() OVER (PARTITION BY user_id ORDER BY event) AS pos FROM inbox) n
WHERE i.user_id = n.user_id AND i.event = n.event;
ALTER TABLE inbox ALTER COLUMN pos SET NOT NULL;
ALTER TABLE inbox ADD CONSTRAINT inbox_user_pos UNIQUE (user_id, pos);
INSERT INTO inbox_heads (user_id, head) SELECT user_id, max(pos) FROM inbox GROUP BY user_id
ON CONFLICT (user_id) DO UPDATE SET head = EXCLUDED.head;
ALTER TABLE groups ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1;
UPDATE schema_version SET version = 2;
";

/// Version 2 to 3: the `blocks` table is created by [`TABLES`] before
/// this runs; only the version is left to record.
pub(super) const MIGRATE_2_TO_3: &str = "UPDATE schema_version SET version = 3;";

/// Version 3 to 4: `conversation_list` (created by [`TABLES`], with the
/// device tables, which need nothing more) filled from
/// what is stored: per inbox and conversation the newest message, and the
/// messages after the reader's read mark that count as unread (somebody
/// else's, not system messages: kind 8).
pub(super) const MIGRATE_3_TO_4: &str = "
INSERT INTO conversation_list (user_id, conversation, last, unread)
SELECT i.user_id, i.conversation, max(i.event),
       count(*) FILTER (WHERE m.sender <> i.user_id AND m.kind <> 8 AND i.event > COALESCE(rm.up_to, 0))
FROM inbox i
JOIN messages m ON m.conversation = i.conversation AND m.id = i.event
LEFT JOIN read_marks rm ON rm.conversation = i.conversation AND rm.reader = i.user_id
WHERE i.conversation IS NOT NULL
GROUP BY i.user_id, i.conversation
ON CONFLICT DO NOTHING;
UPDATE schema_version SET version = 4;
";

/// Version 4 to 5: the `hidden` table is created by [`TABLES`] before
/// this runs; only the version is left to record.
pub(super) const MIGRATE_4_TO_5: &str = "UPDATE schema_version SET version = 5;";

/// Create or complete the schema, or migrate a version-1 database,
/// idempotently. Fails with [`StoreError::SchemaVersion`] if the database
/// holds a version this release does not know.
pub(super) fn init(client: &mut Client) -> Result<(), StoreError> {
    let fail = |e| StoreError::backend("init schema", e);
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INIT_LOCK]).map_err(fail)?;
    tx.batch_execute(TABLES).map_err(fail)?;
    let found: Vec<i32> =
        tx.query("SELECT version FROM schema_version", &[]).map_err(fail)?.iter().map(|r| r.get(0)).collect();
    match found.as_slice() {
        [] => {
            tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&VERSION]).map_err(fail)?;
        }
        [1] => {
            tx.batch_execute(MIGRATE_1_TO_2).map_err(|e| StoreError::backend("migrate schema 1 to 2", e))?;
            tx.batch_execute(MIGRATE_2_TO_3).map_err(|e| StoreError::backend("migrate schema 2 to 3", e))?;
            tx.batch_execute(MIGRATE_3_TO_4).map_err(|e| StoreError::backend("migrate schema 3 to 4", e))?;
            tx.batch_execute(MIGRATE_4_TO_5).map_err(|e| StoreError::backend("migrate schema 4 to 5", e))?;
        }
        [2] => {
            tx.batch_execute(MIGRATE_2_TO_3).map_err(|e| StoreError::backend("migrate schema 2 to 3", e))?;
            tx.batch_execute(MIGRATE_3_TO_4).map_err(|e| StoreError::backend("migrate schema 3 to 4", e))?;
            tx.batch_execute(MIGRATE_4_TO_5).map_err(|e| StoreError::backend("migrate schema 4 to 5", e))?;
        }
        [3] => {
            tx.batch_execute(MIGRATE_3_TO_4).map_err(|e| StoreError::backend("migrate schema 3 to 4", e))?;
            tx.batch_execute(MIGRATE_4_TO_5).map_err(|e| StoreError::backend("migrate schema 4 to 5", e))?;
        }
        [4] => tx.batch_execute(MIGRATE_4_TO_5).map_err(|e| StoreError::backend("migrate schema 4 to 5", e))?,
        [v] if *v == VERSION => {}
        [v, ..] => return Err(StoreError::SchemaVersion { found: *v, expected: VERSION }),
    }
    tx.commit().map_err(fail)
}

/// Check that the database holds this release's schema.
pub(super) fn check(client: &mut Client) -> Result<(), StoreError> {
    match client.query_opt("SELECT version FROM schema_version", &[]) {
        Ok(Some(row)) => match row.try_get::<_, i32>(0) {
            Ok(VERSION) => Ok(()),
            Ok(found) => Err(StoreError::SchemaVersion { found, expected: VERSION }),
            Err(e) => Err(StoreError::backend("read schema version", e)),
        },
        Ok(None) => Err(StoreError::SchemaMissing),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Err(StoreError::SchemaMissing),
        Err(e) => Err(StoreError::backend("read schema version", e)),
    }
}

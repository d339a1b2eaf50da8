//! Every CQL statement the store runs, prepared once per store on first use.
//!
//! Why prepared: a prepared statement is parsed once per node, its bound
//! values travel in binary, and the driver routes it to a replica of its
//! partition (token-aware). Why on first use rather than at open: a
//! statement nobody runs costs nothing, and a server that lacks one feature
//! (the in-memory server of the tests lacks range restrictions) still
//! serves the others. `{ks}` stands for the keyspace.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use scylla::{client::session::Session, errors::PrepareError, statement::prepared::PreparedStatement};

// Decided before anything else of a commit (lightweight transactions).
/// A key expires by itself after its TTL (the idempotency retention, 0 for
/// never): Cassandra's own retention, no sweep (docs/STORAGE.md).
pub(super) const BIND_KEY: &str =
    "INSERT INTO {ks}.idempotency (sender, client_id, conversation, id) VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?";
/// Undo [`BIND_KEY`] when the group write it announced conflicted.
pub(super) const UNBIND_KEY: &str = "DELETE FROM {ks}.idempotency WHERE sender = ? AND client_id = ? IF id = ?";
pub(super) const CREATE_GROUP: &str = "INSERT INTO {ks}.groups (id, record, version) VALUES (?, ?, 1) IF NOT EXISTS";
/// A group message's membership check: a Paxos round that changes nothing
/// and is applied only while the record is at the version the message was
/// fanned out for.
pub(super) const CHECK_GROUP: &str = "UPDATE {ks}.groups SET version = ? WHERE id = ? IF version = ?";
pub(super) const CHANGE_GROUP: &str = "UPDATE {ks}.groups SET record = ?, version = ? WHERE id = ? IF version = ?";
pub(super) const FIRST_CLAIM: &str = "INSERT INTO {ks}.inbox_heads (user_id, head) VALUES (?, ?) IF NOT EXISTS";
pub(super) const CLAIM: &str = "UPDATE {ks}.inbox_heads SET head = ? WHERE user_id = ? IF head = ?";

// Block lists: one partition per blocker, clustered by the blocked user.
pub(super) const BLOCK: &str = "INSERT INTO {ks}.blocks (blocker, blocked) VALUES (?, ?)";
pub(super) const UNBLOCK: &str = "DELETE FROM {ks}.blocks WHERE blocker = ? AND blocked = ?";
pub(super) const BLOCKED_BY: &str = "SELECT blocked FROM {ks}.blocks WHERE blocker = ?";

// Who takes direct messages from contacts only: a row per such user.
pub(super) const SET_CONTACTS_ONLY: &str = "INSERT INTO {ks}.contacts_only (user_id) VALUES (?)";
pub(super) const UNSET_CONTACTS_ONLY: &str = "DELETE FROM {ks}.contacts_only WHERE user_id = ?";
pub(super) const CONTACTS_ONLY: &str = "SELECT user_id FROM {ks}.contacts_only WHERE user_id = ?";

// Writes of a commit.
pub(super) const INSERT_MESSAGE: &str =
    "INSERT INTO {ks}.messages (conversation, bucket, id, sender, kind, client_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?)";
pub(super) const INSERT_CONVERSATION_BUCKET: &str =
    "INSERT INTO {ks}.conversation_buckets (conversation, bucket) VALUES (?, ?)";
// An inbox entry is a message reference, a receipt or a hole: one statement
// each, so the other columns are left unset rather than written as nulls
// (tombstones). Every one is conditional: a position is taken once, by an
// event or by a hole, whoever comes first (`walk`).
pub(super) const INSERT_INBOX_MESSAGE: &str =
    "INSERT INTO {ks}.inbox (user_id, bucket, pos, event, conversation) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS";
pub(super) const INSERT_INBOX_RECEIPT: &str =
    "INSERT INTO {ks}.inbox (user_id, bucket, pos, event, receipt) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS";
pub(super) const INSERT_INBOX_HOLE: &str =
    "INSERT INTO {ks}.inbox (user_id, bucket, pos, hole) VALUES (?, ?, ?, true) IF NOT EXISTS";
pub(super) const INSERT_INBOX_ID: &str = "INSERT INTO {ks}.inbox_ids (user_id, bucket, event, pos) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_INBOX_BUCKET: &str = "INSERT INTO {ks}.inbox_buckets (user_id, bucket) VALUES (?, ?)";
pub(super) const INSERT_DELIVERED: &str =
    "INSERT INTO {ks}.delivered (conversation, id, user_id, at) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_READ_BY: &str = "INSERT INTO {ks}.read_by (conversation, id, user_id, at) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_READ_MARK: &str =
    "INSERT INTO {ks}.read_marks (conversation, reader, up_to, at) VALUES (?, ?, ?, ?)";
pub(super) const PRUNE_READ_MARKS: &str =
    "DELETE FROM {ks}.read_marks WHERE conversation = ? AND reader = ? AND up_to < ?";
pub(super) const INSERT_HIGH_WATER: &str = "INSERT INTO {ks}.high_water (slot, id) VALUES (?, ?)";
pub(super) const PRUNE_HIGH_WATER: &str = "DELETE FROM {ks}.high_water WHERE slot = ? AND id < ?";
// The conversation list (docs/STORAGE.md, "Conversation list"): the last
// message per (user, conversation) as rows per value whose largest is read
// (like read marks), and the unread messages as rows a read clears.
pub(super) const INSERT_CONVERSATION_LAST: &str =
    "INSERT INTO {ks}.conversation_last (user_id, conversation, last) VALUES (?, ?, ?)";
pub(super) const PRUNE_CONVERSATION_LAST: &str =
    "DELETE FROM {ks}.conversation_last WHERE user_id = ? AND conversation = ? AND last < ?";
pub(super) const INSERT_UNREAD: &str = "INSERT INTO {ks}.unread (user_id, conversation, id) VALUES (?, ?, ?)";
pub(super) const CLEAR_UNREAD: &str = "DELETE FROM {ks}.unread WHERE user_id = ? AND conversation = ? AND id <= ?";
pub(super) const PROBE: &str = "INSERT INTO {ks}.write_probe (id, at) VALUES (?, ?)";
/// One row per revocation time of a user, the latest first (like
/// `high_water`): recording an earlier time adds a row that no reader takes.
pub(super) const INSERT_REVOCATION: &str = "INSERT INTO {ks}.revocations (user_id, at) VALUES (?, ?)";

// Reads.
pub(super) const HIGH_WATER: &str = "SELECT id FROM {ks}.high_water WHERE slot = ? LIMIT 1";
pub(super) const REVOCATIONS: &str = "SELECT user_id, at FROM {ks}.revocations";
pub(super) const MESSAGE: &str =
    "SELECT sender, kind, client_id, body FROM {ks}.messages WHERE conversation = ? AND bucket = ? AND id = ?";
pub(super) const HEADER: &str =
    "SELECT sender, kind FROM {ks}.messages WHERE conversation = ? AND bucket = ? AND id = ?";
pub(super) const KEY: &str = "SELECT conversation, id FROM {ks}.idempotency WHERE sender = ? AND client_id = ?";
pub(super) const DELIVERY_MARK: &str =
    "SELECT user_id FROM {ks}.delivered WHERE conversation = ? AND id = ? AND user_id = ?";
/// A hidden mark (`Write::Hide`): clustered by event, so a second hide of
/// the same message by another writer adds a row and the first (smallest)
/// event stands, with no read before the write.
pub(super) const INSERT_HIDDEN: &str =
    "INSERT INTO {ks}.hidden (user_id, conversation, msg, event) VALUES (?, ?, ?, ?)";
pub(super) const HIDDEN_MARK: &str =
    "SELECT event FROM {ks}.hidden WHERE user_id = ? AND conversation = ? AND msg = ? LIMIT 1";
pub(super) const READ_MARK: &str = "SELECT up_to FROM {ks}.read_marks WHERE conversation = ? AND reader = ? LIMIT 1";
pub(super) const HEADERS_BETWEEN: &str = "SELECT id, sender, kind FROM {ks}.messages \
     WHERE conversation = ? AND bucket = ? AND id > ? AND id <= ? ORDER BY id ASC LIMIT ?";
pub(super) const HISTORY: &str = "SELECT id, sender, kind, client_id, body FROM {ks}.messages \
     WHERE conversation = ? AND bucket = ? AND id < ? LIMIT ?";
pub(super) const CONVERSATION_BUCKETS_UP: &str = "SELECT bucket FROM {ks}.conversation_buckets \
     WHERE conversation = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket ASC LIMIT ?";
pub(super) const CONVERSATION_BUCKETS_DOWN: &str =
    "SELECT bucket FROM {ks}.conversation_buckets WHERE conversation = ? AND bucket <= ? LIMIT ?";
pub(super) const DELIVERED_OF: &str = "SELECT user_id, at FROM {ks}.delivered WHERE conversation = ? AND id = ?";
pub(super) const READ_BY_OF: &str = "SELECT user_id, at FROM {ks}.read_by WHERE conversation = ? AND id = ?";
pub(super) const GROUP: &str = "SELECT record, version FROM {ks}.groups WHERE id = ?";
pub(super) const HEAD: &str = "SELECT head, WRITETIME(head) FROM {ks}.inbox_heads WHERE user_id = ?";
pub(super) const INBOX_PAGE: &str = "SELECT pos, event, conversation, receipt, hole, WRITETIME(event) \
     FROM {ks}.inbox WHERE user_id = ? AND bucket = ? AND pos >= ? LIMIT ?";
pub(super) const INBOX_ID: &str = "SELECT pos FROM {ks}.inbox_ids WHERE user_id = ? AND bucket = ? AND event = ?";
pub(super) const INBOX_IDS_BELOW: &str = "SELECT pos FROM {ks}.inbox_ids \
     WHERE user_id = ? AND bucket = ? AND event <= ? ORDER BY event DESC LIMIT ?";
pub(super) const CONVERSATION_LIST: &str = "SELECT conversation, last FROM {ks}.conversation_last WHERE user_id = ?";
pub(super) const UNREAD_OF: &str = "SELECT id FROM {ks}.unread WHERE user_id = ? AND conversation = ?";
pub(super) const INBOX_BUCKETS_DOWN: &str =
    "SELECT bucket FROM {ks}.inbox_buckets WHERE user_id = ? AND bucket <= ? ORDER BY bucket DESC LIMIT ?";

/// Whether a statement is a lightweight transaction (every condition is
/// written ` IF `, and no other statement contains it). Those are never
/// retried by the driver: a retry of one that was applied answers "not
/// applied", which would be taken for another writer's win.
pub(super) fn is_conditional(cql: &str) -> bool {
    cql.contains(" IF ")
}

/// Prepared statements of one session, by their text.
pub(super) struct Statements {
    keyspace: String,
    prepared: Mutex<HashMap<&'static str, PreparedStatement>>,
}

impl Statements {
    pub(super) fn new(keyspace: &str) -> Self {
        Statements { keyspace: keyspace.to_owned(), prepared: Mutex::new(HashMap::new()) }
    }

    /// `cql` prepared in this store's keyspace: from the cache, or prepared
    /// now (two threads may both prepare it; either result is kept).
    pub(super) async fn get(&self, session: &Session, cql: &'static str) -> Result<PreparedStatement, PrepareError> {
        if let Some(s) = self.prepared.lock().unwrap_or_else(PoisonError::into_inner).get(cql) {
            return Ok(s.clone());
        }
        let mut statement = session.prepare(cql.replace("{ks}", &self.keyspace)).await?;
        // Every other write is an upsert, which the driver may retry.
        statement.set_is_idempotent(!is_conditional(cql));
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner).insert(cql, statement.clone());
        Ok(statement)
    }

    /// `cql` with the keyspace in place of `{ks}`, for a statement sent
    /// unprepared.
    pub(super) fn text(&self, cql: &str) -> String {
        cql.replace("{ks}", &self.keyspace)
    }
}

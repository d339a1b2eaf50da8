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

// Writes of a commit.
pub(super) const INSERT_MESSAGE: &str =
    "INSERT INTO {ks}.messages (conversation, bucket, id, sender, kind, client_id, body) \
     VALUES (?, ?, ?, ?, ?, ?, ?)";
pub(super) const INSERT_CONVERSATION_BUCKET: &str =
    "INSERT INTO {ks}.conversation_buckets (conversation, bucket) VALUES (?, ?)";
// An inbox entry is a message reference or a receipt: two statements, so
// the other column is left unset rather than written as a null (a tombstone).
pub(super) const INSERT_INBOX_MESSAGE: &str =
    "INSERT INTO {ks}.inbox (user_id, bucket, event, conversation) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_INBOX_RECEIPT: &str =
    "INSERT INTO {ks}.inbox (user_id, bucket, event, receipt) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_INBOX_BUCKET: &str = "INSERT INTO {ks}.inbox_buckets (user_id, bucket) VALUES (?, ?)";
pub(super) const BIND_KEY: &str =
    "INSERT INTO {ks}.idempotency (sender, client_id, conversation, id) VALUES (?, ?, ?, ?) IF NOT EXISTS";
pub(super) const INSERT_DELIVERED: &str =
    "INSERT INTO {ks}.delivered (conversation, id, user_id, at) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_READ_BY: &str = "INSERT INTO {ks}.read_by (conversation, id, user_id, at) VALUES (?, ?, ?, ?)";
pub(super) const INSERT_READ_MARK: &str =
    "INSERT INTO {ks}.read_marks (conversation, reader, up_to, at) VALUES (?, ?, ?, ?)";
pub(super) const PRUNE_READ_MARKS: &str =
    "DELETE FROM {ks}.read_marks WHERE conversation = ? AND reader = ? AND up_to < ?";
pub(super) const INSERT_GROUP: &str = "INSERT INTO {ks}.groups (id, record) VALUES (?, ?)";
pub(super) const INSERT_HIGH_WATER: &str = "INSERT INTO {ks}.high_water (slot, id) VALUES (?, ?)";
pub(super) const PRUNE_HIGH_WATER: &str = "DELETE FROM {ks}.high_water WHERE slot = ? AND id < ?";
pub(super) const PROBE: &str = "INSERT INTO {ks}.write_probe (id, at) VALUES (?, ?)";

// Reads.
pub(super) const HIGH_WATER: &str = "SELECT id FROM {ks}.high_water PER PARTITION LIMIT 1";
pub(super) const MESSAGE: &str =
    "SELECT sender, kind, client_id, body FROM {ks}.messages WHERE conversation = ? AND bucket = ? AND id = ?";
pub(super) const HEADER: &str =
    "SELECT sender, kind FROM {ks}.messages WHERE conversation = ? AND bucket = ? AND id = ?";
pub(super) const KEY: &str = "SELECT conversation, id FROM {ks}.idempotency WHERE sender = ? AND client_id = ?";
pub(super) const DELIVERY_MARK: &str =
    "SELECT user_id FROM {ks}.delivered WHERE conversation = ? AND id = ? AND user_id = ?";
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
pub(super) const GROUP: &str = "SELECT record FROM {ks}.groups WHERE id = ?";
pub(super) const INBOX_BUCKETS: &str =
    "SELECT bucket FROM {ks}.inbox_buckets WHERE user_id = ? AND bucket >= ? LIMIT ?";
pub(super) const INBOX_PAGE: &str = "SELECT event, conversation, receipt FROM {ks}.inbox \
     WHERE user_id = ? AND bucket = ? AND event > ? LIMIT ?";

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
        // Every write is an upsert or a conditional insert whose retry
        // answers "already there", so the driver may retry any of them.
        statement.set_is_idempotent(true);
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner).insert(cql, statement.clone());
        Ok(statement)
    }
}

//! A PostgreSQL backend, for deployments where several gateways share one
//! database.
//!
//! Layout (docs/STORAGE.md has the tables and every statement): one table
//! per kind of record, the same keys as the embedded store's keyspaces, so
//! the primary-key indexes serve the same range scans. A commit is one
//! statement (see `commit`); reads are one statement each, batched lookups
//! included. Connections come from a small pool (`pool`) sized by
//! [`PostgresOptions::pool_size`]. Several gateways may share one database:
//! inbox positions, idempotency keys and group versions are decided inside
//! the commit transaction (see `commit`).
//!
//! Failure contract, as for the embedded store: a failed commit (a lost
//! connection, a restarted server, a full disk on the server) makes the
//! store refuse writes until [`MessageStore::recover`] has proven, with a
//! durable write on a fresh connection, that the database takes writes
//! again. Reads retry once on a fresh connection when theirs was closed, so
//! they are served whenever the server is up.

mod attempt;
mod check;
mod commit;
mod devices;
mod inbox_sweep;
mod key_directory;
mod outbox;
mod pool;
mod reads;
mod schema;
mod sweep;

use std::{
    sync::{Mutex, OnceLock, PoisonError},
    time::Duration,
};

use chatgw_protocol::{
    ConversationId, DeviceKeys, DeviceName, Group, GroupId, Message, MessageId, PushTarget, SignedKey, UserId,
};
pub use schema::VERSION as SCHEMA_VERSION;

pub(crate) use self::pool::cause_of;

use self::pool::{Connection, Pool};
use crate::{
    Committed, ConversationSummary, DeviceNote, DeviceRecord, GroupVersion, InboxEntry, InboxPos, InboxSweep, KeySweep,
    MessageHeader, MessageReceipts, MessageStore, StoreError, Write, WriteFailure,
};

/// Times a batch is tried again after a deadlock or serialization failure
/// with another writer before the commit fails.
const COMMIT_RETRIES: u32 = 8;

/// Tuning for [`PostgresStore`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections open at once (at least 1). The committer holds one
    /// per commit; the rest serve reads.
    pub pool_size: usize,
    /// How long to wait for a connection to be established.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { pool_size: 8, connect_timeout: Duration::from_secs(5) }
    }
}

/// The store in a PostgreSQL database. Cheap to share: wrap it in an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    /// Why writes are refused, from a failed commit until a successful
    /// [`MessageStore::recover`].
    failed: Mutex<Option<WriteFailure>>,
    /// Set once by [`MessageStore::enable_outbox`]: commits append this
    /// node's outbox records from then on.
    outbox: OnceLock<crate::OutboxOptions>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn config(url: &str, options: &PostgresOptions) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = url.parse().map_err(|e| StoreError::backend("parse the store URL", e))?;
    config.connect_timeout(options.connect_timeout).keepalives(true).application_name("chatgw");
    Ok(config)
}

impl PostgresStore {
    /// The node whose outbox this handle reads (see `outbox`).
    fn outbox_node(&self) -> u16 {
        self.outbox.get().map_or(0, |o| o.node)
    }

    /// Create or complete the schema in the database `url` names
    /// (`postgres://user[:password]@host[:port]/database`), idempotently.
    pub fn init(url: &str) -> Result<(), StoreError> {
        let mut client = config(url, &PostgresOptions::default())?
            .connect(postgres::NoTls)
            .map_err(|e| StoreError::backend("connect", e))?;
        schema::init(&mut client)
    }

    /// Open the store in the database `url` names. Fails if the server
    /// cannot be reached, or with [`StoreError::SchemaMissing`] /
    /// [`StoreError::SchemaVersion`] if [`PostgresStore::init`] is needed.
    pub fn open(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        let store = PostgresStore {
            pool: Pool::new(config(url, options)?, options.pool_size),
            failed: Mutex::new(None),
            outbox: OnceLock::new(),
        };
        schema::check(store.pool.get()?.client())?;
        Ok(store)
    }

    /// A write outside `commit`, run like a read but refused while the
    /// store is failed.
    fn written<R>(
        &self,
        op: &'static str,
        f: impl Fn(&mut Connection) -> Result<R, postgres::Error>,
    ) -> Result<R, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.read(op, f)
    }

    fn failure(&self) -> Option<WriteFailure> {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_failure(&self, failure: Option<WriteFailure>) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// Run a read, once more on a fresh connection if the server had closed
    /// the one it got (after a restart every idle connection is dead).
    ///
    /// A read that cannot reach the server (no connection, or one lost
    /// without an answer from the server) marks the store failed as a failed
    /// commit does: a commit would fail the same way, and the committer's
    /// `recover` must then prove a real write before acknowledging again
    /// rather than find nothing to recover from and flap. An error the
    /// server answered (a SQL error) is about that read only.
    fn read<R>(
        &self,
        op: &'static str,
        f: impl Fn(&mut Connection) -> Result<R, postgres::Error>,
    ) -> Result<R, StoreError> {
        let mut tries = 0;
        loop {
            let mut connection = self.pool.get().inspect_err(|e| self.note_unreachable(e))?;
            match f(&mut connection) {
                Ok(r) => return Ok(r),
                Err(e) if e.is_closed() && tries == 0 => {
                    tries += 1;
                    connection.discard();
                }
                Err(e) => {
                    let answered = e.as_db_error().is_some();
                    let e = StoreError::backend(op, e);
                    if !answered {
                        self.note_unreachable(&e);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Record that the server could not be reached, unless a failure is
    /// already recorded (the first cause is the one reported).
    fn note_unreachable(&self, e: &StoreError) {
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if failed.is_none() {
            *failed = Some(e.failure());
        }
    }
}

/// Snowflake ids have the top bit clear, so they keep their order as `bigint`.
pub(crate) fn pg_id(id: MessageId) -> i64 {
    id.0 as i64
}

/// Other unsigned numbers (users, groups, times) are stored bit for bit and
/// only compared for equality.
pub(crate) fn pg_u64(v: u64) -> i64 {
    v as i64
}

/// A range bound from a caller: ids past `i64::MAX` cannot be stored, so
/// they bound like `i64::MAX`.
pub(crate) fn pg_bound(id: MessageId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

pub(crate) fn pg_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The cause of a failed write, in metric terms.
pub(crate) fn failure_of(e: &postgres::Error) -> WriteFailure {
    use postgres::error::SqlState;
    match e.code() {
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => WriteFailure::NoSpace,
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => WriteFailure::ReadOnly,
        Some(_) => WriteFailure::Engine,
        None => WriteFailure::Io,
    }
}

impl MessageStore for PostgresStore {
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        let mut connection = self.pool.get().inspect_err(|e| self.set_failure(Some(e.failure())))?;
        let mut retries = 0;
        loop {
            match attempt::run(&mut connection, writes, high_water, self.outbox.get().copied()) {
                Ok(done) => return Ok(done),
                // Another writer won a lock: the transaction was rolled back
                // whole, so the batch is tried again as it is.
                Err(e) if attempt::is_retryable(&e) && retries < COMMIT_RETRIES && !connection.client().is_closed() => {
                    retries += 1;
                    tracing::debug!(error = %e, retries, "commit retried after a conflict with another writer");
                }
                Err(e) => {
                    // The outcome of a statement cut off mid-flight is unknown:
                    // never reuse that connection.
                    connection.discard();
                    let e = StoreError::backend("commit", e);
                    self.set_failure(Some(e.failure()));
                    return Err(e);
                }
            }
        }
    }

    fn recover(&self) -> Result<(), StoreError> {
        if self.failure().is_none() {
            return Ok(());
        }
        self.pool.clear_idle();
        let mut connection = self.pool.get()?;
        let probe =
            "INSERT INTO write_probe (id, at) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at";
        if let Err(e) = connection.client().batch_execute(probe) {
            connection.discard();
            return Err(StoreError::backend("probe write", e));
        }
        self.set_failure(None);
        Ok(())
    }

    fn sweep_idempotency_keys(
        &self,
        after: Option<(UserId, &str)>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<KeySweep, StoreError> {
        if limit == 0 {
            return Ok(KeySweep::default());
        }
        let answer = self.read("sweep idempotency keys", |c| sweep::step(c, after, older_than, limit))?;
        sweep::decode(answer, limit)
    }

    /// One autocommitted statement: the server has it on disk when it
    /// answers (`synchronous_commit`, as for commits).
    fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.read("write block", |c| reads::set_block(c, blocker, target, on))
    }

    fn blocked_by(&self, users: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read blocks", |c| reads::blocked_by(c, users))?;
        reads::decode_blocks(&rows, users.len())
    }

    /// One autocommitted statement, like a block.
    fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.read("write direct message setting", |c| reads::set_contacts_only(c, user, on))
    }

    fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        self.read("read direct message settings", |c| reads::contacts_only(c, users))
    }

    fn high_water(&self, node: u16) -> Result<MessageId, StoreError> {
        self.read("read high water", |c| reads::high_water(c, node))
    }

    fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        let row = self.read("read message", |c| reads::message(c, conversation, id))?;
        reads::decode_message(row, conversation, id)
    }

    fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read idempotency keys", |c| reads::messages_by_client_ids(c, keys))?;
        reads::decode_client_ids(&rows, keys.len())
    }

    fn messages(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read messages", |c| reads::messages(c, keys))?;
        reads::decode_messages(&rows, keys)
    }

    fn message_headers(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read message headers", |c| reads::message_headers(c, keys))?;
        reads::decode_headers(&rows, keys.len())
    }

    fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read delivery marks", |c| reads::delivery_marks(c, keys))?;
        reads::decode_marks(&rows, keys.len())
    }

    fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read read marks", |c| reads::read_marks(c, keys))?;
        reads::decode_read_marks(&rows, keys.len())
    }

    fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.read("read hidden marks", |c| reads::hidden_marks(c, user, keys))?;
        reads::decode_read_marks(&rows, keys.len())
    }

    fn message_headers_between(
        &self,
        conversation: ConversationId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageHeader>, StoreError> {
        if limit == 0 || after >= up_to {
            return Ok(Vec::new());
        }
        let rows =
            self.read("scan message headers", |c| reads::headers_between(c, conversation, after, up_to, limit))?;
        reads::decode_headers_between(&rows)
    }

    fn receipts_of(&self, conversation: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError> {
        let rows = self.read("scan receipts", |c| reads::receipts_of(c, conversation, id))?;
        Ok(reads::decode_receipts(&rows))
    }

    /// Dense: the commit numbers each inbox's events below the head it
    /// raises in the same transaction, and a failed commit rolls back
    /// whole, so no position is ever skipped.
    fn dense_positions(&self) -> bool {
        true
    }

    fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
        let row = self.read("read group", |c| reads::group(c, id))?;
        reads::decode_group(row, id)
    }

    fn inbox_after(&self, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self.read("scan inbox", |c| reads::inbox_after(c, user, after, limit))?;
        let mut entries = reads::decode_inbox(&rows)?;
        // `amended` events show their message as it is now: one batched
        // read for the page.
        let keys: Vec<_> = entries
            .iter()
            .filter_map(|e| match &e.event {
                crate::InboxEvent::Amended { message, .. } => Some((message.conversation, message.id)),
                _ => None,
            })
            .collect();
        let mut found = self.messages(&keys)?.into_iter();
        for e in &mut entries {
            if let crate::InboxEvent::Amended { message, .. } = &mut e.event {
                // Written by the statement that wrote the event.
                let stored = found
                    .next()
                    .flatten()
                    .ok_or(StoreError::Corrupt { table: "inbox", what: "amendment of a missing message" })?;
                // A hide's event shows the message as its user sees it.
                *message = match message.amended {
                    Some(a @ chatgw_protocol::Amendment { kind: chatgw_protocol::AmendKind::Hidden, .. }) => {
                        chatgw_protocol::hidden_view(stored, a.event)
                    }
                    _ => stored,
                };
            }
        }
        Ok(entries)
    }

    fn enable_outbox(&self, options: crate::OutboxOptions) -> Result<(), StoreError> {
        self.read("enable the outbox (the tables are missing: run `chatgw store init`)", outbox::check_tables)?;
        let _ = self.outbox.set(options);
        Ok(())
    }

    fn outbox_after(&self, after: crate::OutboxPos, limit: usize) -> Result<Vec<crate::OutboxRecord>, StoreError> {
        let node = self.outbox_node();
        outbox::decode(self.read("read the outbox", |c| outbox::after(c, node, after, limit))?)
    }

    fn outbox_head(&self) -> Result<crate::OutboxPos, StoreError> {
        let node = self.outbox_node();
        self.read("read the outbox head", |c| outbox::head(c, node))
    }

    fn outbox_cursor(&self, consumer: &str) -> Result<crate::OutboxPos, StoreError> {
        let node = self.outbox_node();
        self.read("read an outbox cursor", |c| outbox::cursor(c, node, consumer))
    }

    fn set_outbox_cursor(&self, consumer: &str, pos: crate::OutboxPos) -> Result<(), StoreError> {
        let Some(options) = self.outbox.get() else {
            return Err(StoreError::Unsupported {
                backend: "PostgreSQL",
                what: "an outbox cursor before enable_outbox",
            });
        };
        let node = options.node;
        self.read("move an outbox cursor", |c| outbox::set_cursor(c, node, consumer, pos))
    }

    fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError> {
        self.read("revoke sessions", |c| reads::revoke_sessions(c, user, at))
    }

    fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        self.read("read revocations", reads::revocations)
    }

    fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        self.read("revoke device", |c| devices::revoke_device(c, user, device, at))
    }

    fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
        let rows = self.read("read device revocations", devices::device_revocations)?;
        rows.into_iter().map(|(u, d, at)| Ok((u, devices::name(&d, "device_revocations")?, at))).collect()
    }

    fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError> {
        if notes.is_empty() {
            return Ok(());
        }
        self.read("write devices", |c| devices::note_devices(c, notes))
    }

    fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        devices::decode(self.read("read devices", |c| devices::devices(c, user))?)
    }

    fn set_push_target(&self, user: UserId, device: DeviceName, target: Option<&PushTarget>) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.read("write push target", |c| devices::set_push_target(c, user, device, target))
    }

    fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut unique = users.to_vec();
        unique.sort_unstable();
        unique.dedup();
        devices::decode_push_targets(self.read("read push targets", |c| devices::push_targets(c, &unique))?)
    }

    /// A retry after a lost answer may find the row gone and answer false.
    fn remove_push_target_if(&self, user: UserId, device: DeviceName, token: &str) -> Result<bool, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.read("remove push target", |c| devices::remove_push_target_if(c, user, device, token))
    }

    fn put_device_keys(&self, user: UserId, device: DeviceName, keys: &DeviceKeys) -> Result<bool, StoreError> {
        self.written("write device keys", |c| key_directory::put_device_keys(c, user, device, keys))
    }

    fn add_one_time_keys(&self, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64, StoreError> {
        self.written("write one-time keys", |c| key_directory::add_one_time_keys(c, user, device, keys))
    }

    fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError> {
        self.read("count one-time keys", |c| key_directory::one_time_key_count(c, user, device))
    }

    fn claim_one_time_key(&self, user: UserId, device: DeviceName) -> Result<Option<SignedKey>, StoreError> {
        let row = self.written("claim one-time key", |c| key_directory::claim_one_time_key(c, user, device))?;
        row.map(key_directory::decode_one_time).transpose()
    }

    fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
        key_directory::decode_keys(self.read("read device keys", |c| key_directory::device_keys(c, user))?)
    }

    fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError> {
        self.written("remove device keys", |c| key_directory::remove_device_keys(c, user, device))
    }

    fn sweep_inboxes(
        &self,
        from: Option<UserId>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<InboxSweep, StoreError> {
        if limit == 0 {
            return Ok(InboxSweep::default());
        }
        self.read("sweep inboxes", |c| inbox_sweep::step(c, from, older_than, limit))
    }

    fn inbox_floor(&self, user: UserId) -> Result<InboxPos, StoreError> {
        self.read("read inbox floor", |c| inbox_sweep::floor(c, user))
    }

    fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError> {
        if cursor.0 == 0 {
            return Ok(InboxPos(0));
        }
        self.read("find cursor", |c| reads::inbox_position(c, user, cursor))
    }

    fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self.read("scan history", |c| reads::history(c, conversation, before, limit))?;
        reads::decode_history(&rows, conversation)
    }

    fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self.read("read conversation list", |c| reads::conversations(c, user, before, limit))?;
        reads::decode_conversations(&rows)
    }
}

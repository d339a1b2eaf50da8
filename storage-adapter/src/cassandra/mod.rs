//! A Cassandra / ScyllaDB backend, for deployments that outgrow one
//! database server.
//!
//! Layout (docs/STORAGE.md has the tables, every statement and the cost
//! per message): the same records as the other stores, laid out by
//! partition. Messages live in partitions of one conversation and one time
//! bucket (`bucket`), clustered by id, newest first; a user's inbox in
//! partitions of one user and one range of positions, clustered by
//! position; small bucket index tables list the time buckets that hold
//! data, so a scan visits only those.
//!
//! A commit runs in three steps: lightweight transactions decide what is
//! applied (`decide`: idempotency keys, group versions); then, at once, the
//! rows the inbox entries point at (planned without I/O by `plan`, sent as
//! single-partition unlogged batches) and one claim of positions per inbox
//! touched (`positions`); then the inbox entries at their positions, as
//! conditional batches that readers see in order (`walk`).
//!
//! Why a runtime inside: the driver (`scylla`) is async and the
//! [`MessageStore`] trait is blocking. The store owns a two-thread tokio
//! runtime and each call blocks on it; callers are the gateway's committer
//! and reader threads, never its I/O threads, so blocking is what they
//! expect.
//!
//! Failure contract, as for the other stores: a failed commit makes the
//! store refuse writes until [`MessageStore::recover`] has proven, with a
//! write at the configured consistency level, that the cluster takes
//! writes again. The driver reconnects on its own, so reads are served
//! whenever enough replicas answer.

mod answer;
mod bucket;
mod check;
mod decide;
mod devices;
mod failure;
mod key_directory;
mod options;
mod outbox;
#[cfg(test)]
mod outbox_tests;
mod plan;
mod positions;
mod reads;
mod schema;
mod statements;
mod walk;

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock, PoisonError},
    time::Duration,
};

use chatgw_protocol::{
    ConversationId, DeviceKeys, DeviceName, Group, GroupId, Message, MessageId, PushTarget, SignedKey, UserId,
};
pub(crate) use failure::CqlError;
use futures::{stream, StreamExt};
pub use options::{CassandraOptions, Replication, UrlError};
pub use schema::VERSION as SCHEMA_VERSION;
use scylla::{
    client::{execution_profile::ExecutionProfile, session::Session, session_builder::SessionBuilder},
    policies::load_balancing::DefaultPolicy,
    response::query_result::QueryResult,
    serialize::row::SerializeRow,
    statement::batch::{Batch, BatchType},
    value::CqlValue,
};

use self::{
    answer::Answer,
    plan::{BucketRow, Chunk, Unit},
    positions::Heads,
    statements::Statements,
};
use crate::{
    Committed, ConversationSummary, DeviceNote, DeviceRecord, GroupVersion, InboxEntry, InboxPos, MessageHeader,
    MessageReceipts, MessageStore, StoreError, Write, WriteFailure, WriteOutcome,
};

/// Most requests of one commit phase or one batched lookup in flight at once.
const CONCURRENCY: usize = 128;

/// Bucket index rows remembered as written before the memory is reset.
const RECORDED_BUCKETS: usize = 1 << 16;

/// The store in a Cassandra or ScyllaDB keyspace. Cheap to share: wrap it
/// in an `Arc`.
pub struct CassandraStore {
    cql: Cql,
    /// Bucket index rows this store wrote, so a commit writes each once.
    recorded: Mutex<HashSet<BucketRow>>,
    /// The last inbox head seen per user: where the next claim starts.
    heads: Heads,
    /// Why writes are refused, from a failed commit until a successful
    /// [`MessageStore::recover`].
    failed: Mutex<Option<WriteFailure>>,
    /// Set once by [`MessageStore::enable_outbox`]: commits append this
    /// node's outbox records from then on (`outbox`).
    outbox: OnceLock<outbox::Outbox>,
    /// Last field: dropped after the session that runs on it.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for CassandraStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CassandraStore").finish_non_exhaustive()
    }
}

/// Cassandra's largest TTL, in seconds (20 years).
const MAX_TTL: i32 = 630_720_000;
const MAX_TTL_SECS: u64 = MAX_TTL as u64;

/// A session and its prepared statements.
struct Cql {
    session: Session,
    statements: Statements,
    /// TTL in seconds of every idempotency key written (0: none).
    key_ttl: i32,
}

fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("chatgw-cql")
        .enable_all()
        .build()
        .map_err(|e| StoreError::backend("start the CQL driver's runtime", e))
}

fn parse(url: &str) -> Result<CassandraOptions, StoreError> {
    CassandraOptions::from_url(url).map_err(|e| StoreError::backend("parse the store URL", e))
}

/// A session to the cluster: every request at the configured consistency
/// level, coordinated by the configured datacenter if one is named.
async fn connect(options: &CassandraOptions) -> Result<Session, StoreError> {
    let mut policy = DefaultPolicy::builder();
    if let Some(dc) = &options.datacenter {
        policy = policy.prefer_datacenter(dc.clone()).permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(options.consistency)
        .serial_consistency(Some(options.serial_consistency()))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.hosts)
        .connection_timeout(options.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        // The store reads no schema metadata, and waits for agreement
        // itself where it changes the schema (`schema::init`).
        .fetch_schema_metadata(false)
        .auto_await_schema_agreement(false);
    if let Some((user, password)) = &options.credentials {
        builder = builder.user(user, password);
    }
    builder.build().await.map_err(|e| StoreError::backend("connect", e))
}

impl CassandraStore {
    /// Create or complete the keyspace and tables the URL names
    /// (`cassandra://host:port,.../keyspace?replication=...`),
    /// idempotently, and record the schema version.
    pub fn init(url: &str) -> Result<(), StoreError> {
        let options = parse(url)?;
        runtime()?.block_on(async {
            let session = connect(&options).await?;
            schema::init(&session, &options).await
        })
    }

    /// Open the store the URL names. Fails if no node can be reached, or
    /// with [`StoreError::SchemaMissing`] / [`StoreError::SchemaVersion`]
    /// if [`CassandraStore::init`] is needed.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let options = parse(url)?;
        let runtime = runtime()?;
        let session = runtime.block_on(async {
            let session = connect(&options).await?;
            schema::check(&session, &options.keyspace).await?;
            Ok::<_, StoreError>(session)
        })?;
        Ok(CassandraStore {
            cql: Cql { session, statements: Statements::new(&options.keyspace), key_ttl: 0 },
            recorded: Mutex::new(HashSet::new()),
            heads: Heads::default(),
            failed: Mutex::new(None),
            outbox: OnceLock::new(),
            runtime,
        })
    }

    /// Write every idempotency key from now on with this TTL, the
    /// idempotency retention (`None` or zero: keys never expire, the
    /// default). Cassandra then removes expired keys itself, so the store
    /// needs no sweep. Clamped to Cassandra's largest TTL (20 years).
    pub fn with_idempotency_retention(mut self, retention: Option<Duration>) -> Self {
        let secs = retention.map_or(0, |d| d.as_secs().min(MAX_TTL_SECS));
        self.cql.key_ttl = i32::try_from(secs).unwrap_or(MAX_TTL);
        self
    }

    /// Refuse a write while the store is failed.
    fn writable(&self) -> Result<(), StoreError> {
        match self.failure() {
            Some(cause) => Err(StoreError::Unwritable { cause }),
            None => Ok(()),
        }
    }

    fn failure(&self) -> Option<WriteFailure> {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_failure(&self, failure: Option<WriteFailure>) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// The node whose outbox this handle reads (see `outbox`).
    fn outbox_node(&self) -> u16 {
        self.outbox.get().map_or(0, |o| o.options.node)
    }

    fn remember(&self, rows: Vec<BucketRow>) {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        if recorded.len() + rows.len() > RECORDED_BUCKETS {
            recorded.clear();
        }
        recorded.extend(rows);
    }

    /// The three steps of a commit (see the module doc).
    async fn run_commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError> {
        let outcomes = decide::decide(&self.cql, writes).await?;
        let applied = |i: usize| outcomes.get(i) == Some(&WriteOutcome::Applied);
        let plan = {
            let recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
            plan::plan(writes, &applied, high_water, &|row| recorded.contains(row))
        };
        let counts: Vec<(u64, u64)> = plan.events.iter().map(|(user, events)| (*user, events.len() as u64)).collect();
        let (first, claims) =
            futures::join!(self.cql.run_phase(&plan.first), positions::claim_all(&self.cql, &self.heads, &counts));
        first?;
        let claims = claims.map_err(|e| StoreError::backend("commit", e))?;
        let mut entries = Vec::with_capacity(2 * plan.events.len());
        for (user, events) in &plan.events {
            let first = claims
                .get(user)
                .copied()
                .ok_or(StoreError::backend("commit", CqlError::Unexpected("an inbox without a claim")))?;
            let (rows, ids) = plan::inbox_rows(*user, first, events);
            entries.push(rows);
            entries.extend(ids);
        }
        self.cql.run_phase(&entries).await?;
        self.remember(plan.buckets);
        let committed = positions::hand_out(writes, &outcomes, claims, plan.stats);
        if let Some(outbox) = self.outbox.get() {
            outbox.append(&self.cql, writes, &committed).await?;
        }
        Ok(committed)
    }
}

impl Cql {
    async fn prepared(&self, cql: &'static str) -> Result<scylla::statement::prepared::PreparedStatement, CqlError> {
        Ok(self.statements.get(&self.session, cql).await?)
    }

    /// Run one prepared statement.
    async fn execute(&self, cql: &'static str, values: impl SerializeRow) -> Result<QueryResult, CqlError> {
        let statement = self.prepared(cql).await?;
        Ok(self.session.execute_unpaged(&statement, values).await?)
    }

    /// Every row one statement returns, as `R`.
    async fn rows<R>(
        &self,
        op: &'static str,
        cql: &'static str,
        values: impl SerializeRow,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let result = self.execute(cql, values).await.map_err(|e| StoreError::backend(op, e))?;
        schema::rows_of(result, op)
    }

    /// One request: a single statement, or an unlogged batch of statements
    /// of one partition. A conditional one (inbox entries) must be applied:
    /// if a reader closed one of its positions as a hole first, the commit
    /// fails (`walk`).
    async fn run_chunk(&self, chunk: &Chunk) -> Result<(), CqlError> {
        let conditional = chunk.iter().any(|s| statements::is_conditional(s.cql));
        let result = if let [statement] = chunk.as_slice() {
            self.execute(statement.cql, &statement.values).await?
        } else {
            let mut batch = Batch::new(BatchType::Unlogged);
            for statement in chunk {
                batch.append_statement(self.prepared(statement.cql).await?);
            }
            batch.set_is_idempotent(!conditional);
            let values: Vec<&[CqlValue]> = chunk.iter().map(|s| s.values.as_slice()).collect();
            self.session.batch(&batch, values).await?
        };
        if conditional && !Answer::of(result)?.applied {
            return Err(CqlError::Raced("an inbox position was closed as a hole before its event was written"));
        }
        Ok(())
    }

    async fn run_unit(&self, unit: &Unit) -> Result<(), CqlError> {
        for chunk in unit {
            self.run_chunk(chunk).await?;
        }
        Ok(())
    }

    /// Every unit at once (at most [`CONCURRENCY`] in flight); the first
    /// failure ends the phase.
    async fn run_phase(&self, units: &[Unit]) -> Result<(), StoreError> {
        let mut running = stream::iter(units.iter().map(|u| self.run_unit(u))).buffer_unordered(CONCURRENCY);
        while let Some(result) = running.next().await {
            result.map_err(|e| StoreError::backend("commit", e))?;
        }
        Ok(())
    }
}

impl MessageStore for CassandraStore {
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        let result = self.runtime.block_on(self.run_commit(writes, high_water));
        if let Err(e) = &result {
            self.set_failure(Some(e.failure()));
        }
        result
    }

    fn recover(&self) -> Result<(), StoreError> {
        if self.failure().is_none() {
            return Ok(());
        }
        let now = i64::try_from(chatgw_protocol::now_ms()).unwrap_or(i64::MAX);
        self.runtime
            .block_on(self.cql.execute(statements::PROBE, (1i32, now)))
            .map_err(|e| StoreError::backend("probe write", e))?;
        if let Some(outbox) = self.outbox.get() {
            self.runtime.block_on(outbox.flush(&self.cql))?;
        }
        self.set_failure(None);
        Ok(())
    }

    /// One statement at the configured consistency (a quorum by default),
    /// so a later read at the same consistency sees it.
    fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        let cql = if on { statements::BLOCK } else { statements::UNBLOCK };
        let values = (blocker.0 as i64, target.0 as i64);
        self.runtime
            .block_on(self.cql.execute(cql, values))
            .map(|_| ())
            .map_err(|e| StoreError::backend("write block", e))
    }

    /// One partition read per user, all in flight at once.
    fn blocked_by(&self, users: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError> {
        self.runtime.block_on(async {
            let reads = users.iter().map(|u| self.cql.rows::<(i64,)>("blocks", statements::BLOCKED_BY, (u.0 as i64,)));
            let lists = futures::future::try_join_all(reads).await?;
            Ok(lists.into_iter().map(|rows| rows.into_iter().map(|(u,)| UserId(u as u64)).collect()).collect())
        })
    }

    /// One statement at the configured consistency, like a block.
    fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        let cql = if on { statements::SET_CONTACTS_ONLY } else { statements::UNSET_CONTACTS_ONLY };
        self.runtime
            .block_on(self.cql.execute(cql, (user.0 as i64,)))
            .map(|_| ())
            .map_err(|e| StoreError::backend("write direct message setting", e))
    }

    /// One point read per user, all in flight at once.
    fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError> {
        self.runtime.block_on(async {
            let reads = users
                .iter()
                .map(|u| self.cql.rows::<(i64,)>("contacts_only", statements::CONTACTS_ONLY, (u.0 as i64,)));
            let rows = futures::future::try_join_all(reads).await?;
            Ok(rows.into_iter().map(|r| !r.is_empty()).collect())
        })
    }

    fn high_water(&self, node: u16) -> Result<MessageId, StoreError> {
        self.runtime.block_on(reads::high_water(&self.cql, node))
    }

    fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError> {
        let row = (user.0 as i64, i64::try_from(at).unwrap_or(i64::MAX));
        self.runtime
            .block_on(self.cql.execute(statements::INSERT_REVOCATION, row))
            .map(|_| ())
            .map_err(|e| StoreError::backend("write revocation", e))
    }

    fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        self.runtime.block_on(reads::revocations(&self.cql))
    }

    fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        self.runtime.block_on(devices::revoke_device(&self.cql, user, device, at))
    }

    fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
        self.runtime.block_on(devices::device_revocations(&self.cql))
    }

    fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError> {
        self.runtime.block_on(devices::note_devices(&self.cql, notes))
    }

    fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.runtime.block_on(devices::devices(&self.cql, user))
    }

    fn set_push_target(&self, user: UserId, device: DeviceName, target: Option<&PushTarget>) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.runtime.block_on(devices::set_push_target(&self.cql, user, device, target))
    }

    fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError> {
        self.runtime.block_on(devices::push_targets(&self.cql, users))
    }

    fn remove_push_target_if(&self, user: UserId, device: DeviceName, token: &str) -> Result<bool, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.runtime.block_on(devices::remove_push_target_if(&self.cql, user, device, token))
    }

    fn put_device_keys(&self, user: UserId, device: DeviceName, keys: &DeviceKeys) -> Result<bool, StoreError> {
        self.writable()?;
        self.runtime.block_on(key_directory::put_device_keys(&self.cql, user, device, keys))
    }

    fn add_one_time_keys(&self, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64, StoreError> {
        self.writable()?;
        self.runtime.block_on(key_directory::add_one_time_keys(&self.cql, user, device, keys))
    }

    fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError> {
        self.runtime.block_on(key_directory::one_time_key_count(&self.cql, user, device))
    }

    fn claim_one_time_key(&self, user: UserId, device: DeviceName) -> Result<Option<SignedKey>, StoreError> {
        self.writable()?;
        self.runtime.block_on(key_directory::claim_one_time_key(&self.cql, user, device))
    }

    fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
        self.runtime.block_on(key_directory::device_keys(&self.cql, user))
    }

    fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError> {
        self.writable()?;
        self.runtime.block_on(key_directory::remove_device_keys(&self.cql, user, device))
    }

    fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.runtime.block_on(reads::message(&self.cql, conversation, id))
    }

    fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::messages_by_client_ids(&self.cql, keys))
    }

    fn messages(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::messages(&self.cql, keys))
    }

    fn message_headers(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::message_headers(&self.cql, keys))
    }

    fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::delivery_marks(&self.cql, keys))
    }

    fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::read_marks(&self.cql, keys))
    }

    fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::hidden_marks(&self.cql, user, keys))
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
        self.runtime.block_on(reads::headers_between(&self.cql, conversation, after, up_to, limit))
    }

    fn receipts_of(&self, conversation: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError> {
        self.runtime.block_on(reads::receipts_of(&self.cql, conversation, id))
    }

    /// Dense for every commit that succeeds: a claim reserves a block
    /// above the head by compare-and-set. A commit that fails after its
    /// claim leaves positions a reader later closes as holes and skips, so
    /// a jump may also be a hole: the catch-up read decides
    /// (docs/STORAGE.md, "Positions, their order, and holes").
    fn dense_positions(&self) -> bool {
        true
    }

    fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
        self.runtime.block_on(reads::group(&self.cql, id))
    }

    fn inbox_after(&self, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.runtime.block_on(reads::inbox_after(&self.cql, user, after, limit))
    }

    fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError> {
        self.runtime.block_on(reads::inbox_position(&self.cql, user, cursor))
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
        self.runtime.block_on(reads::history(&self.cql, conversation, before, limit))
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
        self.runtime.block_on(reads::conversations(&self.cql, user, before, limit))
    }

    fn enable_outbox(&self, options: crate::OutboxOptions) -> Result<(), StoreError> {
        if self.outbox.get().is_none() {
            let outbox = self.runtime.block_on(outbox::Outbox::enable(&self.cql, options))?;
            let _ = self.outbox.set(outbox);
        }
        Ok(())
    }

    fn outbox_after(&self, after: crate::OutboxPos, limit: usize) -> Result<Vec<crate::OutboxRecord>, StoreError> {
        self.runtime.block_on(outbox::after(&self.cql, self.outbox_node(), after, limit))
    }

    fn outbox_head(&self) -> Result<crate::OutboxPos, StoreError> {
        self.runtime.block_on(outbox::head(&self.cql, self.outbox_node())).map(crate::OutboxPos)
    }

    fn outbox_cursor(&self, consumer: &str) -> Result<crate::OutboxPos, StoreError> {
        self.runtime.block_on(outbox::cursor(&self.cql, self.outbox_node(), consumer))
    }

    fn set_outbox_cursor(&self, consumer: &str, pos: crate::OutboxPos) -> Result<(), StoreError> {
        if self.outbox.get().is_none() {
            return Err(StoreError::Unsupported {
                backend: "Cassandra",
                what: "an outbox cursor before enable_outbox",
            });
        }
        self.runtime.block_on(outbox::set_cursor(&self.cql, self.outbox_node(), consumer, pos))
    }
}

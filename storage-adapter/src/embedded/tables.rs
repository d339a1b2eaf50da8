//! The open engine: one fjall database and its keyspaces, and every read
//! and write expressed on them.
//!
//! [`EmbeddedStore`](super::EmbeddedStore) owns one `Tables` at a time and
//! swaps it for a fresh one when it reopens the engine after a failed write;
//! everything here works on one open engine and knows nothing of that.

use std::{
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use chatgw_protocol::{AmendKind, ConversationId, Group, GroupId, Message, MessageId, Receipt, ReceiptStatus, UserId};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, Slice, Snapshot};

use super::{
    conversations::{ListUpdates, RowCache},
    EmbeddedOptions,
};
use crate::{
    codec::{self, InboxRecord},
    CommitStats, Committed, GroupVersion, InboxEntry, InboxEvent, InboxPos, MessageHeader, MessageReceipts,
    OutboxOptions, OutboxPos, StoreError, Write, WriteOutcome,
};

pub(super) const HIGH_WATER_KEY: &[u8] = b"high_water";
const PROBE_KEY: &[u8] = b"write_probe";

/// One open fjall database: one keyspace per table.
pub(super) struct Tables {
    pub(super) db: Database,
    pub(super) messages: Keyspace,
    pub(super) inbox: Keyspace,
    pub(super) idempotency: Keyspace,
    pub(super) delivered: Keyspace,
    pub(super) reads: Keyspace,
    pub(super) read_by: Keyspace,
    pub(super) groups: Keyspace,
    pub(super) blocks: Keyspace,
    /// Users who take direct messages from contacts only (see `contacts_only`).
    pub(super) contacts_only: Keyspace,
    /// `(user, conversation)` to last message id and unread count
    /// (`conversations`).
    pub(super) conversations: Keyspace,
    pub(super) meta: Keyspace,
    /// User id (big endian) to the time its sessions were revoked (Unix
    /// seconds, big endian).
    pub(super) revocations: Keyspace,
    /// Named devices and their revocations (see `devices`).
    pub(super) devices: Keyspace,
    pub(super) device_revocations: Keyspace,
    /// A push target per named device (see `push_targets`), and the lock
    /// its writes take.
    pub(super) push_targets: Keyspace,
    pub(super) push_targets_writes: std::sync::Mutex<()>,
    /// The key directory (see `key_directory`), and the lock its writes
    /// and claims take.
    pub(super) device_keys: Keyspace,
    pub(super) one_time_keys: Keyspace,
    pub(super) key_directory_writes: std::sync::Mutex<super::key_directory::ClaimHints>,
    /// `(user, conversation, message)` to the event that hid the message
    /// from that user (`Write::Hide`).
    pub(super) hidden: Keyspace,
    /// Outbox position (big endian) to record (see `outbox`).
    pub(super) outbox: Keyspace,
    /// The highest outbox position assigned, as the last commit stored it.
    outbox_head: AtomicU64,
    /// Conversation list rows as the last commits left them.
    pub(super) list_cache: RowCache,
    /// The high water as the last commit stored it, read once at open: a
    /// commit raises it without reading the meta row back.
    recorded_high_water: AtomicU64,
    /// Held from reading the recorded high-water mark to the end of a
    /// commit, so concurrent commits (several pipelines) never lower it.
    commit_order: std::sync::Mutex<()>,
}

/// A fast seeded hasher for the maps one commit keeps.
type Hasher = foldhash::fast::RandomState;

/// One commit being built: the fjall batch, what it wrote, and what it
/// decided so far (keys bound, group versions, read marks), which later
/// writes of the same batch must see.
struct BatchWriter<'a> {
    batch: fjall::OwnedWriteBatch,
    /// The one snapshot every check of this commit reads the store through:
    /// a snapshot sees whole batches only, and one per commit rather than
    /// one per read (the commits before this one are all in it).
    view: Snapshot,
    stats: CommitStats,
    /// Idempotency keys bound earlier in this batch, borrowing the
    /// writes' client ids.
    keys: HashMap<(UserId, &'a str), (ConversationId, MessageId), Hasher>,
    groups: HashMap<GroupId, GroupVersion>,
    read_marks: HashMap<Vec<u8>, u64>,
    list: ListUpdates,
    /// Amended message rows of this batch by key, with whether each is a
    /// delete: written once, the last of each, when the batch is complete
    /// (one batch never holds two values for a key).
    amended: HashMap<Vec<u8>, (bool, Vec<u8>)>,
}

impl BatchWriter<'_> {
    fn put(&mut self, ks: &Keyspace, k: impl Into<Slice>, v: impl Into<Slice>) {
        let (k, v) = (k.into(), v.into());
        self.stats.bytes += k.len() + v.len();
        self.stats.records += 1;
        self.batch.insert(ks, k, v);
    }

    fn get(&self, ks: &Keyspace, key: &[u8], op: &'static str) -> Result<Option<fjall::UserValue>, StoreError> {
        self.view.get(ks, key).map_err(|e| StoreError::backend(op, e))
    }
}

impl Tables {
    /// Open (or create) the database in `path`, replaying its journal.
    pub(super) fn open(path: &Path, options: &EmbeddedOptions) -> Result<Self, StoreError> {
        // fjall's default worker count, set explicitly so that `background`
        // knows how many threads to look for.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        let db = super::background::open_with_low_priority_workers(options.background_nice, workers, || {
            Database::builder(path)
                .cache_size(options.cache_bytes)
                .manual_journal_persist(true)
                .max_journaling_size(options.max_journal_bytes.max(64 * 1024 * 1024))
                .worker_threads(workers)
                .open()
        })
        .map_err(|e| StoreError::backend("open", e))?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default).map_err(|e| StoreError::backend("open keyspace", e))
        };
        let tables = Tables {
            messages: ks("messages")?,
            inbox: ks("inbox")?,
            idempotency: ks("idempotency")?,
            delivered: ks("delivered")?,
            reads: ks("reads")?,
            read_by: ks("read_by")?,
            groups: ks("groups")?,
            blocks: ks("blocks")?,
            contacts_only: ks("contacts_only")?,
            conversations: ks("conversations")?,
            meta: ks("meta")?,
            revocations: ks("revocations")?,
            devices: ks("devices")?,
            device_revocations: ks("device_revocations")?,
            push_targets: ks("push_targets")?,
            push_targets_writes: std::sync::Mutex::new(()),
            device_keys: ks("device_keys")?,
            one_time_keys: ks("one_time_keys")?,
            key_directory_writes: Default::default(),
            hidden: ks("hidden")?,
            outbox: ks("outbox")?,
            outbox_head: AtomicU64::new(0),
            list_cache: RowCache::default(),
            recorded_high_water: AtomicU64::new(0),
            commit_order: std::sync::Mutex::new(()),
            db,
        };
        tables.recorded_high_water.store(tables.high_water()?.0, Ordering::Relaxed);
        tables.outbox_head.store(tables.stored_outbox_head()?, Ordering::Relaxed);
        Ok(tables)
    }

    /// The highest outbox position assigned.
    pub(super) fn outbox_head(&self) -> OutboxPos {
        OutboxPos(self.outbox_head.load(Ordering::Relaxed))
    }

    /// A consistent view for one read. Reads go through a snapshot because
    /// the engine applies a batch to its memtables item by item and a plain
    /// `Keyspace` read sees the items applied so far; a snapshot sees only
    /// whole batches (regression: `embedded_reads_saw_part_of_a_batch`).
    pub(super) fn view(&self) -> Snapshot {
        self.db.snapshot()
    }

    /// The database, for writes outside a commit (the retention sweep).
    pub(super) fn db(&self) -> &Database {
        &self.db
    }

    fn get(&self, ks: &Keyspace, key: &[u8], op: &'static str) -> Result<Option<fjall::UserValue>, StoreError> {
        self.view().get(ks, key).map_err(|e| StoreError::backend(op, e))
    }

    /// One small durable write through the journal: proof that the engine
    /// takes writes again.
    pub(super) fn probe(&self, unix_ms: u64) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.meta, PROBE_KEY, unix_ms.to_be_bytes().to_vec());
        batch.commit().map_err(|e| StoreError::backend("probe write", e))
    }

    /// Apply a batch as one atomic, durable fjall batch. One gateway owns
    /// the store (its directory is locked); its commit pipelines may commit
    /// at once, but each writes only its own conversations and groups, and
    /// [`EmbeddedStore`](super::EmbeddedStore) serialises commits sharing an
    /// idempotency key, so the checks below read the store and then write
    /// without racing anyone: idempotency keys and group versions are
    /// decided here, against the store and against the writes earlier in
    /// the same batch. An event's inbox position is its id.
    ///
    /// With the outbox enabled, the applied writes' outbox records go into
    /// the same batch, their positions assigned under the lock held to the
    /// end of the engine's commit (see `outbox`).
    pub(super) fn commit<'a>(
        &self,
        writes: &'a [Write<'a>],
        high_water: MessageId,
        outbox: Option<OutboxOptions>,
    ) -> Result<Committed, StoreError> {
        let events: usize = writes.iter().map(|w| w.inboxes().len()).sum();
        // A message writes its row, its key and a reference and a list row
        // per inbox: room for those and the high water, so the batch never
        // grows by copying.
        let records = 2 * writes.len() + 2 * events + 1;
        let mut w = BatchWriter {
            batch: fjall::OwnedWriteBatch::with_capacity(self.db.clone(), records)
                .durability(Some(PersistMode::SyncData)),
            view: self.view(),
            stats: CommitStats::default(),
            keys: HashMap::with_capacity_and_hasher(writes.len(), Hasher::default()),
            groups: HashMap::new(),
            read_marks: HashMap::new(),
            list: ListUpdates::with_capacity(writes.len(), events),
            amended: HashMap::new(),
        };
        let mut out = Committed::with_capacity(writes.len(), events);
        for write in writes {
            let outcome = match *write {
                Write::Message { message, inboxes, membership } => match self.taken_key(&w, message)? {
                    Some(original) => original,
                    None if self.stale_membership(&w, message, membership)? => WriteOutcome::Conflict,
                    None => {
                        self.put_message(&mut w, message, inboxes)?;
                        WriteOutcome::Applied
                    }
                },
                Write::Receipt { receipt, inboxes } => {
                    self.put_receipt(&mut w, receipt, inboxes)?;
                    WriteOutcome::Applied
                }
                Write::Amend { message, inboxes } => {
                    self.put_amendment(&mut w, message, inboxes)?;
                    WriteOutcome::Applied
                }
                Write::Hide { user, conversation, msg, event } => {
                    self.put_hidden(&mut w, *user, conversation, msg, event)?;
                    WriteOutcome::Applied
                }
                Write::KeysChanged { user, event, inboxes } => {
                    let v = Slice::from(codec::encode_keys_changed(*user));
                    for to in inboxes {
                        w.put(&self.inbox, codec::inbox_key(*to, event), v.clone());
                    }
                    WriteOutcome::Applied
                }
                Write::Group { group, based_on, announce, inboxes } => {
                    let taken = match announce {
                        Some(m) => self.taken_key(&w, m)?,
                        None => None,
                    };
                    match taken {
                        Some(original) => original,
                        None if self.group_version(&w, group.id)? != based_on => WriteOutcome::Conflict,
                        None => {
                            let version = based_on.next();
                            w.groups.insert(group.id, version);
                            let record = codec::encode_versioned_group(group, version);
                            w.put(&self.groups, group.id.0.to_be_bytes(), record);
                            if let Some(m) = announce {
                                self.put_message(&mut w, m, inboxes)?;
                            }
                            WriteOutcome::Applied
                        }
                    }
                }
            };
            let event = match write {
                Write::Message { message, .. } => message.id,
                Write::Receipt { receipt, .. } => receipt.event(),
                Write::Amend { message, .. } => message.amended.map_or(MessageId(0), |a| a.event),
                Write::Group { announce, .. } => announce.map_or(MessageId(0), |m| m.id),
                Write::Hide { event, .. } | Write::KeysChanged { event, .. } => *event,
            };
            let applied = outcome == WriteOutcome::Applied;
            let n = if applied { write.inboxes().len() } else { 0 };
            out.push(outcome, std::iter::repeat_n(InboxPos(event.0), n));
        }
        let list: Vec<_> = Self::list_writes(&w.list).collect();
        for (k, v) in list {
            w.put(&self.conversations, k, v);
        }
        for (key, (_, row)) in std::mem::take(&mut w.amended) {
            w.put(&self.messages, &key, row);
        }
        let events: Vec<Vec<u8>> = match outbox {
            Some(options) => {
                crate::outbox::records_of(writes, &out, options).iter().map(crate::outbox::encode).collect()
            }
            None => Vec::new(),
        };
        // Never lowered: a commit recording a smaller id keeps the stored
        // one. The engine commits one batch at a time anyway (its journal
        // lock), so this lock costs concurrent commits nothing more.
        let order = self.commit_order.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let high_water = high_water.0.max(self.recorded_high_water.load(Ordering::Relaxed));
        w.put(&self.meta, HIGH_WATER_KEY, high_water.to_be_bytes());
        let mut head = self.outbox_head.load(Ordering::Relaxed);
        if !events.is_empty() {
            for record in events {
                head += 1;
                w.put(&self.outbox, head.to_be_bytes(), record);
            }
            w.put(&self.meta, super::outbox::OUTBOX_HEAD_KEY, head.to_be_bytes());
        }
        w.batch.commit().map_err(|e| StoreError::backend("commit", e))?;
        self.recorded_high_water.fetch_max(high_water, Ordering::Relaxed);
        self.outbox_head.store(head, Ordering::Relaxed);
        self.list_cache.keep(&w.list);
        drop(order);
        out.stats = w.stats;
        Ok(out)
    }

    /// The message a write's idempotency key is already bound to, earlier in
    /// this batch or in the store, as the outcome that reports it.
    fn taken_key(&self, w: &BatchWriter<'_>, m: &Message) -> Result<Option<WriteOutcome>, StoreError> {
        // System messages without a client id have no idempotency key.
        if m.client_id.is_empty() {
            return Ok(None);
        }
        let bound = match w.keys.get(&(m.from, m.client_id.as_str())) {
            Some(found) => Some(*found),
            None => {
                match w.get(&self.idempotency, &codec::records::idempotency_key(m.from, &m.client_id), "read key")? {
                    Some(v) => Some(codec::decode_idempotency(&v)?),
                    None => None,
                }
            }
        };
        Ok(bound.map(|(conversation, id)| WriteOutcome::Duplicate { conversation, id }))
    }

    /// Whether a group message was fanned out to members of a version of
    /// the group that is no longer the one stored (or written earlier in
    /// this batch).
    fn stale_membership(
        &self,
        w: &BatchWriter<'_>,
        m: &Message,
        membership: Option<GroupVersion>,
    ) -> Result<bool, StoreError> {
        match (m.conversation, membership) {
            (ConversationId::Group(g), Some(v)) => Ok(self.group_version(w, g)? != v),
            _ => Ok(false),
        }
    }

    /// The version a group write is checked against: the record written
    /// earlier in this batch, else the stored one.
    fn group_version(&self, w: &BatchWriter<'_>, id: GroupId) -> Result<GroupVersion, StoreError> {
        if let Some(v) = w.groups.get(&id) {
            return Ok(*v);
        }
        match w.get(&self.groups, &id.0.to_be_bytes(), "read group")? {
            Some(v) => codec::group_version(id, &v),
            None => Ok(GroupVersion::ABSENT),
        }
    }

    /// A new message: its row, a reference in each inbox (one record
    /// shared by all of them), its idempotency key, its list rows.
    fn put_message<'a>(
        &self,
        w: &mut BatchWriter<'a>,
        message: &'a Message,
        inboxes: &[UserId],
    ) -> Result<(), StoreError> {
        self.list_message(&mut w.list, &w.view, message, inboxes)?;
        let c = &message.conversation;
        // The idempotency value is the message key's bytes: one allocation
        // shared by both records.
        let key = codec::records::message_key(c, message.id);
        w.put(&self.messages, key.clone(), codec::records::message(message));
        let reference = codec::records::inbox_message(c);
        for user in inboxes {
            w.put(&self.inbox, codec::inbox_key(*user, message.id), reference.clone());
        }
        if !message.client_id.is_empty() {
            w.keys.insert((message.from, message.client_id.as_str()), (*c, message.id));
            w.put(&self.idempotency, codec::records::idempotency_key(message.from, &message.client_id), key);
        }
        Ok(())
    }

    /// Replace a message by its amended form, unless it was deleted (in the
    /// store or earlier in this batch) and this is not a delete: a delete is
    /// final. The events are written either way; they show the message as
    /// it is.
    fn put_amendment(&self, w: &mut BatchWriter<'_>, message: &Message, inboxes: &[UserId]) -> Result<(), StoreError> {
        let c = &message.conversation;
        let key = codec::message_key(c, message.id);
        let deleting = message.amended.is_some_and(|a| a.kind == AmendKind::Deleted);
        let was_deleted = match w.amended.get(&key) {
            Some((deleted, _)) => *deleted,
            None => match w.get(&self.messages, &key, "read message")? {
                Some(v) => {
                    codec::decode_message(*c, message.id, &v)?.amended.is_some_and(|a| a.kind == AmendKind::Deleted)
                }
                None => false,
            },
        };
        if deleting || !was_deleted {
            w.amended.insert(key, (deleting, codec::encode_message(message)));
        }
        let event = message.amended.map_or(MessageId(0), |a| a.event);
        let v = Slice::from(codec::encode_amended(c, message.id));
        for user in inboxes {
            w.put(&self.inbox, codec::inbox_key(*user, event), v.clone());
        }
        Ok(())
    }

    /// A hidden mark and its event in the user's inbox. A mark already
    /// stored stays (the first hide's event stands); the event is written
    /// either way, since the committer announced it.
    fn put_hidden(
        &self,
        w: &mut BatchWriter<'_>,
        user: UserId,
        c: ConversationId,
        msg: MessageId,
        event: MessageId,
    ) -> Result<(), StoreError> {
        let key = codec::hidden_key(user, &c, msg);
        if w.get(&self.hidden, &key, "read hidden mark")?.is_none() {
            w.put(&self.hidden, &key, event.0.to_be_bytes().to_vec());
        }
        w.put(&self.inbox, codec::inbox_key(user, event), codec::encode_hidden(&c, msg));
        Ok(())
    }

    pub(super) fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError> {
        let view = self.view();
        keys.iter()
            .map(|(c, id)| {
                Ok(view
                    .get(&self.hidden, codec::hidden_key(user, c, *id))
                    .map_err(|e| StoreError::backend("read hidden mark", e))?
                    .and_then(|v| codec::u64_value(&v))
                    .map(MessageId))
            })
            .collect()
    }

    fn put_receipt(&self, w: &mut BatchWriter<'_>, receipt: &Receipt, inboxes: &[UserId]) -> Result<(), StoreError> {
        match receipt {
            Receipt::Delivered { conversation, by, ids, at, .. } => {
                for id in ids {
                    w.put(&self.delivered, codec::delivered_key(conversation, *id, *by), at.to_be_bytes());
                }
            }
            Receipt::Read { conversation, by, up_to, at, .. } => {
                // A read mark is the furthest any receipt reached: one
                // earlier in this batch, or one stored.
                let key = codec::read_key(conversation, *by);
                let furthest = match w.read_marks.get(&key) {
                    Some(mark) => Some(*mark),
                    None => w.get(&self.reads, &key, "read read mark")?.and_then(|v| codec::u64_value(&v)),
                };
                if furthest.is_none_or(|mark| up_to.0 > mark) {
                    w.read_marks.insert(key.clone(), up_to.0);
                    let mut v = up_to.0.to_be_bytes().to_vec();
                    v.extend_from_slice(&at.to_be_bytes());
                    w.put(&self.reads, &key, v);
                    self.list_read(&mut w.list, &w.view, *conversation, *by, *up_to)?;
                }
            }
            Receipt::Group { group, status, items, at, .. } => {
                let conversation = ConversationId::Group(*group);
                let table = match status {
                    ReceiptStatus::Delivered => &self.delivered,
                    ReceiptStatus::Read => &self.read_by,
                };
                for (by, ids) in items {
                    for id in ids {
                        w.put(table, codec::delivered_key(&conversation, *id, *by), at.to_be_bytes());
                    }
                }
            }
        }
        let v = Slice::from(codec::encode_receipt(receipt));
        for user in inboxes {
            w.put(&self.inbox, codec::inbox_key(*user, receipt.event()), v.clone());
        }
        Ok(())
    }

    /// Raise `user`'s revocation time to `at`, durably. The directory
    /// lock makes this the only writer, so reading then writing cannot race.
    pub(super) fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError> {
        let key = user.0.to_be_bytes();
        let stored = self.get(&self.revocations, &key, "read revocation")?.and_then(|v| codec::u64_value(&v));
        if stored.is_some_and(|s| s >= at) {
            return Ok(());
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.revocations, key, at.to_be_bytes().to_vec());
        batch.commit().map_err(|e| StoreError::backend("write revocation", e))
    }

    pub(super) fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        let mut out = Vec::new();
        for guard in self.view().iter(&self.revocations) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan revocations", e))?;
            let user = <[u8; 8]>::try_from(&*k)
                .map_err(|_| StoreError::Corrupt { table: "revocations", what: "key is not a user id" })?;
            let at = codec::u64_value(&v).ok_or(StoreError::Corrupt { table: "revocations", what: "bad time" })?;
            out.push((UserId(u64::from_be_bytes(user)), at));
        }
        Ok(out)
    }

    pub(super) fn high_water(&self) -> Result<MessageId, StoreError> {
        Ok(MessageId(
            self.get(&self.meta, HIGH_WATER_KEY, "read high water")?.and_then(|v| codec::u64_value(&v)).unwrap_or(0),
        ))
    }

    pub(super) fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        match self.get(&self.messages, &codec::message_key(&conversation, id), "read message")? {
            Some(v) => codec::decode_message(conversation, id, &v).map(Some),
            None => Ok(None),
        }
    }

    /// The batched lookups below read all their keys through one snapshot
    /// (a snapshot per key cost more than the read of a key in memory).
    pub(super) fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
        let view = self.view();
        keys.iter()
            .map(|(from, client_id)| {
                match view
                    .get(&self.idempotency, codec::records::idempotency_key(*from, client_id))
                    .map_err(|e| StoreError::backend("read idempotency key", e))?
                {
                    Some(v) => codec::decode_idempotency(&v).map(Some),
                    None => Ok(None),
                }
            })
            .collect()
    }

    pub(super) fn message_headers(
        &self,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageHeader>>, StoreError> {
        let view = self.view();
        keys.iter()
            .map(|(c, id)| {
                match view
                    .get(&self.messages, codec::records::message_key(c, *id))
                    .map_err(|e| StoreError::backend("read message header", e))?
                {
                    Some(v) => codec::decode_message_header(*id, &v).map(Some),
                    None => Ok(None),
                }
            })
            .collect()
    }

    pub(super) fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
        let view = self.view();
        keys.iter()
            .map(|(c, id, user)| {
                view.contains_key(&self.delivered, codec::delivered_key(c, *id, *user))
                    .map_err(|e| StoreError::backend("read delivery mark", e))
            })
            .collect()
    }

    pub(super) fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
        let view = self.view();
        keys.iter()
            .map(|(c, user)| {
                Ok(view
                    .get(&self.reads, codec::read_key(c, *user))
                    .map_err(|e| StoreError::backend("read read mark", e))?
                    .and_then(|v| codec::u64_value(&v))
                    .map(MessageId))
            })
            .collect()
    }

    pub(super) fn message_headers_between(
        &self,
        conversation: ConversationId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageHeader>, StoreError> {
        let Some(first) = after.0.checked_add(1) else { return Ok(Vec::new()) };
        if first > up_to.0 || limit == 0 {
            return Ok(Vec::new());
        }
        let lo = codec::message_key(&conversation, MessageId(first));
        let hi = codec::message_key(&conversation, up_to);
        let mut out = Vec::new();
        for guard in self.view().range(&self.messages, lo..=hi).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan message headers", e))?;
            let id =
                codec::id_from_message_key(&k).ok_or(StoreError::Corrupt { table: "messages", what: "short key" })?;
            out.push(codec::decode_message_header(id, &v)?);
        }
        Ok(out)
    }

    pub(super) fn receipts_of(
        &self,
        conversation: ConversationId,
        id: MessageId,
    ) -> Result<MessageReceipts, StoreError> {
        let prefix = codec::message_key(&conversation, id);
        let view = self.view();
        let scan = |ks: &Keyspace| -> Result<Vec<(UserId, u64)>, StoreError> {
            let mut out = Vec::new();
            for guard in view.prefix(ks, &prefix) {
                let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan receipts", e))?;
                let user = codec::id_from_message_key(&k)
                    .ok_or(StoreError::Corrupt { table: "receipts", what: "short key" })?;
                out.push((UserId(user.0), codec::u64_value(&v).unwrap_or(0)));
            }
            Ok(out)
        };
        Ok(MessageReceipts { delivered: scan(&self.delivered)?, read: scan(&self.read_by)? })
    }

    pub(super) fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
        match self.get(&self.groups, &id.0.to_be_bytes(), "read group")? {
            Some(v) => codec::decode_versioned_group(id, &v).map(Some),
            None => Ok(None),
        }
    }

    /// An event's position is its id (one writer commits ids in order).
    pub(super) fn inbox_after(
        &self,
        user: UserId,
        after: InboxPos,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let Some(start) = after.0.checked_add(1) else {
            return Ok(Vec::new());
        };
        let lo = codec::inbox_key(user, MessageId(start));
        let hi = codec::inbox_key(user, MessageId(u64::MAX));
        let mut out = Vec::new();
        for guard in self.view().range(&self.inbox, lo..=hi).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan inbox", e))?;
            let id = codec::id_from_message_key(&k).ok_or(StoreError::Corrupt { table: "inbox", what: "short key" })?;
            let event = match codec::decode_inbox(id, &v)? {
                InboxRecord::Message(c) => {
                    // The reference and the message are written in one atomic
                    // batch, so a dangling reference means damage on disk.
                    let m = self
                        .message(c, id)?
                        .ok_or(StoreError::Corrupt { table: "inbox", what: "reference to a missing message" })?;
                    InboxEvent::Message(m)
                }
                InboxRecord::Receipt(r) => InboxEvent::Receipt(r),
                InboxRecord::Amended(c, msg) => {
                    // Written in the batch that amended a stored message.
                    let message = self
                        .message(c, msg)?
                        .ok_or(StoreError::Corrupt { table: "inbox", what: "amendment of a missing message" })?;
                    InboxEvent::Amended { event: id, message }
                }
                InboxRecord::Hidden(c, msg) => {
                    let message = self
                        .message(c, msg)?
                        .ok_or(StoreError::Corrupt { table: "inbox", what: "hidden mark of a missing message" })?;
                    InboxEvent::Amended { event: id, message: chatgw_protocol::hidden_view(message, id) }
                }
                InboxRecord::KeysChanged(user) => InboxEvent::KeysChanged { event: id, user },
            };
            out.push(InboxEntry { pos: InboxPos(id.0), event });
        }
        Ok(out)
    }

    /// The largest event id of `user`'s inbox at or below `cursor`: its
    /// position, since a position is the id.
    pub(super) fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError> {
        if cursor.0 == 0 {
            return Ok(InboxPos(0));
        }
        let lo = codec::inbox_key(user, MessageId(0));
        let hi = codec::inbox_key(user, cursor);
        match self.view().range(&self.inbox, lo..=hi).next_back() {
            Some(guard) => {
                let k = guard.key().map_err(|e| StoreError::backend("scan inbox", e))?;
                let id =
                    codec::id_from_message_key(&k).ok_or(StoreError::Corrupt { table: "inbox", what: "short key" })?;
                Ok(InboxPos(id.0))
            }
            None => Ok(InboxPos(0)),
        }
    }

    pub(super) fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let lo = codec::message_key(&conversation, MessageId(0));
        let hi = match before {
            Some(MessageId(0)) => return Ok(Vec::new()),
            Some(b) => codec::message_key(&conversation, MessageId(b.0 - 1)),
            None => codec::message_key(&conversation, MessageId(u64::MAX)),
        };
        let mut out = Vec::new();
        for guard in self.view().range(&self.messages, lo..=hi).rev().take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan history", e))?;
            let id =
                codec::id_from_message_key(&k).ok_or(StoreError::Corrupt { table: "messages", what: "short key" })?;
            out.push(codec::decode_message(conversation, id, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::MessageId;

    use super::super::{EmbeddedOptions, EmbeddedStore};
    use crate::MessageStore;

    /// The high water a commit keeps is the larger of its own and the one
    /// held since open, which a reopened store loads from disk.
    #[test]
    fn the_high_water_is_never_lowered_across_commits_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let open = || EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let s = open();
        assert_eq!(s.high_water(0).unwrap(), MessageId(0));
        s.commit(&[], MessageId(50)).unwrap();
        s.commit(&[], MessageId(40)).unwrap();
        assert_eq!(s.high_water(0).unwrap(), MessageId(50));
        drop(s);
        let s = open();
        assert_eq!(s.high_water(0).unwrap(), MessageId(50));
        s.commit(&[], MessageId(45)).unwrap();
        drop(s);
        let s = open();
        assert_eq!(s.high_water(0).unwrap(), MessageId(50), "a reopened store kept the stored high water");
        s.commit(&[], MessageId(60)).unwrap();
        assert_eq!(s.high_water(0).unwrap(), MessageId(60));
    }
}

//! The embedded default store, on fjall (an LSM tree).
//!
//! Why an LSM tree: the write pattern is append-heavy (every message is a
//! new key in its conversation and in each participant's inbox) and reads are
//! ordered range scans (sync, history); that is what LSM trees are good at,
//! and it is the same model a Cassandra deployment uses, so the two backends
//! share one data layout.
//!
//! Each table is one fjall keyspace. A commit is one fjall write batch with
//! `fdatasync` on the journal: atomic across keyspaces and durable when it
//! returns. Journal persistence is manual, so nothing else ever syncs behind
//! the group committer's back.
//!
//! Why commits may run at once: one gateway owns the store, but its commit
//! pipelines commit in parallel, each for its own conversations and groups
//! (so read marks, group versions and conversation rows never collide);
//! what they still share is checked without racing: a commit claims the
//! idempotency keys it binds, so two commits binding one key run one after
//! the other (`key_claims`), and the high-water mark is raised under a lock
//! held to the end of the engine's commit (`tables`). The engine itself
//! commits one batch at a time (its journal lock); the encoding of each
//! batch before that runs in parallel.
//!
//! Why the engine can be reopened: after one failed journal write (a full
//! disk, a file system remounted read-only) fjall poisons the database and
//! refuses every later write, because it can no longer vouch for the
//! journal's tail. The on-disk state is still consistent: reopening replays
//! the journal up to the last complete batch. So after a failure this store
//! refuses writes at once ([`StoreError::Unwritable`]) while reads go on
//! from the old engine, and [`MessageStore::recover`] first proves that the
//! disk takes a durable write again, then drops the poisoned engine and opens
//! a fresh one from disk (see `reopen`). Reads and commits hold a read lock
//! on the engine for their whole duration and the swap takes the write lock,
//! so no read ever sees a half-closed engine and the database lock file is
//! free when the new engine opens it.

mod background;
mod blocks;
mod check;
mod contacts_only;
mod conversations;
mod devices;
mod inbox_sweep;
mod key_claims;
mod key_directory;
mod outbox;
mod push_targets;
mod reopen;
mod sweep;
mod tables;

pub(crate) use check::{hex, receipt_ids, Timeline};
pub use check::{IntegrityCounts, IntegrityReport, Violation};

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock, PoisonError, RwLock},
};

use chatgw_protocol::{
    ConversationId, DeviceKeys, DeviceName, Group, GroupId, Message, MessageId, PushTarget, SignedKey, UserId,
};

use self::{key_claims::KeyClaims, tables::Tables};
use crate::{
    Committed, ConversationSummary, DeviceNote, DeviceRecord, GroupVersion, InboxEntry, InboxPos, InboxSweep, KeySweep,
    MessageHeader, MessageReceipts, MessageStore, OutboxOptions, OutboxPos, OutboxRecord, StoreError, Write,
    WriteFailure,
};

/// Tuning for [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Most journal bytes kept before memtables are flushed to tables (at
    /// least 64 MiB). After a crash the whole journal is replayed before the
    /// store opens, at roughly 80 ms per MB on the reference machine, so
    /// this bounds restart time: 64 MiB is about 5 s at worst, where the
    /// engine's own default (512 MiB) could take 40.
    pub max_journal_bytes: u64,
    /// Niceness of the engine's background threads (memtable flushes,
    /// compaction), 1 to 19; 0 leaves them at the process's own priority.
    /// See `background` for why the default is the lowest priority.
    pub background_nice: i32,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { cache_bytes: 64 * 1024 * 1024, max_journal_bytes: 64 * 1024 * 1024, background_nice: 19 }
    }
}

/// The embedded durable store. Cheap to share: wrap it in an `Arc`.
pub struct EmbeddedStore {
    /// The open engine; `None` only while a reopen has failed.
    engine: RwLock<Option<Tables>>,
    /// Why writes are refused, from a failed commit until a successful
    /// [`MessageStore::recover`].
    failed: Mutex<Option<WriteFailure>>,
    /// Idempotency keys of the commits in progress (`key_claims`).
    claims: KeyClaims,
    /// Held by a recovery: several commit pipelines may ask at once, and
    /// the engine is reopened once.
    recovering: Mutex<()>,
    /// Set once by [`MessageStore::enable_outbox`]: commits write outbox
    /// records from then on.
    outbox: OnceLock<OutboxOptions>,
    options: EmbeddedOptions,
    path: PathBuf,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (or create) the store in `dir`, replaying its journal after a crash.
    pub fn open(dir: impl AsRef<Path>, options: &EmbeddedOptions) -> Result<Self, StoreError> {
        let path = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&path).map_err(|e| StoreError::backend("create data directory", e))?;
        let tables = Tables::open(&path, options)?;
        tables.fill_conversation_list()?;
        Ok(EmbeddedStore {
            engine: RwLock::new(Some(tables)),
            failed: Mutex::new(None),
            claims: KeyClaims::default(),
            recovering: Mutex::new(()),
            outbox: OnceLock::new(),
            options: options.clone(),
            path,
        })
    }

    /// Where the data lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Act as if a commit had just failed with `cause`: writes are refused
    /// until [`MessageStore::recover`] succeeds. For the conformance suite's
    /// outage check; a real failure needs a full disk.
    #[cfg(feature = "conformance")]
    #[doc(hidden)]
    pub fn inject_write_failure(&self, cause: WriteFailure) {
        self.set_failure(Some(cause));
    }

    /// Run `f` on the open engine, holding it open until `f` returns.
    fn with<R>(&self, f: impl FnOnce(&Tables) -> Result<R, StoreError>) -> Result<R, StoreError> {
        // A panic elsewhere while holding the lock leaves the engine itself intact.
        let engine = self.engine.read().unwrap_or_else(PoisonError::into_inner);
        match engine.as_ref() {
            Some(t) => f(t),
            None => Err(StoreError::Closed),
        }
    }

    /// Run a write outside `commit`: refused while the store is failed, and
    /// a failed write marks it failed.
    fn written<R>(&self, f: impl FnOnce(&Tables) -> Result<R, StoreError>) -> Result<R, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(f).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn failure(&self) -> Option<WriteFailure> {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_failure(&self, failure: Option<WriteFailure>) {
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = failure;
    }
}

impl MessageStore for EmbeddedStore {
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        let _claim = self.claims.claim(writes);
        let outbox = self.outbox.get().copied();
        self.with(|t| t.commit(writes, high_water, outbox)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn enable_outbox(&self, options: OutboxOptions) -> Result<(), StoreError> {
        // A second call with other options keeps the first: commits already
        // wrote records of that shape.
        let _ = self.outbox.set(options);
        Ok(())
    }

    fn outbox_after(&self, after: OutboxPos, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        self.with(|t| t.outbox_after(after, limit))
    }

    fn outbox_head(&self) -> Result<OutboxPos, StoreError> {
        self.with(|t| Ok(t.outbox_head()))
    }

    fn outbox_cursor(&self, consumer: &str) -> Result<OutboxPos, StoreError> {
        self.with(|t| t.outbox_cursor(consumer))
    }

    fn set_outbox_cursor(&self, consumer: &str, pos: OutboxPos) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.set_outbox_cursor(consumer, pos))
    }

    fn recover(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.recovering.lock().unwrap_or_else(PoisonError::into_inner);
        if self.failure().is_none() {
            return Ok(());
        }
        reopen::probe_disk(&self.path)?;
        reopen::reopen(&self.engine, &self.path, &self.options)?;
        self.set_failure(None);
        Ok(())
    }

    fn sweep_idempotency_keys(
        &self,
        after: Option<(UserId, &str)>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<KeySweep, StoreError> {
        // Writes wait for recovery, which the committer drives.
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.sweep_idempotency_keys(after, older_than, limit))
    }

    fn sweep_inboxes(
        &self,
        from: Option<UserId>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<InboxSweep, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.sweep_inboxes(from, older_than, limit))
    }

    fn inbox_floor(&self, user: UserId) -> Result<InboxPos, StoreError> {
        self.with(|t| t.inbox_floor(user))
    }

    fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.set_block(blocker, target, on)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn blocked_by(&self, users: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError> {
        self.with(|t| users.iter().map(|u| t.blocked_by(*u)).collect())
    }

    fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.set_contacts_only(user, on)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError> {
        self.with(|t| t.contacts_only(users))
    }

    /// One writer, one generator: the largest id of all is that node's.
    fn high_water(&self, _node: u16) -> Result<MessageId, StoreError> {
        self.with(|t| t.high_water())
    }

    /// Refused while the store is unwritable, like a commit.
    fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.revoke_sessions(user, at)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        self.with(|t| t.revocations())
    }

    /// Refused while the store is unwritable, like a commit.
    fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.revoke_device(user, device, at)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
        self.with(|t| t.device_revocations())
    }

    fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.note_devices(notes)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.with(|t| t.devices(user))
    }

    fn set_push_target(&self, user: UserId, device: DeviceName, target: Option<&PushTarget>) -> Result<(), StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.set_push_target(user, device, target)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError> {
        self.with(|t| t.push_targets(users))
    }

    fn remove_push_target_if(&self, user: UserId, device: DeviceName, token: &str) -> Result<bool, StoreError> {
        if let Some(cause) = self.failure() {
            return Err(StoreError::Unwritable { cause });
        }
        self.with(|t| t.remove_push_target_if(user, device, token)).inspect_err(|e| self.set_failure(Some(e.failure())))
    }

    fn put_device_keys(&self, user: UserId, device: DeviceName, keys: &DeviceKeys) -> Result<bool, StoreError> {
        self.written(|t| t.put_device_keys(user, device, keys))
    }

    fn add_one_time_keys(&self, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64, StoreError> {
        self.written(|t| t.add_one_time_keys(user, device, keys))
    }

    fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError> {
        self.with(|t| t.one_time_key_count(user, device))
    }

    fn claim_one_time_key(&self, user: UserId, device: DeviceName) -> Result<Option<SignedKey>, StoreError> {
        let mut claimed = self.written(|t| t.claim_one_time_keys(user, &[device]))?;
        Ok(claimed.pop().flatten())
    }

    fn claim_one_time_keys(&self, user: UserId, devices: &[DeviceName]) -> Result<Vec<Option<SignedKey>>, StoreError> {
        self.written(|t| t.claim_one_time_keys(user, devices))
    }

    fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
        self.with(|t| t.device_keys(user))
    }

    fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError> {
        self.written(|t| t.remove_device_keys(user, device))
    }

    fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.with(|t| t.message(conversation, id))
    }

    fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| t.messages_by_client_ids(keys))
    }

    fn messages(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| keys.iter().map(|&(c, id)| t.message(c, id)).collect())
    }

    fn message_headers(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| t.message_headers(keys))
    }

    fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| t.delivery_marks(keys))
    }

    fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| t.read_marks(keys))
    }

    fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|t| t.hidden_marks(user, keys))
    }

    fn message_headers_between(
        &self,
        conversation: ConversationId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageHeader>, StoreError> {
        self.with(|t| t.message_headers_between(conversation, after, up_to, limit))
    }

    fn receipts_of(&self, conversation: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError> {
        self.with(|t| t.receipts_of(conversation, id))
    }

    fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
        self.with(|t| t.versioned_group(id))
    }

    fn inbox_after(&self, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        self.with(|t| t.inbox_after(user, after, limit))
    }

    fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError> {
        self.with(|t| t.inbox_position(user, cursor))
    }

    fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.with(|t| t.history(conversation, before, limit))
    }

    fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.with(|t| t.conversations(user, before, limit))
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{MessageKind, Receipt, ReceiptStatus, Snowflake};

    use super::*;
    use crate::InboxEvent;

    /// The events of `user`'s inbox after event `after` (here a position is
    /// the event id).
    fn inbox(s: &EmbeddedStore, user: u64, after: MessageId, limit: usize) -> Vec<InboxEvent> {
        s.inbox_after(UserId(user), InboxPos(after.0), limit).unwrap().into_iter().map(|e| e.event).collect()
    }

    fn msg(g: &mut Snowflake, from: u64, to: u64, cid: &str) -> Message {
        let id = g.next_id();
        Message {
            id,
            conversation: ConversationId::direct(UserId(from), UserId(to)),
            from: UserId(from),
            kind: MessageKind::Text,
            client_id: cid.into(),
            ts: Snowflake::unix_ms(id),
            body: format!("\"{cid}\""),
            amended: None,
        }
    }

    #[test]
    fn commit_then_read_everything_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Snowflake::new(1);
        let (m1, m2) = (msg(&mut g, 1, 2, "a"), msg(&mut g, 2, 1, "b"));
        let rid = g.next_id();
        let receipt =
            Receipt::Delivered { event: rid, conversation: m1.conversation, by: UserId(2), ids: vec![m1.id], at: 5 };
        {
            let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
            let both = [UserId(1), UserId(2)];
            let stats = s
                .commit(
                    &[
                        Write::Message { message: &m1, inboxes: &both, membership: None },
                        Write::Message { message: &m2, inboxes: &both, membership: None },
                        Write::Receipt { receipt: &receipt, inboxes: &[UserId(1)] },
                    ],
                    rid,
                )
                .unwrap()
                .stats;
            assert!(stats.bytes > 0 && stats.records == 13, "{stats:?}: 11 and two conversation list rows");
        }
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        assert_eq!(s.high_water(1).unwrap(), rid);
        assert_eq!(s.message(m1.conversation, m1.id).unwrap(), Some(m1.clone()));
        assert_eq!(
            s.messages_by_client_ids(&[(UserId(1), "a"), (UserId(2), "a"), (UserId(2), "b")]).unwrap(),
            vec![Some((m1.conversation, m1.id)), None, Some((m2.conversation, m2.id))],
            "answers in input order"
        );
        assert_eq!(
            s.delivery_marks(&[(m1.conversation, m1.id, UserId(2)), (m2.conversation, m2.id, UserId(1))]).unwrap(),
            vec![true, false]
        );
        let header = |m: &Message| MessageHeader { id: m.id, from: m.from, kind: m.kind };
        assert_eq!(
            s.message_headers(&[(m2.conversation, m2.id), (m1.conversation, MessageId(1)), (m1.conversation, m1.id)])
                .unwrap(),
            vec![Some(header(&m2)), None, Some(header(&m1))]
        );
        assert!(s.messages_by_client_ids(&[]).unwrap().is_empty());

        let inbox1 = inbox(&s, 1, MessageId(0), 100);
        assert_eq!(
            inbox1,
            vec![InboxEvent::Message(m1.clone()), InboxEvent::Message(m2.clone()), InboxEvent::Receipt(receipt)]
        );
        let inbox2 = inbox(&s, 2, m1.id, 100);
        assert_eq!(inbox2, vec![InboxEvent::Message(m2.clone())]);
        assert_eq!(inbox(&s, 1, MessageId(0), 1).len(), 1);
        assert!(inbox(&s, 3, MessageId(0), 100).is_empty());

        assert_eq!(s.history(m1.conversation, None, 10).unwrap(), vec![m2.clone(), m1.clone()]);
        assert_eq!(s.history(m1.conversation, Some(m2.id), 10).unwrap(), vec![m1]);
        assert_eq!(s.history(m2.conversation, None, 1).unwrap(), vec![m2]);
    }

    #[test]
    fn groups_and_per_message_receipts() {
        use chatgw_protocol::Member;
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let g = Group {
            id: GroupId(7),
            name: "g".into(),
            description: String::new(),
            admins_only: false,
            admins_can_delete: false,
            created_by: UserId(1),
            members: (1..=3).map(|u| Member { user: UserId(u), admin: u == 1, joined: MessageId(1) }).collect(),
        };
        assert_eq!(s.group(GroupId(7)).unwrap(), None);
        s.commit(
            &[Write::Group { group: &g, based_on: GroupVersion::ABSENT, announce: None, inboxes: &[] }],
            MessageId(1),
        )
        .unwrap();
        assert_eq!(s.group(GroupId(7)).unwrap(), Some(g));
        let c = ConversationId::Group(GroupId(7));
        let delivered = Receipt::Group {
            event: MessageId(5),
            group: GroupId(7),
            status: ReceiptStatus::Delivered,
            items: vec![(UserId(2), vec![MessageId(3)]), (UserId(3), vec![MessageId(3)])],
            at: 50,
        };
        let read = Receipt::Group {
            event: MessageId(6),
            group: GroupId(7),
            status: ReceiptStatus::Read,
            items: vec![(UserId(3), vec![MessageId(3)])],
            at: 60,
        };
        s.commit(
            &[
                Write::Receipt { receipt: &delivered, inboxes: &[UserId(1)] },
                Write::Receipt { receipt: &read, inboxes: &[UserId(1)] },
            ],
            MessageId(6),
        )
        .unwrap();
        let r = s.receipts_of(c, MessageId(3)).unwrap();
        assert_eq!(r.delivered, vec![(UserId(2), 50), (UserId(3), 50)]);
        assert_eq!(r.read, vec![(UserId(3), 60)]);
        assert!(s.receipts_of(c, MessageId(4)).unwrap().delivered.is_empty());
        assert_eq!(inbox(&s, 1, MessageId(0), 10), vec![InboxEvent::Receipt(delivered), InboxEvent::Receipt(read)]);
    }

    #[test]
    fn recover_reopens_the_engine_while_readers_keep_reading() {
        use std::sync::{
            atomic::{AtomicBool, AtomicUsize, Ordering},
            Arc,
        };
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap());
        let mut g = Snowflake::new(1);
        let (m1, m2) = (msg(&mut g, 1, 2, "a"), msg(&mut g, 1, 2, "b"));
        let both = [UserId(1), UserId(2)];
        s.commit(&[Write::Message { message: &m1, inboxes: &both, membership: None }], m1.id).unwrap();
        s.recover().expect("nothing failed: nothing to do");

        // A real failure needs a full disk (gateway/tests/disk.rs); here the
        // store is told one happened, which is all `recover` looks at.
        s.set_failure(Some(WriteFailure::NoSpace));
        match s.commit(&[Write::Message { message: &m2, inboxes: &both, membership: None }], m2.id) {
            Err(StoreError::Unwritable { cause: WriteFailure::NoSpace }) => {}
            other => panic!("a failed store must refuse writes: {other:?}"),
        }
        assert_eq!(s.message(m1.conversation, m1.id).unwrap(), Some(m1.clone()), "reads go on");

        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (s, stop, reads, m1) = (s.clone(), stop.clone(), reads.clone(), m1.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let inbox = s.inbox_after(UserId(2), InboxPos(0), 10).expect("inbox read during reopen");
                        assert_eq!(inbox.first().map(|e| &e.event), Some(&InboxEvent::Message(m1.clone())));
                        let page = s.history(m1.conversation, None, 10).expect("history read during reopen");
                        assert!(page.contains(&m1));
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        while reads.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        for _ in 0..5 {
            s.set_failure(Some(WriteFailure::Io));
            s.recover().expect("the disk takes writes: recover reopens");
        }
        s.commit(&[Write::Message { message: &m2, inboxes: &both, membership: None }], m2.id).expect("writable again");
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("a reader failed while the engine was reopened");
        }
        assert!(!dir.path().join(reopen::PROBE_FILE).exists(), "the probe file is removed");
        drop(s);
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        assert_eq!(s.high_water(1).unwrap(), m2.id);
        assert_eq!(inbox(&s, 1, MessageId(0), 10).len(), 2);
    }

    #[test]
    fn a_store_from_before_the_conversation_list_gets_it_filled_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut g = Snowflake::new(1);
        let (a, b, c) = (msg(&mut g, 2, 1, "a"), msg(&mut g, 2, 1, "b"), msg(&mut g, 1, 2, "c"));
        let read =
            Receipt::Read { event: g.next_id(), conversation: a.conversation, by: UserId(1), up_to: a.id, at: 1 };
        {
            let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
            let both = [UserId(1), UserId(2)];
            let writes: Vec<Write<'_>> =
                [&a, &b, &c].iter().map(|m| Write::Message { message: m, inboxes: &both, membership: None }).collect();
            s.commit(&writes, c.id).unwrap();
            s.commit(&[Write::Receipt { receipt: &read, inboxes: &both }], read.event()).unwrap();
            // What a release without the list left: no rows, no mark of the fill.
            s.with(|t| {
                let mut batch = t.db.batch().durability(Some(fjall::PersistMode::SyncData));
                for guard in fjall::Readable::iter(&t.view(), &t.conversations) {
                    batch.remove(&t.conversations, guard.key().unwrap());
                }
                batch.remove(&t.meta, b"conversations_filled");
                batch.commit().map_err(|e| StoreError::backend("test", e))
            })
            .unwrap();
            assert!(s.conversations(UserId(1), None, 10).unwrap().is_empty());
        }
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let rows = |u| s.conversations(UserId(u), None, 10).unwrap();
        let want = |unread| vec![ConversationSummary { conversation: a.conversation, last: c.id, unread }];
        assert_eq!(rows(1), want(1), "b is after 1's read mark; c is 1's own");
        assert_eq!(rows(2), want(1), "2 never read c");
        drop(s);
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        assert_eq!(s.conversations(UserId(1), None, 10).unwrap(), want(1), "filled once, kept");
    }

    #[test]
    fn read_marks() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let c = ConversationId::direct(UserId(1), UserId(2));
        assert_eq!(s.read_marks(&[(c, UserId(2))]).unwrap(), vec![None]);
        let r = Receipt::Read { event: MessageId(10), conversation: c, by: UserId(2), up_to: MessageId(7), at: 1 };
        s.commit(&[Write::Receipt { receipt: &r, inboxes: &[UserId(1), UserId(2)] }], MessageId(10)).unwrap();
        assert_eq!(s.read_marks(&[(c, UserId(1)), (c, UserId(2))]).unwrap(), vec![None, Some(MessageId(7))]);
        assert_eq!(inbox(&s, 2, MessageId(0), 10), vec![InboxEvent::Receipt(r)]);
    }

    #[test]
    fn message_headers_between_walks_only_the_span_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let mut g = Snowflake::new(1);
        let ms: Vec<Message> = (0..6).map(|i| msg(&mut g, 1 + i % 2, 2 - i % 2, &format!("m{i}"))).collect();
        let other = msg(&mut g, 1, 3, "elsewhere");
        let both = [UserId(1), UserId(2)];
        let mut writes: Vec<Write<'_>> =
            ms.iter().map(|m| Write::Message { message: m, inboxes: &both, membership: None }).collect();
        writes.push(Write::Message { message: &other, inboxes: &both, membership: None });
        s.commit(&writes, other.id).unwrap();
        let c = ms[0].conversation;
        let ids = |v: Vec<MessageHeader>| v.into_iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.message_headers_between(c, ms[1].id, ms[4].id, 100).unwrap()),
            vec![ms[2].id, ms[3].id, ms[4].id]
        );
        assert_eq!(ids(s.message_headers_between(c, ms[1].id, ms[4].id, 2).unwrap()), vec![ms[2].id, ms[3].id]);
        assert!(s.message_headers_between(c, ms[4].id, ms[4].id, 100).unwrap().is_empty(), "nothing after the mark");
        assert!(s.message_headers_between(c, ms[4].id, ms[1].id, 100).unwrap().is_empty(), "an older mark");
        let all = s.message_headers_between(c, MessageId(0), MessageId(u64::MAX), 100).unwrap();
        assert_eq!(all.len(), 6, "other conversations stay out");
        assert_eq!(all[3], MessageHeader { id: ms[3].id, from: UserId(2), kind: MessageKind::Text });
    }
}

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

mod check;

pub use check::{IntegrityCounts, IntegrityReport, Violation};

use std::path::{Path, PathBuf};

use chatgw_protocol::{ConversationId, Group, GroupId, Message, MessageId, Receipt, ReceiptStatus, UserId};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::{
    codec::{self, InboxRecord},
    CommitStats, InboxEvent, MessageReceipts, MessageStore, StoreError, Write,
};

const HIGH_WATER_KEY: &[u8] = b"high_water";

/// Tuning for [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { cache_bytes: 64 * 1024 * 1024 }
    }
}

/// The embedded durable store. Cheap to share: wrap it in an `Arc`.
pub struct EmbeddedStore {
    db: Database,
    messages: Keyspace,
    inbox: Keyspace,
    idempotency: Keyspace,
    delivered: Keyspace,
    reads: Keyspace,
    read_by: Keyspace,
    groups: Keyspace,
    meta: Keyspace,
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
        let db = Database::builder(&path)
            .cache_size(options.cache_bytes)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StoreError::backend("open", e))?;
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default).map_err(|e| StoreError::backend("open keyspace", e))
        };
        Ok(EmbeddedStore {
            messages: ks("messages")?,
            inbox: ks("inbox")?,
            idempotency: ks("idempotency")?,
            delivered: ks("delivered")?,
            reads: ks("reads")?,
            read_by: ks("read_by")?,
            groups: ks("groups")?,
            meta: ks("meta")?,
            db,
            path,
        })
    }

    /// Where the data lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn get(&self, ks: &Keyspace, key: &[u8], op: &'static str) -> Result<Option<fjall::UserValue>, StoreError> {
        ks.get(key).map_err(|e| StoreError::backend(op, e))
    }
}

impl MessageStore for EmbeddedStore {
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<CommitStats, StoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut stats = CommitStats::default();
        let mut put = |ks: &Keyspace, k: &[u8], v: Vec<u8>| {
            stats.bytes += k.len() + v.len();
            stats.records += 1;
            batch.insert(ks, k, v);
        };
        for w in writes {
            match *w {
                Write::Message { message, inboxes } => {
                    let c = &message.conversation;
                    put(&self.messages, &codec::message_key(c, message.id), codec::encode_message(message));
                    let reference = codec::encode_inbox_message(c);
                    for user in inboxes {
                        put(&self.inbox, &codec::inbox_key(*user, message.id), reference.clone());
                    }
                    // System messages without a client id have no idempotency key.
                    if !message.client_id.is_empty() {
                        put(
                            &self.idempotency,
                            &codec::idempotency_key(message.from, &message.client_id),
                            codec::encode_idempotency(c, message.id),
                        );
                    }
                }
                Write::Receipt { receipt, inboxes } => {
                    match receipt {
                        Receipt::Delivered { conversation, by, ids, at, .. } => {
                            for id in ids {
                                put(
                                    &self.delivered,
                                    &codec::delivered_key(conversation, *id, *by),
                                    at.to_be_bytes().to_vec(),
                                );
                            }
                        }
                        Receipt::Read { conversation, by, up_to, at, .. } => {
                            let mut v = up_to.0.to_be_bytes().to_vec();
                            v.extend_from_slice(&at.to_be_bytes());
                            put(&self.reads, &codec::read_key(conversation, *by), v);
                        }
                        Receipt::Group { group, status, items, at, .. } => {
                            let conversation = ConversationId::Group(*group);
                            let table = match status {
                                ReceiptStatus::Delivered => &self.delivered,
                                ReceiptStatus::Read => &self.read_by,
                            };
                            for (by, ids) in items {
                                for id in ids {
                                    put(
                                        table,
                                        &codec::delivered_key(&conversation, *id, *by),
                                        at.to_be_bytes().to_vec(),
                                    );
                                }
                            }
                        }
                    }
                    let v = codec::encode_receipt(receipt);
                    for user in inboxes {
                        put(&self.inbox, &codec::inbox_key(*user, receipt.event()), v.clone());
                    }
                }
                Write::Group { group } => {
                    put(&self.groups, &group.id.0.to_be_bytes(), codec::encode_group(group));
                }
            }
        }
        put(&self.meta, HIGH_WATER_KEY, high_water.0.to_be_bytes().to_vec());
        batch.commit().map_err(|e| StoreError::backend("commit", e))?;
        Ok(stats)
    }

    fn high_water(&self) -> Result<MessageId, StoreError> {
        Ok(MessageId(
            self.get(&self.meta, HIGH_WATER_KEY, "read high water")?.and_then(|v| codec::u64_value(&v)).unwrap_or(0),
        ))
    }

    fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        match self.get(&self.messages, &codec::message_key(&conversation, id), "read message")? {
            Some(v) => codec::decode_message(conversation, id, &v).map(Some),
            None => Ok(None),
        }
    }

    fn message_by_client_id(
        &self,
        from: UserId,
        client_id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        match self.get(&self.idempotency, &codec::idempotency_key(from, client_id), "read idempotency key")? {
            Some(v) => codec::decode_idempotency(&v).map(Some),
            None => Ok(None),
        }
    }

    fn is_delivered(&self, conversation: ConversationId, id: MessageId, user: UserId) -> Result<bool, StoreError> {
        self.delivered
            .contains_key(codec::delivered_key(&conversation, id, user))
            .map_err(|e| StoreError::backend("read delivery mark", e))
    }

    fn receipts_of(&self, conversation: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError> {
        let prefix = codec::message_key(&conversation, id);
        let scan = |ks: &Keyspace| -> Result<Vec<(UserId, u64)>, StoreError> {
            let mut out = Vec::new();
            for guard in ks.prefix(&prefix) {
                let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan receipts", e))?;
                let user = codec::id_from_message_key(&k)
                    .ok_or(StoreError::Corrupt { table: "receipts", what: "short key" })?;
                out.push((UserId(user.0), codec::u64_value(&v).unwrap_or(0)));
            }
            Ok(out)
        };
        Ok(MessageReceipts { delivered: scan(&self.delivered)?, read: scan(&self.read_by)? })
    }

    fn group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        match self.get(&self.groups, &id.0.to_be_bytes(), "read group")? {
            Some(v) => codec::decode_group(id, &v).map(Some),
            None => Ok(None),
        }
    }

    fn read_mark(&self, conversation: ConversationId, user: UserId) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .get(&self.reads, &codec::read_key(&conversation, user), "read read mark")?
            .and_then(|v| codec::u64_value(&v))
            .map(MessageId))
    }

    fn inbox_after(&self, user: UserId, after: MessageId, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let Some(start) = after.0.checked_add(1) else {
            return Ok(Vec::new());
        };
        let lo = codec::inbox_key(user, MessageId(start));
        let hi = codec::inbox_key(user, MessageId(u64::MAX));
        let mut out = Vec::new();
        for guard in self.inbox.range(lo..=hi).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan inbox", e))?;
            let event =
                codec::id_from_message_key(&k).ok_or(StoreError::Corrupt { table: "inbox", what: "short key" })?;
            match codec::decode_inbox(event, &v)? {
                InboxRecord::Message(c) => {
                    // The reference and the message are written in one atomic
                    // batch, so a dangling reference means damage on disk.
                    let m = self
                        .message(c, event)?
                        .ok_or(StoreError::Corrupt { table: "inbox", what: "reference to a missing message" })?;
                    out.push(InboxEvent::Message(m));
                }
                InboxRecord::Receipt(r) => out.push(InboxEvent::Receipt(r)),
            }
        }
        Ok(out)
    }

    fn history(
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
        for guard in self.messages.range(lo..=hi).rev().take(limit) {
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
    use chatgw_protocol::{MessageKind, Snowflake};

    use super::*;

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
                        Write::Message { message: &m1, inboxes: &both },
                        Write::Message { message: &m2, inboxes: &both },
                        Write::Receipt { receipt: &receipt, inboxes: &[UserId(1)] },
                    ],
                    rid,
                )
                .unwrap();
            assert!(stats.bytes > 0 && stats.records == 11, "{stats:?}");
        }
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        assert_eq!(s.high_water().unwrap(), rid);
        assert_eq!(s.message(m1.conversation, m1.id).unwrap(), Some(m1.clone()));
        assert_eq!(s.message_by_client_id(UserId(1), "a").unwrap(), Some((m1.conversation, m1.id)));
        assert_eq!(s.message_by_client_id(UserId(2), "a").unwrap(), None);
        assert!(s.is_delivered(m1.conversation, m1.id, UserId(2)).unwrap());
        assert!(!s.is_delivered(m2.conversation, m2.id, UserId(1)).unwrap());

        let inbox1 = s.inbox_after(UserId(1), MessageId(0), 100).unwrap();
        assert_eq!(
            inbox1,
            vec![InboxEvent::Message(m1.clone()), InboxEvent::Message(m2.clone()), InboxEvent::Receipt(receipt)]
        );
        let inbox2 = s.inbox_after(UserId(2), m1.id, 100).unwrap();
        assert_eq!(inbox2, vec![InboxEvent::Message(m2.clone())]);
        assert_eq!(s.inbox_after(UserId(1), MessageId(0), 1).unwrap().len(), 1);
        assert!(s.inbox_after(UserId(3), MessageId(0), 100).unwrap().is_empty());

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
            created_by: UserId(1),
            members: (1..=3).map(|u| Member { user: UserId(u), admin: u == 1, joined: MessageId(1) }).collect(),
        };
        assert_eq!(s.group(GroupId(7)).unwrap(), None);
        s.commit(&[Write::Group { group: &g }], MessageId(1)).unwrap();
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
        assert_eq!(
            s.inbox_after(UserId(1), MessageId(0), 10).unwrap(),
            vec![InboxEvent::Receipt(delivered), InboxEvent::Receipt(read)]
        );
    }

    #[test]
    fn read_marks() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let c = ConversationId::direct(UserId(1), UserId(2));
        assert_eq!(s.read_mark(c, UserId(2)).unwrap(), None);
        let r = Receipt::Read { event: MessageId(10), conversation: c, by: UserId(2), up_to: MessageId(7), at: 1 };
        s.commit(&[Write::Receipt { receipt: &r, inboxes: &[UserId(1), UserId(2)] }], MessageId(10)).unwrap();
        assert_eq!(s.read_mark(c, UserId(2)).unwrap(), Some(MessageId(7)));
        assert_eq!(s.inbox_after(UserId(2), MessageId(0), 10).unwrap(), vec![InboxEvent::Receipt(r)]);
    }
}

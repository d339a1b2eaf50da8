//! The conversation list in the embedded store: one key per
//! `(user, conversation)`, the user big-endian then the conversation key,
//! valued last message id and unread count (16 bytes, big-endian), so one
//! user's list is one prefix scan.
//!
//! Kept inside the commit's batch: each applied message raises the rows of
//! the inboxes it reaches, each read mark that moves recounts the reader's
//! row. Rows touched twice in one batch are folded in [`ListUpdates`] and
//! written once at the end, so the hot path adds one write per inbox a
//! message reaches (docs/STORAGE.md, "Conversation list").
//!
//! Why a cache of rows ([`RowCache`]): the row a commit raises must be read
//! first, and a point read through a fresh snapshot per inbox doubled the
//! commit's own CPU per message. One writer owns the store, so the rows it
//! committed last are the stored rows: the cache keeps them (filled only
//! after a batch is durable, so a failed commit leaves nothing behind) and
//! the store is read only for rows it does not hold, through one snapshot
//! per commit.
//!
//! The maps of both are keyed by user and conversation ids and hashed with
//! a fast seeded hasher (foldhash): SipHash of these keys was an eighth of
//! the commit's instructions.
//!
//! A store written by a release without the list gets it filled from the
//! inboxes the first time it opens ([`Tables::fill_conversation_list`]), so
//! conversations from before the upgrade are listed with their counts.

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, UserId};
use fjall::{PersistMode, Readable, Slice, Snapshot};

use super::tables::Tables;
use crate::{
    codec,
    conversation_list::{self, counts_as_unread, ConversationSummary, MAX_RECOUNT},
    StoreError,
};

/// In `meta` once the list was filled from the inboxes (or started empty).
const FILLED_KEY: &[u8] = b"conversations_filled";

/// Rows written per batch while filling.
const FILL_BATCH_ROWS: usize = 10_000;

/// `(last message id, unread count)` of one row.
type Row = (u64, u64);

/// Rows by `(user, conversation)`.
type Rows = HashMap<(UserId, ConversationId), Row, foldhash::fast::RandomState>;

/// Rows the cache holds at most; past that it starts over (the rows are
/// read from the store again). 24 bytes of key and row each, plus the
/// map's overhead: a few MiB.
const CACHED_ROWS: usize = 1 << 16;

/// The rows as the last durable commits left them (see the module docs).
#[derive(Default)]
pub(super) struct RowCache(std::sync::Mutex<Rows>);

impl RowCache {
    fn get(&self, k: &(UserId, ConversationId)) -> Option<Row> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(k).copied()
    }

    /// Rows of a batch that is now durable.
    pub(super) fn keep(&self, list: &ListUpdates) {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() + list.rows.len() > CACHED_ROWS {
            m.clear();
        }
        m.extend(list.rows.iter().map(|(k, v)| (*k, *v)));
    }
}

/// What a commit changes in conversation lists, folded per row.
#[derive(Default)]
pub(super) struct ListUpdates {
    rows: Rows,
    /// Messages of this batch (not yet readable from the store), for
    /// recounts of read marks moved in the same batch.
    messages: Vec<(ConversationId, MessageId, UserId, MessageKind)>,
}

impl ListUpdates {
    /// Room for a batch of `messages` messages reaching `inboxes` inboxes.
    pub(super) fn with_capacity(messages: usize, inboxes: usize) -> Self {
        ListUpdates {
            rows: Rows::with_capacity_and_hasher(inboxes, Default::default()),
            messages: Vec::with_capacity(messages),
        }
    }
}

fn key(user: UserId, c: &ConversationId) -> Vec<u8> {
    let mut k = user.0.to_be_bytes().to_vec();
    k.extend_from_slice(&codec::conv_key(c));
    k
}

fn encode((last, unread): Row) -> Vec<u8> {
    let mut v = last.to_be_bytes().to_vec();
    v.extend_from_slice(&unread.to_be_bytes());
    v
}

fn decode(v: &[u8]) -> Result<Row, StoreError> {
    let corrupt = || StoreError::Corrupt { table: "conversations", what: "value is not 16 bytes" };
    let last = v.get(..8).and_then(codec::u64_value).ok_or_else(corrupt)?;
    let unread = v.get(8..16).and_then(codec::u64_value).ok_or_else(corrupt)?;
    Ok((last, unread))
}

impl Tables {
    /// The row as this batch left it so far, else as stored (read through
    /// the commit's snapshot).
    fn list_row(
        &self,
        list: &ListUpdates,
        view: &Snapshot,
        user: UserId,
        c: ConversationId,
    ) -> Result<Option<Row>, StoreError> {
        if let Some(row) = list.rows.get(&(user, c)) {
            return Ok(Some(*row));
        }
        if let Some(row) = self.list_cache.get(&(user, c)) {
            return Ok(Some(row));
        }
        match view.get(&self.conversations, codec::records::list_key(user, &c)) {
            Ok(Some(v)) => decode(&v).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::backend("read conversation row", e)),
        }
    }

    /// An applied message: it is the last message of its conversation for
    /// every inbox it reaches, and unread for those it counts for.
    pub(super) fn list_message(
        &self,
        list: &mut ListUpdates,
        view: &Snapshot,
        m: &Message,
        inboxes: &[UserId],
    ) -> Result<(), StoreError> {
        for &user in inboxes {
            let (last, unread) = self.list_row(list, view, user, m.conversation)?.unwrap_or((0, 0));
            let counted = u64::from(counts_as_unread(user, m.from, m.kind));
            list.rows.insert((user, m.conversation), (last.max(m.id.0), unread + counted));
        }
        list.messages.push((m.conversation, m.id, m.from, m.kind));
        Ok(())
    }

    /// `by`'s read mark moved forward to `up_to`: nothing is unread when it
    /// reached the last message; otherwise what lies after it is counted
    /// again (at most [`MAX_RECOUNT`] messages walked).
    pub(super) fn list_read(
        &self,
        list: &mut ListUpdates,
        view: &Snapshot,
        c: ConversationId,
        by: UserId,
        up_to: MessageId,
    ) -> Result<(), StoreError> {
        let Some((last, _)) = self.list_row(list, view, by, c)? else { return Ok(()) };
        let unread = if up_to.0 >= last {
            0
        } else {
            let stored = self.message_headers_between(c, up_to, MessageId(last), MAX_RECOUNT)?;
            let in_batch = list
                .messages
                .iter()
                .filter(|(mc, id, _, _)| *mc == c && *id > up_to && id.0 <= last)
                .map(|&(_, id, from, kind)| (id, from, kind));
            let counted = stored
                .iter()
                .map(|h| (h.id, h.from, h.kind))
                .chain(in_batch)
                .filter(|&(_, from, kind)| counts_as_unread(by, from, kind))
                .count();
            counted.min(MAX_RECOUNT) as u64
        };
        list.rows.insert((by, c), (last, unread));
        Ok(())
    }

    /// Every row a batch changed, as `(key, value)` to put.
    pub(super) fn list_writes(list: &ListUpdates) -> impl Iterator<Item = (Slice, Slice)> + '_ {
        list.rows.iter().map(|((user, c), &(last, unread))| {
            (codec::records::list_key(*user, c), codec::records::list_row(last, unread))
        })
    }

    /// Fill the list from every inbox, once: per `(user, conversation)` the
    /// newest message reference, and the messages after the user's read
    /// mark that count for them. Runs at open, before any commit, so it
    /// races nothing; interrupted, it runs again (the rows are recomputed
    /// whole, so writing them twice is harmless). Costs a scan of the
    /// inboxes and a header read per message reference, once.
    pub(super) fn fill_conversation_list(&self) -> Result<(), StoreError> {
        let view = self.view();
        if view.get(&self.meta, FILLED_KEY).map_err(|e| StoreError::backend("read meta", e))?.is_some() {
            return Ok(());
        }
        let mut rows: HashMap<(UserId, ConversationId), (u64, Vec<u64>)> = HashMap::new();
        for guard in view.iter(&self.inbox) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan inbox", e))?;
            let short = || StoreError::Corrupt { table: "inbox", what: "short key" };
            let user = k.get(..8).and_then(codec::u64_value).map(UserId).ok_or_else(short)?;
            let id = codec::id_from_message_key(&k).ok_or_else(short)?;
            let codec::InboxRecord::Message(c) = codec::decode_inbox(id, &v)? else { continue };
            let header = match view.get(&self.messages, codec::message_key(&c, id)) {
                Ok(Some(h)) => codec::decode_message_header(id, &h)?,
                Ok(None) => continue,
                Err(e) => return Err(StoreError::backend("read message header", e)),
            };
            let (last, counted) = rows.entry((user, c)).or_insert((0, Vec::new()));
            *last = (*last).max(id.0);
            if counts_as_unread(user, header.from, header.kind) {
                counted.push(id.0);
            }
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut pending = 0;
        for ((user, c), (last, counted)) in rows {
            let mark = match view.get(&self.reads, codec::read_key(&c, user)) {
                Ok(v) => v.and_then(|v| v.get(..8).and_then(codec::u64_value)).unwrap_or(0),
                Err(e) => return Err(StoreError::backend("read read mark", e)),
            };
            let unread = counted.iter().filter(|&&id| id > mark).count().min(MAX_RECOUNT) as u64;
            batch.insert(&self.conversations, key(user, &c), encode((last, unread)));
            pending += 1;
            if pending == FILL_BATCH_ROWS {
                batch.commit().map_err(|e| StoreError::backend("fill conversation list", e))?;
                batch = self.db.batch().durability(Some(PersistMode::SyncData));
                pending = 0;
            }
        }
        batch.insert(&self.meta, FILLED_KEY, Vec::new());
        batch.commit().map_err(|e| StoreError::backend("fill conversation list", e))
    }

    pub(super) fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut rows = Vec::new();
        for guard in self.view().prefix(&self.conversations, user.0.to_be_bytes()) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan conversations", e))?;
            let conversation = k
                .get(8..)
                .and_then(ConversationId::from_key)
                .ok_or(StoreError::Corrupt { table: "conversations", what: "bad conversation key" })?;
            let (last, unread) = decode(&v)?;
            rows.push(ConversationSummary { conversation, last: MessageId(last), unread });
        }
        Ok(conversation_list::page(rows, before, limit))
    }
}

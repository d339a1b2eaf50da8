//! The embedded store's outbox: keyspace `outbox`, position (big endian)
//! to record, and per consumer a cursor row in `meta`.
//!
//! Why positions cannot be skipped: a commit takes its positions under the
//! lock it holds to the end of the engine's commit (`tables`), so
//! positions become visible in the order they were assigned, and a reader
//! paging `pos > after` through a snapshot never sees a higher one before a
//! lower one. The highest position assigned is kept in `meta` with the
//! records, so positions never repeat even when every record was removed.

use std::ops::Bound;

use fjall::{PersistMode, Readable};

use super::tables::Tables;
use crate::{codec, outbox, OutboxPos, OutboxRecord, StoreError};

/// `meta` row: the highest outbox position assigned.
pub(super) const OUTBOX_HEAD_KEY: &[u8] = b"outbox_head";
/// `meta` row prefix: a consumer's cursor, the consumer's name after it.
const CURSOR_PREFIX: &[u8] = b"outbox_cursor/";

fn cursor_key(consumer: &str) -> Vec<u8> {
    [CURSOR_PREFIX, consumer.as_bytes()].concat()
}

impl Tables {
    /// See [`MessageStore::outbox_after`](crate::MessageStore::outbox_after).
    pub(super) fn outbox_after(&self, after: OutboxPos, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let start = Bound::Excluded(after.0.to_be_bytes().to_vec());
        let mut out = Vec::new();
        for guard in self.view().range(&self.outbox, (start, Bound::Unbounded)).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan outbox", e))?;
            let pos = codec::u64_value(&k).ok_or(StoreError::Corrupt { table: "outbox", what: "bad key" })?;
            out.push(outbox::decode(OutboxPos(pos), &v)?);
        }
        Ok(out)
    }

    /// The highest position stored in `meta`, zero if none.
    pub(super) fn stored_outbox_head(&self) -> Result<u64, StoreError> {
        Ok(self.get_meta(OUTBOX_HEAD_KEY, "read outbox head")?.unwrap_or(0))
    }

    pub(super) fn outbox_cursor(&self, consumer: &str) -> Result<OutboxPos, StoreError> {
        Ok(OutboxPos(self.get_meta(&cursor_key(consumer), "read outbox cursor")?.unwrap_or(0)))
    }

    fn get_meta(&self, key: &[u8], op: &'static str) -> Result<Option<u64>, StoreError> {
        let view = self.view();
        match view.get(&self.meta, key).map_err(|e| StoreError::backend(op, e))? {
            Some(v) => Ok(Some(codec::u64_value(&v).ok_or(StoreError::Corrupt { table: "meta", what: op })?)),
            None => Ok(None),
        }
    }

    /// Move `consumer`'s cursor up to `pos` (never back) and remove the
    /// records every consumer is done with, in one durable batch.
    pub(super) fn set_outbox_cursor(&self, consumer: &str, pos: OutboxPos) -> Result<(), StoreError> {
        let view = self.view();
        let mut lowest = u64::MAX;
        let mut previous_lowest = u64::MAX;
        let mut own = 0;
        for guard in view.prefix(&self.meta, CURSOR_PREFIX) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan outbox cursors", e))?;
            let at = codec::u64_value(&v).ok_or(StoreError::Corrupt { table: "meta", what: "outbox cursor" })?;
            previous_lowest = previous_lowest.min(at);
            if k.get(CURSOR_PREFIX.len()..) == Some(consumer.as_bytes()) {
                own = at;
            } else {
                lowest = lowest.min(at);
            }
        }
        let pos = pos.0.max(own);
        if pos == own && previous_lowest != u64::MAX {
            return Ok(());
        }
        lowest = lowest.min(pos);
        let mut batch = self.db().batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.meta, cursor_key(consumer), pos.to_be_bytes().to_vec());
        // Records below the previous lowest cursor are already gone.
        let from = if previous_lowest == u64::MAX { 0 } else { previous_lowest };
        for guard in view.range(&self.outbox, from.to_be_bytes().to_vec()..=lowest.to_be_bytes().to_vec()) {
            let k = guard.key().map_err(|e| StoreError::backend("scan outbox", e))?;
            batch.remove(&self.outbox, k);
        }
        batch.commit().map_err(|e| StoreError::backend("move outbox cursor", e))
    }
}

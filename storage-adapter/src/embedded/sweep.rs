//! The idempotency-key retention sweep of the embedded store.
//!
//! Why a sweep: fjall has no per-record TTL, and a key is only useful while
//! a client may still resend its request (docs/STORAGE.md, "Retention").
//! The age of a key is the age of its message, read from the message id
//! (a Snowflake id), so the table needs no timestamp.
//!
//! Why it cannot lose a fresh binding: the committer binds a key only when
//! it finds none, and the sweep removes a key only when the id it read is
//! below the cutoff. Between the two, at worst the committer sees an
//! expired key still present and answers `Duplicate` of the expired
//! message, exactly what it answered a moment before the cutoff. The
//! removal goes through its own small batch, not the committer's, and is
//! not synced: a removal lost in a crash is done again by the next pass.

use std::ops::Bound;

use chatgw_protocol::{MessageId, UserId};
use fjall::Readable;

use super::tables::Tables;
use crate::{codec, KeySweep, StoreError};

impl Tables {
    /// One step of the sweep (see
    /// [`MessageStore::sweep_idempotency_keys`](crate::MessageStore::sweep_idempotency_keys)).
    pub(super) fn sweep_idempotency_keys(
        &self,
        after: Option<(UserId, &str)>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<KeySweep, StoreError> {
        let start = match after {
            Some((u, c)) => Bound::Excluded(codec::idempotency_key(u, c)),
            None => Bound::Unbounded,
        };
        let view = self.view();
        let mut sweep = KeySweep::default();
        let mut expired = Vec::new();
        let mut last = None;
        for guard in view.range(&self.idempotency, (start, Bound::<Vec<u8>>::Unbounded)).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan idempotency keys", e))?;
            sweep.examined += 1;
            // A record that does not decode is left for `chatgw check` to report.
            if codec::decode_idempotency(&v).is_ok_and(|(_, id)| id < older_than) {
                expired.push(k.clone());
            }
            last = Some(k);
        }
        if sweep.examined == limit {
            sweep.next = last.as_deref().and_then(decode_key);
        }
        if !expired.is_empty() {
            let mut batch = self.db().batch();
            for k in &expired {
                batch.remove(&self.idempotency, k.clone());
            }
            batch.commit().map_err(|e| StoreError::backend("remove expired idempotency keys", e))?;
            sweep.removed = expired.len() as u64;
        }
        Ok(sweep)
    }
}

/// `(sender, client id)` of an idempotency key, `None` if it does not decode.
fn decode_key(k: &[u8]) -> Option<(UserId, String)> {
    let from = codec::u64_value(k)?;
    let cid = std::str::from_utf8(k.get(8..)?).ok()?;
    Some((UserId(from), cid.to_owned()))
}

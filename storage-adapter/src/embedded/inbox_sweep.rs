//! The inbox retention sweep of the embedded store, and the floor it
//! leaves behind.
//!
//! Why the prefix is exact here: an inbox key is `(user, event id)` and an
//! entry's position is its id (one writer), so the entries older than the
//! cutoff are exactly the first ones of the user's range: removing them
//! leaves every kept entry where it was and an inbox that starts later.
//!
//! Why a floor record: positions are ids, not dense, so the first kept
//! entry does not tell whether anything before it was removed. Each step
//! records, per inbox it removed from, the highest position removed
//! (`meta`, key `inbox_floor` + user), in the same batch as the removals:
//! either both survive a crash or neither does (the batch is not synced,
//! like the key sweep's; a removal lost in a crash is redone by the next
//! pass). A `sync` from below the floor is told it missed events.

use std::ops::Bound;

use chatgw_protocol::{MessageId, UserId};
use fjall::Readable;

use super::tables::Tables;
use crate::{codec, InboxPos, InboxSweep, StoreError};

const FLOOR_PREFIX: &[u8] = b"inbox_floor";

fn floor_key(user: UserId) -> Vec<u8> {
    let mut k = FLOOR_PREFIX.to_vec();
    k.extend_from_slice(&user.0.to_be_bytes());
    k
}

impl Tables {
    /// One step of the sweep (see
    /// [`MessageStore::sweep_inboxes`](crate::MessageStore::sweep_inboxes)).
    pub(super) fn sweep_inboxes(
        &self,
        from: Option<UserId>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<InboxSweep, StoreError> {
        if limit == 0 {
            return Ok(InboxSweep::default());
        }
        let view = self.view();
        let scan = |e| StoreError::backend("scan inbox", e);
        let short = || StoreError::Corrupt { table: "inbox", what: "short key" };
        let mut sweep = InboxSweep::default();
        let mut batch = self.db().batch();
        let mut start = from.map_or(0, |u| u.0);
        sweep.next = loop {
            if sweep.inboxes == limit {
                break Some(UserId(start));
            }
            // The next inbox at or after `start`: the first key of its range.
            let lo = codec::inbox_key(UserId(start), MessageId(0));
            let Some(first) = view.range(&self.inbox, (Bound::Included(lo.to_vec()), Bound::Unbounded)).next() else {
                break None;
            };
            let k = first.key().map_err(scan)?;
            let user = UserId(codec::u64_value(&k).ok_or_else(short)?);
            sweep.inboxes += 1;
            let (lo, hi) = (codec::inbox_key(user, MessageId(0)), codec::inbox_key(user, older_than));
            let mut removed = 0;
            let mut last = None;
            let room = limit - usize::try_from(sweep.removed).unwrap_or(limit);
            for guard in view.range(&self.inbox, lo..hi).take(room) {
                let k = guard.key().map_err(scan)?;
                last = Some(codec::id_from_message_key(&k).ok_or_else(short)?);
                batch.remove(&self.inbox, k);
                removed += 1;
            }
            if let Some(last) = last {
                batch.insert(&self.meta, floor_key(user), last.0.to_be_bytes().to_vec());
                sweep.removed += removed;
            }
            if sweep.removed >= limit as u64 {
                // A whole step's worth: this inbox may hold more.
                break Some(user);
            }
            match user.0.checked_add(1) {
                Some(n) => start = n,
                None => break None,
            }
        };
        if sweep.removed > 0 {
            batch.commit().map_err(|e| StoreError::backend("remove expired inbox entries", e))?;
        }
        Ok(sweep)
    }

    /// The highest position the sweep removed from `user`'s inbox.
    pub(super) fn inbox_floor(&self, user: UserId) -> Result<InboxPos, StoreError> {
        let v = self.view().get(&self.meta, floor_key(user)).map_err(|e| StoreError::backend("read inbox floor", e))?;
        Ok(InboxPos(v.and_then(|v| codec::u64_value(&v)).unwrap_or(0)))
    }
}

//! Block lists in the committer: `block`, `unblock`, `blocks`, and the
//! check every direct message and receipt makes against the recipient's
//! list.
//!
//! Why a cache: every direct send asks whether its recipient blocks its
//! sender, and a store read per send would cost a round trip on a remote
//! store. So the lists a batch needs (its direct recipients', and the
//! senders' of the messages its direct receipts acknowledge) are read in
//! one batched call with the batch's other lookups (`lookups`), and each
//! is kept, replaced whenever
//! this committer changes it (a `block` or `unblock` writes the store
//! first, then the cache), and read again after [`FRESH_FOR`]: that is how
//! a gateway sharing the store with others learns of a block another
//! gateway took, at most [`FRESH_FOR`] late (docs/PROTOCOL.md, "Blocking").
//!
//! Why a block is written outside the batch: it is rare and touches no
//! inbox, so it is one durable store write (`MessageStore::set_block`)
//! made when the request is prepared, before any later request of the
//! same connection is; the reply goes out with the batch, after its fsync.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chatgw_protocol::{ErrorCode, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::{MessageStore, StoreError};

use super::{
    batch::{refused, Batch, Outcome},
    lookups::answered,
};
use crate::events::BlockOp;

/// Most users one user may block.
pub(crate) const MAX_BLOCKS: usize = 1024;

/// How long a cached list is trusted before it is read again.
pub(super) const FRESH_FOR: Duration = Duration::from_secs(5);

/// Users whose lists are kept at most; the cache is emptied when full
/// (each list is one read away).
const MAX_CACHED: usize = 100_000;

/// Each user's block list (ascending) and when it was read.
#[derive(Default)]
pub(super) struct BlockCache(HashMap<UserId, (Instant, Vec<UserId>)>);

impl BlockCache {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// Read `user`'s list again when next needed (another pipeline changed it).
    pub(super) fn forget(&mut self, user: UserId) {
        self.0.remove(&user);
    }

    fn stale(&self, user: UserId, now: Instant) -> bool {
        self.0.get(&user).is_none_or(|(at, _)| now.duration_since(*at) >= FRESH_FOR)
    }

    /// Read every list of `users` that is absent or older than
    /// [`FRESH_FOR`], in one store call: what a batch's direct sends and
    /// receipts will check.
    pub(super) fn prefetch(&mut self, store: &dyn MessageStore, users: &[UserId]) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut wanted: Vec<UserId> = users.iter().copied().filter(|u| self.stale(*u, now)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let lists = answered(wanted.len(), store.blocked_by(&wanted)?, "blocks")?;
        if self.0.len() + wanted.len() > MAX_CACHED {
            self.0.clear();
        }
        for (user, mut list) in wanted.into_iter().zip(lists) {
            // Stores that keep ids as signed integers order ids above
            // `i64::MAX` first; the checks below search a sorted list.
            list.sort_unstable();
            list.dedup();
            self.0.insert(user, (now, list));
        }
        Ok(())
    }

    /// `user`'s list, read from the store if absent or older than [`FRESH_FOR`].
    fn list(&mut self, store: &dyn MessageStore, user: UserId) -> Result<&mut Vec<UserId>, StoreError> {
        self.prefetch(store, &[user])?;
        match self.0.get_mut(&user) {
            Some((_, list)) => Ok(list),
            // Inserted just above when absent.
            None => Err(StoreError::Closed),
        }
    }

    /// Whether `blocker` blocks `sender`.
    pub(super) fn blocks(
        &mut self,
        store: &dyn MessageStore,
        blocker: UserId,
        sender: UserId,
    ) -> Result<bool, StoreError> {
        if blocker == sender {
            return Ok(false);
        }
        Ok(self.list(store, blocker)?.binary_search(&sender).is_ok())
    }
}

impl Batch<'_> {
    /// `block`, `unblock` or `blocks` from `by`: the list as it is after it.
    pub(super) fn block_op(&mut self, origin: Endpoint, by: UserId, op: BlockOp) -> Result<(), StoreError> {
        let store = self.store();
        let (target, on) = match op {
            BlockOp::List => {
                let users = self.blocks.list(store, by)?.clone();
                self.push(Outcome::Blocks { origin, users });
                return Ok(());
            }
            BlockOp::Block(u) => (u, true),
            BlockOp::Unblock(u) => (u, false),
        };
        if target == by {
            self.push(refused(origin, ErrorCode::BadField, "field `user`: that is you", None));
            return Ok(());
        }
        let list = self.blocks.list(store, by)?;
        match (list.binary_search(&target), on) {
            // Already as asked: nothing to write.
            (Ok(_), true) | (Err(_), false) => {}
            (Err(_), true) if list.len() >= MAX_BLOCKS => {
                let why = format!("a user blocks at most {MAX_BLOCKS} users; unblock someone first");
                self.push(refused(origin, ErrorCode::NotAllowed, why, None));
                return Ok(());
            }
            (Err(at), true) => {
                store.set_block(by, target, true)?;
                list.insert(at, target);
                self.changed_users.push(by);
            }
            (Ok(at), false) => {
                store.set_block(by, target, false)?;
                list.remove(at);
                self.changed_users.push(by);
            }
        }
        let users = list.clone();
        self.push(Outcome::Blocks { origin, users });
        Ok(())
    }
}

//! Block lists in the embedded store: one key per `(blocker, blocked)`
//! pair, both big-endian, with an empty value, so one user's list is one
//! prefix scan in ascending order.
//!
//! Written in a batch of its own with `fdatasync` (blocks are rare and
//! touch nothing a commit writes), through the same journal as commits, so
//! a block is exactly as durable as a message.

use chatgw_protocol::UserId;
use fjall::{PersistMode, Readable};

use super::tables::Tables;
use crate::StoreError;

fn key(blocker: UserId, target: UserId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&blocker.0.to_be_bytes());
    k[8..].copy_from_slice(&target.0.to_be_bytes());
    k
}

impl Tables {
    pub(super) fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let k = key(blocker, target);
        if on {
            batch.insert(&self.blocks, k, Vec::new());
        } else {
            batch.remove(&self.blocks, k);
        }
        batch.commit().map_err(|e| StoreError::backend("write block", e))
    }

    pub(super) fn blocked_by(&self, user: UserId) -> Result<Vec<UserId>, StoreError> {
        let mut out = Vec::new();
        for guard in self.view().prefix(&self.blocks, user.0.to_be_bytes()) {
            let k = guard.key().map_err(|e| StoreError::backend("scan blocks", e))?;
            let target = k
                .get(8..16)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .ok_or(StoreError::Corrupt { table: "blocks", what: "key is not 16 bytes" })?;
            out.push(UserId(u64::from_be_bytes(target)));
        }
        Ok(out)
    }
}

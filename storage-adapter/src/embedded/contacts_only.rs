//! Who may send a user direct messages, in the embedded store: one key per
//! user who accepts them only from users they share a conversation with
//! (the user id, big-endian, with an empty value); no key means everyone
//! may (the default, so users who never changed it cost nothing).
//!
//! Written in a batch of its own with `fdatasync`, like a block.

use chatgw_protocol::UserId;
use fjall::{PersistMode, Readable};

use super::tables::Tables;
use crate::StoreError;

impl Tables {
    pub(super) fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let k = user.0.to_be_bytes();
        if on {
            batch.insert(&self.contacts_only, k, Vec::new());
        } else {
            batch.remove(&self.contacts_only, k);
        }
        batch.commit().map_err(|e| StoreError::backend("write direct message setting", e))
    }

    pub(super) fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError> {
        let view = self.view();
        users
            .iter()
            .map(|u| {
                view.get(&self.contacts_only, u.0.to_be_bytes())
                    .map(|v| v.is_some())
                    .map_err(|e| StoreError::backend("read direct message setting", e))
            })
            .collect()
    }
}

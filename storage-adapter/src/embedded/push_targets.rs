//! Push targets in the embedded store: the `push_targets` keyspace, keyed
//! like `devices` (the user id, big endian, then the device name), so one
//! user's targets are one prefix scan. The value is the provider's name,
//! a space, and the token (a token has no spaces).
//!
//! Written in batches of their own with `fdatasync`, like devices. The
//! conditional removal reads and then deletes; a lock taken by every write
//! of this keyspace keeps a registration from slipping in between.

use chatgw_protocol::{DeviceName, PushProvider, PushTarget, UserId};
use fjall::{PersistMode, Readable};

use super::{
    devices::{key, split},
    tables::Tables,
};
use crate::StoreError;

const TABLE: &str = "push_targets";

fn encode(t: &PushTarget) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + t.token.len());
    v.extend_from_slice(t.provider.as_str().as_bytes());
    v.push(b' ');
    v.extend_from_slice(t.token.as_bytes());
    v
}

fn decode(v: &[u8]) -> Result<PushTarget, StoreError> {
    let corrupt = || StoreError::Corrupt { table: TABLE, what: "value is not a provider and a token" };
    let text = std::str::from_utf8(v).map_err(|_| corrupt())?;
    let (provider, token) = text.split_once(' ').ok_or_else(corrupt)?;
    let provider = PushProvider::from_name(provider).ok_or_else(corrupt)?;
    Ok(PushTarget { provider, token: token.to_owned() })
}

impl Tables {
    fn push_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.push_targets_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn set_push_target(
        &self,
        user: UserId,
        device: DeviceName,
        target: Option<&PushTarget>,
    ) -> Result<(), StoreError> {
        let _writes = self.push_lock();
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        match target {
            Some(t) => batch.insert(&self.push_targets, key(user, device), encode(t)),
            None => batch.remove(&self.push_targets, key(user, device)),
        }
        batch.commit().map_err(|e| StoreError::backend("write push target", e))
    }

    pub(super) fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError> {
        let view = self.view();
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for user in users.iter().filter(|u| seen.insert(**u)) {
            for guard in view.prefix(&self.push_targets, user.0.to_be_bytes()) {
                let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan push targets", e))?;
                let (user, device) = split(&k, TABLE)?;
                out.push((user, device, decode(&v)?));
            }
        }
        Ok(out)
    }

    pub(super) fn remove_push_target_if(
        &self,
        user: UserId,
        device: DeviceName,
        token: &str,
    ) -> Result<bool, StoreError> {
        let _writes = self.push_lock();
        let k = key(user, device);
        let stored = self.view().get(&self.push_targets, &k).map_err(|e| StoreError::backend("read push target", e))?;
        match stored.map(|v| decode(&v)).transpose()? {
            Some(t) if t.token == token => {
                let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
                batch.remove(&self.push_targets, k);
                batch.commit().map_err(|e| StoreError::backend("write push target", e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

//! The key directory in the embedded store: two keyspaces.
//!
//! - `device_keys`: keyed like `devices` (the user id, big endian, then the
//!   device name); the value is the signing key, the identity key, the
//!   identity signature, the fallback key and its signature (32 + 32 + 64 +
//!   32 + 64 bytes), then the fallback key's id.
//! - `one_time_keys`: keyed by the user id, the device name's length (one
//!   byte), the name and the key id, so one device's keys are one prefix
//!   scan and no device's prefix is another's; the value is the key and
//!   its signature (32 + 64 bytes).
//!
//! Every write of either keyspace, claims included, takes one lock: a claim
//! reads the first key and deletes it with nothing in between, so two
//! claims never take the same key. Written with `fdatasync` like devices;
//! a claim, the hot write (one per device per bundle fetch), commits the
//! keys of every device asked for in one batch under the lock and syncs
//! the journal after releasing it, so claims on other threads take their
//! keys while it waits and one `fdatasync` often covers several of them.
//! The answer leaves only after its own sync: a claim lost in a crash was
//! never handed out, so no key is ever given twice.

use std::{collections::HashMap, ops::Bound};

use chatgw_protocol::{DeviceKeys, DeviceName, PublicKey, Signature, SignedKey, UserId};
use fjall::{PersistMode, Readable};

use super::{
    devices::{key, split},
    tables::Tables,
};
use crate::StoreError;

const KEYS: &str = "device_keys";
const ONE_TIME: &str = "one_time_keys";
const KEYS_FIXED: usize = 32 + 32 + 64 + 32 + 64;

fn device_prefix(user: UserId, device: DeviceName) -> Vec<u8> {
    let name = device.as_str().as_bytes();
    let mut k = Vec::with_capacity(9 + name.len() + 32);
    k.extend_from_slice(&user.0.to_be_bytes());
    // A device name is at most 32 bytes, so its length fits a byte.
    k.push(name.len() as u8);
    k.extend_from_slice(name);
    k
}

/// The end of the keys that start with `prefix` (the bound a bounded scan
/// of them needs: an open end would walk every later device's deletions).
fn past_prefix(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

fn one_time_key(user: UserId, device: DeviceName, id: &str) -> Vec<u8> {
    let mut k = device_prefix(user, device);
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode_keys(keys: &DeviceKeys) -> Vec<u8> {
    let mut v = Vec::with_capacity(KEYS_FIXED + keys.fallback_key.id.len());
    v.extend_from_slice(&keys.signing_key.0);
    v.extend_from_slice(&keys.identity_key.0);
    v.extend_from_slice(&keys.identity_signature.0);
    v.extend_from_slice(&keys.fallback_key.key.0);
    v.extend_from_slice(&keys.fallback_key.signature.0);
    v.extend_from_slice(keys.fallback_key.id.as_bytes());
    v
}

fn array<const N: usize>(v: &[u8], at: usize, table: &'static str) -> Result<[u8; N], StoreError> {
    v.get(at..at + N)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or(StoreError::Corrupt { table, what: "value too short for its keys" })
}

fn decode_keys(v: &[u8]) -> Result<DeviceKeys, StoreError> {
    let id =
        v.get(KEYS_FIXED..).and_then(|b| std::str::from_utf8(b).ok()).filter(|id| chatgw_protocol::valid_key_id(id));
    let id = id.ok_or(StoreError::Corrupt { table: KEYS, what: "fallback key id" })?;
    Ok(DeviceKeys {
        signing_key: PublicKey(array(v, 0, KEYS)?),
        identity_key: PublicKey(array(v, 32, KEYS)?),
        identity_signature: Signature(array(v, 64, KEYS)?),
        fallback_key: SignedKey {
            id: id.to_owned(),
            key: PublicKey(array(v, 128, KEYS)?),
            signature: Signature(array(v, 160, KEYS)?),
        },
    })
}

fn decode_one_time(prefix_len: usize, k: &[u8], v: &[u8]) -> Result<SignedKey, StoreError> {
    let id = k.get(prefix_len..).and_then(|b| std::str::from_utf8(b).ok());
    let id = id.ok_or(StoreError::Corrupt { table: ONE_TIME, what: "key id" })?;
    Ok(SignedKey {
        id: id.to_owned(),
        key: PublicKey(array(v, 0, ONE_TIME)?),
        signature: Signature(array(v, 32, ONE_TIME)?),
    })
}

fn fail(what: &'static str) -> impl Fn(fjall::Error) -> StoreError {
    move |e| StoreError::backend(what, e)
}

/// Devices whose claims may start past their earlier ones: at most this
/// many are remembered; past it the map starts afresh (a claim of a device
/// not remembered scans from its prefix, as correct and only slower).
const MAX_CLAIM_HINTS: usize = 65_536;

/// Per device (its key prefix), the key its last claim took. Claims take a
/// device's smallest key, so until keys are added again no key of the
/// device sorts at or below it: the next claim starts its scan after it
/// instead of walking the deletions of every earlier claim (an LSM tree
/// keeps them until compaction, which made each claim cost O(keys claimed
/// so far)). Any other write of the device's keys forgets its hint. Kept
/// behind the key directory's write lock, which every claim takes.
#[derive(Default)]
pub(super) struct ClaimHints(HashMap<Vec<u8>, Vec<u8>>);

impl ClaimHints {
    fn after(&self, prefix: &[u8]) -> Option<&[u8]> {
        self.0.get(prefix).map(Vec::as_slice)
    }

    fn claimed(&mut self, prefix: Vec<u8>, key: Vec<u8>) {
        if self.0.len() >= MAX_CLAIM_HINTS && !self.0.contains_key(&prefix) {
            self.0.clear();
        }
        self.0.insert(prefix, key);
    }

    fn forget(&mut self, user: UserId, device: DeviceName) {
        self.0.remove(&device_prefix(user, device));
    }
}

impl Tables {
    fn key_lock(&self) -> std::sync::MutexGuard<'_, ClaimHints> {
        self.key_directory_writes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn one_time_ids(&self, user: UserId, device: DeviceName) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for guard in self.view().prefix(&self.one_time_keys, device_prefix(user, device)) {
            out.push(guard.key().map_err(fail("scan one-time keys"))?.to_vec());
        }
        Ok(out)
    }

    pub(super) fn put_device_keys(
        &self,
        user: UserId,
        device: DeviceName,
        keys: &DeviceKeys,
    ) -> Result<bool, StoreError> {
        let mut hints = self.key_lock();
        hints.forget(user, device);
        let k = key(user, device);
        let stored = self.view().get(&self.device_keys, &k).map_err(fail("read device keys"))?;
        let stored = stored.map(|v| decode_keys(&v)).transpose()?;
        let changed = stored.is_none_or(|s| s.signing_key != keys.signing_key || s.identity_key != keys.identity_key);
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.device_keys, k, encode_keys(keys));
        if changed {
            for id in self.one_time_ids(user, device)? {
                batch.remove(&self.one_time_keys, id);
            }
        }
        batch.commit().map_err(fail("write device keys"))?;
        Ok(changed)
    }

    pub(super) fn add_one_time_keys(
        &self,
        user: UserId,
        device: DeviceName,
        keys: &[SignedKey],
    ) -> Result<u64, StoreError> {
        let mut hints = self.key_lock();
        hints.forget(user, device);
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for otk in keys {
            let mut v = Vec::with_capacity(96);
            v.extend_from_slice(&otk.key.0);
            v.extend_from_slice(&otk.signature.0);
            batch.insert(&self.one_time_keys, one_time_key(user, device, &otk.id), v);
        }
        batch.commit().map_err(fail("write one-time keys"))?;
        self.one_time_key_count(user, device)
    }

    pub(super) fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError> {
        Ok(self.one_time_ids(user, device)?.len() as u64)
    }

    /// One key of each of `devices`: taken under the lock in one batch,
    /// then made durable after the lock is released (see the module doc).
    pub(super) fn claim_one_time_keys(
        &self,
        user: UserId,
        devices: &[DeviceName],
    ) -> Result<Vec<Option<SignedKey>>, StoreError> {
        let mut claimed = Vec::with_capacity(devices.len());
        {
            let mut hints = self.key_lock();
            let view = self.view();
            let mut batch = self.db.batch();
            let mut taken: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            for device in devices {
                let prefix = device_prefix(user, *device);
                // A device named twice in one call takes its next key.
                let earlier = taken.iter().rev().find(|(p, _)| *p == prefix).map(|(_, k)| k.as_slice());
                let first = match earlier.or_else(|| hints.after(&prefix)) {
                    Some(after) => {
                        let from = (Bound::Excluded(after.to_vec()), past_prefix(&prefix));
                        view.range(&self.one_time_keys, from).next()
                    }
                    None => view.prefix(&self.one_time_keys, &prefix).next(),
                };
                let Some(guard) = first else {
                    claimed.push(None);
                    continue;
                };
                let (k, v) = guard.into_inner().map_err(fail("scan one-time keys"))?;
                claimed.push(Some(decode_one_time(prefix.len(), &k, &v)?));
                batch.remove(&self.one_time_keys, k.to_vec());
                taken.push((prefix, k.to_vec()));
            }
            if taken.is_empty() {
                return Ok(claimed);
            }
            batch.commit().map_err(fail("claim one-time keys"))?;
            for (prefix, k) in taken {
                hints.claimed(prefix, k);
            }
        }
        self.db.persist(PersistMode::SyncData).map_err(fail("make one-time key claims durable"))?;
        Ok(claimed)
    }

    pub(super) fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
        let mut out = Vec::new();
        for guard in self.view().prefix(&self.device_keys, user.0.to_be_bytes()) {
            let (k, v) = guard.into_inner().map_err(fail("scan device keys"))?;
            let (_, device) = split(&k, KEYS)?;
            out.push((device, decode_keys(&v)?));
        }
        out.sort_by_key(|(d, _)| *d);
        Ok(out)
    }

    pub(super) fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError> {
        let mut hints = self.key_lock();
        hints.forget(user, device);
        let k = key(user, device);
        let had = self.view().get(&self.device_keys, &k).map_err(fail("read device keys"))?.is_some();
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.remove(&self.device_keys, k);
        for id in self.one_time_ids(user, device)? {
            batch.remove(&self.one_time_keys, id);
        }
        batch.commit().map_err(fail("remove device keys"))?;
        Ok(had)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_prefix_bounds_exactly_the_keys_with_the_prefix() {
        assert_eq!(past_prefix(b"ab"), Bound::Excluded(b"ac".to_vec()));
        assert_eq!(past_prefix(&[1, 0xff, 0xff]), Bound::Excluded(vec![2]));
        assert_eq!(past_prefix(&[0xff]), Bound::Unbounded);
        let prefix = device_prefix(UserId(7), DeviceName::new("phone").unwrap());
        let Bound::Excluded(end) = past_prefix(&prefix) else { panic!("bounded") };
        assert!(one_time_key(UserId(7), DeviceName::new("phone").unwrap(), "zzzz") < end);
        assert!(one_time_key(UserId(7), DeviceName::new("phonf").unwrap(), "a") >= end);
    }
}

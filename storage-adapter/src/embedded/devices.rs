//! Named devices in the embedded store: two keyspaces keyed by the user id
//! (big endian) followed by the device name, so one user's devices are one
//! prefix scan in name order.
//!
//! - `devices`: first seen, last active, token issue time (three big-endian
//!   `u64`s);
//! - `device_revocations`: the latest revocation time (a big-endian `u64`).
//!
//! Written in batches of their own with `fdatasync`, like revocations. The
//! directory lock makes each store the only writer, so reading a record
//! then writing its merge cannot race.

use chatgw_protocol::{DeviceName, UserId};
use fjall::{Keyspace, PersistMode, Readable};

use super::tables::Tables;
use crate::{
    codec,
    devices::{merged, DeviceNote, DeviceRecord},
    StoreError,
};

pub(super) fn key(user: UserId, device: DeviceName) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + device.as_str().len());
    k.extend_from_slice(&user.0.to_be_bytes());
    k.extend_from_slice(device.as_str().as_bytes());
    k
}

/// The user and device of a key.
pub(super) fn split(k: &[u8], table: &'static str) -> Result<(UserId, DeviceName), StoreError> {
    let corrupt = || StoreError::Corrupt { table, what: "key is not a user id and a device name" };
    let user = k.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).ok_or_else(corrupt)?;
    let name = k.get(8..).and_then(|b| std::str::from_utf8(b).ok()).and_then(DeviceName::new).ok_or_else(corrupt)?;
    Ok((UserId(u64::from_be_bytes(user)), name))
}

fn record(v: &[u8]) -> Option<(u64, u64, u64)> {
    let n = |i: usize| v.get(i * 8..i * 8 + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes);
    Some((n(0)?, n(1)?, n(2)?))
}

impl Tables {
    fn device_get(&self, ks: &Keyspace, k: &[u8]) -> Result<Option<fjall::UserValue>, StoreError> {
        self.view().get(ks, k).map_err(|e| StoreError::backend("read device", e))
    }

    pub(super) fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        let k = key(user, device);
        let stored = self.device_get(&self.device_revocations, &k)?.and_then(|v| codec::u64_value(&v));
        if stored.is_some_and(|s| s >= at) {
            return Ok(());
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.device_revocations, k, at.to_be_bytes().to_vec());
        batch.commit().map_err(|e| StoreError::backend("write device revocation", e))
    }

    pub(super) fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
        let mut out = Vec::new();
        for guard in self.view().iter(&self.device_revocations) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan device revocations", e))?;
            let (user, device) = split(&k, "device_revocations")?;
            let at =
                codec::u64_value(&v).ok_or(StoreError::Corrupt { table: "device_revocations", what: "bad time" })?;
            out.push((user, device, at));
        }
        Ok(out)
    }

    pub(super) fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError> {
        if notes.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        let mut written: std::collections::HashMap<Vec<u8>, (u64, u64, u64)> = std::collections::HashMap::new();
        for note in notes {
            let k = key(note.user, note.device);
            let stored = match written.get(&k) {
                Some(r) => Some(*r),
                None => self.device_get(&self.devices, &k)?.and_then(|v| record(&v)),
            };
            let r = merged(stored, note);
            let mut v = Vec::with_capacity(24);
            for n in [r.0, r.1, r.2] {
                v.extend_from_slice(&n.to_be_bytes());
            }
            batch.insert(&self.devices, k.clone(), v);
            written.insert(k, r);
        }
        batch.commit().map_err(|e| StoreError::backend("write devices", e))
    }

    pub(super) fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        let view = self.view();
        let mut out = Vec::new();
        for guard in view.prefix(&self.devices, user.0.to_be_bytes()) {
            let (k, v) = guard.into_inner().map_err(|e| StoreError::backend("scan devices", e))?;
            let (_, device) = split(&k, "devices")?;
            let (first_seen, last_active, token_iat) =
                record(&v).ok_or(StoreError::Corrupt { table: "devices", what: "value is not three times" })?;
            let revoked_at = view
                .get(&self.device_revocations, &k)
                .map_err(|e| StoreError::backend("read device revocation", e))?
                .and_then(|v| codec::u64_value(&v));
            out.push(DeviceRecord { device, first_seen, last_active, token_iat, revoked_at });
        }
        Ok(out)
    }
}

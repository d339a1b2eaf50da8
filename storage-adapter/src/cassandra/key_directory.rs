//! The key directory in Cassandra: `device_keys`, one row per
//! `(user_id, device)` in the user's partition, and `one_time_keys`, a
//! partition per `(user_id, device)` clustered by key id.
//!
//! A claim reads a few of the device's keys and takes the first one a
//! lightweight transaction (`DELETE ... IF EXISTS`) removes: the
//! transaction that applies is the only one that returned that key, so two
//! gateways never hand out one key twice. A claim that loses every race it
//! read reads again, at most [`CLAIM_ROUNDS`] times (a replica behind the
//! others may keep showing keys already taken); then it answers none left,
//! and the fetcher gets the fallback key.
//!
//! Publishing keys reads the stored signing and identity keys, writes the
//! new ones and, if they changed, deletes the one-time keys' partition:
//! plain writes, so two uploads of one device at the same moment end with
//! the last writer's keys (a device uploads from one connection at a time).

use chatgw_protocol::{DeviceKeys, DeviceName, PublicKey, Signature, SignedKey, UserId};

use super::{answer::Answer, Cql};
use crate::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

const STORED_KEYS: &str = "SELECT signing_key, identity_key FROM {ks}.device_keys WHERE user_id = ? AND device = ?";
const INSERT_KEYS: &str = "INSERT INTO {ks}.device_keys (user_id, device, signing_key, identity_key, \
     identity_signature, fallback_id, fallback_key, fallback_signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const DROP_ONE_TIME: &str = "DELETE FROM {ks}.one_time_keys WHERE user_id = ? AND device = ?";
const ADD_ONE_TIME: &str =
    "INSERT INTO {ks}.one_time_keys (user_id, device, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?)";
const ONE_TIME_IDS: &str = "SELECT key_id FROM {ks}.one_time_keys WHERE user_id = ? AND device = ?";
const FIRST_ONE_TIME: &str =
    "SELECT key_id, public_key, signature FROM {ks}.one_time_keys WHERE user_id = ? AND device = ? LIMIT 8";
/// Conditional: only a lightweight transaction takes a key once.
const CLAIM_ONE_TIME: &str = "DELETE FROM {ks}.one_time_keys WHERE user_id = ? AND device = ? AND key_id = ? IF EXISTS";
const USER_KEYS: &str = "SELECT device, signing_key, identity_key, identity_signature, fallback_id, fallback_key, \
     fallback_signature FROM {ks}.device_keys WHERE user_id = ?";
const REMOVE_KEYS: &str = "DELETE FROM {ks}.device_keys WHERE user_id = ? AND device = ?";

/// Reads of candidate keys one claim makes at most.
const CLAIM_ROUNDS: usize = 4;

type KeysRow = (String, Vec<u8>, Vec<u8>, Vec<u8>, String, Vec<u8>, Vec<u8>);

fn fail(what: &'static str) -> impl Fn(super::CqlError) -> StoreError {
    move |e| StoreError::backend(what, e)
}

fn key_of(user: UserId, device: DeviceName) -> (i64, String) {
    (user.0 as i64, device.as_str().to_owned())
}

pub(super) async fn put_device_keys(c: &Cql, user: UserId, device: DeviceName, k: &DeviceKeys) -> Result<bool> {
    let (u, d) = key_of(user, device);
    let stored: Vec<(Vec<u8>, Vec<u8>)> = c.rows("device_keys", STORED_KEYS, (u, d.clone())).await?;
    let changed = !stored.iter().any(|(s, i)| s[..] == k.signing_key.0 && i[..] == k.identity_key.0);
    let f = &k.fallback_key;
    let row = (
        u,
        d.clone(),
        k.signing_key.0.to_vec(),
        k.identity_key.0.to_vec(),
        k.identity_signature.0.to_vec(),
        f.id.clone(),
        f.key.0.to_vec(),
        f.signature.0.to_vec(),
    );
    c.execute(INSERT_KEYS, row).await.map_err(fail("write device keys"))?;
    if changed {
        drop_one_time_keys(c, user, device).await?;
    }
    Ok(changed)
}

pub(super) async fn add_one_time_keys(c: &Cql, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64> {
    let (u, d) = key_of(user, device);
    let writes = keys
        .iter()
        .map(|k| c.execute(ADD_ONE_TIME, (u, d.clone(), k.id.clone(), k.key.0.to_vec(), k.signature.0.to_vec())));
    futures::future::try_join_all(writes).await.map_err(fail("write one-time keys"))?;
    one_time_key_count(c, user, device).await
}

pub(super) async fn one_time_key_count(c: &Cql, user: UserId, device: DeviceName) -> Result<u64> {
    let ids: Vec<(String,)> = c.rows("one_time_keys", ONE_TIME_IDS, key_of(user, device)).await?;
    Ok(ids.len() as u64)
}

/// See the module's docs. A server that answers a conditional delete with
/// no `[applied]` column (the in-memory server of the tests parses no
/// conditions) ran it as a plain delete: that is taken as applied, and such
/// a server cannot keep two concurrent claims apart.
pub(super) async fn claim_one_time_key(c: &Cql, user: UserId, device: DeviceName) -> Result<Option<SignedKey>> {
    let (u, d) = key_of(user, device);
    for _ in 0..CLAIM_ROUNDS {
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> = c.rows("one_time_keys", FIRST_ONE_TIME, (u, d.clone())).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        for (id, key, signature) in rows {
            let result =
                c.execute(CLAIM_ONE_TIME, (u, d.clone(), id.clone())).await.map_err(fail("claim one-time key"))?;
            let applied = !result.is_rows() || Answer::of(result).map_err(fail("claim one-time key"))?.applied;
            if applied {
                let corrupt = || StoreError::Corrupt { table: "one_time_keys", what: "a key of the wrong length" };
                let key = PublicKey(key.try_into().map_err(|_| corrupt())?);
                let signature = Signature(signature.try_into().map_err(|_| corrupt())?);
                return Ok(Some(SignedKey { id, key, signature }));
            }
        }
    }
    Ok(None)
}

pub(super) async fn device_keys(c: &Cql, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>> {
    let rows: Vec<KeysRow> = c.rows("device_keys", USER_KEYS, (user.0 as i64,)).await?;
    let corrupt = || StoreError::Corrupt { table: "device_keys", what: "a key of the wrong length" };
    let mut out = Vec::new();
    for (device, signing, identity, identity_sig, fallback_id, fallback, fallback_sig) in rows {
        let device =
            DeviceName::new(&device).ok_or(StoreError::Corrupt { table: "device_keys", what: "not a device name" })?;
        let keys = DeviceKeys {
            signing_key: PublicKey(signing.try_into().map_err(|_| corrupt())?),
            identity_key: PublicKey(identity.try_into().map_err(|_| corrupt())?),
            identity_signature: Signature(identity_sig.try_into().map_err(|_| corrupt())?),
            fallback_key: SignedKey {
                id: fallback_id,
                key: PublicKey(fallback.try_into().map_err(|_| corrupt())?),
                signature: Signature(fallback_sig.try_into().map_err(|_| corrupt())?),
            },
        };
        out.push((device, keys));
    }
    out.sort_by_key(|(d, _)| *d);
    Ok(out)
}

pub(super) async fn remove_device_keys(c: &Cql, user: UserId, device: DeviceName) -> Result<bool> {
    let (u, d) = key_of(user, device);
    let stored: Vec<(Vec<u8>, Vec<u8>)> = c.rows("device_keys", STORED_KEYS, (u, d)).await?;
    if !stored.is_empty() {
        c.execute(REMOVE_KEYS, key_of(user, device)).await.map_err(fail("remove device keys"))?;
    }
    drop_one_time_keys(c, user, device).await?;
    Ok(!stored.is_empty())
}

/// Delete the device's one-time keys' partition, if it holds any: a
/// device without keys costs no tombstone (and the in-memory server of the
/// tests refuses a delete from a table nothing was written to).
async fn drop_one_time_keys(c: &Cql, user: UserId, device: DeviceName) -> Result<()> {
    if one_time_key_count(c, user, device).await? > 0 {
        c.execute(DROP_ONE_TIME, key_of(user, device)).await.map_err(fail("drop one-time keys"))?;
    }
    Ok(())
}

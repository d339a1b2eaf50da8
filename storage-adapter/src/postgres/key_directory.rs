//! The key directory in PostgreSQL: `device_keys`, one row per
//! `(user_id, device)` with its published keys, and `one_time_keys`, one
//! row per `(user_id, device, key_id)`. New tables nothing else reads, so
//! no new schema version (`init` creates them, like `push_targets`).
//!
//! A claim is one statement: the first unlocked key of the device is
//! selected `FOR UPDATE SKIP LOCKED` and deleted `RETURNING` it, so two
//! claims, from this gateway or another, never return the same key, and
//! neither waits for the other. A claim that skips a key another claim
//! holds and finds no other answers none left; the fetcher then uses the
//! fallback key, which is what it is for. A claim retried after a lost
//! answer may have removed a key nobody received; the device replenishes.

use chatgw_protocol::{DeviceKeys, DeviceName, PublicKey, Signature, SignedKey, UserId};

use super::{pg_u64, pool::Connection};
use crate::StoreError;

type Result<T> = std::result::Result<T, postgres::Error>;

/// A `device_keys` row as read: the device name, then signing key,
/// identity key, identity signature, fallback id, fallback key, fallback
/// signature.
pub(super) type KeysRow = (String, Vec<u8>, Vec<u8>, Vec<u8>, String, Vec<u8>, Vec<u8>);

/// A `one_time_keys` row as read: key id, key, signature.
pub(super) type OneTimeRow = (String, Vec<u8>, Vec<u8>);

const STORED_KEYS: &str =
    "SELECT signing_key, identity_key FROM device_keys WHERE user_id = $1 AND device = $2 FOR UPDATE";
const UPSERT_KEYS: &str = "INSERT INTO device_keys (user_id, device, signing_key, identity_key, \
     identity_signature, fallback_id, fallback_key, fallback_signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (user_id, device) DO UPDATE SET signing_key = EXCLUDED.signing_key, \
     identity_key = EXCLUDED.identity_key, identity_signature = EXCLUDED.identity_signature, \
     fallback_id = EXCLUDED.fallback_id, fallback_key = EXCLUDED.fallback_key, \
     fallback_signature = EXCLUDED.fallback_signature";
const DROP_ONE_TIME: &str = "DELETE FROM one_time_keys WHERE user_id = $1 AND device = $2";
const ADD_ONE_TIME: &str = "INSERT INTO one_time_keys (user_id, device, key_id, key, signature) \
     SELECT $1, $2, * FROM unnest($3::text[], $4::bytea[], $5::bytea[]) \
     ON CONFLICT (user_id, device, key_id) DO UPDATE SET key = EXCLUDED.key, signature = EXCLUDED.signature";
const COUNT_ONE_TIME: &str = "SELECT count(*) FROM one_time_keys WHERE user_id = $1 AND device = $2";
const CLAIM_ONE_TIME: &str = "WITH first AS (SELECT key_id FROM one_time_keys WHERE user_id = $1 AND device = $2 \
     ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
     DELETE FROM one_time_keys o USING first WHERE o.user_id = $1 AND o.device = $2 AND o.key_id = first.key_id \
     RETURNING o.key_id, o.key, o.signature";
const USER_KEYS: &str = "SELECT device, signing_key, identity_key, identity_signature, fallback_id, fallback_key, \
     fallback_signature FROM device_keys WHERE user_id = $1 ORDER BY device";
const REMOVE_KEYS: &str = "DELETE FROM device_keys WHERE user_id = $1 AND device = $2";

/// Upsert the keys; drop the one-time keys if the signing or identity key
/// changed. One transaction, the stored row locked while it decides.
pub(super) fn put_device_keys(c: &mut Connection, user: UserId, device: DeviceName, k: &DeviceKeys) -> Result<bool> {
    let (stored, upsert, drop) = (c.prepared(STORED_KEYS)?, c.prepared(UPSERT_KEYS)?, c.prepared(DROP_ONE_TIME)?);
    let (u, d) = (pg_u64(user.0), device.as_str());
    let mut tx = c.client().transaction()?;
    let old = tx.query_opt(&stored, &[&u, &d])?;
    let changed = old.is_none_or(|r| {
        r.get::<_, &[u8]>(0) != k.signing_key.0.as_slice() || r.get::<_, &[u8]>(1) != k.identity_key.0.as_slice()
    });
    let f = &k.fallback_key;
    tx.execute(
        &upsert,
        &[
            &u,
            &d,
            &k.signing_key.0.as_slice(),
            &k.identity_key.0.as_slice(),
            &k.identity_signature.0.as_slice(),
            &f.id,
            &f.key.0.as_slice(),
            &f.signature.0.as_slice(),
        ],
    )?;
    if changed {
        tx.execute(&drop, &[&u, &d])?;
    }
    tx.commit()?;
    Ok(changed)
}

/// Upsert a batch of one-time keys in one statement, then count.
pub(super) fn add_one_time_keys(
    c: &mut Connection,
    user: UserId,
    device: DeviceName,
    keys: &[SignedKey],
) -> Result<u64> {
    let add = c.prepared(ADD_ONE_TIME)?;
    let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    let values: Vec<&[u8]> = keys.iter().map(|k| k.key.0.as_slice()).collect();
    let signatures: Vec<&[u8]> = keys.iter().map(|k| k.signature.0.as_slice()).collect();
    c.client().execute(&add, &[&pg_u64(user.0), &device.as_str(), &ids, &values, &signatures])?;
    one_time_key_count(c, user, device)
}

pub(super) fn one_time_key_count(c: &mut Connection, user: UserId, device: DeviceName) -> Result<u64> {
    let s = c.prepared(COUNT_ONE_TIME)?;
    Ok(c.client().query_one(&s, &[&pg_u64(user.0), &device.as_str()])?.get::<_, i64>(0) as u64)
}

pub(super) fn claim_one_time_key(c: &mut Connection, user: UserId, device: DeviceName) -> Result<Option<OneTimeRow>> {
    let s = c.prepared(CLAIM_ONE_TIME)?;
    let row = c.client().query_opt(&s, &[&pg_u64(user.0), &device.as_str()])?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

pub(super) fn device_keys(c: &mut Connection, user: UserId) -> Result<Vec<KeysRow>> {
    let s = c.prepared(USER_KEYS)?;
    let rows = c.client().query(&s, &[&pg_u64(user.0)])?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6))).collect())
}

/// Both tables in one transaction.
pub(super) fn remove_device_keys(c: &mut Connection, user: UserId, device: DeviceName) -> Result<bool> {
    let (remove, drop) = (c.prepared(REMOVE_KEYS)?, c.prepared(DROP_ONE_TIME)?);
    let (u, d) = (pg_u64(user.0), device.as_str());
    let mut tx = c.client().transaction()?;
    let had = tx.execute(&remove, &[&u, &d])? > 0;
    tx.execute(&drop, &[&u, &d])?;
    tx.commit()?;
    Ok(had)
}

fn corrupt(table: &'static str) -> StoreError {
    StoreError::Corrupt { table, what: "a key of the wrong length" }
}

fn public(v: &[u8], table: &'static str) -> std::result::Result<PublicKey, StoreError> {
    v.try_into().map(PublicKey).map_err(|_| corrupt(table))
}

fn signature(v: &[u8], table: &'static str) -> std::result::Result<Signature, StoreError> {
    v.try_into().map(Signature).map_err(|_| corrupt(table))
}

/// A claimed row, checked.
pub(super) fn decode_one_time(row: OneTimeRow) -> std::result::Result<SignedKey, StoreError> {
    let (id, key, sig) = row;
    Ok(SignedKey { id, key: public(&key, "one_time_keys")?, signature: signature(&sig, "one_time_keys")? })
}

/// [`device_keys`]' rows, checked.
pub(super) fn decode_keys(rows: Vec<KeysRow>) -> std::result::Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
    const T: &str = "device_keys";
    rows.into_iter()
        .map(|(device, signing, identity, identity_sig, fallback_id, fallback, fallback_sig)| {
            let keys = DeviceKeys {
                signing_key: public(&signing, T)?,
                identity_key: public(&identity, T)?,
                identity_signature: signature(&identity_sig, T)?,
                fallback_key: SignedKey {
                    id: fallback_id,
                    key: public(&fallback, T)?,
                    signature: signature(&fallback_sig, T)?,
                },
            };
            Ok((super::devices::name(&device, T)?, keys))
        })
        .collect()
}

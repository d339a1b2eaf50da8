//! Named devices in PostgreSQL (schema version 4): `devices` holds one row
//! per `(user_id, device)` with its first seen, last active and token issue
//! times; `device_revocations` one row per revoked device with its latest
//! revocation time. Every write is one upsert that never moves a time the
//! wrong way (`LEAST`/`GREATEST`), so two gateways noting the same device at
//! once, or a write retried after a lost answer, agree.
//!
//! `push_targets` holds a device's push target, one row per
//! `(user_id, device)`: a new table nothing else reads, so it needed no new
//! schema version (`init` creates it, like `contacts_only`).

use std::collections::HashMap;

use chatgw_protocol::{DeviceName, PushProvider, PushTarget, UserId};

use super::{pg_u64, pool::Connection};
use crate::{
    devices::{merged, DeviceNote, DeviceRecord},
    StoreError,
};

type Result<T> = std::result::Result<T, postgres::Error>;

/// A `devices` row: name, first seen, last active, token issue time, and
/// the latest revocation time if any.
pub(super) type DeviceRow = (String, u64, u64, u64, Option<u64>);

pub(super) fn revoke_device(c: &mut Connection, user: UserId, device: DeviceName, at: u64) -> Result<()> {
    let s = c.prepared(
        "INSERT INTO device_revocations (user_id, device, at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, device) DO UPDATE SET at = GREATEST(device_revocations.at, EXCLUDED.at)",
    )?;
    c.client().execute(&s, &[&pg_u64(user.0), &device.as_str(), &pg_u64(at)])?;
    Ok(())
}

pub(super) fn device_revocations(c: &mut Connection) -> Result<Vec<(UserId, String, u64)>> {
    let s = c.prepared("SELECT user_id, device, at FROM device_revocations")?;
    let rows = c.client().query(&s, &[])?;
    Ok(rows.iter().map(|r| (UserId(r.get::<_, i64>(0) as u64), r.get(1), r.get::<_, i64>(2) as u64)).collect())
}

/// One upsert for the whole batch. Notes of one device are merged first:
/// an upsert may not touch a row twice.
pub(super) fn note_devices(c: &mut Connection, notes: &[DeviceNote]) -> Result<()> {
    let mut by_device: HashMap<(UserId, DeviceName), (u64, u64, u64)> = HashMap::new();
    for n in notes {
        let e = by_device.entry((n.user, n.device));
        let stored = match &e {
            std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
            std::collections::hash_map::Entry::Vacant(_) => None,
        };
        *e.or_default() = merged(stored, n);
    }
    let (mut users, mut names, mut firsts, mut lasts, mut iats) = (vec![], vec![], vec![], vec![], vec![]);
    for ((user, device), (first, last, iat)) in by_device {
        users.push(pg_u64(user.0));
        names.push(device.as_str().to_owned());
        firsts.push(pg_u64(first));
        lasts.push(pg_u64(last));
        iats.push(pg_u64(iat));
    }
    let s = c.prepared(
        "INSERT INTO devices (user_id, device, first_seen, last_active, token_iat) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[]) \
         ON CONFLICT (user_id, device) DO UPDATE SET \
         first_seen = LEAST(devices.first_seen, EXCLUDED.first_seen), \
         last_active = GREATEST(devices.last_active, EXCLUDED.last_active), \
         token_iat = GREATEST(devices.token_iat, EXCLUDED.token_iat)",
    )?;
    c.client().execute(&s, &[&users, &names, &firsts, &lasts, &iats])?;
    Ok(())
}

pub(super) fn devices(c: &mut Connection, user: UserId) -> Result<Vec<DeviceRow>> {
    let s = c.prepared(
        "SELECT d.device, d.first_seen, d.last_active, d.token_iat, r.at FROM devices d \
         LEFT JOIN device_revocations r ON r.user_id = d.user_id AND r.device = d.device \
         WHERE d.user_id = $1",
    )?;
    let rows = c.client().query(&s, &[&pg_u64(user.0)])?;
    Ok(rows
        .iter()
        .map(|r| {
            let n = |i| r.get::<_, i64>(i) as u64;
            (r.get(0), n(1), n(2), n(3), r.get::<_, Option<i64>>(4).map(|v| v as u64))
        })
        .collect())
}

/// A stored device name, checked again on the way out.
pub(super) fn name(s: &str, table: &'static str) -> std::result::Result<DeviceName, StoreError> {
    DeviceName::new(s).ok_or(StoreError::Corrupt { table, what: "not a device name" })
}

/// [`devices`]' rows as records, in name order.
pub(super) fn decode(rows: Vec<DeviceRow>) -> std::result::Result<Vec<DeviceRecord>, StoreError> {
    let mut out = rows
        .into_iter()
        .map(|(d, first_seen, last_active, token_iat, revoked_at)| {
            Ok(DeviceRecord { device: name(&d, "devices")?, first_seen, last_active, token_iat, revoked_at })
        })
        .collect::<std::result::Result<Vec<_>, StoreError>>()?;
    out.sort_by_key(|r| r.device);
    Ok(out)
}

/// A `push_targets` row: user, device name, provider name, token.
pub(super) type PushRow = (UserId, String, String, String);

/// Upsert or delete one device's push target (one autocommitted statement).
pub(super) fn set_push_target(
    c: &mut Connection,
    user: UserId,
    device: DeviceName,
    target: Option<&PushTarget>,
) -> Result<()> {
    match target {
        Some(t) => {
            let s = c.prepared(
                "INSERT INTO push_targets (user_id, device, provider, token) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, device) DO UPDATE SET provider = EXCLUDED.provider, token = EXCLUDED.token",
            )?;
            c.client().execute(&s, &[&pg_u64(user.0), &device.as_str(), &t.provider.as_str(), &t.token])?;
        }
        None => {
            let s = c.prepared("DELETE FROM push_targets WHERE user_id = $1 AND device = $2")?;
            c.client().execute(&s, &[&pg_u64(user.0), &device.as_str()])?;
        }
    }
    Ok(())
}

/// Every target of `users`, one statement.
pub(super) fn push_targets(c: &mut Connection, users: &[UserId]) -> Result<Vec<PushRow>> {
    let s = c.prepared("SELECT user_id, device, provider, token FROM push_targets WHERE user_id = ANY($1::int8[])")?;
    let keys: Vec<i64> = users.iter().map(|u| pg_u64(u.0)).collect();
    let rows = c.client().query(&s, &[&keys])?;
    Ok(rows.iter().map(|r| (UserId(r.get::<_, i64>(0) as u64), r.get(1), r.get(2), r.get(3))).collect())
}

/// Delete the target only if its token is `token`: one statement, so a
/// registration cannot come between the comparison and the delete.
pub(super) fn remove_push_target_if(c: &mut Connection, user: UserId, device: DeviceName, token: &str) -> Result<bool> {
    let s = c.prepared("DELETE FROM push_targets WHERE user_id = $1 AND device = $2 AND token = $3")?;
    Ok(c.client().execute(&s, &[&pg_u64(user.0), &device.as_str(), &token])? > 0)
}

/// [`push_targets`]' rows, checked on the way out.
pub(super) fn decode_push_targets(
    rows: Vec<PushRow>,
) -> std::result::Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError> {
    rows.into_iter()
        .map(|(user, device, provider, token)| {
            let provider = PushProvider::from_name(&provider)
                .ok_or(StoreError::Corrupt { table: "push_targets", what: "not a push provider" })?;
            Ok((user, name(&device, "push_targets")?, PushTarget { provider, token }))
        })
        .collect()
}

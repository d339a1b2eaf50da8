//! Named devices on Cassandra. Revocations are clustering rows like
//! session revocations (`device_revocations`, one row per time, the latest
//! first): recording an earlier time adds a row no reader takes, so a
//! revocation never moves back without a read before the write.
//!
//! `devices` holds one row per `(user_id, device)`. A note reads the user's
//! partition, merges and writes (last-write-wins has no `GREATEST`): two
//! gateways noting the same device in the same moment may leave the older
//! of their two last active times, at most the recorder's minute behind.
//!
//! `push_targets` holds one row per `(user_id, device)`. Registering and
//! unregistering are plain writes; removing a token a provider reported
//! dead is a lightweight transaction (`IF token = ?`), so a token
//! registered meanwhile stays. Plain writes and a transaction on one row
//! are ordered by their timestamps, which come from different clocks: a
//! registration within clock skew of a conditional removal may lose to it
//! (the device registers again on its next start).

use std::collections::HashMap;

use chatgw_protocol::{DeviceName, PushProvider, PushTarget, UserId};

use super::{answer::Answer, Cql};
use crate::{
    devices::{merged, DeviceNote, DeviceRecord},
    StoreError,
};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) const INSERT_DEVICE_REVOCATION: &str =
    "INSERT INTO {ks}.device_revocations (user_id, device, at) VALUES (?, ?, ?)";
const DEVICE_REVOCATIONS: &str = "SELECT user_id, device, at FROM {ks}.device_revocations";
const USER_DEVICE_REVOCATIONS: &str = "SELECT device, at FROM {ks}.device_revocations WHERE user_id = ?";
const INSERT_DEVICE: &str =
    "INSERT INTO {ks}.devices (user_id, device, first_seen, last_active, token_iat) VALUES (?, ?, ?, ?, ?)";
const USER_DEVICES: &str = "SELECT device, first_seen, last_active, token_iat FROM {ks}.devices WHERE user_id = ?";

fn name(s: &str, table: &'static str) -> Result<DeviceName> {
    DeviceName::new(s).ok_or(StoreError::Corrupt { table, what: "not a device name" })
}

fn time(t: i64) -> u64 {
    t.max(0) as u64
}

pub(super) async fn revoke_device(c: &Cql, user: UserId, device: DeviceName, at: u64) -> Result<()> {
    let row = (user.0 as i64, device.as_str().to_owned(), i64::try_from(at).unwrap_or(i64::MAX));
    c.execute(INSERT_DEVICE_REVOCATION, row)
        .await
        .map(|_| ())
        .map_err(|e| StoreError::backend("write device revocation", e))
}

pub(super) async fn device_revocations(c: &Cql) -> Result<Vec<(UserId, DeviceName, u64)>> {
    let rows: Vec<(i64, String, i64)> = c.rows("device_revocations", DEVICE_REVOCATIONS, ()).await?;
    let mut latest = HashMap::<(u64, DeviceName), u64>::new();
    for (user, device, at) in rows {
        let e = latest.entry((user as u64, name(&device, "device_revocations")?)).or_insert(0);
        *e = (*e).max(time(at));
    }
    Ok(latest.into_iter().map(|((u, d), at)| (UserId(u), d, at)).collect())
}

/// One partition read per user, then one write per device.
pub(super) async fn note_devices(c: &Cql, notes: &[DeviceNote]) -> Result<()> {
    let mut by_user: HashMap<UserId, Vec<&DeviceNote>> = HashMap::new();
    for n in notes {
        by_user.entry(n.user).or_default().push(n);
    }
    for (user, notes) in by_user {
        let mut stored: HashMap<DeviceName, (u64, u64, u64)> = devices(c, user)
            .await?
            .into_iter()
            .map(|r| (r.device, (r.first_seen, r.last_active, r.token_iat)))
            .collect();
        for n in notes {
            let r = merged(stored.get(&n.device).copied(), n);
            stored.insert(n.device, r);
        }
        for (device, (first, last, iat)) in stored {
            let row = (user.0 as i64, device.as_str().to_owned(), first as i64, last as i64, iat as i64);
            c.execute(INSERT_DEVICE, row).await.map_err(|e| StoreError::backend("write devices", e))?;
        }
    }
    Ok(())
}

pub(super) async fn devices(c: &Cql, user: UserId) -> Result<Vec<DeviceRecord>> {
    let rows: Vec<(String, i64, i64, i64)> = c.rows("devices", USER_DEVICES, (user.0 as i64,)).await?;
    let revoked: Vec<(String, i64)> = c.rows("device_revocations", USER_DEVICE_REVOCATIONS, (user.0 as i64,)).await?;
    let mut revoked_at = HashMap::<String, u64>::new();
    for (d, at) in revoked {
        let e = revoked_at.entry(d).or_insert(0);
        *e = (*e).max(time(at));
    }
    let mut out = rows
        .into_iter()
        .map(|(d, first, last, iat)| {
            Ok(DeviceRecord {
                device: name(&d, "devices")?,
                first_seen: time(first),
                last_active: time(last),
                token_iat: time(iat),
                revoked_at: revoked_at.get(&d).copied(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|r| r.device);
    Ok(out)
}

const SET_PUSH_TARGET: &str = "INSERT INTO {ks}.push_targets (user_id, device, provider, token) VALUES (?, ?, ?, ?)";
const UNSET_PUSH_TARGET: &str = "DELETE FROM {ks}.push_targets WHERE user_id = ? AND device = ?";
const USER_PUSH_TARGETS: &str = "SELECT device, provider, token FROM {ks}.push_targets WHERE user_id = ?";
const PUSH_TOKEN: &str = "SELECT token FROM {ks}.push_targets WHERE user_id = ? AND device = ?";
/// Conditional: only a lightweight transaction compares and deletes in one
/// step. The token is written into the text as a literal rather than bound
/// (see [`remove_push_target_if`]).
const REMOVE_PUSH_TARGET_IF: &str = "DELETE FROM {ks}.push_targets WHERE user_id = ? AND device = ? IF token = ";

pub(super) async fn set_push_target(
    c: &Cql,
    user: UserId,
    device: DeviceName,
    target: Option<&PushTarget>,
) -> Result<()> {
    let key = (user.0 as i64, device.as_str().to_owned());
    let written = match target {
        Some(t) => c.execute(SET_PUSH_TARGET, (key.0, key.1, t.provider.as_str(), t.token.as_str())).await,
        None => c.execute(UNSET_PUSH_TARGET, key).await,
    };
    written.map(|_| ()).map_err(|e| StoreError::backend("write push target", e))
}

/// One partition read per user, all in flight at once.
pub(super) async fn push_targets(c: &Cql, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>> {
    let mut unique = users.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let reads =
        unique.iter().map(|u| c.rows::<(String, String, String)>("push_targets", USER_PUSH_TARGETS, (u.0 as i64,)));
    let per_user = futures::future::try_join_all(reads).await?;
    let mut out = Vec::new();
    for (user, rows) in unique.into_iter().zip(per_user) {
        for (device, provider, token) in rows {
            let provider = PushProvider::from_name(&provider)
                .ok_or(StoreError::Corrupt { table: "push_targets", what: "not a push provider" })?;
            out.push((user, name(&device, "push_targets")?, PushTarget { provider, token }));
        }
    }
    Ok(out)
}

/// `s` as a CQL string literal: single quotes doubled, the one escape CQL
/// strings have.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Remove the target only while its stored token is `token`.
///
/// A plain read first: most removals are of a token already replaced, and
/// those then cost no Paxos round. Then the compare-and-delete, with the
/// token as a literal in the statement's text, sent unprepared: a server
/// that parses no conditions (the in-memory server of the tests) still
/// counts the bound values right and runs it as a plain delete, which the
/// read just before allowed; it answers no `[applied]`, and that is taken
/// as applied. Cassandra evaluates the condition and answers it.
pub(super) async fn remove_push_target_if(c: &Cql, user: UserId, device: DeviceName, token: &str) -> Result<bool> {
    let key = (user.0 as i64, device.as_str().to_owned());
    let stored: Vec<(Option<String>,)> = c.rows("push_targets", PUSH_TOKEN, key.clone()).await?;
    if !stored.iter().any(|(t,)| t.as_deref() == Some(token)) {
        return Ok(false);
    }
    let cql = format!("{}{}", c.statements.text(REMOVE_PUSH_TARGET_IF), literal(token));
    let result = c.session.query_unpaged(cql, key).await.map_err(|e| StoreError::backend("remove push target", e))?;
    if !result.is_rows() {
        return Ok(true);
    }
    Ok(Answer::of(result).map_err(|e| StoreError::backend("remove push target", e))?.applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(super::literal("a'b''c"), "'a''b''''c'");
        assert_eq!(super::literal(""), "''");
    }
}

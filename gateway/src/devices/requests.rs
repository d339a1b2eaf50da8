//! The `devices` and `logout_device` frames, served by the reader threads:
//! both touch the store, which an event loop must not wait on.
//!
//! `logout_device` is written here rather than through the committer: it is
//! a revocation ([`Revoker::revoke_device`]'s store write, cache and
//! closes), independent of any message and rare, like the admin
//! listener's. Its answer is posted before the closes, so a device that
//! logs itself out gets `logged_out` and then the 4004 close.

use chatgw_protocol::{server, DeviceInfo, DeviceName, ErrorCode, UserId};
use chatgw_storage::{DeviceRecord, MessageStore, StoreError};

use crate::revoke::Revoker;

/// The `devices` answer for `user`, asked by a connection whose device
/// hash is `own` (0: unnamed).
pub(crate) fn devices(store: &dyn MessageStore, user: UserId, own: u32) -> Result<Vec<u8>, StoreError> {
    let listed: Vec<DeviceInfo> = store.devices(user)?.iter().map(|r| info(r, own)).collect();
    let mut p = Vec::with_capacity(32 + 120 * listed.len());
    server::devices(&mut p, &listed);
    Ok(p)
}

/// A record as listed: logged out only while the newest token the device
/// connected with is older than the revocation (it reconnected with a new
/// one since, or not).
fn info(r: &DeviceRecord, own: u32) -> DeviceInfo {
    DeviceInfo {
        device: r.device.as_str().to_owned(),
        first_seen: r.first_seen,
        last_active: r.last_active,
        revoked_at: r.revoked_at.filter(|&at| at > r.token_iat),
        current: own != 0 && r.device.hash32() == own,
    }
}

/// Log out `device` of `user` now: record it, answer `logged_out` through
/// `reply`, then close the device's connections on this gateway (other
/// gateways close theirs when they re-read the store).
pub(crate) fn logout(revoker: &Revoker, user: UserId, device: DeviceName, reply: impl FnOnce(Vec<u8>)) {
    let at = crate::auth::unix_now();
    let mut p = Vec::with_capacity(64);
    match revoker.record_device_revocation(user, device, at) {
        Ok(()) => {
            server::logged_out(&mut p, device.as_str());
            reply(p);
            revoker.close_device(user, device);
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not record a device logout");
            server::error(&mut p, ErrorCode::Unavailable, "the logout could not be recorded; retry", None);
            reply(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_listed_as_logged_out_until_it_connects_with_a_newer_token() {
        let phone = DeviceName::new("phone").unwrap();
        let r = |token_iat, revoked_at| DeviceRecord {
            device: phone,
            first_seen: 1,
            last_active: 2,
            token_iat,
            revoked_at,
        };
        assert_eq!(info(&r(10, Some(20)), 0).revoked_at, Some(20));
        assert_eq!(info(&r(20, Some(20)), 0).revoked_at, None, "a token of the revocation's second is accepted");
        assert_eq!(info(&r(30, Some(20)), 0).revoked_at, None);
        assert_eq!(info(&r(30, None), 0).revoked_at, None);
        assert!(info(&r(1, None), phone.hash32()).current);
        assert!(!info(&r(1, None), 0).current, "an unnamed connection is no listed device");
    }
}

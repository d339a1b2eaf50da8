//! `upload_keys`, `fetch_keys` and `key_count`: the key directory
//! (docs/E2EE.md), served by the reader threads since each writes the
//! store (a fetch claims one-time keys).
//!
//! Keys belong to the named device of the connection that uploads them
//! (the engine refuses unnamed connections before asking). Every signature
//! is checked here, against the uploader's user and device, before
//! anything is written: the store keeps only keys that verified.
//!
//! A device holds at most [`MAX_STORED_ONE_TIME_KEYS`], and a user has at
//! most [`MAX_KEY_DEVICES_PER_USER`] devices with keys, so a fetch's answer
//! stays bounded (about 600 bytes a bundle). Both counts are read before
//! the write, so uploads at the same moment may pass them by one upload
//! each. A logout removes the device's keys
//! (`Revoker::record_device_revocation`); an upload checks the revocation
//! cache after its write and removes what it wrote if the device was
//! logged out meanwhile, as push registrations do.

use chatgw_protocol::{
    server, DeviceKeys, DeviceName, ErrorCode, KeyBundle, KeyRole, SignatureError, SignedKey, UserId,
    MAX_STORED_ONE_TIME_KEYS,
};
use chatgw_storage::{MessageStore, StoreError};

use crate::{
    auth::Claims,
    revoke::{Revocations, Revoker},
};

/// Devices of one user that may have published keys at once.
pub(crate) const MAX_KEY_DEVICES_PER_USER: usize = 32;

/// What a key directory request asks.
#[derive(Debug)]
pub(crate) enum KeyOp {
    /// Publish the device's keys and add one-time keys.
    Upload { keys: Box<DeviceKeys>, one_time_keys: Vec<SignedKey> },
    /// Count the device's one-time keys.
    Count,
    /// A bundle for every device of `user`, or for `device` only.
    Fetch { user: UserId, device: Option<DeviceName> },
}

/// The answer frame to `op` from `asking` (whose claims name a device).
/// An upload that changes the user's devices with keys or a device's
/// identity is announced to the user's contacts (`keys_changed`) once it
/// is stored.
pub(crate) fn answer(store: &dyn MessageStore, revoker: &Revoker, asking: &Claims, op: KeyOp) -> Vec<u8> {
    let revocations = revoker.revocations.as_ref();
    let mut p = Vec::with_capacity(128);
    let (me, Some(device)) = (asking.user, asking.device) else {
        server::error(&mut p, ErrorCode::NotAllowed, "keys belong to named devices", None);
        return p;
    };
    let result = match op {
        KeyOp::Upload { keys, one_time_keys } => {
            let result = upload(store, revocations, asking, device, &keys, &one_time_keys);
            match result {
                Ok(Ok((count, true))) => {
                    revoker.keys_changed.announce(store, me);
                    Ok(Ok(count))
                }
                other => other.map(|r| r.map(|(count, _)| count)),
            }
        }
        KeyOp::Count => store.one_time_key_count(me, device).map(Ok),
        KeyOp::Fetch { user, device } => match fetch(store, user, device) {
            Ok(bundles) => {
                server::keys(&mut p, user, &bundles);
                return p;
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(Ok(count)) => server::key_count(&mut p, device.as_str(), count),
        Ok(Err((code, message))) => server::error(&mut p, code, &message, None),
        Err(e) => {
            tracing::warn!(error = %e, "key directory request failed");
            server::error(&mut p, ErrorCode::Unavailable, "the key directory could not be reached; retry", None);
        }
    }
    p
}

type Refusal = (ErrorCode, String);

/// The field a signature error names.
fn refusal(e: SignatureError, one_time_index: Option<usize>) -> Refusal {
    let field = match (e, one_time_index) {
        (SignatureError::BadSigningKey, _) => "signing_key".to_owned(),
        (SignatureError::BadSignature(KeyRole::Identity), _) => "identity_signature".to_owned(),
        (SignatureError::BadSignature(KeyRole::Fallback), _) => "fallback_key.signature".to_owned(),
        (SignatureError::BadSignature(KeyRole::OneTime), i) => format!("one_time_keys[{}].signature", i.unwrap_or(0)),
    };
    (ErrorCode::BadField, format!("field `{field}`: {e}"))
}

fn upload(
    store: &dyn MessageStore,
    revocations: &Revocations,
    asking: &Claims,
    device: DeviceName,
    keys: &DeviceKeys,
    one_time_keys: &[SignedKey],
) -> Result<Result<(u64, bool), Refusal>, StoreError> {
    let me = asking.user;
    if let Err(e) = keys.verify(me, device) {
        return Ok(Err(refusal(e, None)));
    }
    for (i, k) in one_time_keys.iter().enumerate() {
        if let Err(e) = k.verify(&keys.signing_key, me, device) {
            return Ok(Err(refusal(e, Some(i))));
        }
    }
    let logged_out = || revocations.refusal(asking).is_some();
    let gone = || (ErrorCode::NotAllowed, "this device was logged out; get a new token".to_owned());
    if logged_out() {
        return Ok(Err(gone()));
    }
    let devices = store.device_keys(me)?;
    if devices.len() >= MAX_KEY_DEVICES_PER_USER && !devices.iter().any(|(d, _)| *d == device) {
        let message = format!("at most {MAX_KEY_DEVICES_PER_USER} devices of a user have keys; log one out first");
        return Ok(Err((ErrorCode::NotAllowed, message)));
    }
    let changed = store.put_device_keys(me, device, keys)?;
    let stored = store.one_time_key_count(me, device)?;
    if stored as usize + one_time_keys.len() > MAX_STORED_ONE_TIME_KEYS {
        let message = format!(
            "a device holds at most {MAX_STORED_ONE_TIME_KEYS} one-time keys; it holds {stored}, \
             so upload at most {}",
            MAX_STORED_ONE_TIME_KEYS.saturating_sub(stored as usize)
        );
        return Ok(Err((ErrorCode::NotAllowed, message)));
    }
    let count = store.add_one_time_keys(me, device, one_time_keys)?;
    if logged_out() {
        store.remove_device_keys(me, device)?;
        return Ok(Err(gone()));
    }
    Ok(Ok((count, changed)))
}

/// Claim one one-time key of each device asked for.
fn fetch(store: &dyn MessageStore, user: UserId, only: Option<DeviceName>) -> Result<Vec<KeyBundle>, StoreError> {
    let mut devices = store.device_keys(user)?;
    devices.retain(|(device, _)| only.is_none_or(|d| d == *device));
    let names: Vec<DeviceName> = devices.iter().map(|(device, _)| *device).collect();
    let claimed = store.claim_one_time_keys(user, &names)?;
    Ok(devices
        .into_iter()
        .zip(claimed)
        .map(|((device, keys), one_time_key)| KeyBundle { device, keys, one_time_key })
        .collect())
}

//! Checking a fetched key bundle before using it.
//!
//! The gateway checks signatures at upload, but the gateway is what
//! end-to-end encryption does not trust: a bundle is used only after the
//! client has verified, with the device's Ed25519 signing key, the
//! signatures over its identity key, its fallback key and the one-time key
//! it carries, each over the canonical text naming this user and this
//! device (docs/E2EE.md, "The signed bytes"). Whether the signing key itself
//! is the device's is trust on first use (`trust`) and the safety number.

use chatgw_protocol::{canonical_text, DeviceName, KeyBundle, KeyRole, PublicKey, Signature, UserId};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

/// A bundle whose signatures verified: what an Olm session is opened with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceName,
    /// Its Ed25519 signing key.
    pub signing_key: PublicKey,
    /// Its Curve25519 identity key.
    pub identity_key: PublicKey,
    /// The key to open a session with: the claimed one-time key, or the
    /// fallback key when none was left.
    pub session_key: PublicKey,
}

/// Why a bundle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The signing key is not a valid Ed25519 key.
    #[error("the bundle of user {user} device {device}: the signing key is not an Ed25519 key")]
    BadSigningKey {
        /// User.
        user: UserId,
        /// Device.
        device: String,
    },
    /// A signature does not verify.
    #[error("the bundle of user {user} device {device}: the {role} key's signature does not verify")]
    BadSignature {
        /// User.
        user: UserId,
        /// Device.
        device: String,
        /// Which key (`identity`, `fallback` or `one_time`).
        role: &'static str,
    },
}

/// Verify `bundle`, fetched for `user`.
pub fn verify_bundle(user: UserId, bundle: &KeyBundle) -> Result<VerifiedBundle, BundleError> {
    let device = bundle.device;
    let signer = Ed25519PublicKey::from_slice(&bundle.keys.signing_key.0)
        .map_err(|_| BundleError::BadSigningKey { user, device: device.as_str().to_owned() })?;
    let check = |role: KeyRole, id: &str, key: &PublicKey, signature: &Signature| {
        let text = canonical_text(user, device, role, id, key);
        let bad = || BundleError::BadSignature { user, device: device.as_str().to_owned(), role: role.as_str() };
        let signature = Ed25519Signature::from_slice(&signature.0).map_err(|_| bad())?;
        signer.verify(text.as_bytes(), &signature).map_err(|_| bad())
    };
    let keys = &bundle.keys;
    check(KeyRole::Identity, "identity", &keys.identity_key, &keys.identity_signature)?;
    let fallback = &keys.fallback_key;
    check(KeyRole::Fallback, &fallback.id, &fallback.key, &fallback.signature)?;
    let session_key = match &bundle.one_time_key {
        Some(otk) => {
            check(KeyRole::OneTime, &otk.id, &otk.key, &otk.signature)?;
            otk.key
        }
        None => fallback.key,
    };
    Ok(VerifiedBundle { user, device, signing_key: keys.signing_key, identity_key: keys.identity_key, session_key })
}

pub(crate) fn curve(key: &PublicKey) -> Curve25519PublicKey {
    Curve25519PublicKey::from_bytes(key.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::DeviceAccount;

    fn bundle(account: &mut DeviceAccount) -> KeyBundle {
        let upload = account.upload(0);
        KeyBundle { device: account.device(), keys: upload.keys, one_time_key: upload.one_time_keys.first().cloned() }
    }

    #[test]
    fn good_bundles_verify_and_tampered_ones_do_not() {
        let mut account = DeviceAccount::new(UserId(3), DeviceName::new("desk").unwrap());
        let good = bundle(&mut account);
        let verified = verify_bundle(UserId(3), &good).unwrap();
        assert_eq!(verified.session_key, good.one_time_key.as_ref().unwrap().key);
        let fallback = KeyBundle { one_time_key: None, ..good.clone() };
        assert_eq!(verify_bundle(UserId(3), &fallback).unwrap().session_key, good.keys.fallback_key.key);

        let role = |r| Err(BundleError::BadSignature { user: UserId(4), device: "desk".into(), role: r });
        assert_eq!(verify_bundle(UserId(4), &good), role("identity"), "another user's bundle");
        let mut swapped = good.clone();
        swapped.keys.identity_key = PublicKey([9; 32]);
        assert!(matches!(verify_bundle(UserId(3), &swapped), Err(BundleError::BadSignature { role: "identity", .. })));
        let mut otk = good.clone();
        otk.one_time_key.as_mut().unwrap().key = PublicKey([9; 32]);
        assert!(matches!(verify_bundle(UserId(3), &otk), Err(BundleError::BadSignature { role: "one_time", .. })));
        let mut other = DeviceAccount::new(UserId(3), DeviceName::new("desk").unwrap());
        let mut foreign = good;
        foreign.keys.signing_key = other.upload(0).keys.signing_key;
        assert!(verify_bundle(UserId(3), &foreign).is_err(), "signed by another key");
    }
}

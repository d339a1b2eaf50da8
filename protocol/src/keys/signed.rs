//! The canonical text a device signs for each of its Curve25519 keys, and
//! the check of that signature.
//!
//! The text is `chatgw-key-v1|<role>|<user>|<device>|<key id>|<key>`: the
//! user id in decimal, the device name, the key id and the key in unpadded
//! base64. No field can hold a `|` (device names, key ids and base64 have
//! none), so each text names one key of one role of one device of one user
//! and nothing else: a signature copied to another device, another key id
//! or another role does not verify. It is UTF-8 text because an Olm account
//! signs strings (`vodozemac::olm::Account::sign`).

use ed25519_dalek::{Signature as Ed25519Signature, VerifyingKey};

use super::{PublicKey, SignedKey};
use crate::{DeviceName, UserId};

/// The key id written into the identity key's signed text.
pub(super) const IDENTITY_KEY_ID: &str = "identity";

/// What a signed key is for; part of the signed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// The device's Curve25519 identity key (key id `identity`).
    Identity,
    /// The fallback key, handed out when no one-time key is left.
    Fallback,
    /// A one-time key.
    OneTime,
}

impl KeyRole {
    /// The role's name in the signed text.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Identity => "identity",
            KeyRole::Fallback => "fallback",
            KeyRole::OneTime => "one_time",
        }
    }
}

/// Why a key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signing key is not a valid Ed25519 point.
    #[error("signing_key is not an Ed25519 public key")]
    BadSigningKey,
    /// The signature over a key does not verify with the signing key.
    #[error("the {} key's signature does not verify", .0.as_str())]
    BadSignature(KeyRole),
}

/// The text `user`'s `device` signs for `key` in `role`.
pub fn canonical_text(user: UserId, device: DeviceName, role: KeyRole, key_id: &str, key: &PublicKey) -> String {
    format!("chatgw-key-v1|{}|{}|{}|{}|{}", role.as_str(), user.0, device.as_str(), key_id, key.to_base64())
}

/// Check `key`'s signature in `role` with `signing_key`. Strict: the
/// signature's scalar must be canonical and the signing key not of small
/// order (`verify_strict`).
pub(super) fn verify(
    signing_key: &PublicKey,
    user: UserId,
    device: DeviceName,
    role: KeyRole,
    key: &SignedKey,
) -> Result<(), SignatureError> {
    let verifier = VerifyingKey::from_bytes(&signing_key.0).map_err(|_| SignatureError::BadSigningKey)?;
    let text = canonical_text(user, device, role, &key.id, &key.key);
    let signature = Ed25519Signature::from_bytes(&key.signature.0);
    verifier.verify_strict(text.as_bytes(), &signature).map_err(|_| SignatureError::BadSignature(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_field() {
        let device = DeviceName::new("phone").unwrap();
        let text = canonical_text(UserId(42), device, KeyRole::OneTime, "AAAAAAAAAAE", &PublicKey([0; 32]));
        assert_eq!(text, "chatgw-key-v1|one_time|42|phone|AAAAAAAAAAE|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    }
}

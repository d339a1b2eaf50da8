//! The key directory's wire types (docs/E2EE.md, docs/PROTOCOL.md "Key
//! directory"): what a named device publishes so others can open Olm
//! sessions with it, and the bundle another user fetches.
//!
//! Shaped after the Olm accounts of the `vodozemac` crate, so a client built
//! on it uploads what it has as it has it: an Ed25519 signing key, a
//! Curve25519 identity key, a fallback key and one-time keys (Curve25519,
//! each with a key id), all in unpadded standard base64. Every Curve25519
//! key carries an Ed25519 signature by the device's signing key over the
//! canonical text of [`signed`], which names the user, the device, the
//! kind and the key id, so a signature cannot be replayed for another
//! device, another key or another role.
//!
//! Parsing is strict (exactly 32-byte keys and 64-byte signatures, no
//! padding, no stray bits) and bounded ([`MAX_KEYS_PER_UPLOAD`],
//! [`MAX_KEY_ID_BYTES`]); signatures are checked by
//! [`DeviceKeys::verify`] and [`SignedKey::verify`], which the gateway runs
//! because only it knows the uploader's user and device.

mod frames;
mod signed;

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
pub(crate) use frames::client_frames;
pub(crate) use frames::{decode, parse_fetch_keys, parse_upload_keys};
pub use frames::{encode_key_count, encode_keys, encode_keys_changed};
pub use signed::{canonical_text, KeyRole, SignatureError};

/// Most one-time keys in one `upload_keys` (its frame stays near 16 KiB).
pub const MAX_KEYS_PER_UPLOAD: usize = 100;

/// Most one-time keys stored for one device; an upload that would pass it
/// is refused whole.
pub const MAX_STORED_ONE_TIME_KEYS: usize = 500;

/// Longest key id, in bytes (vodozemac's base64 key ids are 11).
pub const MAX_KEY_ID_BYTES: usize = 32;

/// What every refusal of a key id says, after the field's name.
pub const KEY_ID_RULE: &str = "must be 1 to 32 bytes of A-Z a-z 0-9 + / _ -";

/// A 32-byte public key (Ed25519 or Curve25519), in transit as 43
/// characters of unpadded standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// A 64-byte Ed25519 signature, in transit as 86 characters of unpadded
/// standard base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl PublicKey {
    /// The key of exactly 43 unpadded base64 characters, or `None`.
    pub fn from_base64(text: &str) -> Option<PublicKey> {
        decode_exact(text).map(PublicKey)
    }

    /// Its unpadded base64 text.
    pub fn to_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.0)
    }
}

impl Signature {
    /// The signature of exactly 86 unpadded base64 characters, or `None`.
    pub fn from_base64(text: &str) -> Option<Signature> {
        decode_exact(text).map(Signature)
    }

    /// Its unpadded base64 text.
    pub fn to_base64(&self) -> String {
        STANDARD_NO_PAD.encode(self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    // The length check first: a long string is refused before decoding.
    if text.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let bytes = STANDARD_NO_PAD.decode(text).ok()?;
    bytes.try_into().ok()
}

/// Whether `id` may name a one-time or fallback key (see [`KEY_ID_RULE`]).
pub fn valid_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_BYTES).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'_' | b'-'))
}

/// A Curve25519 key with its id and the device's signature over it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignedKey {
    /// The key's id, chosen by the device (see [`valid_key_id`]).
    pub id: String,
    /// The Curve25519 public key.
    pub key: PublicKey,
    /// The device's Ed25519 signature over [`canonical_text`].
    pub signature: Signature,
}

/// What a device publishes once and replaces when it changes: its signing
/// and identity keys and its fallback key (the signed pre-key handed out
/// when no one-time key is left).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceKeys {
    /// The device's Ed25519 signing key; it signs everything else.
    pub signing_key: PublicKey,
    /// The device's Curve25519 identity key.
    pub identity_key: PublicKey,
    /// The signing key's signature over the identity key
    /// ([`KeyRole::Identity`], key id `identity`).
    pub identity_signature: Signature,
    /// The signed fallback key.
    pub fallback_key: SignedKey,
}

/// One device's bundle as fetched: its keys and one one-time key, if any
/// was left (it is removed from the directory by the fetch).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyBundle {
    /// The device.
    pub device: crate::DeviceName,
    /// Its published keys.
    pub keys: DeviceKeys,
    /// The one-time key this fetch claimed; `None` when none was left, and
    /// the fetcher then uses the fallback key.
    pub one_time_key: Option<SignedKey>,
}

impl DeviceKeys {
    /// Whether the identity and fallback signatures verify with the signing
    /// key, for `user`'s `device`.
    pub fn verify(&self, user: crate::UserId, device: crate::DeviceName) -> Result<(), SignatureError> {
        let identity = SignedKey {
            id: signed::IDENTITY_KEY_ID.to_owned(),
            key: self.identity_key,
            signature: self.identity_signature,
        };
        signed::verify(&self.signing_key, user, device, KeyRole::Identity, &identity)?;
        signed::verify(&self.signing_key, user, device, KeyRole::Fallback, &self.fallback_key)
    }
}

impl SignedKey {
    /// Whether this one-time key's signature verifies with `signing_key`,
    /// for `user`'s `device`.
    pub fn verify(
        &self,
        signing_key: &PublicKey,
        user: crate::UserId,
        device: crate::DeviceName,
    ) -> Result<(), SignatureError> {
        signed::verify(signing_key, user, device, KeyRole::OneTime, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_at_their_exact_length() {
        let key = PublicKey([7; 32]);
        let text = key.to_base64();
        assert_eq!(text.len(), 43);
        assert_eq!(PublicKey::from_base64(&text), Some(key));
        assert_eq!(PublicKey::from_base64(&format!("{text}=")), None, "padding refused");
        assert_eq!(PublicKey::from_base64(&text[..42]), None, "short refused");
        assert_eq!(PublicKey::from_base64(&STANDARD_NO_PAD.encode([7u8; 33])), None, "33 bytes refused");
        // The last character carries 4 unused bits: any set is refused.
        let mut stray = text.clone();
        stray.replace_range(42.., "B");
        assert_eq!(PublicKey::from_base64(&stray), None, "stray bits refused");
        assert_eq!(PublicKey::from_base64(&text.replace('B', "-")), None, "url-safe alphabet refused");
        let sig = Signature([9; 64]);
        assert_eq!(Signature::from_base64(&sig.to_base64()), Some(sig));
        assert_eq!(Signature::from_base64(&key.to_base64()), None);
    }

    #[test]
    fn key_ids_follow_the_rule() {
        assert!(valid_key_id("AAAAAAAAAAE"));
        assert!(valid_key_id("a+b/c_d-e"));
        assert!(valid_key_id(&"x".repeat(32)));
        for bad in ["", " ", "a b", "é", "a|b", "a=", &"x".repeat(33)] {
            assert!(!valid_key_id(bad), "{bad:?}");
        }
    }
}

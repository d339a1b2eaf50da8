//! A device's Olm account and what it publishes to the key directory.
//!
//! The account (vodozemac `Account`) holds the device's long-term keys: an
//! Ed25519 signing key and a Curve25519 identity key, plus one-time keys
//! and a fallback key that others use to open Olm sessions with it. This
//! module turns it into the `upload_keys` content of docs/E2EE.md: every
//! Curve25519 key signed by the account over the canonical text
//! `chatgw-key-v1|<role>|<user>|<device>|<key id>|<key>`, so a fetcher can
//! tell the keys belong to this user's device and to nothing else.
//!
//! The account keeps the fallback key private part after publishing, but
//! not its public form, and every upload repeats the fallback key; so the
//! published fallback key is remembered here.

use chatgw_protocol::{canonical_text, DeviceKeys, DeviceName, KeyRole, PublicKey, Signature, SignedKey, UserId};
use serde::{Deserialize, Serialize};
use vodozemac::olm::{Account, AccountPickle};

/// How many one-time keys a device keeps published: vodozemac's account
/// holds the private parts of twice as many, so keys claimed by sessions not
/// yet opened survive a refill.
pub const ONE_TIME_KEY_TARGET: usize = 50;

/// Below this many published one-time keys, the device uploads more.
pub const ONE_TIME_KEY_LOW: u64 = 25;

/// A device's account: its identity and what it has published.
pub struct DeviceAccount {
    user: UserId,
    device: DeviceName,
    account: Account,
    /// The published fallback key: its id and key.
    fallback: (String, PublicKey),
}

/// The `upload_keys` content: the device's keys and new one-time keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUpload {
    /// Signing, identity and fallback keys.
    pub keys: DeviceKeys,
    /// New signed one-time keys (at most 100 per frame; this library sends
    /// at most [`ONE_TIME_KEY_TARGET`]).
    pub one_time_keys: Vec<SignedKey>,
}

/// The account as stored in the state file.
#[derive(Serialize, Deserialize)]
pub(crate) struct AccountState {
    user: u64,
    device: String,
    account: AccountPickle,
    fallback_id: String,
    fallback_key: String,
}

impl DeviceAccount {
    /// A new account for `user`'s `device`, with a fallback key.
    pub fn new(user: UserId, device: DeviceName) -> DeviceAccount {
        let mut account = Account::new();
        account.generate_fallback_key();
        let fallback = account
            .fallback_key()
            .into_iter()
            .next()
            .map(|(id, key)| (id.to_base64(), PublicKey(key.to_bytes())))
            .expect("a fallback key was just generated");
        DeviceAccount { user, device, account, fallback }
    }

    /// The user this device belongs to.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The device's name.
    pub fn device(&self) -> DeviceName {
        self.device
    }

    /// The device's Ed25519 signing key.
    pub fn signing_key(&self) -> PublicKey {
        PublicKey(*self.account.ed25519_key().as_bytes())
    }

    /// The device's Curve25519 identity key.
    pub fn identity_key(&self) -> PublicKey {
        PublicKey(self.account.curve25519_key().to_bytes())
    }

    pub(crate) fn olm(&self) -> &Account {
        &self.account
    }

    pub(crate) fn olm_mut(&mut self) -> &mut Account {
        &mut self.account
    }

    fn sign(&self, role: KeyRole, id: &str, key: PublicKey) -> SignedKey {
        let text = canonical_text(self.user, self.device, role, id, &key);
        SignedKey { id: id.to_owned(), key, signature: Signature(self.account.sign(text.as_bytes()).to_bytes()) }
    }

    /// The device's published keys, signed.
    pub fn device_keys(&self) -> DeviceKeys {
        let identity = self.sign(KeyRole::Identity, "identity", self.identity_key());
        let (fallback_id, fallback_key) = &self.fallback;
        DeviceKeys {
            signing_key: self.signing_key(),
            identity_key: identity.key,
            identity_signature: identity.signature,
            fallback_key: self.sign(KeyRole::Fallback, fallback_id, *fallback_key),
        }
    }

    /// The upload that brings the device's published one-time keys from
    /// `published` back to [`ONE_TIME_KEY_TARGET`]: new keys are generated
    /// and marked published (call it when the upload is sent).
    pub fn upload(&mut self, published: u64) -> KeyUpload {
        let missing = ONE_TIME_KEY_TARGET.saturating_sub(usize::try_from(published).unwrap_or(usize::MAX));
        if missing > 0 {
            self.account.generate_one_time_keys(missing);
        }
        let mut fresh: Vec<(String, PublicKey)> = self
            .account
            .one_time_keys()
            .into_iter()
            .map(|(id, key)| (id.to_base64(), PublicKey(key.to_bytes())))
            .collect();
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        let one_time_keys = fresh.iter().map(|(id, key)| self.sign(KeyRole::OneTime, id, *key)).collect();
        self.account.mark_keys_as_published();
        KeyUpload { keys: self.device_keys(), one_time_keys }
    }

    /// Replace the fallback key; the next upload publishes the new one.
    /// The account keeps the previous private key too, so sessions opened
    /// with the old key by fetches already made still open.
    pub fn rotate_fallback_key(&mut self) {
        self.account.generate_fallback_key();
        if let Some((id, key)) = self.account.fallback_key().into_iter().next() {
            self.fallback = (id.to_base64(), PublicKey(key.to_bytes()));
        }
    }

    /// Whether a device with `published` one-time keys left should upload.
    pub fn needs_keys(published: u64) -> bool {
        published < ONE_TIME_KEY_LOW
    }

    pub(crate) fn to_state(&self) -> AccountState {
        AccountState {
            user: self.user.0,
            device: self.device.as_str().to_owned(),
            account: self.account.pickle(),
            fallback_id: self.fallback.0.clone(),
            fallback_key: self.fallback.1.to_base64(),
        }
    }

    pub(crate) fn from_state(state: AccountState) -> Option<DeviceAccount> {
        Some(DeviceAccount {
            user: UserId(state.user),
            device: DeviceName::new(&state.device)?,
            account: Account::from_pickle(state.account),
            fallback: (state.fallback_id, PublicKey::from_base64(&state.fallback_key)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_verify_as_the_gateway_checks_them() {
        let device = DeviceName::new("phone").unwrap();
        let mut account = DeviceAccount::new(UserId(7), device);
        let upload = account.upload(0);
        assert_eq!(upload.one_time_keys.len(), ONE_TIME_KEY_TARGET);
        assert_eq!(upload.keys.verify(UserId(7), device), Ok(()));
        for k in &upload.one_time_keys {
            assert_eq!(k.verify(&upload.keys.signing_key, UserId(7), device), Ok(()));
            assert!(chatgw_protocol::valid_key_id(&k.id));
        }
        assert!(upload.keys.verify(UserId(8), device).is_err(), "bound to the user");
        // Marked published: a refill adds only what is missing.
        let refill = account.upload(40);
        assert_eq!(refill.one_time_keys.len(), 10);
        assert_eq!(refill.keys, upload.keys, "the same identity and fallback key");
        assert!(account.upload(50).one_time_keys.is_empty());
        account.rotate_fallback_key();
        let rotated = account.upload(50).keys;
        assert_ne!(rotated.fallback_key, upload.keys.fallback_key);
        assert_eq!(rotated.identity_key, upload.keys.identity_key);
        assert_eq!(rotated.verify(UserId(7), device), Ok(()));
        assert!(DeviceAccount::needs_keys(24) && !DeviceAccount::needs_keys(25));
    }
}

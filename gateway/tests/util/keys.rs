//! Keys as a device's client signs them (docs/E2EE.md), for tests that
//! upload keys: `seed` picks the account (signing and identity key),
//! `fallback` the fallback key.

use chatgw_client::{Client, DeviceName, Event, UserId};
use chatgw_protocol::{canonical_text, DeviceKeys, KeyRole, PublicKey, Signature, SignedKey};
use ed25519_dalek::{Signer, SigningKey};

use super::WAIT;

fn signed(user: u64, device: &str, seed: u8, role: KeyRole, id: &str, key: [u8; 32]) -> SignedKey {
    let signer = SigningKey::from_bytes(&[seed; 32]);
    let key = PublicKey(key);
    let device = DeviceName::new(device).expect("a device name");
    let text = canonical_text(UserId(user), device, role, id, &key);
    SignedKey { id: id.to_owned(), key, signature: Signature(signer.sign(text.as_bytes()).to_bytes()) }
}

/// The published keys of account `seed` on `user`'s `device`.
pub fn device_keys(user: u64, device: &str, seed: u8, fallback: u8) -> DeviceKeys {
    let identity = signed(user, device, seed, KeyRole::Identity, "identity", [seed; 32]);
    DeviceKeys {
        signing_key: PublicKey(SigningKey::from_bytes(&[seed; 32]).verifying_key().to_bytes()),
        identity_key: identity.key,
        identity_signature: identity.signature,
        fallback_key: signed(user, device, seed, KeyRole::Fallback, &format!("fb{fallback}"), [fallback; 32]),
    }
}

/// Three one-time keys of account `seed`, ids `{prefix}0` to `{prefix}2`.
pub fn one_time_keys(user: u64, device: &str, seed: u8, prefix: &str) -> Vec<SignedKey> {
    (0..3u8).map(|i| signed(user, device, seed, KeyRole::OneTime, &format!("{prefix}{i}"), [100 + i; 32])).collect()
}

/// Upload and wait for the `key_count` answer; an error fails the test.
pub fn upload(c: &mut Client, keys: &DeviceKeys, one_time: &[SignedKey]) {
    c.upload_keys(keys, one_time).unwrap();
    c.wait_for(WAIT, "key_count", |e| match e {
        Event::KeyCount { .. } => Some(()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap();
}

/// The user named by the next `keys_changed` event.
pub fn next_keys_changed(c: &mut Client) -> UserId {
    c.wait_for(WAIT, "keys_changed", |e| match e {
        Event::KeysChanged { user, .. } => Some(*user),
        _ => None,
    })
    .unwrap()
}

//! Trust on first use: the device keys this device has seen for each
//! contact.
//!
//! The key directory is run by the server, which could hand out its own
//! keys for a contact's device. Nothing but the users comparing safety
//! numbers ([`crate::safety`]) rules that out; what the client can do alone
//! is remember the keys it saw first and say so loudly when they change.
//! A changed key for a known device is a [`TrustEvent::KeysChanged`] the
//! application shows (the sessions with that device are dropped and new
//! ones are opened with the new keys, as messengers do).

use std::collections::BTreeMap;

use chatgw_protocol::{PublicKey, UserId};
use serde::{Deserialize, Serialize};

use crate::bundle::VerifiedBundle;

/// What changed in a contact's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustEvent {
    /// A device seen for the first time.
    NewDevice {
        /// Its user.
        user: UserId,
        /// Its name.
        device: String,
    },
    /// A known device now has other keys: show a warning (another device
    /// under the same name, a reinstall, or someone in the middle).
    KeysChanged {
        /// Its user.
        user: UserId,
        /// Its name.
        device: String,
        /// The Ed25519 signing key seen before.
        old_signing_key: PublicKey,
        /// The Ed25519 signing key now.
        new_signing_key: PublicKey,
    },
    /// A device is no longer in the directory (logged out).
    DeviceGone {
        /// Its user.
        user: UserId,
        /// Its name.
        device: String,
    },
}

/// The keys remembered for one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    /// Ed25519 signing key, unpadded base64.
    pub signing_key: String,
    /// Curve25519 identity key, unpadded base64.
    pub identity_key: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Contact {
    devices: BTreeMap<String, KnownDevice>,
    /// When the device list was last fetched, Unix seconds.
    fetched_at: Option<u64>,
}

/// Every contact's known devices (this user's own other devices included).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Contacts {
    users: BTreeMap<u64, Contact>,
}

impl Contacts {
    /// Take `bundles`, the whole device list of `user` fetched at `now`
    /// (Unix seconds): new devices are remembered, changed keys replace the
    /// old ones with a warning, devices not listed are forgotten.
    pub fn learn(&mut self, user: UserId, bundles: &[VerifiedBundle], now: u64) -> Vec<TrustEvent> {
        let contact = self.users.entry(user.0).or_default();
        let mut events = Vec::new();
        let listed: Vec<&str> = bundles.iter().map(|b| b.device.as_str()).collect();
        contact.devices.retain(|name, _| {
            let keep = listed.contains(&name.as_str());
            if !keep {
                events.push(TrustEvent::DeviceGone { user, device: name.clone() });
            }
            keep
        });
        for b in bundles {
            let seen = KnownDevice { signing_key: b.signing_key.to_base64(), identity_key: b.identity_key.to_base64() };
            let name = b.device.as_str().to_owned();
            match contact.devices.insert(name.clone(), seen.clone()) {
                None => events.push(TrustEvent::NewDevice { user, device: name }),
                Some(old) if old != seen => events.push(TrustEvent::KeysChanged {
                    user,
                    device: name,
                    old_signing_key: PublicKey::from_base64(&old.signing_key).unwrap_or(PublicKey([0; 32])),
                    new_signing_key: b.signing_key,
                }),
                Some(_) => {}
            }
        }
        contact.fetched_at = Some(now);
        events
    }

    /// The keys remembered for `user`'s `device`.
    pub fn device(&self, user: UserId, device: &str) -> Option<&KnownDevice> {
        self.users.get(&user.0)?.devices.get(device)
    }

    /// `user`'s known devices, by name.
    pub fn devices(&self, user: UserId) -> Vec<String> {
        self.users.get(&user.0).map(|c| c.devices.keys().cloned().collect()).unwrap_or_default()
    }

    /// `user`'s known signing keys.
    pub fn signing_keys(&self, user: UserId) -> Vec<PublicKey> {
        self.users
            .get(&user.0)
            .map(|c| c.devices.values().filter_map(|d| PublicKey::from_base64(&d.signing_key)).collect())
            .unwrap_or_default()
    }

    /// Whether `user`'s device list was fetched within `max_age` seconds
    /// of `now`.
    pub fn fresh(&self, user: UserId, now: u64, max_age: u64) -> bool {
        let fetched = self.users.get(&user.0).and_then(|c| c.fetched_at);
        fetched.is_some_and(|at| now.saturating_sub(at) < max_age)
    }

    /// Make the next send to `user` fetch the device list again.
    pub fn mark_stale(&mut self, user: UserId) {
        if let Some(c) = self.users.get_mut(&user.0) {
            c.fetched_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::DeviceName;

    use super::*;

    fn seen(device: &str, key: u8) -> VerifiedBundle {
        VerifiedBundle {
            user: UserId(5),
            device: DeviceName::new(device).unwrap(),
            signing_key: PublicKey([key; 32]),
            identity_key: PublicKey([key + 1; 32]),
            session_key: PublicKey([0; 32]),
        }
    }

    #[test]
    fn first_keys_are_kept_and_a_change_is_reported() {
        let mut contacts = Contacts::default();
        let first = contacts.learn(UserId(5), &[seen("a", 1), seen("b", 3)], 100);
        assert_eq!(first.len(), 2);
        assert!(contacts.learn(UserId(5), &[seen("a", 1), seen("b", 3)], 101).is_empty(), "nothing new");
        let changed = contacts.learn(UserId(5), &[seen("a", 7)], 102);
        assert_eq!(
            changed,
            [
                TrustEvent::DeviceGone { user: UserId(5), device: "b".into() },
                TrustEvent::KeysChanged {
                    user: UserId(5),
                    device: "a".into(),
                    old_signing_key: PublicKey([1; 32]),
                    new_signing_key: PublicKey([7; 32])
                },
            ]
        );
        assert_eq!(contacts.device(UserId(5), "a").unwrap().signing_key, PublicKey([7; 32]).to_base64());
        assert!(contacts.fresh(UserId(5), 150, 60) && !contacts.fresh(UserId(5), 200, 60));
        contacts.mark_stale(UserId(5));
        assert!(!contacts.fresh(UserId(5), 102, 60));
    }
}

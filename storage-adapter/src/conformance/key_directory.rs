//! The key directory: published keys per device, replaced by a new upload
//! (a new identity drops the old one-time keys), one-time keys added,
//! counted and claimed, each by one claim only, even when many threads on
//! two handles claim at once; removal at logout; durable and shared.
//! Signatures are the gateway's to check: the store keeps what it is given.

use std::{collections::HashSet, sync::Arc, thread};

use chatgw_protocol::{DeviceKeys, DeviceName, PublicKey, Signature, SignedKey, UserId};

use super::Backend;
use crate::MessageStore;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).expect("a valid name")
}

fn otk(id: &str, byte: u8) -> SignedKey {
    SignedKey { id: id.to_owned(), key: PublicKey([byte; 32]), signature: Signature([byte ^ 0x5a; 64]) }
}

fn keys(identity: u8) -> DeviceKeys {
    DeviceKeys {
        signing_key: PublicKey([identity; 32]),
        identity_key: PublicKey([identity.wrapping_add(1); 32]),
        identity_signature: Signature([identity.wrapping_add(2); 64]),
        fallback_key: otk(&format!("fallback{identity}"), identity.wrapping_add(3)),
    }
}

/// Publish, replace, add, count, claim, list, remove; a second handle and a
/// reopen.
pub fn key_directory_claims_each_key_once(backend: &dyn Backend) {
    let place = backend.new_place();
    let (alice, phone, laptop) = (UserId(7), dev("phone"), dev("laptop"));
    {
        let s = backend.open(&place);
        assert!(s.device_keys(alice).unwrap().is_empty(), "an empty store has no keys");
        assert_eq!(s.claim_one_time_key(alice, phone).unwrap(), None, "nothing to claim");
        assert_eq!(s.one_time_key_count(alice, phone).unwrap(), 0);
        assert!(!s.remove_device_keys(alice, phone).unwrap(), "nothing to remove");

        assert!(s.put_device_keys(alice, phone, &keys(10)).unwrap(), "a first upload is a change");
        assert!(s.put_device_keys(alice, laptop, &keys(20)).unwrap());
        assert!(s.put_device_keys(UserId(u64::MAX), phone, &keys(30)).unwrap(), "ids above i64::MAX");
        let batch: Vec<SignedKey> = (0..5).map(|i| otk(&format!("k{i}"), i)).collect();
        assert_eq!(s.add_one_time_keys(alice, phone, &batch).unwrap(), 5);
        assert_eq!(s.add_one_time_keys(alice, phone, &batch[..2]).unwrap(), 5, "an id again replaces");
        assert_eq!(s.add_one_time_keys(alice, laptop, &[otk("k0", 99)]).unwrap(), 1, "devices kept apart");
        assert_eq!(s.add_one_time_keys(alice, phone, &[]).unwrap(), 5, "an empty batch counts");
        assert_eq!(s.device_keys(alice).unwrap(), vec![(laptop, keys(20)), (phone, keys(10))], "in name order");
        assert_eq!(s.device_keys(UserId(u64::MAX)).unwrap(), vec![(phone, keys(30))]);

        // Same identity, new fallback: not a change, the one-time keys stay.
        let mut new_fallback = keys(10);
        new_fallback.fallback_key = otk("fallback-next", 77);
        assert!(!s.put_device_keys(alice, phone, &new_fallback).unwrap(), "a new fallback is no identity change");
        assert_eq!(s.one_time_key_count(alice, phone).unwrap(), 5);
        assert_eq!(s.device_keys(alice).unwrap()[1].1, new_fallback, "the fallback is replaced");

        let claimed = s.claim_one_time_key(alice, phone).unwrap().expect("a key");
        assert!(batch.contains(&claimed), "a key as uploaded: {claimed:?}");
        assert_eq!(s.one_time_key_count(alice, phone).unwrap(), 4, "claimed keys are gone");

        let other = backend.second_handle(&place, &s);
        let mut seen = HashSet::from([claimed.id.clone()]);
        while let Some(k) = other.claim_one_time_key(alice, phone).unwrap() {
            assert!(seen.insert(k.id.clone()), "{} claimed twice", k.id);
        }
        assert_eq!(seen.len(), 5, "every key claimed once");
        assert_eq!(s.one_time_key_count(alice, phone).unwrap(), 0);
        assert_eq!(s.one_time_key_count(alice, laptop).unwrap(), 1, "the other device keeps its key");

        // A new identity drops the old account's one-time keys.
        s.add_one_time_keys(alice, phone, &batch).unwrap();
        assert!(s.put_device_keys(alice, phone, &keys(11)).unwrap(), "a new identity is a change");
        assert_eq!(s.one_time_key_count(alice, phone).unwrap(), 0, "the old account's keys are dropped");

        assert!(s.remove_device_keys(alice, laptop).unwrap());
        assert_eq!(s.one_time_key_count(alice, laptop).unwrap(), 0, "removal takes the one-time keys too");
        assert_eq!(other.device_keys(alice).unwrap(), vec![(phone, keys(11))], "a second handle sees it");
        s.add_one_time_keys(alice, phone, &batch[..3]).unwrap();
    }
    let reopened = backend.open(&place);
    assert_eq!(reopened.device_keys(alice).unwrap(), vec![(phone, keys(11))], "after reopen");
    assert_eq!(reopened.one_time_key_count(alice, phone).unwrap(), 3, "one-time keys after reopen");
}

/// Eight threads on two handles claim from 200 keys until none is left:
/// every key is handed out exactly once.
pub fn concurrent_claims_never_share_a_key(backend: &dyn Backend) {
    let place = backend.new_place();
    let (user, phone) = (UserId(42), dev("phone"));
    let first = backend.open(&place);
    first.put_device_keys(user, phone, &keys(1)).unwrap();
    for chunk in 0..2 {
        let batch: Vec<SignedKey> = (0..100).map(|i| otk(&format!("c{chunk}-{i:03}"), i as u8)).collect();
        first.add_one_time_keys(user, phone, &batch).unwrap();
    }
    assert_eq!(first.one_time_key_count(user, phone).unwrap(), 200);
    let second = backend.second_handle(&place, &first);
    let handles: Vec<Arc<dyn MessageStore>> = vec![first.clone(), second];
    let claimers: Vec<_> = (0..8)
        .map(|t| {
            let s = handles[t % 2].clone();
            thread::spawn(move || {
                let mut mine = Vec::new();
                while let Some(k) = s.claim_one_time_key(user, phone).expect("claim") {
                    mine.push(k.id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.join().expect("a claimer"));
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a key was handed out twice");
    assert_eq!(all.len(), 200, "every key was handed out");
    assert_eq!(first.one_time_key_count(user, phone).unwrap(), 0);
}

/// A fetch claims for several devices in one call: one key of each, in the
/// order asked, `None` for a device with none left; threads on two handles
/// claiming for both devices at once never share a key; claims outlive a
/// reopen.
pub fn claims_for_several_devices_in_one_call(backend: &dyn Backend) {
    let place = backend.new_place();
    let (user, phone, laptop, tablet) = (UserId(43), dev("phone"), dev("laptop"), dev("tablet"));
    {
        let first = backend.open(&place);
        for (d, identity) in [(phone, 1), (laptop, 2), (tablet, 3)] {
            first.put_device_keys(user, d, &keys(identity)).unwrap();
        }
        let phone_keys: Vec<SignedKey> = (0..60).map(|i| otk(&format!("p{i:03}"), i as u8)).collect();
        let laptop_keys: Vec<SignedKey> = (0..40).map(|i| otk(&format!("l{i:03}"), i as u8)).collect();
        first.add_one_time_keys(user, phone, &phone_keys).unwrap();
        first.add_one_time_keys(user, laptop, &laptop_keys).unwrap();

        let one = first.claim_one_time_keys(user, &[tablet, laptop, phone]).unwrap();
        assert_eq!(one.len(), 3);
        assert_eq!(one[0], None, "the tablet has no one-time keys");
        assert!(one[1].as_ref().is_some_and(|k| k.id.starts_with('l')), "the laptop's key second: {one:?}");
        assert!(one[2].as_ref().is_some_and(|k| k.id.starts_with('p')), "the phone's key third: {one:?}");
        assert_eq!(first.claim_one_time_keys(user, &[]).unwrap(), vec![], "no devices, no claims");
        let twice = first.claim_one_time_keys(user, &[laptop, laptop]).unwrap();
        let ids: Vec<&str> = twice.iter().flatten().map(|k| k.id.as_str()).collect();
        assert!(ids.len() == 2 && ids[0] != ids[1], "a device named twice gets two keys: {ids:?}");

        let second = backend.second_handle(&place, &first);
        let handles: Vec<Arc<dyn MessageStore>> = vec![first.clone(), second];
        let claimers: Vec<_> = (0..6)
            .map(|t| {
                let s = handles[t % 2].clone();
                thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..20 {
                        let got = s.claim_one_time_keys(user, &[phone, laptop]).expect("claim");
                        mine.extend(got.into_iter().flatten().map(|k| k.id));
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<String> = one.into_iter().chain(twice).flatten().map(|k| k.id).collect();
        for c in claimers {
            all.extend(c.join().expect("a claimer"));
        }
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "a key was handed out twice");
        assert_eq!(all.len(), 100, "every key was handed out");
        assert_eq!(first.one_time_key_count(user, phone).unwrap(), 0);
        assert_eq!(first.one_time_key_count(user, laptop).unwrap(), 0);
        first.add_one_time_keys(user, phone, &[otk("late", 1)]).unwrap();
        assert_eq!(first.claim_one_time_keys(user, &[phone]).unwrap(), vec![Some(otk("late", 1))]);
    }
    let reopened = backend.open(&place);
    assert_eq!(reopened.one_time_key_count(user, phone).unwrap(), 0, "claims outlive a reopen");
    assert_eq!(reopened.claim_one_time_keys(user, &[phone, laptop]).unwrap(), vec![None, None]);
}

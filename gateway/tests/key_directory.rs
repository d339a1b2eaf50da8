//! The key directory over real sockets (docs/PROTOCOL.md, "Key directory";
//! docs/E2EE.md): a named device uploads keys signed as a device would
//! (answered `key_count`); bad signatures and malformed keys are refused
//! with the field they concern; another user's `fetch_keys` gets a bundle
//! that claims one one-time key, 100 concurrent fetches over several
//! connections get distinct keys and then the fallback; the device counts
//! and replenishes; an unnamed connection is refused; a logout removes the
//! keys; two gateways on one PostgreSQL store share the directory.

mod util;

use std::collections::HashSet;

use chatgw_client::{Client, DeviceName, Event, UserId};
use chatgw_gateway::auth::unix_now;
use chatgw_protocol::{canonical_text, DeviceKeys, KeyBundle, KeyRole, PublicKey, Signature, SignedKey};
use ed25519_dalek::{Signer, SigningKey};
use util::*;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn connect(gw: &TestGateway, user: u64, device: &str) -> Client {
    let now = unix_now();
    let token = gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600);
    Client::connect(gw.addr, &token).unwrap()
}

fn online(gw: &TestGateway, user: u64, device: &str) -> Client {
    let mut c = connect(gw, user, device);
    sync_all(&mut c);
    c
}

/// A device's signing key and the keys it signs, as a client would hold
/// them.
struct Device {
    user: UserId,
    name: DeviceName,
    signer: SigningKey,
}

impl Device {
    fn new(user: u64, name: &str, seed: u8) -> Device {
        Device { user: UserId(user), name: dev(name), signer: SigningKey::from_bytes(&[seed; 32]) }
    }

    fn sign(&self, role: KeyRole, id: &str, key: [u8; 32]) -> SignedKey {
        let key = PublicKey(key);
        let text = canonical_text(self.user, self.name, role, id, &key);
        SignedKey { id: id.to_owned(), key, signature: Signature(self.signer.sign(text.as_bytes()).to_bytes()) }
    }

    fn keys(&self) -> DeviceKeys {
        let identity = self.sign(KeyRole::Identity, "identity", [1; 32]);
        DeviceKeys {
            signing_key: PublicKey(self.signer.verifying_key().to_bytes()),
            identity_key: identity.key,
            identity_signature: identity.signature,
            fallback_key: self.sign(KeyRole::Fallback, "fallback", [2; 32]),
        }
    }

    /// `n` one-time keys with ids `{prefix}{i}`.
    fn one_time(&self, prefix: &str, n: usize) -> Vec<SignedKey> {
        (0..n).map(|i| self.sign(KeyRole::OneTime, &format!("{prefix}{i}"), [(i % 251) as u8 + 3; 32])).collect()
    }
}

fn key_count(c: &mut Client) -> u64 {
    c.wait_for(WAIT, "key_count", |e| match e {
        Event::KeyCount { one_time_keys, .. } => Some(*one_time_keys),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn upload(c: &mut Client, d: &Device, one_time: &[SignedKey]) -> u64 {
    c.upload_keys(&d.keys(), one_time).unwrap();
    key_count(c)
}

fn bundles(c: &mut Client) -> Vec<KeyBundle> {
    c.wait_for(WAIT, "keys", |e| match e {
        Event::Keys { devices, .. } => Some(devices.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn fetch(c: &mut Client, user: u64, device: Option<&str>) -> Vec<KeyBundle> {
    c.fetch_keys(UserId(user), device.map(dev)).unwrap();
    bundles(c)
}

fn refused(c: &mut Client) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
        Event::KeyCount { .. } | Event::Keys { .. } => panic!("accepted: {e:?}"),
        _ => None,
    })
    .unwrap()
}

/// `fetchers` connections send `per` fetches each before reading any
/// answer; the one-time key ids handed out and the number of fallbacks.
fn concurrent_fetches(fetchers: &mut [Client], user: u64, device: &str, per: usize) -> (Vec<String>, usize) {
    for c in fetchers.iter_mut() {
        for _ in 0..per {
            c.fetch_keys(UserId(user), Some(dev(device))).unwrap();
        }
    }
    let (mut ids, mut fallbacks) = (Vec::new(), 0);
    for c in fetchers.iter_mut() {
        for _ in 0..per {
            let got = bundles(c);
            assert_eq!(got.len(), 1, "one device asked for");
            match &got[0].one_time_key {
                Some(k) => ids.push(k.id.clone()),
                None => fallbacks += 1,
            }
        }
    }
    (ids, fallbacks)
}

each_driver!(fetches_claim_distinct_keys_then_the_fallback_and_the_device_replenishes);
fn fetches_claim_distinct_keys_then_the_fallback_and_the_device_replenishes(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let phone = Device::new(7, "phone", 11);
    let laptop = Device::new(7, "laptop", 12);
    let mut phone_conn = online(&gw, 7, "phone");
    let mut laptop_conn = online(&gw, 7, "laptop");
    assert_eq!(upload(&mut phone_conn, &phone, &phone.one_time("a", 100)), 100);
    assert_eq!(upload(&mut laptop_conn, &laptop, &laptop.one_time("l", 3)), 3);

    // Another user's bundle for every device: each claims one key, and the
    // signatures verify for that user and device.
    let mut bob = online(&gw, 8, "desk");
    let both = fetch(&mut bob, 7, None);
    assert_eq!(both.iter().map(|b| b.device.as_str()).collect::<Vec<_>>(), ["laptop", "phone"]);
    for b in &both {
        assert_eq!(b.keys.verify(UserId(7), b.device), Ok(()));
        let otk = b.one_time_key.as_ref().expect("keys were left");
        assert_eq!(otk.verify(&b.keys.signing_key, UserId(7), b.device), Ok(()));
    }
    phone_conn.key_count().unwrap();
    assert_eq!(key_count(&mut phone_conn), 99, "the fetch consumed one");

    // 100 fetches in flight over four connections: 99 distinct keys, then
    // the fallback.
    let mut fetchers: Vec<Client> = (0..4).map(|i| online(&gw, 8 + i, &format!("f{i}"))).collect();
    let (ids, fallbacks) = concurrent_fetches(&mut fetchers, 7, "phone", 25);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a one-time key was handed out twice");
    assert_eq!((ids.len(), fallbacks), (99, 1), "every key once, then the fallback");
    assert!(!distinct.contains(&both[1].one_time_key.as_ref().unwrap().id), "not the key claimed before");
    let last = fetch(&mut bob, 7, Some("phone"));
    assert_eq!(last[0].one_time_key, None);
    assert_eq!(last[0].keys.fallback_key, phone.keys().fallback_key, "the signed fallback key");

    // Count and replenish.
    phone_conn.key_count().unwrap();
    assert_eq!(key_count(&mut phone_conn), 0);
    assert_eq!(upload(&mut phone_conn, &phone, &phone.one_time("b", 40)), 40);
    let fresh = fetch(&mut bob, 7, Some("phone"));
    assert!(fresh[0].one_time_key.as_ref().unwrap().id.starts_with('b'), "a replenished key");
    assert!(fetch(&mut bob, 9, None).is_empty(), "a user without keys has no bundles");
    assert!(fetch(&mut bob, 7, Some("tablet")).is_empty(), "nor a device without keys");
}

each_driver!(bad_uploads_and_unnamed_connections_are_refused_and_the_connection_stays_usable);
fn bad_uploads_and_unnamed_connections_are_refused_and_the_connection_stays_usable(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut unnamed = gw.online(7);
    let phone = Device::new(7, "phone", 21);
    unnamed.upload_keys(&phone.keys(), &[]).unwrap();
    let (code, message) = refused(&mut unnamed);
    assert_eq!(code, "not_allowed");
    assert_eq!(message, "keys belong to named devices: connect with a token whose `dev` claim names this device");
    unnamed.fetch_keys(UserId(8), None).unwrap();
    assert_eq!(refused(&mut unnamed).0, "not_allowed");
    unnamed.key_count().unwrap();
    assert_eq!(refused(&mut unnamed).0, "not_allowed");

    let mut conn = online(&gw, 7, "phone");
    // Keys signed for another device, another user, or by another key.
    let elsewhere = Device::new(7, "laptop", 21);
    let other_user = Device::new(8, "phone", 21);
    let mut stolen = phone.keys();
    stolen.fallback_key = Device::new(7, "phone", 22).sign(KeyRole::Fallback, "fallback", [2; 32]);
    for (keys, otks, why) in [
        (elsewhere.keys(), vec![], "field `identity_signature`: the identity key's signature does not verify"),
        (other_user.keys(), vec![], "field `identity_signature`: the identity key's signature does not verify"),
        (stolen, vec![], "field `fallback_key.signature`: the fallback key's signature does not verify"),
        (
            phone.keys(),
            vec![phone.sign(KeyRole::OneTime, "k0", [5; 32]), elsewhere.sign(KeyRole::OneTime, "k1", [5; 32])],
            "field `one_time_keys[1].signature`: the one_time key's signature does not verify",
        ),
        (
            phone.keys(),
            vec![phone.sign(KeyRole::Fallback, "k0", [5; 32])],
            "field `one_time_keys[0].signature`: the one_time key's signature does not verify",
        ),
    ] {
        conn.upload_keys(&keys, &otks).unwrap();
        let (code, message) = refused(&mut conn);
        assert_eq!((code.as_str(), message.as_str()), ("bad_field", why));
    }
    // Malformed keys, refused by the parser.
    let mut good = String::new();
    chatgw_protocol::client::upload_keys(&mut good, &phone.keys(), &[]);
    let identity = phone.keys().identity_key.to_base64();
    for (text, why) in [
        (good.replace(&identity, &identity[..40]), "field `identity_key`: must be a 32-byte key"),
        (good.replace(&identity, &format!("{identity}AAAA")), "field `identity_key`: must be a 32-byte key"),
        (good.replace(r#""id":"fallback""#, r#""id":"fall back""#), "field `fallback_key.id`: must be 1 to 32"),
        (r#"{"type":"upload_keys"}"#.to_owned(), "field `signing_key`: missing"),
    ] {
        conn.send_raw(&text).unwrap();
        let (code, message) = refused(&mut conn);
        assert_eq!(code, "bad_field", "{text}");
        assert!(message.starts_with(why), "{message}");
    }
    assert_eq!(upload(&mut conn, &phone, &[]), 0, "nothing refused was stored");
    // At most 500 stored: five uploads of 100 fit, a sixth key does not.
    for batch in 0..5 {
        assert_eq!(upload(&mut conn, &phone, &phone.one_time(&format!("b{batch}-"), 100)), (batch + 1) * 100);
    }
    conn.upload_keys(&phone.keys(), &phone.one_time("x", 1)).unwrap();
    let (code, message) = refused(&mut conn);
    assert_eq!(code, "not_allowed");
    assert_eq!(message, "a device holds at most 500 one-time keys; it holds 500, so upload at most 0");
    conn.key_count().unwrap();
    assert_eq!(key_count(&mut conn), 500, "the connection stays usable");

    // At most 32 devices of a user have keys: the phone and 31 more.
    for i in 0..31 {
        let name = format!("d{i}");
        let mut c = connect(&gw, 7, &name);
        assert_eq!(upload(&mut c, &Device::new(7, &name, 40), &[]), 0);
    }
    let mut extra = connect(&gw, 7, "d31");
    extra.upload_keys(&Device::new(7, "d31", 40).keys(), &[]).unwrap();
    let (code, message) = refused(&mut extra);
    assert_eq!(code, "not_allowed");
    assert_eq!(message, "at most 32 devices of a user have keys; log one out first");
    assert_eq!(upload(&mut conn, &phone, &[]), 500, "a device with keys may still upload");
}

each_driver!(logging_a_device_out_removes_its_keys);
fn logging_a_device_out_removes_its_keys(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let (phone, laptop) = (Device::new(7, "phone", 31), Device::new(7, "laptop", 32));
    let mut phone_conn = online(&gw, 7, "phone");
    let mut laptop_conn = online(&gw, 7, "laptop");
    upload(&mut phone_conn, &phone, &phone.one_time("p", 5));
    upload(&mut laptop_conn, &laptop, &laptop.one_time("l", 5));
    phone_conn.logout_device(dev("laptop")).unwrap();
    phone_conn.wait_for(WAIT, "logged_out", |e| matches!(e, Event::LoggedOut { .. }).then_some(())).unwrap();
    assert_eq!(next_close(&mut laptop_conn), 4004);
    let mut bob = online(&gw, 8, "desk");
    let left = fetch(&mut bob, 7, None);
    assert_eq!(left.iter().map(|b| b.device.as_str()).collect::<Vec<_>>(), ["phone"], "the laptop's keys are gone");
}

/// Two gateways on one PostgreSQL store: keys uploaded through one are
/// fetched through the other, and fetches through both at once never get
/// the same key.
#[test]
fn gateways_on_one_postgres_store_share_the_directory() {
    let store = fresh_postgres_store();
    let a = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = store.clone());
    let b = TestGateway::start_with(IoDriver::Uring, 1, |c| c.store = store.clone());
    let phone = Device::new(7, "phone", 41);
    let mut phone_on_a = online(&a, 7, "phone");
    assert_eq!(upload(&mut phone_on_a, &phone, &phone.one_time("k", 60)), 60);
    let mut fetchers = vec![online(&a, 8, "f0"), online(&b, 9, "f1"), online(&a, 10, "f2"), online(&b, 11, "f3")];
    let (ids, fallbacks) = concurrent_fetches(&mut fetchers, 7, "phone", 25);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a one-time key was handed out twice");
    assert_eq!((ids.len(), fallbacks), (60, 40));
    let mut phone_on_b = online(&b, 7, "phone");
    assert_eq!(upload(&mut phone_on_b, &phone, &phone.one_time("r", 10)), 10, "replenished through b");
    phone_on_a.key_count().unwrap();
    assert_eq!(key_count(&mut phone_on_a), 10, "and counted through a");
}

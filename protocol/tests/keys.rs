//! The key directory's frames with real Ed25519 signatures: uploads parse
//! strictly, signatures verify only for the user, device, role and key id
//! they were made for, and the answers round-trip.

use chatgw_protocol::{
    canonical_text, client, server, ClientFrame, DeviceKeys, DeviceName, ErrorCode, KeyBundle, KeyRole, PublicKey,
    ServerFrame, Signature, SignatureError, SignedKey, UserId,
};
use ed25519_dalek::{Signer, SigningKey};

fn device(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn signed(sk: &SigningKey, user: u64, dev: &str, role: KeyRole, id: &str, key: [u8; 32]) -> SignedKey {
    let key = PublicKey(key);
    let text = canonical_text(UserId(user), device(dev), role, id, &key);
    SignedKey { id: id.to_owned(), key, signature: Signature(sk.sign(text.as_bytes()).to_bytes()) }
}

fn device_keys(sk: &SigningKey, user: u64, dev: &str) -> DeviceKeys {
    let identity = signed(sk, user, dev, KeyRole::Identity, "identity", [1; 32]);
    DeviceKeys {
        signing_key: PublicKey(sk.verifying_key().to_bytes()),
        identity_key: identity.key,
        identity_signature: identity.signature,
        fallback_key: signed(sk, user, dev, KeyRole::Fallback, "fb1", [2; 32]),
    }
}

#[test]
fn an_upload_round_trips_and_its_signatures_verify_only_where_made() {
    let sk = SigningKey::from_bytes(&[5; 32]);
    let keys = device_keys(&sk, 42, "phone");
    let otks: Vec<SignedKey> =
        (0..3).map(|i| signed(&sk, 42, "phone", KeyRole::OneTime, &format!("k{i}"), [10 + i as u8; 32])).collect();
    let mut out = String::new();
    client::upload_keys(&mut out, &keys, &otks);
    let ClientFrame::UploadKeys { keys: parsed, one_time_keys } = ClientFrame::parse(&out).unwrap() else {
        panic!("not an upload: {out}")
    };
    assert_eq!(*parsed, keys);
    assert_eq!(one_time_keys, otks);
    assert_eq!(parsed.verify(UserId(42), device("phone")), Ok(()));
    assert!(otks.iter().all(|k| k.verify(&keys.signing_key, UserId(42), device("phone")).is_ok()));

    // Replayed for another user or device, or as another role or id: refused.
    assert_eq!(keys.verify(UserId(43), device("phone")), Err(SignatureError::BadSignature(KeyRole::Identity)));
    assert_eq!(keys.verify(UserId(42), device("laptop")), Err(SignatureError::BadSignature(KeyRole::Identity)));
    let as_one_time = keys.fallback_key.clone();
    assert!(
        as_one_time.verify(&keys.signing_key, UserId(42), device("phone")).is_err(),
        "a fallback is no one-time key"
    );
    let renamed = SignedKey { id: "k9".into(), ..otks[0].clone() };
    assert!(renamed.verify(&keys.signing_key, UserId(42), device("phone")).is_err(), "the id is signed");
    let other_signer = SigningKey::from_bytes(&[6; 32]);
    let forged = DeviceKeys { signing_key: PublicKey(other_signer.verifying_key().to_bytes()), ..keys.clone() };
    assert_eq!(forged.verify(UserId(42), device("phone")), Err(SignatureError::BadSignature(KeyRole::Identity)));
    let swapped_fallback =
        DeviceKeys { fallback_key: signed(&other_signer, 42, "phone", KeyRole::Fallback, "fb1", [2; 32]), ..keys };
    assert_eq!(
        swapped_fallback.verify(UserId(42), device("phone")),
        Err(SignatureError::BadSignature(KeyRole::Fallback))
    );
}

#[test]
fn malformed_uploads_are_refused_with_the_field_and_rule() {
    let sk = SigningKey::from_bytes(&[5; 32]);
    let keys = device_keys(&sk, 1, "phone");
    let good_otk = signed(&sk, 1, "phone", KeyRole::OneTime, "a", [3; 32]);
    let mut good = String::new();
    client::upload_keys(&mut good, &keys, std::slice::from_ref(&good_otk));
    let short = &keys.identity_key.to_base64()[..42];
    let cases: Vec<(String, &str)> = vec![
        (good.replace(&keys.identity_key.to_base64(), short), "field `identity_key`: must be a 32-byte key"),
        (
            good.replace(&keys.signing_key.to_base64(), &format!("{}=", keys.signing_key.to_base64())),
            "field `signing_key`",
        ),
        (good.replace(r#""id":"a""#, r#""id":"a b""#), "field `one_time_keys[0].id`"),
        (good.replace(r#""id":"fb1""#, r#""id":"""#), "field `fallback_key.id`"),
        (good.replace(&good_otk.signature.to_base64(), "AAAA"), "field `one_time_keys[0].signature`"),
        (
            good.replace(r#","one_time_keys":["#, r#","one_time_keys":[7,"#),
            "field `one_time_keys[0]`: must be an object",
        ),
        (good.replace(r#""fallback_key":"#, r#""fallback":"#), "field `fallback_key`: missing"),
        (
            good.replace(r#""one_time_keys":[{"#, r#""one_time_keys":{"x":{"#).replace("}]}", "}}}"),
            "field `one_time_keys`: must be an array",
        ),
    ];
    for (text, why) in cases {
        let e = ClientFrame::parse(&text).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadField, "{text}");
        assert!(e.message.starts_with(why), "{} does not start with {why}", e.message);
    }
    let twice = vec![good_otk.clone(), good_otk.clone()];
    let mut text = String::new();
    client::upload_keys(&mut text, &keys, &twice);
    assert_eq!(ClientFrame::parse(&text).unwrap_err().message, "field `one_time_keys`: key ids must differ");
    let many: Vec<SignedKey> = (0..101).map(|i| SignedKey { id: format!("k{i}"), ..good_otk.clone() }).collect();
    let mut text = String::new();
    client::upload_keys(&mut text, &keys, &many);
    assert_eq!(ClientFrame::parse(&text).unwrap_err().message, "field `one_time_keys`: at most 100 keys per upload");
    let mut text = String::new();
    client::upload_keys(&mut text, &keys, &many[..100]);
    assert!(ClientFrame::parse(&text).is_ok(), "100 fit");
}

#[test]
fn fetches_and_answers_round_trip() {
    for dev in [None, Some(device("phone"))] {
        let mut out = String::new();
        client::fetch_keys(&mut out, UserId(u64::MAX), dev);
        assert_eq!(ClientFrame::parse(&out).unwrap(), ClientFrame::FetchKeys { user: UserId(u64::MAX), device: dev });
    }
    assert_eq!(ClientFrame::parse(r#"{"type":"fetch_keys"}"#).unwrap_err().message, "field `user`: missing");
    assert_eq!(
        ClientFrame::parse(r#"{"type":"fetch_keys","user":"1","device":"a b"}"#).unwrap_err().code,
        ErrorCode::BadField
    );
    assert_eq!(ClientFrame::parse(r#"{"type":"key_count"}"#).unwrap(), ClientFrame::KeyCount);

    let sk = SigningKey::from_bytes(&[5; 32]);
    let bundles = vec![
        KeyBundle {
            device: device("phone"),
            keys: device_keys(&sk, 7, "phone"),
            one_time_key: Some(signed(&sk, 7, "phone", KeyRole::OneTime, "k1", [9; 32])),
        },
        KeyBundle { device: device("laptop"), keys: device_keys(&sk, 7, "laptop"), one_time_key: None },
    ];
    let mut out = Vec::new();
    server::keys(&mut out, UserId(7), &bundles);
    assert_eq!(
        ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap(),
        ServerFrame::Keys { user: UserId(7), devices: bundles }
    );
    let mut out = Vec::new();
    server::key_count(&mut out, "phone", 37);
    assert_eq!(out, br#"{"type":"key_count","device":"phone","one_time_keys":37}"#);
    assert_eq!(
        ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap(),
        ServerFrame::KeyCount { device: "phone".into(), one_time_keys: 37 }
    );
}

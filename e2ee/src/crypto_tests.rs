//! [`DeviceCrypto`] without a gateway: the key directory is a bundle
//! handed from one device to another, a delivery is a `MessageEvent` built
//! here.

use chatgw_client::MessageEvent;
use chatgw_protocol::{ConversationRef, DeviceName, GroupId, KeyBundle, MessageId, MessageKind, UserId};

use crate::{DecryptError, DeviceCrypto, Envelope, KeysError, Opened, TrustEvent};

fn device(user: u64, name: &str) -> DeviceCrypto {
    DeviceCrypto::new(UserId(user), DeviceName::new(name).unwrap())
}

/// What a fetch of `d`'s keys returns.
fn bundle(d: &mut DeviceCrypto) -> KeyBundle {
    let mut upload = d.account_mut().upload(0);
    KeyBundle { device: d.account().device(), keys: upload.keys, one_time_key: upload.one_time_keys.pop() }
}

fn delivered(id: u64, from: u64, to: Option<u64>, group: Option<u64>, envelope: &Envelope) -> MessageEvent {
    MessageEvent {
        id: MessageId(id),
        from: UserId(from),
        to: to.map(UserId),
        group: group.map(GroupId),
        kind: MessageKind::Encrypted,
        client_id: format!("c{id}"),
        ts: 0,
        body: envelope.to_body(),
        edited_at: None,
        deleted_at: None,
        hidden_at: None,
    }
}

fn body(opened: Result<Opened, DecryptError>) -> String {
    match opened {
        Ok(Opened::Message(m)) => m.body,
        other => panic!("{other:?}"),
    }
}

#[test]
fn direct_messages_open_once_for_their_device_and_conversation() {
    let (mut alice, mut bob) = (device(1, "phone"), device(2, "phone"));
    let bob_keys = bundle(&mut bob);
    alice.learn_devices(UserId(2), &[bob_keys], 0, true).unwrap();
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "hi").unwrap();
    assert_eq!(env.k.len(), 1);
    let msg = delivered(10, 1, Some(2), None, &env);
    assert!(matches!(bob.decrypt(&msg), Err(DecryptError::UnknownDevice { .. })), "alice's keys not fetched yet");
    let alice_keys = bundle(&mut alice);
    bob.learn_devices(UserId(1), &[alice_keys], 0, false).unwrap();
    assert_eq!(body(bob.decrypt(&msg)), "hi");
    assert!(matches!(bob.decrypt(&msg), Err(DecryptError::AlreadyDecrypted(MessageId(10)))));
    let replay = delivered(11, 1, Some(2), None, &env);
    assert!(matches!(bob.decrypt(&replay), Err(DecryptError::Replayed { first: Some(MessageId(10)) })));

    // Moved into a group: decrypts, but names another conversation.
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "moved").unwrap();
    assert!(matches!(bob.decrypt(&delivered(12, 1, None, Some(5), &env)), Err(DecryptError::WrongConversation)));
    // Tampered: the session survives.
    let mut env = alice.encrypt_direct(UserId(2), MessageKind::Text, "x").unwrap();
    // In the ciphertext and MAC at the end (the start of a pre-key message
    // is the keys that name its session).
    let at = env.k[0].c.len() - 8;
    let flipped = if &env.k[0].c[at..at + 1] == "A" { "B" } else { "A" };
    env.k[0].c.replace_range(at..at + 1, flipped);
    assert!(matches!(bob.decrypt(&delivered(13, 1, Some(2), None, &env)), Err(DecryptError::Tampered(_))));
    let env = bob.encrypt_direct(UserId(1), MessageKind::Text, "reply").unwrap();
    assert_eq!(body(alice.decrypt(&delivered(14, 2, Some(1), None, &env))), "reply");
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "after").unwrap();
    assert_eq!(env.k[0].t, 1, "a normal message once bob answered");
    assert_eq!(body(bob.decrypt(&delivered(15, 1, Some(2), None, &env))), "after");

    // Bob's restored state opens the next message.
    let mut restored = DeviceCrypto::from_bytes(&bob.to_bytes()).unwrap();
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "restored").unwrap();
    assert_eq!(body(restored.decrypt(&delivered(16, 1, Some(2), None, &env))), "restored");
    assert!(matches!(restored.decrypt(&delivered(17, 1, Some(2), None, &env)), Err(DecryptError::Replayed { .. })));
    assert!(matches!(
        alice.encrypt_direct(UserId(2), MessageKind::System, "no"),
        Err(crate::EncryptError::Kind("system"))
    ));
}

#[test]
fn a_changed_key_is_reported_and_a_bad_bundle_refused() {
    let mut alice = device(1, "phone");
    let mut bob = device(2, "phone");
    let first = bundle(&mut bob);
    assert_eq!(
        alice.learn_devices(UserId(2), std::slice::from_ref(&first), 0, true).unwrap(),
        [TrustEvent::NewDevice { user: UserId(2), device: "phone".into() }]
    );
    let mut reinstalled = device(2, "phone");
    let changed = alice.learn_devices(UserId(2), &[bundle(&mut reinstalled)], 1, true).unwrap();
    assert!(matches!(&changed[..], [TrustEvent::KeysChanged { device, .. }] if device == "phone"));
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "to the new keys").unwrap();
    reinstalled.learn_devices(UserId(1), &[bundle(&mut alice)], 1, false).unwrap();
    assert_eq!(body(reinstalled.decrypt(&delivered(20, 1, Some(2), None, &env))), "to the new keys");

    let mut forged = first;
    forged.keys.identity_key = chatgw_protocol::PublicKey([7; 32]);
    assert!(matches!(alice.learn_devices(UserId(2), &[forged], 2, true), Err(KeysError::Bundle(_))));
}

#[test]
fn group_messages_need_the_shared_key_and_are_refused_twice() {
    let (mut alice, mut bob, mut carol) = (device(1, "phone"), device(2, "phone"), device(3, "phone"));
    let (bob_keys, carol_keys) = (bundle(&mut bob), bundle(&mut carol));
    alice.learn_devices(UserId(2), &[bob_keys], 0, true).unwrap();
    alice.learn_devices(UserId(3), &[carol_keys], 0, true).unwrap();
    let alice_keys = bundle(&mut alice);
    bob.learn_devices(UserId(1), std::slice::from_ref(&alice_keys), 0, false).unwrap();
    carol.learn_devices(UserId(1), &[alice_keys], 0, false).unwrap();
    let group = GroupId(50);
    assert!(matches!(
        alice.encrypt_group(group, MessageKind::Text, "x", 0),
        Err(crate::EncryptError::MembersUnknown(50))
    ));
    alice.set_group_members(group, &[UserId(1), UserId(2), UserId(3)]);

    let send = alice.encrypt_group(group, MessageKind::Text, "hello group", 0).unwrap();
    assert_eq!(send.key_shares.len(), 1);
    assert_eq!(send.key_shares[0].k.len(), 2);
    assert!(send.message.k.is_empty() && send.message.g.is_some());
    let message = delivered(31, 1, None, Some(50), &send.message);
    assert!(matches!(bob.decrypt(&message), Err(DecryptError::UnknownGroupSession(_))));
    let share = delivered(30, 1, None, Some(50), &send.key_shares[0]);
    assert!(matches!(bob.decrypt(&share), Ok(Opened::RoomKey { .. })));
    assert_eq!(body(bob.decrypt(&message)), "hello group");
    assert_eq!(body(bob.decrypt(&message)), "hello group", "the same message again (history)");
    assert!(matches!(
        bob.decrypt(&delivered(32, 1, None, Some(50), &send.message)),
        Err(DecryptError::Replayed { .. })
    ));
    assert!(matches!(
        bob.decrypt(&delivered(33, 1, None, Some(51), &send.message)),
        Err(DecryptError::WrongConversation)
    ));
    match alice.decrypt(&message) {
        Ok(Opened::Message(m)) => assert_eq!(m.conversation, ConversationRef::Group(group)),
        other => panic!("its own message: {other:?}"),
    }

    // Carol leaves: the next message has a new session, not shared with her.
    let left = MessageEvent {
        kind: MessageKind::System,
        body: r#"{"event":"left","by":"3","new_admins":[]}"#.into(),
        ..delivered(34, 3, None, Some(50), &send.message)
    };
    assert!(alice.group_system_message(&left));
    let next = alice.encrypt_group(group, MessageKind::Text, "without carol", 1).unwrap();
    assert_ne!(next.message.g.as_ref().unwrap().s, send.message.g.as_ref().unwrap().s);
    assert!(next.key_shares[0].entry_for(3, "phone").is_none());
    assert!(matches!(
        carol.decrypt(&delivered(36, 1, None, Some(50), &next.key_shares[0])),
        Err(DecryptError::NotForThisDevice)
    ));
    assert!(matches!(
        carol.decrypt(&delivered(37, 1, None, Some(50), &next.message)),
        Err(DecryptError::UnknownGroupSession(_))
    ));
    bob.decrypt(&delivered(35, 1, None, Some(50), &next.key_shares[0])).unwrap();
    assert_eq!(body(bob.decrypt(&delivered(37, 1, None, Some(50), &next.message))), "without carol");
}

#[test]
fn a_session_opens_with_the_fallback_key_when_no_one_time_key_is_left() {
    let (mut alice, mut bob) = (device(1, "phone"), device(2, "phone"));
    let mut exhausted = bundle(&mut bob);
    exhausted.one_time_key = None;
    alice.learn_devices(UserId(2), &[exhausted], 0, true).unwrap();
    let env = alice.encrypt_direct(UserId(2), MessageKind::Text, "via fallback").unwrap();
    bob.learn_devices(UserId(1), &[bundle(&mut alice)], 0, false).unwrap();
    assert_eq!(body(bob.decrypt(&delivered(1, 1, Some(2), None, &env))), "via fallback");
    // The fallback key is not used up, but a replay is still refused.
    assert!(matches!(bob.decrypt(&delivered(2, 1, Some(2), None, &env)), Err(DecryptError::Replayed { .. })));
}

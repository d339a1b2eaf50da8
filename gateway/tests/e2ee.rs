//! End-to-end encrypted conversations between real clients (`chatgw-e2ee`)
//! over a real gateway: two users with two devices each, live and after
//! sync; a group of four; tampered, replayed, misdirected and moved
//! ciphertexts refused while the sessions keep working; a removed member
//! left out of the group's new session; a reinstalled device announced by
//! `keys_changed` and reported as changed keys; one-time keys topped up; a device restarted from its
//! encrypted state file.
//!
//! The gateway only relays envelopes here: every assertion on a body is on
//! what a receiving device decrypted.

mod util;

use std::{path::Path, time::Duration};

use chatgw_client::{Client, ConversationRef, DeviceName, Event, GroupId, MessageEvent, MessageKind, UserId};
use chatgw_e2ee::{
    DecryptError, Decrypted, DeviceCrypto, Envelope, SecureClient, SecureConfig, SecureError, SecureEvent, StateError,
    TrustEvent,
};
use chatgw_gateway::auth::unix_now;
use util::*;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn connect(gw: &TestGateway, user: u64, device: &str) -> Client {
    let now = unix_now();
    let token = gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600);
    Client::connect(gw.addr, &token).unwrap()
}

/// A device with fresh keys, published, synced to the present.
fn device(gw: &TestGateway, user: u64, name: &str) -> SecureClient {
    resume(gw, DeviceCrypto::new(UserId(user), dev(name)))
}

/// A device back online with the state it had.
fn resume(gw: &TestGateway, crypto: DeviceCrypto) -> SecureClient {
    let (user, name) = (crypto.account().user(), crypto.account().device());
    let mut c = SecureClient::new(connect(gw, user.0, name.as_str()), crypto, None, SecureConfig::default()).unwrap();
    c.sync().unwrap();
    c
}

/// Take a device offline, keeping its state.
fn offline(c: SecureClient) -> DeviceCrypto {
    let (client, crypto) = c.into_parts();
    client.close();
    crypto
}

fn next_decrypted(c: &mut SecureClient) -> Decrypted {
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(SecureEvent::Message(m)) => return m,
            Some(SecureEvent::Undecryptable { message, error }) => panic!("undecryptable {}: {error}", message.id),
            Some(_) => continue,
            None => panic!("no message within {WAIT:?}"),
        }
    }
}

fn next_undecryptable(c: &mut SecureClient) -> DecryptError {
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(SecureEvent::Undecryptable { error, .. }) => return error,
            Some(SecureEvent::Message(m)) => panic!("decrypted {m:?}"),
            Some(_) => continue,
            None => panic!("no message within {WAIT:?}"),
        }
    }
}

/// Every decrypted message until nothing arrives for a moment; fails on an
/// undecryptable one.
fn quiet_messages(c: &mut SecureClient) -> Vec<Decrypted> {
    let mut out = Vec::new();
    while let Some(e) = c.next_event(Duration::from_millis(500)).unwrap() {
        match e {
            SecureEvent::Message(m) => out.push(m),
            SecureEvent::Undecryptable { message, error } => panic!("undecryptable {}: {error}", message.id),
            _ => {}
        }
    }
    out
}

fn texts(messages: &[Decrypted]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

/// Send a hand-made envelope as `c`'s device; the message's id.
fn send_raw(c: &mut SecureClient, to: ConversationRef, envelope: &Envelope, cid: &str) {
    let client = c.client();
    match to {
        ConversationRef::Peer(peer) => client.send_message(peer, cid, MessageKind::Encrypted, &envelope.to_body()),
        ConversationRef::Group(group) => client.send_group(group, cid, MessageKind::Encrypted, &envelope.to_body()),
    }
    .unwrap();
    let ok = client.wait_for(WAIT, "sent", |e| match e {
        Event::Sent { client_id, .. } if client_id == cid => Some(true),
        Event::Error { code, message, .. } => panic!("refused {code}: {message}"),
        _ => None,
    });
    assert!(ok.unwrap());
}

fn create_group(c: &mut SecureClient, members: &[u64]) -> GroupId {
    let members: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.client().create_group("g", "team", &members).unwrap();
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(SecureEvent::Other(Event::Group { id, .. })) => return id,
            Some(SecureEvent::Other(Event::Error { code, message, .. })) => panic!("{code}: {message}"),
            Some(_) => continue,
            None => panic!("no group answer"),
        }
    }
}

#[test]
fn two_users_with_two_devices_each_read_everything_meant_for_them_live_and_after_sync() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let mut alice_phone = device(&gw, 1, "phone");
    let mut alice_laptop = device(&gw, 1, "laptop");
    let mut bob_phone = device(&gw, 2, "phone");
    let bob_tablet = offline(device(&gw, 2, "tablet"));

    let hello = alice_phone.send_direct(UserId(2), MessageKind::Text, "hello bob").unwrap();
    let got = next_decrypted(&mut bob_phone);
    assert_eq!((got.id, got.from, got.device.as_str(), got.body.as_str()), (hello, UserId(1), "phone", "hello bob"));
    assert_eq!(got.conversation, ConversationRef::Peer(UserId(1)));
    let mine = next_decrypted(&mut alice_laptop);
    assert_eq!((mine.body.as_str(), mine.conversation), ("hello bob", ConversationRef::Peer(UserId(2))));

    bob_phone.send_direct(UserId(1), MessageKind::Image, "media:42").unwrap();
    for c in [&mut alice_phone, &mut alice_laptop] {
        let m = next_decrypted(c);
        assert_eq!((m.kind, m.body.as_str(), m.from), (MessageKind::Image, "media:42", UserId(2)));
    }
    alice_laptop.send_direct(UserId(2), MessageKind::Text, "from my laptop").unwrap();
    assert_eq!(next_decrypted(&mut bob_phone).body, "from my laptop");
    assert_eq!(next_decrypted(&mut alice_phone).body, "from my laptop", "the sender's other device");
    assert!(quiet_messages(&mut alice_laptop).is_empty(), "a device does not get its own message");

    // The tablet was offline throughout: sync brings all three, each
    // encrypted for it too (its own user's phone's message included).
    let mut bob_tablet =
        SecureClient::new(connect(&gw, 2, "tablet"), bob_tablet, None, SecureConfig::default()).unwrap();
    let synced: Vec<Decrypted> = bob_tablet
        .sync()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            SecureEvent::Message(m) => Some(m),
            SecureEvent::Undecryptable { error, .. } => panic!("{error}"),
            _ => None,
        })
        .collect();
    assert_eq!(texts(&synced), ["hello bob", "media:42", "from my laptop"]);
    // And the conversation goes on live with every device.
    bob_tablet.send_direct(UserId(1), MessageKind::Text, "tablet here").unwrap();
    for c in [&mut alice_phone, &mut alice_laptop, &mut bob_phone] {
        assert_eq!(next_decrypted(c).body, "tablet here");
    }
    assert_eq!(
        alice_phone.safety_number(UserId(2)),
        bob_phone.safety_number(UserId(1)),
        "both sides compute one safety number"
    );
}

#[test]
fn a_group_of_four_reads_each_others_messages() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let mut members: Vec<SecureClient> = (11..=14).map(|u| device(&gw, u, "phone")).collect();
    let mut second = device(&gw, 11, "laptop");
    let group = create_group(&mut members[0], &[12, 13, 14]);

    members[0].send_group(group, MessageKind::Text, "welcome all").unwrap();
    for c in members[1..].iter_mut().chain([&mut second]) {
        let m = next_decrypted(c);
        assert_eq!(
            (m.body.as_str(), m.from, m.conversation),
            ("welcome all", UserId(11), ConversationRef::Group(group))
        );
    }
    for (i, sender) in [(2usize, "from 13"), (1, "from 12")] {
        members[i].send_group(group, MessageKind::Text, sender).unwrap();
        for (j, c) in members.iter_mut().enumerate().filter(|(j, _)| *j != i) {
            assert_eq!(next_decrypted(c).body, sender, "member {j}");
        }
        assert_eq!(next_decrypted(&mut second).body, sender);
    }
    // A second message reuses the session: no key share this time.
    members[0].send_group(group, MessageKind::Text, "again").unwrap();
    for c in members[1..].iter_mut() {
        assert_eq!(texts(&quiet_messages(c)), ["again"]);
    }
}

#[test]
fn tampered_replayed_misdirected_and_moved_ciphertexts_are_refused_and_sessions_keep_working() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let mut alice = device(&gw, 21, "phone");
    let mut bob = device(&gw, 22, "phone");
    let _bob_tablet = offline(device(&gw, 22, "tablet"));
    alice.send_direct(UserId(22), MessageKind::Text, "first").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "first");
    let bob_entry = |env: &Envelope| env.k.iter().position(|e| e.u == "22" && e.d == "phone").unwrap();

    // Tampered: one byte of the ciphertext flipped.
    let mut tampered = alice.crypto_mut().encrypt_direct(UserId(22), MessageKind::Text, "tampered").unwrap();
    let i = bob_entry(&tampered);
    let mut bytes = base64_decode(&tampered.k[i].c);
    let at = bytes.len() - 12;
    bytes[at] ^= 0x40;
    tampered.k[i].c = base64_encode(&bytes);
    send_raw(&mut alice, ConversationRef::Peer(UserId(22)), &tampered, "t1");
    assert!(matches!(next_undecryptable(&mut bob), DecryptError::Tampered(_)));

    // Replayed: the same envelope sent twice.
    let twice = alice.crypto_mut().encrypt_direct(UserId(22), MessageKind::Text, "once").unwrap();
    send_raw(&mut alice, ConversationRef::Peer(UserId(22)), &twice, "r1");
    let first = next_decrypted(&mut bob);
    assert_eq!(first.body, "once");
    send_raw(&mut alice, ConversationRef::Peer(UserId(22)), &twice, "r2");
    match next_undecryptable(&mut bob) {
        DecryptError::Replayed { first: seen } => assert_eq!(seen, Some(first.id)),
        other => panic!("{other}"),
    }

    // For another device only: no entry for Bob's phone.
    let mut elsewhere = alice.crypto_mut().encrypt_direct(UserId(22), MessageKind::Text, "tablet only").unwrap();
    elsewhere.k.remove(bob_entry(&elsewhere));
    send_raw(&mut alice, ConversationRef::Peer(UserId(22)), &elsewhere, "o1");
    assert!(matches!(next_undecryptable(&mut bob), DecryptError::NotForThisDevice));

    // Moved: a direct message's envelope posted into a group both are in.
    let group = create_group(&mut alice, &[22]);
    let moved = alice.crypto_mut().encrypt_direct(UserId(22), MessageKind::Text, "direct").unwrap();
    send_raw(&mut alice, ConversationRef::Group(group), &moved, "m1");
    assert!(matches!(next_undecryptable(&mut bob), DecryptError::WrongConversation));

    // A group message replayed under another id.
    alice.send_group(group, MessageKind::Text, "group once").unwrap();
    let first = next_decrypted(&mut bob);
    let send = alice.crypto_mut().encrypt_group(group, MessageKind::Text, "group twice", unix_now()).unwrap();
    assert!(send.key_shares.is_empty(), "bob holds the session");
    send_raw(&mut alice, ConversationRef::Group(group), &send.message, "g1");
    let once = next_decrypted(&mut bob);
    assert!(once.id > first.id && once.body == "group twice");
    send_raw(&mut alice, ConversationRef::Group(group), &send.message, "g2");
    match next_undecryptable(&mut bob) {
        DecryptError::Replayed { first: seen } => assert_eq!(seen, Some(once.id)),
        other => panic!("{other}"),
    }

    // The sessions still work both ways.
    alice.send_direct(UserId(22), MessageKind::Text, "still fine").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "still fine");
    bob.send_direct(UserId(21), MessageKind::Text, "yes").unwrap();
    assert_eq!(next_decrypted(&mut alice).body, "yes");
    alice.send_group(group, MessageKind::Text, "group works").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "group works");
}

#[test]
fn a_removed_member_receives_nothing_and_cannot_open_later_group_messages() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let mut admin = device(&gw, 31, "phone");
    let mut stays = device(&gw, 32, "phone");
    let mut removed = device(&gw, 33, "phone");
    let group = create_group(&mut admin, &[32, 33]);
    admin.send_group(group, MessageKind::Text, "before").unwrap();
    assert_eq!(next_decrypted(&mut stays).body, "before");
    assert_eq!(next_decrypted(&mut removed).body, "before");

    admin.change_members("remove_members", group, &[UserId(33)]).unwrap();
    let after = admin.send_group(group, MessageKind::Text, "after").unwrap();
    assert_eq!(next_decrypted(&mut stays).body, "after");
    assert!(quiet_messages(&mut removed).is_empty(), "nothing reaches the removed member");

    // The ciphertexts as another member received them: the new session's
    // key share has nothing for the removed device, and the message is of
    // a session it never got.
    stays.client().group_history(group, None, 10).unwrap();
    let page: Vec<MessageEvent> = loop {
        match stays.next_event(WAIT).unwrap() {
            Some(SecureEvent::Other(Event::History { messages, .. })) => break messages,
            Some(_) => continue,
            None => panic!("no history"),
        }
    };
    let message = page.iter().find(|m| m.id == after).unwrap();
    assert!(matches!(removed.crypto_mut().decrypt(message), Err(DecryptError::UnknownGroupSession(_))));
    // History is newest first: the key share just before the message.
    let share = page
        .iter()
        .skip_while(|m| m.id != after)
        .skip(1)
        .find(|m| m.kind == MessageKind::Encrypted && Envelope::parse(&m.body).is_ok_and(|e| !e.k.is_empty()))
        .unwrap();
    assert!(Envelope::parse(&share.body).unwrap().entry_for(32, "phone").is_some());
    assert!(matches!(removed.crypto_mut().decrypt(share), Err(DecryptError::NotForThisDevice)));
    // The member still in the group reads it again from history.
    assert!(stays.crypto_mut().decrypt(message).is_ok());
}

#[test]
fn a_reinstalled_device_is_a_warning_and_gets_messages_under_its_new_keys() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let mut alice = device(&gw, 51, "phone");
    let mut bob = device(&gw, 52, "phone");
    alice.send_direct(UserId(52), MessageKind::Text, "one").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "one");
    let before = alice.safety_number(UserId(52));

    // Bob's phone loses its state: new keys under the same name.
    let (client, _) = bob.into_parts();
    client.close();
    let mut bob = device(&gw, 52, "phone");
    // The gateway tells Bob's contacts (`keys_changed`), and Alice's client
    // fetches his devices again before its next message to him.
    loop {
        match alice.next_event(WAIT).unwrap() {
            Some(SecureEvent::Other(Event::KeysChanged { user: UserId(52), .. })) => break,
            Some(_) => continue,
            None => panic!("no keys_changed for the reinstalled device"),
        }
    }
    alice.send_direct(UserId(52), MessageKind::Text, "two").unwrap();
    let warning = loop {
        match alice.next_event(WAIT).unwrap() {
            Some(SecureEvent::Trust(TrustEvent::NewDevice { .. })) => continue, // from the first fetch
            Some(SecureEvent::Trust(t)) => break t,
            Some(_) => continue,
            None => panic!("no trust event"),
        }
    };
    assert!(
        matches!(&warning, TrustEvent::KeysChanged { user: UserId(52), device, .. } if device == "phone"),
        "{warning:?}"
    );
    assert_ne!(alice.safety_number(UserId(52)), before, "the safety number changed with the keys");
    assert_eq!(next_decrypted(&mut bob).body, "two");
    bob.send_direct(UserId(51), MessageKind::Text, "new phone").unwrap();
    assert_eq!(next_decrypted(&mut alice).body, "new phone");
}

#[test]
fn a_device_tops_its_one_time_keys_up_when_fetches_used_them() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let mut phone = device(&gw, 61, "phone");
    let mut fetcher = connect(&gw, 62, "desk");
    for _ in 0..30 {
        fetcher.fetch_keys(UserId(61), None).unwrap();
        fetcher.wait_for(WAIT, "keys", |e| matches!(e, Event::Keys { .. }).then_some(())).unwrap();
    }
    phone.check_keys().unwrap();
    let mut counts = Vec::new();
    while counts.len() < 3 {
        match phone.next_event(WAIT).unwrap() {
            Some(SecureEvent::Other(Event::KeyCount { one_time_keys, .. })) => counts.push(one_time_keys),
            Some(_) => continue,
            None => panic!("counts so far: {counts:?}"),
        }
    }
    // The answer to the check after the first sync, then to this one, then
    // to the upload it caused.
    assert_eq!(counts, [50, 20, 50], "20 left, so 30 more uploaded");
}

fn passphrase_open(gw: &TestGateway, user: u64, path: &Path, passphrase: &str) -> Result<SecureClient, SecureError> {
    let client = connect(gw, user, "phone");
    SecureClient::open(client, UserId(user), dev("phone"), path, passphrase, SecureConfig::default())
}

#[test]
fn a_device_restarts_from_its_encrypted_state_file_and_a_wrong_passphrase_is_refused() {
    let gw = TestGateway::start(IoDriver::Epoll, 2);
    let dir = tempfile::tempdir().unwrap();
    let (alice_state, bob_state) = (dir.path().join("alice.state"), dir.path().join("bob.state"));
    let mut alice = passphrase_open(&gw, 41, &alice_state, "alice's passphrase").unwrap();
    let mut bob = passphrase_open(&gw, 42, &bob_state, "bob's passphrase").unwrap();
    alice.sync().unwrap();
    bob.sync().unwrap();
    let group = create_group(&mut alice, &[42]);
    alice.send_direct(UserId(42), MessageKind::Text, "hi bob").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "hi bob");
    bob.send_direct(UserId(41), MessageKind::Text, "hi alice").unwrap();
    assert_eq!(next_decrypted(&mut alice).body, "hi alice");
    alice.send_group(group, MessageKind::Text, "group before").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "group before");

    // Alice's device stops; Bob writes meanwhile.
    let (client, _) = alice.into_parts();
    client.close();
    bob.send_direct(UserId(41), MessageKind::Text, "while you were away").unwrap();
    bob.send_group(group, MessageKind::Text, "group while away").unwrap();

    match passphrase_open(&gw, 41, &alice_state, "not the passphrase") {
        Err(SecureError::State(StateError::WrongPassphrase)) => {}
        other => panic!("expected WrongPassphrase, got {other:?}"),
    }
    let mut alice = passphrase_open(&gw, 41, &alice_state, "alice's passphrase").unwrap();
    let synced: Vec<String> = alice
        .sync()
        .unwrap()
        .into_iter()
        .filter_map(|e| match e {
            // Its own sends come back too (the group one opens with its
            // own session; a direct one it cannot and need not open).
            SecureEvent::Message(m) if m.from == UserId(42) => Some(m.body),
            SecureEvent::Undecryptable { error, .. } => panic!("{error}"),
            _ => None,
        })
        .collect();
    assert_eq!(synced, ["while you were away", "group while away"], "from the saved cursor on");
    alice.send_direct(UserId(42), MessageKind::Text, "back again").unwrap();
    assert_eq!(next_decrypted(&mut bob).body, "back again");
    alice.send_group(group, MessageKind::Text, "group after").unwrap();
    loop {
        match bob.next_event(WAIT).unwrap() {
            Some(SecureEvent::Message(m)) => break assert_eq!(m.body, "group after"),
            Some(SecureEvent::RoomKey { .. }) => panic!("a new key share: the group session was not restored"),
            Some(SecureEvent::Undecryptable { error, .. }) => panic!("{error}"),
            Some(_) => continue,
            None => panic!("no message"),
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
    STANDARD_NO_PAD.decode(text).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
    STANDARD_NO_PAD.encode(bytes)
}

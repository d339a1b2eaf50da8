//! `chatgw chat` as a user runs it, against a real `chatgw serve`:
//! encrypted by default (the gateway stores only envelopes), `/verify`
//! prints the same safety number on both sides and notices a peer's new
//! keys, and the conversation continues across a restart of either chat
//! and of the gateway; `--plaintext` still talks in the clear.

mod util;

use std::time::Duration;

use chatgw_client::{Event, MessageKind};
use util::{chat_proc::ChatProc, served::Served, *};

/// The safety number `chat` prints after `/verify`.
fn verify(chat: &mut ChatProc) -> (String, String) {
    chat.say("/verify");
    let number = chat.line_after("safety number with").trim().to_owned();
    let verdict = chat.expect("keys");
    (number, verdict)
}

/// Bodies of everything `user` can read of the conversation with `peer`,
/// as the gateway stores it.
fn stored_bodies(addr: std::net::SocketAddr, user: u64, peer: u64) -> Vec<(MessageKind, String)> {
    let key = chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes());
    let mut c = chatgw_client::Client::connect(
        addr,
        &key.mint(chatgw_client::UserId(user), chatgw_gateway::auth::unix_now() + 60),
    )
    .unwrap();
    c.history(chatgw_client::UserId(peer), None, 100).unwrap();
    c.wait_for(WAIT, "history", |e| match e {
        Event::History { messages, .. } => Some(messages.iter().map(|m| (m.kind, m.body.clone())).collect()),
        _ => None,
    })
    .unwrap()
}

#[test]
fn encrypted_chat_verifies_and_survives_restarts_of_both_sides_and_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Served::spawn(&data, &[], "info");
    let addr = gw.addr;
    let (a_state, b_state) = (dir.path().join("a.state"), dir.path().join("b.state"));
    let mut a = ChatProc::encrypted(addr, 1, "laptop", 2, &a_state);
    let mut b = ChatProc::encrypted(addr, 2, "phone", 1, &b_state);

    a.say("hello, this is secret");
    a.expect("✓ sent");
    b.expect("1: hello, this is secret");
    b.say("secret reply");
    a.expect("2: secret reply");
    // The gateway holds envelopes only.
    let stored = stored_bodies(addr, 1, 2);
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (kind, body) in &stored {
        assert_eq!(*kind, MessageKind::Encrypted);
        assert!(!body.contains("secret"), "{body}");
    }

    let (a_number, a_verdict) = verify(&mut a);
    let (b_number, b_verdict) = verify(&mut b);
    assert_eq!(a_number, b_number, "both sides show one safety number");
    assert_eq!(a_number.split(' ').count(), 12, "{a_number}");
    assert!(a_verdict.contains("unchanged since first seen"), "{a_verdict}");
    assert!(b_verdict.contains("unchanged since first seen"), "{b_verdict}");

    // B restarts on its state: no replay of what it showed, new messages open.
    assert!(b.quit());
    a.say("while you were away");
    a.expect("✓ sent");
    let mut b = ChatProc::encrypted(addr, 2, "phone", 1, &b_state);
    b.expect("1: while you were away");
    let again = b.drain(Duration::from_millis(500));
    assert!(!b.seen.iter().any(|l| l.contains("hello, this is secret")), "shown once only: {:?}", b.seen);
    assert!(!again.iter().chain(&b.seen).any(|l| l.contains("could not be decrypted")), "{:?}", b.seen);

    // The gateway restarts on the same address and data: both chats reconnect.
    gw.stop();
    let gw = Served::spawn_at(&addr.to_string(), &data, &[], "info");
    a.expect_within("reconnected", Duration::from_secs(30));
    b.expect_within("reconnected", Duration::from_secs(30));
    a.say("after the restart");
    b.expect("1: after the restart");
    b.say("still private");
    a.expect("2: still private");

    // A restarts too, and the session continues from its state.
    assert!(a.quit());
    let mut a = ChatProc::encrypted(addr, 1, "laptop", 2, &a_state);
    a.say("from a restarted laptop");
    b.expect("1: from a restarted laptop");
    let (number, verdict) = verify(&mut a);
    assert_eq!(number, a_number, "same devices, same number");
    assert!(verdict.contains("unchanged"), "{verdict}");

    // B loses its state and comes back with new keys under the same name:
    // A's /verify says so, and the safety number changes.
    assert!(b.quit());
    std::fs::remove_file(&b_state).unwrap();
    let mut b = ChatProc::encrypted(addr, 2, "phone", 1, &b_state);
    b.say("new keys, same phone");
    a.expect("2: new keys, same phone");
    let (number, verdict) = verify(&mut a);
    assert_ne!(number, a_number);
    assert!(verdict.contains("CHANGED since first seen"), "{verdict}");
    if !a.seen.iter().any(|l| l.contains("has NEW keys")) {
        a.expect("2's device phone has NEW keys");
    }
    drop(gw);
}

#[test]
fn plaintext_chat_talks_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Served::spawn(&dir.path().join("data"), &[], "info");
    let mut a = ChatProc::spawn(gw.addr, 1, "laptop", 2, &["--plaintext"]);
    let mut b = ChatProc::spawn(gw.addr, 2, "phone", 1, &["--plaintext"]);
    a.expect("plaintext");
    b.expect("plaintext");
    a.say("in the open");
    b.expect("1: in the open");
    assert_eq!(stored_bodies(gw.addr, 2, 1), vec![(MessageKind::Text, "in the open".to_owned())]);
}

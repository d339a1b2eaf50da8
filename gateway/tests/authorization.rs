//! Who may do what, over real sockets: the user of a connection is the
//! token's subject and nothing in a frame changes that; nobody reads,
//! syncs or acknowledges anything of a conversation they are not part of;
//! tokens that are not valid now are refused before the upgrade.
//!
//! Already pinned elsewhere and not repeated here: forged and expired tokens
//! (`bad_input.rs`, `bad_tokens_get_401_before_upgrade`), the 4002 close when
//! a token expires (`bad_input.rs`), acknowledging or marking read a message
//! of someone else's conversation by naming its sender (`messaging.rs`,
//! `acks_for_messages_not_addressed_to_you_are_refused`), and every group
//! operation by a non-member (`groups.rs`,
//! `non_members_are_refused_everything_and_learn_nothing`).

mod util;

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use chatgw_client::{Client, ClientError, Event, GroupId, MessageId, MessageKind, UserId};
use chatgw_gateway::auth::unix_now;
use util::*;

fn history_ids(c: &mut Client) -> Vec<MessageId> {
    c.wait_for(WAIT, "history", |e| match e {
        Event::History { messages, .. } => Some(messages.iter().map(|m| m.id).collect()),
        Event::Error { code, message, .. } => panic!("history refused: {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn create_group(c: &mut Client, request_id: &str, members: &[u64]) -> GroupId {
    let users: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.create_group(request_id, "g", &users).unwrap();
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, .. } => Some(*id),
        Event::Error { code, message, .. } => panic!("create_group refused: {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// Nothing in `events` is a message or a receipt.
fn assert_no_inbox_events(events: &[Event], who: &str) {
    assert!(
        events.iter().all(|e| !matches!(e, Event::Message(_) | Event::Receipt(_))),
        "{who} got inbox events it must not see: {events:?}"
    );
}

each_store!(a_sender_named_in_a_frame_is_ignored_the_token_decides);
fn a_sender_named_in_a_frame_is_ignored_the_token_decides(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);

    // User 1 tries every way of claiming to be user 3.
    for (i, field) in ["from", "sender", "user", "by", "sub"].iter().enumerate() {
        let cid = format!("spoof-{i}");
        a.send_raw(&format!(r#"{{"type":"send","id":"{cid}","to":"2","{field}":"3","body":"hi"}}"#)).unwrap();
        let (id, duplicate) = sent_id(&mut a, &cid);
        assert!(!duplicate);
        let m = next_message(&mut b);
        assert_eq!((m.id, m.from, m.client_id.as_str()), (id, UserId(1), cid.as_str()), "field `{field}`");
    }
    // User 3 was never involved: nothing live, nothing in its inbox.
    assert_no_inbox_events(&c.drain(Duration::from_millis(200)).unwrap(), "user 3 (live)");
    let mut c2 = gw.connect(3);
    assert_no_inbox_events(&sync_all(&mut c2), "user 3 (sync)");
    // The idempotency keys belong to user 1: the same client id from user 3
    // is a new message, not a duplicate of user 1's.
    c.send_message(UserId(2), "spoof-0", MessageKind::Text, "mine").unwrap();
    let (_, duplicate) = sent_id(&mut c, "spoof-0");
    assert!(!duplicate, "user 3's client id must not match user 1's message");
    let m = next_message(&mut b);
    assert_eq!((m.from, m.body.as_str()), (UserId(3), "mine"));
}

each_store!(history_and_sync_only_ever_show_your_own_conversations);
fn history_and_sync_only_ever_show_your_own_conversations(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    a.send_message(UserId(2), "p1", MessageKind::Text, "private").unwrap();
    let (private, _) = sent_id(&mut a, "p1");
    let g = create_group(&mut a, "g1", &[2]);
    a.send_group(g, "p2", MessageKind::Text, "group secret").unwrap();
    sent_id(&mut a, "p2");

    // A direct conversation is named by the other participant, so user 3
    // can only ever name its own conversations with 1 or 2: both empty,
    // whatever else the frame says.
    let mut c = gw.online(3);
    c.history(UserId(1), None, 50).unwrap();
    assert_eq!(history_ids(&mut c), Vec::<MessageId>::new());
    c.history(UserId(2), None, 50).unwrap();
    assert_eq!(history_ids(&mut c), Vec::<MessageId>::new());
    for extra in [r#""from":"1""#, r#""user":"1""#, r#""to":"2""#, r#""conversation":"1:2""#] {
        c.send_raw(&format!(r#"{{"type":"history","peer":"2",{extra}}}"#)).unwrap();
        let answer = c
            .wait_for(WAIT, "history or error", |e| match e {
                Event::History { messages, .. } => Some(Ok(messages.iter().map(|m| m.id).collect::<Vec<_>>())),
                Event::Error { code, .. } => Some(Err(code.clone())),
                _ => None,
            })
            .unwrap();
        assert!(answer.as_ref().is_ok_and(|ids| ids.is_empty()) || answer.is_err(), "{extra}: {answer:?}");
    }
    // Sync scans the token's inbox only, even when the frame names another user.
    c.send_raw(r#"{"type":"sync","after":"0","user":"2"}"#).unwrap();
    let mut seen = Vec::new();
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(Event::Synced { .. }) => break,
            Some(e) => seen.push(e),
            None => panic!("sync did not finish: {seen:?}"),
        }
    }
    assert_no_inbox_events(&seen, "user 3 syncing with `user`: 2");
    // The owner still sees it, so the emptiness above is not a broken store.
    let mut b = gw.connect(2);
    b.history(UserId(1), None, 50).unwrap();
    assert_eq!(history_ids(&mut b), vec![private]);
}

each_store!(receipts_for_messages_of_other_conversations_are_refused_and_reach_nobody);
fn receipts_for_messages_of_other_conversations_are_refused_and_reach_nobody(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    a.send_message(UserId(2), "d1", MessageKind::Text, "for two").unwrap();
    let (direct, _) = sent_id(&mut a, "d1");
    assert_eq!(next_message(&mut b).id, direct);

    // The recipient acknowledging it under a conversation it does not belong to.
    b.ack_delivered(UserId(3), &[direct]).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");
    b.mark_read(UserId(3), direct).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");
    // A third user naming the recipient instead of the sender.
    c.ack_delivered(UserId(2), &[direct]).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");
    c.mark_read(UserId(2), direct).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");

    // Group receipts only for messages of that group: user 2 is in both
    // groups and tries to acknowledge the second group's message (and the
    // direct message) through the first.
    let g1 = create_group(&mut c, "g1", &[2]);
    let g2 = create_group(&mut a, "g2", &[2]);
    a.send_group(g2, "in-g2", MessageKind::Text, "g2 only").unwrap();
    let (in_g2, _) = sent_id(&mut a, "in-g2");
    b.ack_group_delivered(g1, &[in_g2, direct]).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");
    b.mark_group_read(g1, in_g2).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");

    // The sender heard of none of it, live or by sync.
    let live = a.drain(Duration::from_millis(300)).unwrap();
    assert!(live.iter().all(|e| !matches!(e, Event::Receipt(_))), "{live:?}");
    let mut a2 = gw.connect(1);
    let replay = sync_all(&mut a2);
    assert!(replay.iter().all(|e| !matches!(e, Event::Receipt(_))), "{replay:?}");
    // And the real recipient still can acknowledge: the refusals above were
    // about the conversation, not a broken path.
    b.ack_delivered(UserId(1), &[direct]).unwrap();
    let r = a
        .wait_for(WAIT, "receipt", |e| match e {
            Event::Receipt(r) => Some((r.by, r.ids.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(r, (UserId(2), vec![direct]));
}

/// The 401 body for `token`, or the status line if it was not refused.
fn refusal(gw: &TestGateway, token: &str) -> String {
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    raw_exchange(gw.addr, request.as_bytes())
}

each_store!(tokens_not_valid_now_or_not_ours_are_refused_before_the_upgrade);
fn tokens_not_valid_now_or_not_ours_are_refused_before_the_upgrade(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let now = unix_now();
    let later = gw.key.sign(&format!(r#"{{"sub":"1","exp":{},"nbf":{}}}"#, now + 3600, now + 600));
    let response = refusal(&gw, &later);
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.ends_with("token not valid yet\n"), "{response}");

    // A token of user 1 with its subject edited to user 2, original signature.
    let genuine = gw.token(1);
    let parts: Vec<&str> = genuine.split('.').collect();
    let edited = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"2","exp":{}}}"#, now + 3600));
    let tampered = format!("{}.{edited}.{}", parts[0], parts[2]);
    let response = refusal(&gw, &tampered);
    assert!(response.starts_with("HTTP/1.1 401") && response.ends_with("bad token signature\n"), "{response}");

    // An unsigned token.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let unsigned = format!("{header}.{edited}.");
    let response = refusal(&gw, &unsigned);
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(gw.metric("chatgw_auth_failures_total"), 3.0);

    // The same shapes are accepted when they are valid: a past `nbf`.
    let valid = gw.key.sign(&format!(r#"{{"sub":"4","exp":{},"nbf":{}}}"#, now + 3600, now.saturating_sub(5)));
    match Client::connect(gw.addr, &valid) {
        Ok(d) => assert_eq!(d.user(), UserId(4)),
        Err(ClientError::Refused { status, body }) => panic!("a token valid now was refused: {status} {body}"),
        Err(e) => panic!("{e}"),
    }
}

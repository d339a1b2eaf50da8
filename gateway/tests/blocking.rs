//! Blocking over real sockets with the real store: a blocked user's direct
//! messages and receipts never reach the blocker, live or by sync, while
//! the sender is answered as usual; unblocking restores delivery from then
//! on; groups are not affected; bad input for `block`, `unblock` and
//! `blocks` gets the documented errors.

mod util;

use std::time::Duration;

use chatgw_client::{Client, Event, MessageKind, UserId};
use util::*;

/// The next `blocks` reply.
fn block_list(c: &mut Client) -> Vec<UserId> {
    c.wait_for(WAIT, "blocks", |e| match e {
        Event::Blocks { users } => Some(users.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next error: (code, message).
fn error(c: &mut Client) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
        Event::Blocks { users } => panic!("a block list where an error was due: {users:?}"),
        _ => None,
    })
    .unwrap()
}

fn receipts(events: &[Event]) -> usize {
    events.iter().filter(|e| matches!(e, Event::Receipt(_))).count()
}

each_store!(blocked_messages_and_receipts_never_reach_the_blocker);
fn blocked_messages_and_receipts_never_reach_the_blocker(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);

    a.block(UserId(2)).unwrap();
    assert_eq!(block_list(&mut a), vec![UserId(2)]);

    // The blocked sender is answered as usual; the blocker gets nothing.
    b.send_message(UserId(1), "b-1", MessageKind::Text, "while blocked").unwrap();
    let (hidden, _) = sent_id(&mut b, "b-1");
    let live = a.drain(Duration::from_millis(300)).unwrap();
    assert!(bodies_from(&live, 2).is_empty(), "no live copy for the blocker: {live:?}");

    // The blocker's messages still reach the blocked user, but the
    // blocked user's receipts do not come back.
    a.send_message(UserId(2), "a-1", MessageKind::Text, "from the blocker").unwrap();
    sent_id(&mut a, "a-1");
    let m = next_chat(&mut b);
    assert_eq!(m.body, "from the blocker");
    b.ack_delivered(UserId(1), &[m.id]).unwrap();
    b.mark_read(UserId(1), m.id).unwrap();
    let live = a.drain(Duration::from_millis(300)).unwrap();
    assert_eq!(receipts(&live), 0, "no receipt from a blocked user: {live:?}");

    // Nor is any of it in the blocker's sync, from the start; the sender's
    // own sync has the message.
    let mut fresh = gw.connect(1);
    let synced = sync_all(&mut fresh);
    assert!(bodies_from(&synced, 2).is_empty(), "not in the blocker's sync: {synced:?}");
    assert_eq!(receipts(&synced), 0, "no receipt in the blocker's sync: {synced:?}");
    let mut b2 = gw.connect(2);
    let own = sync_all(&mut b2);
    assert!(
        own.iter().any(|e| matches!(e, Event::Message(m) if m.id == hidden)),
        "the sender's inbox keeps its message: {own:?}"
    );

    // Groups are not affected.
    a.create_group("g-1", "Both", &[UserId(2)]).unwrap();
    let g = group_id(&mut a);
    b.send_group(g, "bg-1", MessageKind::Text, "in the group").unwrap();
    sent_id(&mut b, "bg-1");
    let in_group = a
        .wait_for(WAIT, "group message", |e| match e {
            Event::Message(m) if m.group == Some(g) && m.kind == MessageKind::Text => Some(m.body.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(in_group, "in the group");

    // The list is kept; unblocking restores delivery from then on.
    a.blocks().unwrap();
    assert_eq!(block_list(&mut a), vec![UserId(2)]);
    a.unblock(UserId(2)).unwrap();
    assert_eq!(block_list(&mut a), Vec::<UserId>::new());
    b.send_message(UserId(1), "b-2", MessageKind::Text, "after unblocking").unwrap();
    sent_id(&mut b, "b-2");
    let m = next_chat(&mut a);
    assert_eq!((m.from, m.body.as_str()), (UserId(2), "after unblocking"));
    let mut later = gw.connect(1);
    let synced = sync_all(&mut later);
    assert_eq!(bodies_from(&synced, 2), vec!["after unblocking".to_owned()], "what was sent while blocked stays away");
}

each_store!(bad_input_for_block_frames);
fn bad_input_for_block_frames(on: Setup) {
    // Room for the 1024 blocks below in one second or two.
    let gw = TestGateway::start_with(on, 1, |c| c.rate_limit = 5000);
    let mut a = gw.online(1);
    for (frame, message) in [
        (r#"{"type":"block"}"#, "field `user`: missing"),
        (r#"{"type":"block","user":7}"#, "field `user`: must be an id as a decimal string"),
        (r#"{"type":"unblock","user":"x"}"#, "field `user`: must be an id as a decimal string"),
        (r#"{"type":"block","user":"1"}"#, "field `user`: that is you"),
        (r#"{"type":"unblock","user":"1"}"#, "field `user`: that is you"),
    ] {
        a.send_raw(frame).unwrap();
        assert_eq!(error(&mut a), ("bad_field".to_owned(), message.to_owned()), "{frame}");
    }
    // Unblocking someone not blocked, and blocking twice, are no errors.
    a.unblock(UserId(5)).unwrap();
    assert_eq!(block_list(&mut a), Vec::<UserId>::new());
    a.block(UserId(5)).unwrap();
    a.block(UserId(5)).unwrap();
    assert_eq!(block_list(&mut a), vec![UserId(5)]);
    assert_eq!(block_list(&mut a), vec![UserId(5)]);

    // At most 1024 blocked users (in rounds: a connection's requests in
    // flight are bounded).
    for round in 0..31 {
        let users = (100 + round * 33..100 + (round + 1) * 33).map(UserId);
        for u in users.clone() {
            a.block(u).unwrap();
        }
        for _ in users {
            block_list(&mut a);
        }
    }
    a.block(UserId(5000)).unwrap();
    assert_eq!(
        error(&mut a),
        ("not_allowed".to_owned(), "a user blocks at most 1024 users; unblock someone first".to_owned())
    );
    a.blocks().unwrap();
    assert_eq!(block_list(&mut a).len(), 1024);
}

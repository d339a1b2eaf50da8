//! Delete and edit over real sockets with the real store: a delete for
//! everyone reaches an offline device by sync and replaces the body in
//! history and in the original message's replay; edits reach every device;
//! windows, authorisation (the sender, or a group's admin where the group
//! allows it) and repeats (the same answer, one event; a resend of the
//! original `send` still answered with its id) hold; bad input for
//! `delete`, `edit` and `set_admins_can_delete` gets the documented errors.

mod util;

use std::time::Duration;

use chatgw_client::{
    Client, ConversationRef, DeleteScope, Event, GroupId, MessageEvent, MessageId, MessageKind, UserId,
};
use util::{amend::*, *};

/// The answer to this connection's `delete` or `edit`: (event id, the
/// message as it is now).
fn amended(c: &mut Client) -> (MessageId, MessageEvent) {
    amended_frame(c, true)
}

/// The next `amended` event (not a reply) on another connection.
fn amended_event(c: &mut Client) -> (MessageId, MessageEvent) {
    amended_frame(c, false)
}

/// The history page of the direct conversation with `peer`, newest first.
fn history(c: &mut Client, peer: u64) -> Vec<MessageEvent> {
    c.history(UserId(peer), None, 50).unwrap();
    c.wait_for(WAIT, "history", |e| match e {
        Event::History { messages, .. } => Some(messages.clone()),
        _ => None,
    })
    .unwrap()
}

/// Send `text` from `c` to `peer`; its id.
fn send(c: &mut Client, peer: u64, client_id: &str, text: &str) -> MessageId {
    c.send_message(UserId(peer), client_id, MessageKind::Text, text).unwrap();
    sent_id(c, client_id).0
}

const TO_1: ConversationRef = ConversationRef::Peer(UserId(1));
const TO_2: ConversationRef = ConversationRef::Peer(UserId(2));

each_store!(a_delete_reaches_an_offline_device_by_sync_and_replaces_the_body_everywhere);
fn a_delete_reaches_an_offline_device_by_sync_and_replaces_the_body_everywhere(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let keep = send(&mut a, 2, "keep", "stays");
    let gone = send(&mut a, 2, "gone", "secret");
    assert_eq!(next_chat(&mut b).body, "stays");
    assert_eq!(next_chat(&mut b).body, "secret");
    let cursor = b.cursor();
    drop(b);

    a.delete_message(TO_2, gone, DeleteScope::Everyone).unwrap();
    let (event, m) = amended(&mut a);
    assert_eq!((m.id, m.body.as_str(), m.edited_at), (gone, "", None));
    assert!(m.deleted_at.is_some_and(|at| at >= m.ts), "{m:?}");

    // The answer moved no cursor: the requester's own next sync has the event.
    let own = amendments(&sync_all(&mut a));
    assert_eq!(own.iter().map(|(e, _)| *e).collect::<Vec<_>>(), vec![event], "the event is in the sender's inbox too");

    // The offline device learns of it by sync, from where it stopped.
    let mut b = gw.connect(2);
    b.set_cursor(cursor);
    let synced = sync_all(&mut b);
    let got = amendments(&synced);
    assert_eq!(got.len(), 1, "one amended event: {synced:?}");
    assert_eq!((got[0].0, got[0].1.id, got[0].1.body.as_str()), (event, gone, ""));
    assert!(got[0].1.deleted_at.is_some());

    // History and a replay from the start show the tombstone, never the body.
    let page = history(&mut b, 1);
    let shown: Vec<_> = page.iter().map(|m| (m.id, m.body.as_str(), m.deleted_at.is_some())).collect();
    assert_eq!(shown, vec![(gone, "", true), (keep, "stays", false)]);
    let mut fresh = gw.connect(2);
    let replay = sync_all(&mut fresh);
    let original = replay.iter().find_map(|e| match e {
        Event::Message(m) if m.id == gone => Some(m.clone()),
        _ => None,
    });
    assert_eq!(original.map(|m| (m.body, m.deleted_at.is_some())), Some((String::new(), true)), "{replay:?}");
    assert_eq!(amendments(&replay).len(), 1);
    assert_eq!(gw.metric("chatgw_messages_amended_total"), 1.0);
}

each_store!(an_edit_reaches_every_device_and_sync_shows_the_latest_body);
fn an_edit_reaches_every_device_and_sync_shows_the_latest_body(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut a2 = gw.online(1);
    let mut b = gw.online(2);
    let id = send(&mut a, 2, "e", "tpyo");
    assert_eq!(next_chat(&mut b).body, "tpyo");
    assert_eq!(next_chat(&mut a2).body, "tpyo", "the sender's other device");

    a.edit_message(TO_2, id, "typo").unwrap();
    let (event, m) = amended(&mut a);
    assert_eq!((m.id, m.body.as_str()), (id, "typo"));
    assert!(m.edited_at.is_some() && m.deleted_at.is_none());
    for other in [&mut b, &mut a2] {
        let (e, seen) = amended_event(other);
        assert_eq!((e, seen.body.as_str(), seen.edited_at), (event, "typo", m.edited_at));
    }
    let page = history(&mut b, 1);
    assert_eq!((page[0].body.as_str(), page[0].edited_at), ("typo", m.edited_at));
    // The receiver may not edit it; the sender's later delete ends edits.
    b.edit_message(TO_1, id, "mine now").unwrap();
    assert_eq!(amend_error(&mut b).0, "not_allowed");
    a.delete_message(TO_2, id, DeleteScope::Everyone).unwrap();
    amended(&mut a);
    a.edit_message(TO_2, id, "back").unwrap();
    assert_eq!(amend_error(&mut a).0, "message_deleted");
    // A replay shows the edit event as the tombstone it became.
    let mut fresh = gw.connect(2);
    let got = amendments(&sync_all(&mut fresh));
    assert_eq!(got.len(), 2, "the edit and the delete");
    assert!(got.iter().all(|(_, m)| m.body.is_empty() && m.deleted_at.is_some()), "{got:?}");
}

each_store!(edits_and_deletes_after_their_window_are_refused);
fn edits_and_deletes_after_their_window_are_refused(on: Setup) {
    let gw = TestGateway::start_with(on, 1, |c| {
        c.edit_window = Duration::from_millis(700);
        c.delete_window = Duration::from_millis(1500);
    });
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let id = send(&mut a, 2, "w", "one");
    a.edit_message(TO_2, id, "two").unwrap();
    assert_eq!(amended(&mut a).1.body, "two", "inside the window");
    std::thread::sleep(Duration::from_millis(900));
    a.edit_message(TO_2, id, "three").unwrap();
    let (code, why) = amend_error(&mut a);
    assert_eq!(code, "window_closed", "{why}");
    // Deleting is still allowed, for a while longer.
    let late = send(&mut a, 2, "w2", "later");
    std::thread::sleep(Duration::from_millis(1600));
    a.delete_message(TO_2, late, DeleteScope::Everyone).unwrap();
    assert_eq!(amend_error(&mut a).0, "window_closed");
    let page = history(&mut b, 1);
    let bodies: Vec<_> = page.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["later", "two"], "refused changes changed nothing");
}

each_store!(only_the_sender_changes_a_direct_message);
fn only_the_sender_changes_a_direct_message(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    let id = send(&mut a, 2, "s", "mine");
    next_chat(&mut b);
    b.delete_message(TO_1, id, DeleteScope::Everyone).unwrap();
    let (code, why) = amend_error(&mut b);
    assert_eq!((code.as_str(), why.as_str()), ("not_allowed", "only the sender may delete this message"));
    b.edit_message(TO_1, id, "x").unwrap();
    assert_eq!(amend_error(&mut b).0, "not_allowed");
    // A third user names their own conversation with the sender: no such message there.
    c.delete_message(TO_1, id, DeleteScope::Everyone).unwrap();
    let (code, why) = amend_error(&mut c);
    assert_eq!(code, "not_allowed");
    assert!(why.starts_with("no such message"), "{why}");
    assert_eq!(history(&mut b, 1)[0].body, "mine");
    assert_eq!(gw.metric("chatgw_messages_amended_total"), 0.0);
}

fn group_of(c: &mut Client, members: &[u64]) -> GroupId {
    let users: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.create_group("g", "Team", &users).unwrap();
    group_id(c)
}

/// The next `group` frame's admins-can-delete setting.
fn admins_can_delete(c: &mut Client) -> bool {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { admins_can_delete, .. } => Some(*admins_can_delete),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

each_store!(admins_delete_members_messages_only_where_the_group_allows_it);
fn admins_delete_members_messages_only_where_the_group_allows_it(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut admin = gw.online(1);
    let mut member = gw.online(2);
    let mut other = gw.online(3);
    let g = group_of(&mut admin, &[2, 3]);
    let in_group = ConversationRef::Group(g);
    member.send_group(g, "m1", MessageKind::Text, "spam").unwrap();
    let spam = sent_id(&mut member, "m1").0;
    next_chat(&mut other);

    admin.delete_message(in_group, spam, DeleteScope::Everyone).unwrap();
    let (code, why) = amend_error(&mut admin);
    assert_eq!(code, "not_allowed", "off by default: {why}");

    // Only admins turn it on; it is announced like other settings.
    member.set_admins_can_delete(g, true).unwrap();
    assert_eq!(amend_error(&mut member).0, "not_allowed");
    admin.set_admins_can_delete(g, true).unwrap();
    assert!(admins_can_delete(&mut admin));
    let announced = next_message(&mut other);
    assert_eq!(announced.kind, MessageKind::System);
    assert!(announced.body.contains(r#""event":"admins_can_delete""#), "{}", announced.body);

    admin.delete_message(in_group, spam, DeleteScope::Everyone).unwrap();
    let (event, m) = amended(&mut admin);
    assert!(m.deleted_at.is_some() && m.from == UserId(2));
    for c in [&mut member, &mut other] {
        assert_eq!(amended_event(c).0, event, "every member is told");
    }
    // Admins may delete, not edit; members may not delete an admin's message.
    admin.send_group(g, "a1", MessageKind::Text, "rules").unwrap();
    let rules = sent_id(&mut admin, "a1").0;
    member.send_group(g, "m2", MessageKind::Text, "hello").unwrap();
    let hello = sent_id(&mut member, "m2").0;
    admin.edit_message(in_group, hello, "goodbye").unwrap();
    assert_eq!(amend_error(&mut admin).0, "not_allowed");
    member.delete_message(in_group, rules, DeleteScope::Everyone).unwrap();
    assert_eq!(amend_error(&mut member).0, "not_allowed");
    // Off again: refused again.
    admin.set_admins_can_delete(g, false).unwrap();
    assert!(!admins_can_delete(&mut admin));
    admin.delete_message(in_group, hello, DeleteScope::Everyone).unwrap();
    assert_eq!(amend_error(&mut admin).0, "not_allowed");
    // A non-member cannot touch the group's messages.
    let mut outsider = gw.online(4);
    outsider.delete_message(in_group, hello, DeleteScope::Everyone).unwrap();
    assert_eq!(amend_error(&mut outsider).0, "not_allowed");
}

each_store!(a_repeated_delete_or_edit_gives_the_same_answer_and_one_event);
fn a_repeated_delete_or_edit_gives_the_same_answer_and_one_event(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let edited = send(&mut a, 2, "r1", "first");
    let deleted = send(&mut a, 2, "r2", "second");
    next_chat(&mut b);
    next_chat(&mut b);

    a.edit_message(TO_2, edited, "fixed").unwrap();
    let first = amended(&mut a);
    a.edit_message(TO_2, edited, "fixed").unwrap();
    assert_eq!(amended(&mut a), first, "the same answer");
    a.delete_message(TO_2, deleted, DeleteScope::Everyone).unwrap();
    let gone = amended(&mut a);
    a.delete_message(TO_2, deleted, DeleteScope::Everyone).unwrap();
    assert_eq!(amended(&mut a), gone, "the same answer");

    // A resend of the original `send` (its `sent` was lost, say) still gets
    // the original id, though the body it was sent with is gone.
    for (cid, text, id) in [("r1", "first", edited), ("r2", "second", deleted)] {
        a.send_message(UserId(2), cid, MessageKind::Text, text).unwrap();
        assert_eq!(sent_id(&mut a, cid), (id, true), "{cid}");
    }

    let live = b.drain(Duration::from_millis(400)).unwrap();
    let events: Vec<MessageId> = amendments(&live).iter().map(|(e, _)| *e).collect();
    assert_eq!(events, vec![first.0, gone.0], "one event each: {live:?}");
    let mut fresh = gw.connect(2);
    assert_eq!(amendments(&sync_all(&mut fresh)).len(), 2, "one event each in the inbox");
    assert_eq!(gw.metric("chatgw_messages_amended_total"), 2.0);
}

each_store!(bad_input_for_every_new_frame_gets_the_documented_error);
fn bad_input_for_every_new_frame_gets_the_documented_error(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let id = send(&mut a, 2, "b", "x");
    let big = "x".repeat(64 * 1024);
    let cases = [
        (r#"{"type":"delete","peer":"2"}"#.to_owned(), "bad_field", "field `msg`: missing"),
        (
            r#"{"type":"delete","peer":"2","msg":5}"#.to_owned(),
            "bad_field",
            "field `msg`: must be an id as a decimal string",
        ),
        (format!(r#"{{"type":"delete","msg":"{id}"}}"#), "bad_field", "field `peer`: missing (or give `group`)"),
        (
            format!(r#"{{"type":"delete","peer":"2","group":"3","msg":"{id}"}}"#),
            "bad_field",
            "field `group`: give either `peer` or `group`, not both",
        ),
        (
            format!(r#"{{"type":"delete","peer":"2","msg":"{id}","for":"all"}}"#),
            "bad_field",
            r#"field `for`: must be "everyone" or "me""#,
        ),
        (format!(r#"{{"type":"edit","peer":"2","msg":"{id}"}}"#), "bad_field", "field `body`: missing"),
        (
            format!(r#"{{"type":"edit","peer":"2","msg":"{id}","body":7}}"#),
            "bad_field",
            "field `body`: must be a string",
        ),
        (
            format!(r#"{{"type":"edit","peer":"2","msg":"{id}","body":"{big}"}}"#),
            "bad_field",
            "field `body`: is larger than 65536 bytes",
        ),
        (r#"{"type":"edit","peer":"2","body":"y"}"#.to_owned(), "bad_field", "field `msg`: missing"),
        (
            r#"{"type":"set_admins_can_delete","group":"9","admins_can_delete":"yes"}"#.to_owned(),
            "bad_field",
            "field `admins_can_delete`: must be true or false",
        ),
        (
            r#"{"type":"set_admins_can_delete","group":"9"}"#.to_owned(),
            "bad_field",
            "field `admins_can_delete`: missing",
        ),
        (
            r#"{"type":"delete","peer":"2","msg":"12345"}"#.to_owned(),
            "not_allowed",
            "no such message in this conversation: 12345",
        ),
        (
            r#"{"type":"delete","peer":"2","msg":"12345","for":"me"}"#.to_owned(),
            "not_allowed",
            "no such message in this conversation: 12345",
        ),
    ];
    for (text, code, why) in cases {
        a.send_raw(&text).unwrap();
        let (got, message) = amend_error(&mut a);
        assert_eq!((got.as_str(), message.as_str()), (code, why), "{}", &text[..text.len().min(120)]);
    }
    // Nothing was changed, and the connection still works.
    a.edit_message(TO_2, id, "y").unwrap();
    assert_eq!(amended(&mut a).1.body, "y");
}

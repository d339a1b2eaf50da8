//! Delete for me over real sockets with the real store: a user hides a
//! message (anybody's, no window) from their own view; every device of
//! that user is told, live and by sync, and nobody else is; history, the
//! replay of the original message (and of later amendments of it) and the
//! conversation list show it hidden to that user only; a repeat gets the same answer and no second
//! event; a message the user cannot see is refused with the documented
//! errors.

mod util;

use std::time::Duration;

use chatgw_client::{Client, ConversationRef, DeleteScope, Event, MessageId, MessageKind, UserId};
use chatgw_protocol::AmendKind;
use util::{amend::*, *};

const TO_1: ConversationRef = ConversationRef::Peer(UserId(1));
const TO_2: ConversationRef = ConversationRef::Peer(UserId(2));

/// History with `peer`, newest first: (id, body, hidden).
fn history(c: &mut Client, peer: u64) -> Vec<(MessageId, String, bool)> {
    c.history(UserId(peer), None, 50).unwrap();
    c.wait_for(WAIT, "history", |e| match e {
        Event::History { messages, .. } => {
            Some(messages.iter().map(|m| (m.id, m.body.clone(), m.hidden_at.is_some())).collect())
        }
        _ => None,
    })
    .unwrap()
}

/// The `last` message of the user's first listed conversation: (id, raw
/// body literal, hidden).
fn last_listed(c: &mut Client) -> (MessageId, String, bool) {
    c.conversations(None, 10).unwrap();
    c.wait_for(WAIT, "conversations", |e| match e {
        Event::Conversations { items, .. } => {
            let last = items[0].last.as_ref().expect("a last message");
            Some((last.id, last.body.clone(), last.amended.is_some_and(|a| a.kind == AmendKind::Hidden)))
        }
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn send(c: &mut Client, peer: u64, client_id: &str, text: &str) -> MessageId {
    c.send_message(UserId(peer), client_id, MessageKind::Text, text).unwrap();
    sent_id(c, client_id).0
}

each_store!(a_hidden_message_disappears_for_that_user_only_on_every_device);
fn a_hidden_message_disappears_for_that_user_only_on_every_device(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut b2 = gw.online(2);
    let theirs = send(&mut a, 2, "t", "from a");
    assert_eq!(next_chat(&mut b).body, "from a");
    assert_eq!(next_chat(&mut b2).body, "from a");
    let cursor = b2.cursor();
    let mine = send(&mut b, 1, "m", "from b");
    next_chat(&mut a);
    next_chat(&mut b2);
    let offline_cursor = b2.cursor();
    let mut b3 = gw.connect(2);
    b3.set_cursor(cursor);

    // Somebody else's message: hidden for the requester, answered as a reply.
    b.delete_message(TO_1, theirs, DeleteScope::Me).unwrap();
    let (event, shown) = amended_frame(&mut b, true);
    assert_eq!((shown.id, shown.body.as_str(), shown.deleted_at), (theirs, "", None));
    assert!(shown.hidden_at.is_some_and(|at| at >= shown.ts), "{shown:?}");
    // The user's other device is told live; the sender is not.
    let (seen, on_b2) = amended_frame(&mut b2, false);
    assert_eq!((seen, on_b2.id, on_b2.body.as_str(), on_b2.hidden_at), (event, theirs, "", shown.hidden_at));
    let at_a = a.drain(Duration::from_millis(300)).unwrap();
    assert!(amendments(&at_a).is_empty(), "nobody else is told: {at_a:?}");

    // History: hidden for b, untouched for a.
    assert_eq!(history(&mut b, 1), vec![(mine, "from b".into(), false), (theirs, String::new(), true)]);
    assert_eq!(history(&mut a, 2), vec![(mine, "from b".into(), false), (theirs, "from a".into(), false)]);

    // An offline device learns it by sync; a replay from the start shows the
    // original message hidden, and the one event.
    let synced = sync_all(&mut b3);
    let got = amendments(&synced);
    assert_eq!(got.len(), 1, "{synced:?}");
    assert_eq!((got[0].0, got[0].1.hidden_at.is_some()), (event, true));
    let mut fresh = gw.connect(2);
    let replay = sync_all(&mut fresh);
    let original = replay.iter().find_map(|e| match e {
        Event::Message(m) if m.id == theirs => Some((m.body.clone(), m.hidden_at.is_some())),
        _ => None,
    });
    assert_eq!(original, Some((String::new(), true)), "{replay:?}");
    let mut fresh_a = gw.connect(1);
    let replay_a = sync_all(&mut fresh_a);
    assert!(amendments(&replay_a).is_empty(), "no event in the sender's inbox");
    assert!(replay_a.iter().any(|e| matches!(e, Event::Message(m) if m.id == theirs && m.body == "from a")));

    // The conversation list: the last message is b's own, shown as is; once
    // b hides it too, b's list shows it hidden and a's does not.
    assert_eq!(last_listed(&mut b), (mine, "\"from b\"".into(), false));
    b.delete_message(TO_1, mine, DeleteScope::Me).unwrap();
    let (own_event, _) = amended_frame(&mut b, true);
    assert_eq!(last_listed(&mut b), (mine, String::new(), true));
    assert_eq!(last_listed(&mut a), (mine, "\"from b\"".into(), false));
    let mut b4 = gw.connect(2);
    b4.set_cursor(offline_cursor);
    let later: Vec<MessageId> = amendments(&sync_all(&mut b4)).iter().map(|(e, _)| *e).collect();
    assert_eq!(later, vec![event, own_event], "each hide is one event");
}

each_store!(a_repeated_hide_gives_the_same_answer_and_one_event);
fn a_repeated_hide_gives_the_same_answer_and_one_event(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut a2 = gw.online(1);
    let id = send(&mut a, 2, "r", "once");
    next_chat(&mut a2);
    a.delete_message(TO_2, id, DeleteScope::Me).unwrap();
    let first = amended_frame(&mut a, true);
    a.delete_message(TO_2, id, DeleteScope::Me).unwrap();
    assert_eq!(amended_frame(&mut a, true), first, "the same answer");
    // From another device of the same user too.
    a2.delete_message(TO_2, id, DeleteScope::Me).unwrap();
    let live = a2.drain(Duration::from_millis(400)).unwrap();
    let got = amendments(&live);
    assert_eq!(got.len(), 2, "the event once, then the answer to the repeat: {live:?}");
    assert!(got.iter().all(|(e, _)| *e == first.0));
    let mut fresh = gw.connect(1);
    assert_eq!(amendments(&sync_all(&mut fresh)).len(), 1, "one event in the inbox");
    assert_eq!(gw.metric("chatgw_messages_hidden_total"), 1.0);
    // A delete for everyone afterwards still works, and the user still sees
    // the message hidden (their own choice stands).
    a.delete_message(TO_2, id, DeleteScope::Everyone).unwrap();
    let (_, m) = amended_frame(&mut a, true);
    assert!(m.deleted_at.is_some(), "{m:?}");
    assert_eq!(history(&mut a, 2), vec![(id, String::new(), true)]);
    // Replayed, the delete's event shows the hidden form too.
    let mut again = gw.connect(1);
    let replay = amendments(&sync_all(&mut again));
    assert_eq!(replay.len(), 2, "the hide and the delete: {replay:?}");
    assert!(replay.iter().all(|(_, m)| m.hidden_at.is_some() && m.deleted_at.is_none()), "{replay:?}");
}

each_store!(only_messages_the_user_can_see_may_be_hidden);
fn only_messages_the_user_can_see_may_be_hidden(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    let id = send(&mut a, 2, "s", "between a and b");
    next_chat(&mut b);
    // A third user naming their own conversation with the sender.
    c.delete_message(TO_1, id, DeleteScope::Me).unwrap();
    let (code, why) = amend_error(&mut c);
    assert_eq!((code.as_str(), why), ("not_allowed", format!("no such message in this conversation: {id}")));
    // A message that does not exist.
    b.delete_message(TO_1, MessageId(12345), DeleteScope::Me).unwrap();
    assert_eq!(amend_error(&mut b), ("not_allowed".into(), "no such message in this conversation: 12345".into()));

    // Groups: members who saw it may hide it; outsiders and members who
    // joined after it may not.
    a.create_group("g", "Team", &[UserId(2)]).unwrap();
    let g = group_id(&mut a);
    let in_group = ConversationRef::Group(g);
    a.send_group(g, "g1", MessageKind::Text, "before c").unwrap();
    let early = sent_id(&mut a, "g1").0;
    c.delete_message(in_group, early, DeleteScope::Me).unwrap();
    assert_eq!(amend_error(&mut c), ("not_allowed".into(), "not a member of this group".into()));
    a.change_members("add_members", g, &[UserId(3)]).unwrap();
    group_id(&mut a);
    c.wait_for(WAIT, "added", |e| matches!(e, Event::Message(m) if m.kind == MessageKind::System).then_some(()))
        .unwrap();
    c.delete_message(in_group, early, DeleteScope::Me).unwrap();
    assert_eq!(amend_error(&mut c), ("not_allowed".into(), format!("no such message in this conversation: {early}")));
    b.delete_message(in_group, early, DeleteScope::Me).unwrap();
    let (_, m) = amended_frame(&mut b, true);
    assert_eq!((m.id, m.group, m.hidden_at.is_some()), (early, Some(g), true));
    let at_a = a.drain(Duration::from_millis(300)).unwrap();
    assert!(amendments(&at_a).is_empty(), "the group is not told: {at_a:?}");
}

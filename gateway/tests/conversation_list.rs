//! The conversation list over real sockets with the real store: messages
//! sent while the user was offline are listed with their unread counts,
//! most recent first; a read on another device of the user lowers the
//! count; the user's own send moves a conversation up without counting; a
//! user added to a group finds it in the list, with its name and member
//! count, and keeps it (up to the removal) after being removed; pages
//! follow the `next` cursor; bad input for `conversations` gets the
//! documented errors.

mod util;

use chatgw_client::{Client, ConversationItem, ConversationRef, Event, GroupId, MessageId, MessageKind, UserId};
use util::*;

/// The next `conversations` answer: its items and its `next` cursor.
fn page(c: &mut Client, before: Option<MessageId>, limit: usize) -> (Vec<ConversationItem>, Option<MessageId>) {
    c.conversations(before, limit).unwrap();
    c.wait_for(WAIT, "conversations", |e| match e {
        Event::Conversations { items, next } => Some((items.clone(), *next)),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The first page of up to 100: (conversation, last message id, unread).
fn summary(c: &mut Client) -> Vec<(ConversationRef, MessageId, u64)> {
    let (items, next) = page(c, None, 100);
    assert_eq!(next, None, "one page holds them all");
    items.iter().map(|i| (i.conversation, i.last.as_ref().expect("a last message").id, i.unread)).collect()
}

/// Wait until device `c` is told that its user read `peer` up to `up_to`
/// (the read receipt every device of the reader gets).
fn read_receipt(c: &mut Client, up_to: MessageId) {
    c.wait_for(WAIT, "read receipt", |e| match e {
        Event::Receipt(r) if r.status == "read" && r.up_to == Some(up_to) => Some(()),
        _ => None,
    })
    .unwrap()
}

fn send(c: &mut Client, to: u64, cid: &str, body: &str) -> MessageId {
    c.send_message(UserId(to), cid, MessageKind::Text, body).unwrap();
    sent_id(c, cid).0
}

fn send_to_group(c: &mut Client, g: GroupId, cid: &str, body: &str) -> MessageId {
    c.send_group(g, cid, MessageKind::Text, body).unwrap();
    sent_id(c, cid).0
}

each_store!(unread_counts_follow_offline_sends_reads_elsewhere_and_group_joins);
fn unread_counts_follow_offline_sends_reads_elsewhere_and_group_joins(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let (p2, p3) = (ConversationRef::Peer(UserId(2)), ConversationRef::Peer(UserId(3)));
    let mut b = gw.online(2);
    let mut c = gw.online(3);

    // User 1 is offline: three messages from 2, then one from 3.
    let m1 = send(&mut b, 1, "b1", "one");
    let m2 = send(&mut b, 1, "b2", "two");
    let m3 = send(&mut b, 1, "b3", "three");
    let m4 = send(&mut c, 1, "c1", "from three");

    let mut phone = gw.online(1);
    let (items, next) = page(&mut phone, None, 10);
    assert_eq!(next, None);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!((items[0].conversation, items[0].unread), (p3, 1), "the most recent first");
    let last = items[0].last.as_ref().expect("the last message");
    assert_eq!((last.id, last.from, last.kind), (m4, UserId(3), MessageKind::Text));
    assert_eq!(last.body, r#""from three""#, "the body as stored");
    assert_eq!((items[1].conversation, items[1].unread), (p2, 3));
    assert_eq!(items[1].last.as_ref().map(|m| m.id), Some(m3));
    assert_eq!((items[1].name.as_ref(), items[1].members), (None, None), "direct conversations have no name");

    // Another device of user 1 reads 2's messages up to the second: one
    // left. Then up to the last: none.
    let mut laptop = gw.online(1);
    laptop.mark_read(UserId(2), m2).unwrap();
    read_receipt(&mut phone, m2);
    assert_eq!(summary(&mut phone), vec![(p3, m4, 1), (p2, m3, 1)], "a read on another device");
    laptop.mark_read(UserId(2), m3).unwrap();
    read_receipt(&mut phone, m3);
    assert_eq!(summary(&mut phone), vec![(p3, m4, 1), (p2, m3, 0)]);
    // A read behind the mark changes nothing.
    laptop.mark_read(UserId(2), m1).unwrap();
    assert_eq!(summary(&mut laptop), vec![(p3, m4, 1), (p2, m3, 0)]);

    // User 1's own send moves the conversation up and counts for 2 only.
    let own = send(&mut phone, 2, "a1", "mine");
    assert_eq!(summary(&mut phone), vec![(p2, own, 0), (p3, m4, 1)], "an own message is not unread");
    assert_eq!(summary(&mut b), vec![(ConversationRef::Peer(UserId(1)), own, 1)]);

    // 2 creates a group with 3, then adds 1: 1 finds it in the list, with
    // the announcement of the addition as its last message.
    b.create_group("g1", "Trip", &[UserId(3)]).unwrap();
    let g = group_id(&mut b);
    send_to_group(&mut c, g, "cg1", "before 1 joined");
    b.change_members("add_members", g, &[UserId(1)]).unwrap();
    group_id(&mut b);
    let (items, _) = page(&mut phone, None, 10);
    assert_eq!(items.len(), 3, "{items:?}");
    let group = &items[0];
    assert_eq!(group.conversation, ConversationRef::Group(g), "the group joined is the most recent");
    assert_eq!((group.name.as_deref(), group.members, group.member), (Some("Trip"), Some(3), Some(true)));
    let added = group.last.as_ref().expect("the announcement");
    assert_eq!((added.kind, added.from, group.unread), (MessageKind::System, UserId(2), 0), "{added:?}");
    assert!(added.body.contains("added"), "{}", added.body);

    // A group message counts; a group read clears it.
    let gm = send_to_group(&mut c, g, "cg2", "welcome");
    assert_eq!(summary(&mut phone)[0], (ConversationRef::Group(g), gm, 1));
    laptop.mark_group_read(g, gm).unwrap();
    read_receipt(&mut phone, gm);
    assert_eq!(summary(&mut phone)[0], (ConversationRef::Group(g), gm, 0));

    // Paging: two at a time, then the rest.
    let (first, next) = page(&mut phone, None, 2);
    assert_eq!(first.iter().map(|i| i.conversation).collect::<Vec<_>>(), vec![ConversationRef::Group(g), p2]);
    assert_eq!(next, Some(own), "the cursor is the last message id of the page's last conversation");
    let (rest, next) = page(&mut phone, next, 2);
    assert_eq!((rest.iter().map(|i| i.conversation).collect::<Vec<_>>(), next), (vec![p3], None));

    // Removed from the group, 1 keeps it in the list up to the removal.
    b.change_members("remove_members", g, &[UserId(1)]).unwrap();
    group_id(&mut b);
    let removal = summary(&mut phone)[0];
    send_to_group(&mut c, g, "cg3", "after 1 left");
    let (items, _) = page(&mut phone, None, 1);
    assert_eq!((items[0].conversation, items[0].last.as_ref().map(|m| m.id)), (removal.0, Some(removal.1)));
    assert_eq!((items[0].members, items[0].member), (Some(2), Some(false)), "{items:?}");
    assert_eq!(items[0].last.as_ref().map(|m| m.kind), Some(MessageKind::System));
}

each_store!(bad_input_for_conversations);
fn bad_input_for_conversations(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    for (frame, message) in [
        (r#"{"type":"conversations","limit":0}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","limit":101}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","limit":"5"}"#, "field `limit`: must be an integer from 1 to 100"),
        (r#"{"type":"conversations","before":7}"#, "field `before`: must be an id as a decimal string"),
        (r#"{"type":"conversations","before":"-1"}"#, "field `before`: must be an id as a decimal string"),
    ] {
        a.send_raw(frame).unwrap();
        let got = a
            .wait_for(WAIT, "error", |e| match e {
                Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
                Event::Conversations { .. } => panic!("a page where an error was due: {frame}"),
                _ => None,
            })
            .unwrap();
        assert_eq!(got, ("bad_field".to_owned(), message.to_owned()), "{frame}");
    }
    // Nothing yet, and a cursor past everything: empty pages, no error.
    assert_eq!(page(&mut a, None, 100), (vec![], None));
    assert_eq!(page(&mut a, Some(MessageId(1)), 1), (vec![], None));
    a.send_raw(r#"{"type":"conversations"}"#).unwrap();
    let (items, next) = a
        .wait_for(WAIT, "conversations", |e| match e {
            Event::Conversations { items, next } => Some((items.len(), *next)),
            _ => None,
        })
        .unwrap();
    assert_eq!((items, next), (0, None), "the defaults");
}

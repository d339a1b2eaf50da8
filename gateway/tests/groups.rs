//! Group chats over real sockets with the real store: fan-out, offline
//! members, the member limit, removal, non-members, per-member receipts.

mod util;

use std::{collections::HashMap, time::Duration};

use chatgw_client::{Client, Event, GroupId, MessageEvent, MessageId, MessageKind, UserId};
use util::*;

fn group_reply(c: &mut Client) -> (GroupId, Vec<(UserId, bool)>) {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, members, .. } => Some((*id, members.clone())),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn create(c: &mut Client, members: &[u64]) -> GroupId {
    let users: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.create_group("create-1", "Team", &users).unwrap();
    group_reply(c).0
}

fn messages(events: &[Event]) -> Vec<MessageEvent> {
    events.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.clone()) } else { None }).collect()
}

fn system_events(events: &[Event]) -> Vec<String> {
    messages(events)
        .into_iter()
        .filter(|m| m.kind == MessageKind::System)
        .map(|m| serde_json::from_str::<serde_json::Value>(&m.body).unwrap()["event"].as_str().unwrap().to_owned())
        .collect()
}

each_store!(group_of_three_with_one_member_offline);
fn group_of_three_with_one_member_offline(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let g = create(&mut a, &[2, 3]);
    a.send_group(g, "g1", MessageKind::Text, "hello team").unwrap();
    let (id, _) = sent_id(&mut a, "g1");
    let m = next_chat(&mut b);
    assert_eq!((m.id, m.group, m.from, m.body.as_str()), (id, Some(g), UserId(1), "hello team"));

    // User 3 was offline: sync brings the creation and the message, once each.
    let mut c = gw.connect(3);
    let events = sync_all(&mut c);
    assert_eq!(system_events(&events), vec!["created"]);
    let chat: Vec<_> = messages(&events).into_iter().filter(|m| m.kind != MessageKind::System).collect();
    assert_eq!(chat.len(), 1);
    assert_eq!(chat[0].id, id);
    let again = c.drain(Duration::from_millis(300)).unwrap();
    assert!(messages(&again).is_empty(), "{again:?}");
}

each_store!(all_256_members_online_receive_exactly_once_and_the_257th_is_refused);
fn all_256_members_online_receive_exactly_once_and_the_257th_is_refused(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut clients: Vec<Client> = (1..=256u64).map(|u| gw.online(u)).collect();
    let others: Vec<u64> = (2..=256).collect();
    let g = create(&mut clients[0], &others);
    clients[0].send_group(g, "big", MessageKind::Text, "to all 256").unwrap();
    let (id, _) = sent_id(&mut clients[0], "big");
    for c in clients.iter_mut().skip(1) {
        assert_eq!(next_chat(c).id, id);
    }
    std::thread::sleep(Duration::from_millis(200));
    for c in clients.iter_mut() {
        let extra = c.drain(Duration::from_millis(20)).unwrap();
        assert!(messages(&extra).iter().all(|m| m.id != id), "delivered twice: {extra:?}");
    }
    // The 257th member.
    clients[0].change_members("add_members", g, &[UserId(257)]).unwrap();
    let (code, _) = next_error(&mut clients[0]);
    assert_eq!(code, "group_full");
    clients[0].group_info(g).unwrap();
    let (_, members) = group_reply(&mut clients[0]);
    assert_eq!(members.len(), 256, "nothing changed");
    // A group cannot be created over the limit either.
    let too_many: Vec<UserId> = (2..=257).map(UserId).collect();
    clients[0].create_group("too-big", "x", &too_many).unwrap();
    assert_eq!(next_error(&mut clients[0]), ("group_full".into(), Some("too-big".into())));
}

each_store!(removed_member_is_cut_off);
fn removed_member_is_cut_off(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut c = gw.online(3);
    let g = create(&mut a, &[2, 3]);
    a.send_group(g, "before", MessageKind::Text, "before").unwrap();
    sent_id(&mut a, "before");
    assert_eq!(next_chat(&mut c).body, "before");

    a.change_members("remove_members", g, &[UserId(3)]).unwrap();
    group_reply(&mut a);
    // The removed member hears of the removal...
    let removal = c
        .wait_for(WAIT, "removal", |e| match e {
            Event::Message(m) if m.kind == MessageKind::System && m.body.contains("\"removed\"") => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert!(removal.body.contains("\"3\""));
    // ...and of nothing after it.
    a.send_group(g, "after", MessageKind::Text, "after").unwrap();
    sent_id(&mut a, "after");
    let later = c.drain(Duration::from_millis(400)).unwrap();
    assert!(messages(&later).is_empty(), "{later:?}");
    c.send_group(g, "nope", MessageKind::Text, "x").unwrap();
    assert_eq!(next_error(&mut c), ("not_allowed".into(), Some("nope".into())));
    c.group_history(g, None, 50).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");
    c.group_info(g).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");
    // Nor on a fresh device by sync.
    let mut c2 = gw.connect(3);
    let all = sync_all(&mut c2);
    assert!(messages(&all).iter().all(|m| m.body != "after"), "{all:?}");
}

each_store!(non_members_are_refused_everything_and_learn_nothing);
fn non_members_are_refused_everything_and_learn_nothing(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let g = create(&mut a, &[2]);
    a.send_group(g, "m", MessageKind::Text, "secret").unwrap();
    let (id, _) = sent_id(&mut a, "m");
    let mut d = gw.online(4);
    let ghost = GroupId(g.0 + 12345);
    for group in [g, ghost] {
        let mut answers = Vec::new();
        d.send_group(group, "x", MessageKind::Text, "x").unwrap();
        answers.push(next_error(&mut d));
        d.group_history(group, None, 10).unwrap();
        answers.push(next_error(&mut d));
        d.group_info(group).unwrap();
        answers.push(next_error(&mut d));
        d.change_members("add_members", group, &[UserId(4)]).unwrap();
        answers.push(next_error(&mut d));
        d.leave_group(group).unwrap();
        answers.push(next_error(&mut d));
        d.ack_group_delivered(group, &[id]).unwrap();
        answers.push(next_error(&mut d));
        d.mark_group_read(group, id).unwrap();
        answers.push(next_error(&mut d));
        d.message_info(group, id).unwrap();
        answers.push(next_error(&mut d));
        assert!(answers.iter().all(|(code, _)| code == "not_allowed"), "{answers:?}");
    }
    // A plain member may not change membership either.
    let mut b = gw.online(2);
    b.change_members("add_members", g, &[UserId(4)]).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");
}

each_store!(per_member_receipts_and_message_info);
fn per_member_receipts_and_message_info(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    let g = create(&mut a, &[2, 3]);
    a.send_group(g, "r", MessageKind::Text, "ack me").unwrap();
    let (id, _) = sent_id(&mut a, "r");
    for m in [next_chat(&mut b), next_chat(&mut c)] {
        assert_eq!(m.id, id);
    }
    b.ack_group_delivered(g, &[id]).unwrap();
    c.ack_group_delivered(g, &[id]).unwrap();
    b.mark_group_read(g, id).unwrap();

    let mut delivered: HashMap<UserId, Vec<MessageId>> = HashMap::new();
    let mut read: HashMap<UserId, Vec<MessageId>> = HashMap::new();
    while delivered.len() < 2 || read.is_empty() {
        let r = a
            .wait_for(WAIT, "group receipts", |e| match e {
                Event::Receipt(r) if r.group == Some(g) => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        let into = if r.status == "delivered" { &mut delivered } else { &mut read };
        for (by, ids) in r.items {
            into.entry(by).or_default().extend(ids);
        }
    }
    assert_eq!(delivered, HashMap::from([(UserId(2), vec![id]), (UserId(3), vec![id])]));
    assert_eq!(read, HashMap::from([(UserId(2), vec![id])]));

    a.message_info(g, id).unwrap();
    let (recipients, dl, rd) = a
        .wait_for(WAIT, "message info", |e| match e {
            Event::MessageInfo { recipients, delivered, read, .. } => {
                Some((*recipients, delivered.clone(), read.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(recipients, 2);
    assert_eq!(dl.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![UserId(2), UserId(3)]);
    assert_eq!(rd.iter().map(|(u, _)| *u).collect::<Vec<_>>(), vec![UserId(2)]);
    assert!(dl.iter().chain(&rd).all(|(_, at)| *at > 0));
    // Only the sender may ask.
    b.message_info(g, id).unwrap();
    assert_eq!(next_error(&mut b).0, "not_allowed");
    // A repeated ack records nothing new.
    c.ack_group_delivered(g, &[id]).unwrap();
    let quiet = a.drain(Duration::from_millis(300)).unwrap();
    assert!(quiet.iter().all(|e| !matches!(e, Event::Receipt(_))), "{quiet:?}");
}

each_store!(membership_changes_reach_offline_members_by_sync_and_newcomers_see_no_history);
fn membership_changes_reach_offline_members_by_sync_and_newcomers_see_no_history(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let g = create(&mut a, &[2, 3]);
    a.send_group(g, "old", MessageKind::Text, "before you joined").unwrap();
    sent_id(&mut a, "old");
    a.change_members("add_members", g, &[UserId(4)]).unwrap();
    group_reply(&mut a);
    a.change_members("promote", g, &[UserId(2)]).unwrap();
    group_reply(&mut a);
    a.send_group(g, "new", MessageKind::Text, "welcome").unwrap();
    sent_id(&mut a, "new");

    // Member 3 was offline the whole time.
    let mut c = gw.connect(3);
    let events = sync_all(&mut c);
    assert_eq!(system_events(&events), vec!["created", "added", "promoted"]);

    // Member 4 sees its own arrival and what came after, nothing before.
    let mut d = gw.connect(4);
    let events = sync_all(&mut d);
    let bodies: Vec<String> =
        messages(&events).iter().filter(|m| m.kind != MessageKind::System).map(|m| m.body.clone()).collect();
    assert_eq!(bodies, vec!["welcome"]);
    assert_eq!(system_events(&events), vec!["added", "promoted"]);
    d.group_history(g, None, 50).unwrap();
    let page = d
        .wait_for(WAIT, "history", |e| match e {
            Event::History { messages, .. } => Some(messages.clone()),
            _ => None,
        })
        .unwrap();
    assert!(page.iter().all(|m| m.body != "before you joined"), "{page:?}");
    assert!(page.iter().any(|m| m.body == "welcome"));

    // Leaving: the last admin hands over, the leaver is out.
    a.leave_group(g).unwrap();
    let (_, members) = group_reply(&mut a);
    assert!(!members.iter().any(|(u, _)| *u == UserId(1)));
    assert!(members.iter().any(|(u, admin)| *u == UserId(2) && *admin));
}

each_store!(create_group_is_idempotent_by_request_id);
fn create_group_is_idempotent_by_request_id(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    a.create_group("same-request", "Once", &[UserId(2)]).unwrap();
    let (first, _) = group_reply(&mut a);
    a.create_group("same-request", "Once", &[UserId(2)]).unwrap();
    let (second, _) = group_reply(&mut a);
    assert_eq!(first, second);
    let mut b = gw.connect(2);
    assert_eq!(system_events(&sync_all(&mut b)), vec!["created"]);
}

each_store!(receipts_do_not_follow_a_sender_who_left);
fn receipts_do_not_follow_a_sender_who_left(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let g = create(&mut a, &[2, 3]);
    a.send_group(g, "bye", MessageKind::Text, "last words").unwrap();
    let (id, _) = sent_id(&mut a, "bye");
    assert_eq!(next_chat(&mut b).id, id);
    a.leave_group(g).unwrap();
    group_reply(&mut a);
    b.ack_group_delivered(g, &[id]).unwrap();
    b.mark_group_read(g, id).unwrap();
    let after = a.drain(Duration::from_millis(400)).unwrap();
    assert!(after.iter().all(|e| !matches!(e, Event::Receipt(_))), "{after:?}");
    // The marks are kept all the same.
    let mut a2 = gw.connect(1);
    let events = sync_all(&mut a2);
    assert!(events.iter().all(|e| !matches!(e, Event::Receipt(r) if r.group == Some(g))), "{events:?}");
}

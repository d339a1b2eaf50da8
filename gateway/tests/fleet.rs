//! Three gateway processes on one PostgreSQL database, their registry a
//! `redis-server` of their own (or a Redis Cluster of three): everything
//! that works on one node works across nodes, with the same guarantees.
//! Each test starts its own fleet.

mod util;

use std::{collections::HashMap, time::Duration};

use chatgw_client::{Client, Event, GroupId, MessageEvent, MessageId, MessageKind, UserId};
use util::{fleet::TestFleet, *};

fn chats(events: &[Event]) -> Vec<MessageEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.kind != MessageKind::System => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Send `body` from `c` to `to` and wait for `sent`, resending with the same
/// client id while the answer is `unavailable` (the documented retry).
fn send_acked(c: &mut Client, to: Option<UserId>, group: Option<GroupId>, client_id: &str, body: &str) -> MessageId {
    for _ in 0..20 {
        match (to, group) {
            (Some(to), _) => c.send_message(to, client_id, MessageKind::Text, body).unwrap(),
            (_, Some(g)) => c.send_group(g, client_id, MessageKind::Text, body).unwrap(),
            _ => unreachable!("a peer or a group"),
        }
        let answer = c
            .wait_for(WAIT, "sent", |e| match e {
                Event::Sent { client_id: cid, id, .. } if cid == client_id => Some(Ok(*id)),
                Event::Error { code, reference, .. } if reference.as_deref() == Some(client_id) => {
                    Some(Err(code.clone()))
                }
                _ => None,
            })
            .unwrap();
        match answer {
            Ok(id) => return id,
            Err(code) if code == "unavailable" => std::thread::sleep(Duration::from_millis(50)),
            Err(code) => panic!("send refused: {code}"),
        }
    }
    panic!("send {client_id} never acknowledged");
}

#[test]
fn one_to_one_and_receipts_cross_nodes() {
    let fleet = TestFleet::start(3);
    let mut alice = fleet.online(0, 1);
    let mut bob = fleet.online(1, 2);
    fleet.settle();
    alice.send_message(UserId(2), "m1", MessageKind::Text, "hi bob").unwrap();
    let (id, _) = sent_id(&mut alice, "m1");
    let m = next_chat(&mut bob);
    assert_eq!((m.id, m.from, m.body.as_str()), (id, UserId(1), "hi bob"));

    // Receipts go back to the sender's node.
    bob.ack_delivered(UserId(1), &[id]).unwrap();
    let r = alice
        .wait_for(WAIT, "delivered receipt", |e| match e {
            Event::Receipt(r) if r.status == "delivered" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((r.by, r.ids.clone()), (UserId(2), vec![id]));
    bob.mark_read(UserId(1), id).unwrap();
    let r = alice
        .wait_for(WAIT, "read receipt", |e| match e {
            Event::Receipt(r) if r.status == "read" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((r.by, r.up_to), (UserId(2), Some(id)));

    // And nothing twice.
    let extra = bob.drain(Duration::from_millis(300)).unwrap();
    assert!(chats(&extra).is_empty(), "{extra:?}");
    assert!(fleet.metric(0, "chatgw_fleet_link_events_sent_total") >= 1.0);
    assert!(fleet.metric(1, "chatgw_fleet_link_events_received_total") >= 1.0);
}

#[test]
fn the_devices_of_one_user_on_three_nodes_all_get_each_message_once() {
    let fleet = TestFleet::start(3);
    let mut phones: Vec<Client> = (0..3).map(|i| fleet.online(i, 10)).collect();
    let mut sender = fleet.online(1, 11);
    fleet.settle();
    let mut ids = Vec::new();
    for k in 0..5 {
        let cid = format!("k{k}");
        sender.send_message(UserId(10), &cid, MessageKind::Text, &format!("m{k}")).unwrap();
        ids.push(sent_id(&mut sender, &cid).0);
    }
    for (i, phone) in phones.iter_mut().enumerate() {
        let got: Vec<_> = (0..5).map(|_| next_chat(phone).id).collect();
        assert_eq!(got, ids, "device on node {i}");
        let extra = phone.drain(Duration::from_millis(300)).unwrap();
        assert!(chats(&extra).is_empty(), "device on node {i}: {extra:?}");
    }
    // The sender's own message reaches the sender's other device elsewhere.
    let mut sender_other = fleet.online(2, 11);
    fleet.settle();
    sender.send_message(UserId(10), "k5", MessageKind::Text, "from phone").unwrap();
    let (id, _) = sent_id(&mut sender, "k5");
    assert_eq!(next_chat(&mut sender_other).id, id);
}

/// Members 1..=256 spread over the three nodes (member u on node u % 3).
#[test]
fn a_group_of_256_over_three_nodes_gets_each_message_once() {
    let fleet = TestFleet::start(3);
    let mut members: Vec<Client> = (1..=256u64).map(|u| fleet.online((u % 3) as usize, u)).collect();
    fleet.settle();
    let others: Vec<UserId> = (2..=256).map(UserId).collect();
    members[0].create_group("g", "All", &others).unwrap();
    let g = group_id(&mut members[0]);
    let mut ids = Vec::new();
    for k in 0..3 {
        ids.push(send_acked(&mut members[0], None, Some(g), &format!("g{k}"), &format!("to all {k}")));
    }
    for (u, c) in members.iter_mut().enumerate().skip(1) {
        let got: Vec<_> = (0..3).map(|_| next_chat(c).id).collect();
        assert_eq!(got, ids, "member {}", u + 1);
    }
    std::thread::sleep(Duration::from_millis(300));
    for (u, c) in members.iter_mut().enumerate().skip(1) {
        let extra = c.drain(Duration::from_millis(1)).unwrap();
        assert!(chats(&extra).is_empty(), "member {} got more: {extra:?}", u + 1);
    }
    // One frame per destination node per message, not one per member.
    let frames = fleet.metric(0, "chatgw_fleet_link_events_sent_total");
    assert!(frames <= 3.0 * 2.0 + 2.0 * 3.0, "{frames} link events for 3 messages (and the group's announcements)");
}

#[test]
fn a_membership_change_acknowledged_on_one_node_applies_to_the_next_send_on_another() {
    let fleet = TestFleet::start(3);
    let mut owner = fleet.online(0, 1);
    let mut owner_elsewhere = fleet.online(1, 1);
    let mut member = fleet.online(2, 2);
    let mut leaving = fleet.online(2, 3);
    fleet.settle();
    owner.create_group("g", "Team", &[UserId(2), UserId(3)]).unwrap();
    let g = group_id(&mut owner);
    // Node 2 caches the group's membership by sending to it once.
    send_acked(&mut owner_elsewhere, None, Some(g), "warm", "warm up");
    next_chat(&mut leaving);
    next_chat(&mut member);

    owner.change_members("remove_members", g, &[UserId(3)]).unwrap();
    group_id(&mut owner);
    // Acknowledged on node 1; the next send on node 2 must not reach user 3.
    let id = send_acked(&mut owner_elsewhere, None, Some(g), "after", "after removal");
    assert_eq!(next_chat(&mut member).id, id);
    let extra = leaving.drain(Duration::from_millis(500)).unwrap();
    assert!(chats(&extra).iter().all(|c| c.id != id), "a removed member got a later message: {extra:?}");
    let mut again = fleet.connect(0, 3);
    let synced = sync_all(&mut again);
    assert!(chats(&synced).iter().all(|c| c.id != id), "stored for a removed member: {synced:?}");
}

#[test]
fn a_resend_to_another_node_after_its_node_died_gets_the_original_id_and_is_stored_once() {
    let mut fleet = TestFleet::start(3);
    let mut alice = fleet.online(0, 1);
    let mut bob = fleet.online(2, 2);
    fleet.settle();
    alice.send_message(UserId(2), "once", MessageKind::Text, "exactly once").unwrap();
    let (id, _) = sent_id(&mut alice, "once");
    assert_eq!(next_chat(&mut bob).id, id);
    fleet.kill(0);
    // The device resends (it never saw the answer, say) through node 2.
    let mut alice = fleet.online(1, 1);
    alice.send_message(UserId(2), "once", MessageKind::Text, "exactly once").unwrap();
    assert_eq!(sent_id(&mut alice, "once"), (id, true));
    let extra = bob.drain(Duration::from_millis(500)).unwrap();
    assert!(chats(&extra).is_empty(), "delivered twice: {extra:?}");
    let mut fresh = fleet.connect(1, 2);
    let all = sync_all(&mut fresh);
    assert_eq!(chats(&all).iter().filter(|m| m.id == id).count(), 1);
}

#[test]
fn keys_changed_reaches_a_contact_on_another_node_live_and_by_sync() {
    let fleet = TestFleet::start(3);
    let mut phone = fleet.online_device(0, 1, "phone");
    let mut bob = fleet.online(1, 2);
    let carol_first = fleet.online(2, 3);
    fleet.settle();
    send_acked(&mut phone, Some(UserId(2)), None, "to-bob", "hi");
    send_acked(&mut phone, Some(UserId(3)), None, "to-carol", "hi");
    let carol_cursor = carol_first.cursor();
    carol_first.close();
    util::keys::upload(&mut phone, &util::keys::device_keys(1, "phone", 7, 1), &[]);
    assert_eq!(util::keys::next_keys_changed(&mut bob), UserId(1), "live, from another node");
    let mut carol = fleet.connect(2, 3);
    carol.set_cursor(carol_cursor);
    let replay = sync_all(&mut carol);
    assert!(replay.iter().any(|e| matches!(e, Event::KeysChanged { user: UserId(1), .. })), "{replay:?}");
}

#[test]
fn sync_and_history_through_any_node() {
    let fleet = TestFleet::start(3);
    let mut alice = fleet.online(0, 1);
    let mut ids = Vec::new();
    for k in 0..6 {
        // Alternate the sending node: two nodes commit to one inbox.
        let node = k % 2;
        let mut dev = if node == 0 { None } else { Some(fleet.online(1, 1)) };
        let c = dev.as_mut().unwrap_or(&mut alice);
        let cid = format!("h{k}");
        c.send_message(UserId(2), &cid, MessageKind::Text, &format!("h{k}")).unwrap();
        ids.push(sent_id(c, &cid).0);
    }
    let mut bob = fleet.connect(2, 2);
    let got: Vec<_> = chats(&sync_all(&mut bob)).into_iter().map(|m| m.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, sorted, "every message once");
    bob.history(UserId(1), None, 50).unwrap();
    let page = bob
        .wait_for(WAIT, "history", |e| match e {
            Event::History { messages, .. } => Some(messages.len()),
            _ => None,
        })
        .unwrap();
    assert_eq!(page, 6);
}

#[test]
fn redis_cluster_registry_cross_node_one_to_one_and_group() {
    let fleet = TestFleet::start_on_redis_cluster(3);
    let mut users: HashMap<u64, Client> = (1..=30u64).map(|u| (u, fleet.online((u % 3) as usize, u))).collect();
    fleet.settle();
    for u in 1..=29u64 {
        let c = users.get_mut(&u).unwrap();
        c.send_message(UserId(u + 1), "p", MessageKind::Text, "pair").unwrap();
        let (id, _) = sent_id(c, "p");
        assert_eq!(next_chat(users.get_mut(&(u + 1)).unwrap()).id, id, "user {} on node {}", u + 1, (u + 1) % 3);
    }
    let others: Vec<UserId> = (2..=30).map(UserId).collect();
    let creator = users.get_mut(&1).unwrap();
    creator.create_group("g", "All", &others).unwrap();
    let g = group_id(creator);
    let id = send_acked(creator, None, Some(g), "gm", "to all");
    for u in 2..=30u64 {
        assert_eq!(next_chat(users.get_mut(&u).unwrap()).id, id, "member {u}");
    }
}

/// Invariant (a): two nodes commit to one inbox at once; the device, live on
/// a third node, gets every event once and in each sender's order, by the
/// live path (gaps caught up from the store) and by a later `sync`.
#[test]
fn two_nodes_committing_to_one_inbox_at_once_skip_nothing() {
    const EACH: usize = 100;
    let fleet = TestFleet::start(3);
    let mut reader = fleet.online(2, 100);
    fleet.settle();
    let sent: Vec<Vec<MessageId>> = std::thread::scope(|s| {
        let senders: Vec<_> = [(0usize, 101u64), (1, 102)]
            .into_iter()
            .map(|(node, user)| {
                let fleet = &fleet;
                s.spawn(move || {
                    let mut c = fleet.online(node, user);
                    (0..EACH)
                        .map(|k| {
                            let cid = format!("c{k}");
                            c.send_message(UserId(100), &cid, MessageKind::Text, &cid).unwrap();
                            sent_id(&mut c, &cid).0
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut got: Vec<MessageEvent> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < 2 * EACH && std::time::Instant::now() < deadline {
        if let Some(Event::Message(m)) = reader.next_event(Duration::from_millis(100)).unwrap() {
            got.push(m);
        }
    }
    for (from, ids) in [(101u64, &sent[0]), (102, &sent[1])] {
        let live: Vec<MessageId> = got.iter().filter(|m| m.from == UserId(from)).map(|m| m.id).collect();
        assert_eq!(&live, ids, "live events from {from}: each once, in order");
    }
    let mut fresh = fleet.connect(0, 100);
    let synced = chats(&sync_all(&mut fresh));
    assert_eq!(synced.len(), 2 * EACH, "sync from zero has every event once");
}

#[test]
fn a_fleet_node_refuses_the_embedded_store_an_unreachable_registry_and_a_taken_node_id() {
    let refused = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--secret", SECRET])
            .args(args)
            .env("CHATGW_LOG", "error")
            .output()
            .expect("chatgw runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let err = refused(&["--data", data, "--cluster", "redis://127.0.0.1:1", "--link-listen", "127.0.0.1:0"]);
    assert!(err.contains("embedded store belongs to one node"), "{err}");

    let fleet = TestFleet::start(1);
    let store = fleet.store.as_str().to_owned();
    let err = refused(&[
        "--data",
        data,
        "--store",
        &store,
        "--cluster",
        "redis://127.0.0.1:1",
        "--link-listen",
        "127.0.0.1:0",
    ]);
    assert!(err.to_lowercase().contains("redis") || err.contains("registry"), "{err}");
    let err = refused(&[
        "--data",
        data,
        "--store",
        &store,
        "--cluster",
        &fleet.registry.url(),
        "--node-id",
        "1",
        "--link-listen",
        "127.0.0.1:0",
        "--lease",
        "2s",
    ]);
    assert!(err.contains("node") && err.contains('1'), "a second node 1 while the first lives: {err}");
    let err = refused(&["--data", data, "--store", &store, "--cluster", "http://x", "--link-listen", "127.0.0.1:0"]);
    assert!(err.contains("redis://"), "{err}");
}

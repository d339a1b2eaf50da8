//! Two gateways with different node ids on one PostgreSQL database, as a
//! fleet runs them: a device that syncs through either one, from the id of
//! the last event it received, never skips an event and never gets one
//! twice, whichever gateway committed it; and one `(sender, client id)`
//! sent through both is one message, with one id in both `sent` replies
//! (or, for two different bodies, one `sent` and one `client_id_conflict`).
//! Each test starts its own server (`TestPostgres`).

mod util;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Barrier,
};

use chatgw_client::{Client, Event, GroupId, MessageId, MessageKind, UserId};
use chatgw_gateway::store::{self, StoreUrl};
use chatgw_protocol::Snowflake;
use chatgw_storage::{conformance::TestPostgres, MessageStore, PostgresOptions, PostgresStore};
use util::*;

/// Two gateways on one freshly initialised database, node ids 1 and 2;
/// node 2's ids resume `ahead_ms` ahead of the clock, as after a run on a
/// host whose clock was ahead, so its ids are larger than node 1's
/// whenever they commit.
fn two_gateways(io: IoDriver, pg: &TestPostgres, ahead_ms: u64) -> [TestGateway; 2] {
    let db = pg.create_database();
    let url: StoreUrl = pg.url(&db).parse().expect("a postgres URL parses");
    store::init(&url).expect("store init");
    if ahead_ms > 0 {
        let s = PostgresStore::open(&pg.url(&db), &PostgresOptions::default()).expect("open");
        let ahead = Snowflake::new(2).next_at(chatgw_protocol::now_ms() + ahead_ms);
        s.commit(&[], ahead).expect("record node 2's high water");
    }
    [1, 2].map(|node| {
        TestGateway::start_with(io, 1, |c| {
            c.store = url.clone();
            c.node_id = node;
        })
    })
}

/// The ids of the messages in `events`.
fn message_ids(events: &[Event]) -> Vec<MessageId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.id),
            _ => None,
        })
        .collect()
}

each_driver!(a_device_syncing_through_either_gateway_gets_every_event_of_both_once);
fn a_device_syncing_through_either_gateway_gets_every_event_of_both_once(io: IoDriver) {
    let pg = TestPostgres::start();
    // Node 2's ids are a minute ahead: each of node 1's messages committed
    // after one of node 2's has a smaller id than it.
    let gws = two_gateways(io, &pg, 60_000);
    const PER_SENDER: usize = 60;
    const CHUNK: usize = 10;
    let receiver = UserId(2);
    let chunk_done = Barrier::new(2);
    let (sent, received) = std::thread::scope(|scope| {
        // User 10 sends through gateway 0, user 11 through gateway 1, in
        // chunks sent without waiting for each `sent`; a chunk of each
        // commits before the next chunk of either is sent, so node 1's
        // messages land after node 2's larger ids again and again.
        let senders: Vec<_> = [(10u64, &gws[0]), (11, &gws[1])]
            .into_iter()
            .map(|(user, gw)| {
                let chunk_done = &chunk_done;
                scope.spawn(move || {
                    let mut c = gw.connect(user);
                    let mut ids = Vec::new();
                    for chunk in 0..PER_SENDER / CHUNK {
                        let cids: Vec<String> = (0..CHUNK).map(|i| format!("u{user}-{chunk}-{i}")).collect();
                        for cid in &cids {
                            c.send_message(receiver, cid, MessageKind::Text, cid).unwrap();
                        }
                        ids.extend(cids.iter().map(|cid| sent_id(&mut c, cid).0));
                        chunk_done.wait();
                    }
                    ids
                })
            })
            .collect();
        // Meanwhile the receiver's device reconnects again and again, to
        // each gateway in turn, syncing from the last event it received.
        let mut cursor = MessageId(0);
        let mut received = Vec::new();
        let mut round = 0;
        while !senders.iter().all(|s| s.is_finished()) {
            let mut device = gws[round % 2].connect(receiver.0);
            device.set_cursor(cursor);
            received.extend(message_ids(&sync_all(&mut device)));
            cursor = device.cursor();
            round += 1;
        }
        let sent: Vec<MessageId> = senders.into_iter().flat_map(|s| s.join().expect("sender")).collect();
        let mut device = gws[round % 2].connect(receiver.0);
        device.set_cursor(cursor);
        received.extend(message_ids(&sync_all(&mut device)));
        (sent, received)
    });
    assert_eq!(sent.len(), 2 * PER_SENDER);
    let descents = received.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(descents > 0, "the inbox held a smaller id after a larger one: the case an id cursor skips");
    let mut counts: BTreeMap<MessageId, usize> = BTreeMap::new();
    for id in &received {
        *counts.entry(*id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events received twice: {twice:?}");
    let want: BTreeSet<MessageId> = sent.iter().copied().collect();
    let got: BTreeSet<MessageId> = received.iter().copied().collect();
    let skipped: Vec<_> = want.difference(&got).collect();
    assert!(skipped.is_empty(), "events never received: {skipped:?}");
    assert_eq!(got, want);
}

each_driver!(one_client_id_sent_through_two_gateways_is_one_message_with_one_id);
fn one_client_id_sent_through_two_gateways_is_one_message_with_one_id(io: IoDriver) {
    let pg = TestPostgres::start();
    let gws = two_gateways(io, &pg, 0);
    const RACES: usize = 30;
    let mut devices: Vec<Client> = gws.iter().map(|gw| gw.connect(10)).collect();
    let barrier = Barrier::new(2);
    let replies: Vec<Vec<(MessageId, bool)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter_mut()
            .map(|device| {
                let barrier = &barrier;
                scope.spawn(move || {
                    (0..RACES)
                        .map(|i| {
                            let cid = format!("same-{i}");
                            // Both devices of user 10 resend at the same moment,
                            // one through each gateway.
                            barrier.wait();
                            device.send_message(UserId(2), &cid, MessageKind::Text, "once").unwrap();
                            sent_id(device, &cid)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("device")).collect()
    });
    for (i, (a, b)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(a.0, b.0, "race {i}: both `sent` replies name one message");
        assert!(a.1 != b.1, "race {i}: exactly one of them is the duplicate: {a:?} {b:?}");
    }
    let mut receiver = gws[0].connect(2);
    let ids = message_ids(&sync_all(&mut receiver));
    let want: Vec<MessageId> = replies[0].iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), RACES, "one message per client id: {ids:?}");
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), want.into_iter().collect());
}

each_driver!(one_client_id_sent_through_two_gateways_for_two_bodies_is_one_message_and_one_conflict);
fn one_client_id_sent_through_two_gateways_for_two_bodies_is_one_message_and_one_conflict(io: IoDriver) {
    let pg = TestPostgres::start();
    let gws = two_gateways(io, &pg, 0);
    const RACES: usize = 30;
    let mut devices: Vec<Client> = gws.iter().map(|gw| gw.connect(10)).collect();
    let barrier = Barrier::new(2);
    // Per device, per race: `Some(id)` for `sent`, `None` for `client_id_conflict`.
    let replies: Vec<Vec<Option<MessageId>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter_mut()
            .enumerate()
            .map(|(n, device)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    (0..RACES)
                        .map(|i| {
                            let cid = format!("reused-{i}");
                            barrier.wait();
                            device.send_message(UserId(2), &cid, MessageKind::Text, &format!("via {n}")).unwrap();
                            device
                                .wait_for(WAIT, "sent or error", |e| match e {
                                    Event::Sent { client_id, id, duplicate } if *client_id == cid => {
                                        assert!(!duplicate, "another body is never a resend");
                                        Some(Some(*id))
                                    }
                                    Event::Error { code, reference, .. } if reference.as_deref() == Some(&cid) => {
                                        assert_eq!(code, "client_id_conflict");
                                        Some(None)
                                    }
                                    _ => None,
                                })
                                .unwrap()
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("device")).collect()
    });
    let mut want = BTreeMap::new();
    for (i, (a, b)) in replies[0].iter().zip(&replies[1]).enumerate() {
        match (a, b) {
            (Some(id), None) => want.insert(*id, "via 0".to_owned()),
            (None, Some(id)) => want.insert(*id, "via 1".to_owned()),
            other => panic!("race {i}: exactly one send is stored, the other is a conflict: {other:?}"),
        };
    }
    let mut receiver = gws[1].connect(2);
    let got: BTreeMap<MessageId, String> = sync_all(&mut receiver)
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.id, m.body.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(got, want, "one message per client id, with the body of the send that was stored");
}

/// The `group` reply: the group and its members.
fn group_reply(c: &mut Client) -> (GroupId, Vec<(UserId, bool)>) {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, members, .. } => Some((*id, members.clone())),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

each_driver!(a_group_change_on_a_stale_record_is_refused_whole_and_the_retry_applies);
fn a_group_change_on_a_stale_record_is_refused_whole_and_the_retry_applies(io: IoDriver) {
    let pg = TestPostgres::start();
    let gws = two_gateways(io, &pg, 0);
    let (mut a, mut b) = (gws[0].connect(1), gws[1].connect(1));
    a.create_group("g", "shared", &[UserId(2)]).unwrap();
    let (group, _) = group_reply(&mut a);
    // Gateway 0 now caches the group at version 1; gateway 1 changes it.
    b.change_members("add_members", group, &[UserId(3)]).unwrap();
    assert_eq!(group_reply(&mut b).1.len(), 3);

    // A change through gateway 0, computed from its cached record, would
    // drop user 3: the store refuses it whole, and says to retry.
    a.change_members("add_members", group, &[UserId(4)]).unwrap();
    let (code, message) = a
        .wait_for(WAIT, "error", |e| match e {
            Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("unavailable", "the group changed meanwhile; nothing was changed, retry")
    );

    // The retry reads the record again and applies on top of user 3.
    a.change_members("add_members", group, &[UserId(4)]).unwrap();
    let (_, members) = group_reply(&mut a);
    let users: BTreeSet<u64> = members.iter().map(|(u, _)| u.0).collect();
    assert_eq!(users, BTreeSet::from([1, 2, 3, 4]), "both changes kept");

    // Members learn of exactly the changes made: no announcement of the
    // refused one.
    let mut member = gws[1].connect(2);
    let announcements = sync_all(&mut member)
        .into_iter()
        .filter(|e| matches!(e, Event::Message(m) if m.kind == MessageKind::System))
        .count();
    assert_eq!(announcements, 3, "created, added 3, added 4");
}

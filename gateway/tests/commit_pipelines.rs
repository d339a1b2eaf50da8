//! Several commit pipelines (`--commit-pipelines 2`) over real sockets and
//! the real store: what crosses pipelines stays exact.
//!
//! - A send storm over many conversations into one inbox, while one device
//!   of the recipient is live and another syncs again and again: every
//!   connection sees the inbox in increasing order, never twice, and ends
//!   with all of it (ids are handed out in ranges posted in order, and a
//!   sync reads below the horizon only).
//! - One client id used in two conversations at once: one message is
//!   stored, the other send is a `client_id_conflict`.
//! - A block acknowledged is seen by the very next send, whichever
//!   pipeline takes it.

mod util;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, MessageId, MessageKind, UserId};
use util::*;

fn gateway(io: IoDriver) -> TestGateway {
    TestGateway::start_with(Setup { io, store: TestStore::Embedded }, 2, |c| {
        c.commit_pipelines = 2;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
        c.user_send_rate = 0;
    })
}

/// Message ids in the order `events` brought them, checked increasing.
fn message_ids(seen: &mut Vec<MessageId>, events: &[Event], who: &str) {
    for e in events {
        if let Event::Message(m) = e {
            if let Some(last) = seen.last() {
                assert!(m.id > *last, "{who}: {} after {} (out of order or repeated)", m.id.0, last.0);
            }
            seen.push(m.id);
        }
    }
}

/// Blocks a sender until `syncs` reaches `target`; the syncing loop runs
/// while any sender is unfinished, so this only fails if syncs stall.
fn wait_for_syncs(syncs: &AtomicUsize, target: usize) {
    let give_up = Instant::now() + WAIT * 4;
    while syncs.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < give_up, "the syncing device stalled during the storm");
        thread::sleep(Duration::from_millis(1));
    }
}

each_driver!(a_send_storm_reaches_a_live_and_a_syncing_device_in_order_and_whole);
fn a_send_storm_reaches_a_live_and_a_syncing_device_in_order_and_whole(io: IoDriver) {
    let gw = gateway(io);
    const RECIPIENT: u64 = 1000;
    const SENDERS: u64 = 24;
    const EACH: usize = 60;
    let mut live = gw.online(RECIPIENT);
    // Each sync on a new connection from where the last one ended: a
    // connection that stays open also gets live events after `synced`,
    // which a sync from the older cursor would bring again.
    let mut cursor = MessageId(0);
    let mut sync_once = |seen: &mut Vec<MessageId>| {
        let mut c = gw.connect(RECIPIENT);
        c.set_cursor(cursor);
        let events = sync_all(&mut c);
        message_ids(seen, &events, "syncing device");
        cursor = c.cursor();
    };
    // Syncs done so far. Each sender stops halfway until two more syncs
    // have finished, so syncs overlap the storm however fast the machine
    // commits it (a storm over before the second sync proved nothing).
    let syncs = Arc::new(AtomicUsize::new(0));
    let senders: Vec<Client> = (1..=SENDERS).map(|u| gw.online(u)).collect();
    let storm = {
        let syncs = Arc::clone(&syncs);
        thread::spawn(move || {
            let mut threads = Vec::new();
            for mut c in senders {
                let syncs = Arc::clone(&syncs);
                threads.push(thread::spawn(move || {
                    for i in 0..EACH {
                        if i == EACH / 2 {
                            wait_for_syncs(&syncs, syncs.load(Ordering::SeqCst) + 2);
                        }
                        c.send_message(UserId(RECIPIENT), &format!("m{i}"), MessageKind::Text, "x").unwrap();
                    }
                    for i in 0..EACH {
                        sent_id(&mut c, &format!("m{i}"));
                    }
                }));
            }
            threads.into_iter().for_each(|t| t.join().unwrap());
        })
    };
    let mut live_ids = Vec::new();
    let mut synced_ids = Vec::new();
    while !storm.is_finished() {
        sync_once(&mut synced_ids);
        syncs.fetch_add(1, Ordering::SeqCst);
        let events = live.drain(Duration::from_millis(1)).unwrap();
        message_ids(&mut live_ids, &events, "live device");
    }
    storm.join().unwrap();
    let total = (SENDERS as usize) * EACH;
    sync_once(&mut synced_ids);
    while live_ids.len() < total {
        let Some(e) = live.next_event(WAIT).unwrap() else { break };
        message_ids(&mut live_ids, &[e], "live device");
    }
    assert_eq!(synced_ids.len(), total, "the syncing device got every message once");
    assert_eq!(live_ids.len(), total, "the live device got every message once");
    assert_eq!(synced_ids, live_ids);
    assert!(
        gw.scrape().lines().filter(|l| l.starts_with("chatgw_commit_pipeline_batches_total{")).count() == 2,
        "batches are counted per pipeline"
    );
}

each_driver!(one_client_id_in_two_conversations_at_once_stores_one_message);
fn one_client_id_in_two_conversations_at_once_stores_one_message(io: IoDriver) {
    let gw = gateway(io);
    let mut a = gw.online(1);
    const TRIES: u64 = 40;
    for i in 0..TRIES {
        let cid = format!("k{i}");
        // Two peers per try: their conversations with user 1 fall on
        // either pipeline, so about half the tries cross pipelines.
        a.send_message(UserId(100 + 2 * i), &cid, MessageKind::Text, "x").unwrap();
        a.send_message(UserId(101 + 2 * i), &cid, MessageKind::Text, "x").unwrap();
    }
    let (mut sent, mut conflicts) = (BTreeSet::new(), BTreeSet::new());
    while sent.len() + conflicts.len() < 2 * TRIES as usize {
        match a.next_event(WAIT).unwrap().expect("an answer to every send") {
            Event::Sent { client_id, duplicate, .. } => {
                assert!(!duplicate, "{client_id}: not a resend");
                assert!(sent.insert(client_id.clone()), "{client_id} stored twice");
            }
            Event::Error { code, reference: Some(cid), .. } if code == "client_id_conflict" => {
                assert!(conflicts.insert(cid.clone()), "{cid} refused twice");
            }
            _ => {}
        }
    }
    assert_eq!(sent, conflicts, "each client id: one stored, one refused");
    let mut stored = 0;
    for peer in 100..100 + 2 * TRIES {
        let mut c = gw.connect(peer);
        stored += sync_all(&mut c).iter().filter(|e| matches!(e, Event::Message(_))).count();
    }
    assert_eq!(stored, TRIES as usize, "one message per client id");
}

each_driver!(a_block_acknowledged_holds_for_the_next_send_on_any_pipeline);
fn a_block_acknowledged_holds_for_the_next_send_on_any_pipeline(io: IoDriver) {
    let gw = gateway(io);
    // Blocker 1's requests go to one pipeline; the conversations with
    // senders 10.. to either.
    let mut blocker = gw.online(1);
    for sender in 10..26u64 {
        let mut s = gw.online(sender);
        // A first message: the conversation's pipeline caches the list.
        s.send_message(UserId(1), "before", MessageKind::Text, "hi").unwrap();
        sent_id(&mut s, "before");
        blocker.block(UserId(sender)).unwrap();
        blocker
            .wait_for(WAIT, "blocks", |e| match e {
                Event::Blocks { users } if users.contains(&UserId(sender)) => Some(()),
                _ => None,
            })
            .unwrap();
        s.send_message(UserId(1), "after", MessageKind::Text, "blocked").unwrap();
        sent_id(&mut s, "after");
    }
    let events = blocker.drain(Duration::from_millis(300)).unwrap();
    let mut all = sync_all(&mut gw.connect(1));
    all.extend(events);
    let blocked: Vec<_> = all
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.body == "blocked" => Some(m.from),
            _ => None,
        })
        .collect();
    assert!(blocked.is_empty(), "messages sent after the block reached the blocker: {blocked:?}");
}

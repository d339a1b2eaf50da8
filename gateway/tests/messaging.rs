//! 1:1 messaging over real sockets with the real store: receipts, offline
//! sync, idempotency, cross-core delivery, history, multi-device.

mod util;

use std::{collections::HashSet, time::Duration};

use chatgw_client::{Event, MessageId, MessageKind, UserId};
use util::*;

each_store!(online_pair_gets_message_and_both_receipts);
fn online_pair_gets_message_and_both_receipts(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);

    a.send_message(UserId(2), "m1", MessageKind::Text, "hello").unwrap();
    let (id, dup) = sent_id(&mut a, "m1");
    assert!(!dup);

    let m = next_message(&mut b);
    assert_eq!(
        (m.id, m.from, m.to, m.body.as_str(), m.client_id.as_str()),
        (id, UserId(1), Some(UserId(2)), "hello", "m1")
    );

    b.ack_delivered(UserId(1), &[id]).unwrap();
    let r = a
        .wait_for(WAIT, "delivered receipt", |e| match e {
            Event::Receipt(r) if r.status == "delivered" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((r.by, r.ids.clone()), (UserId(2), vec![id]));

    b.mark_read(UserId(1), id).unwrap();
    let r = a
        .wait_for(WAIT, "read receipt", |e| match e {
            Event::Receipt(r) if r.status == "read" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((r.by, r.up_to), (UserId(2), Some(id)));
    assert_eq!(gw.metric("chatgw_messages_stored_total"), 1.0);
    assert_eq!(gw.metric("chatgw_receipts_stored_total"), 2.0);
}

each_store!(offline_recipient_gets_message_once_by_sync_and_sender_gets_receipts_by_sync);
fn offline_recipient_gets_message_once_by_sync_and_sender_gets_receipts_by_sync(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    a.send_message(UserId(2), "x", MessageKind::Image, "{\"url\":\"s3://k\"}").unwrap();
    let (id, _) = sent_id(&mut a, "x");
    let a_cursor = a.cursor();
    a.close();

    let mut b = gw.connect(2);
    let events = sync_all(&mut b);
    let msgs: Vec<_> =
        events.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.clone()) } else { None }).collect();
    assert_eq!(msgs.len(), 1, "{events:?}");
    assert_eq!((msgs[0].id, msgs[0].kind, msgs[0].body.as_str()), (id, MessageKind::Image, "{\"url\":\"s3://k\"}"));
    b.ack_delivered(UserId(1), &[id]).unwrap();
    b.mark_read(UserId(1), id).unwrap();
    // Nothing arrives twice on this device.
    let later = b.drain(Duration::from_millis(300)).unwrap();
    assert!(later.iter().all(|e| !matches!(e, Event::Message(_))), "{later:?}");

    // A comes back and syncs from where it was: both receipts, in order.
    let mut a = gw.connect(1);
    a.set_cursor(a_cursor);
    let events = sync_all(&mut a);
    let statuses: Vec<_> =
        events.iter().filter_map(|e| if let Event::Receipt(r) = e { Some(r.status.clone()) } else { None }).collect();
    assert_eq!(statuses, vec!["delivered", "read"], "{events:?}");
}

each_store!(resend_with_same_client_id_is_stored_and_delivered_once);
fn resend_with_same_client_id_is_stored_and_delivered_once(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    a.send_message(UserId(2), "same", MessageKind::Text, "one").unwrap();
    let (id, dup) = sent_id(&mut a, "same");
    assert!(!dup);
    assert_eq!(next_message(&mut b).id, id);

    // After a reconnect, the client resends.
    a.close();
    let mut a = gw.online(1);
    a.send_message(UserId(2), "same", MessageKind::Text, "one").unwrap();
    assert_eq!(sent_id(&mut a, "same"), (id, true));
    // Twice in one burst as well (same group commit).
    a.send_message(UserId(2), "burst", MessageKind::Text, "b").unwrap();
    a.send_message(UserId(2), "burst", MessageKind::Text, "b").unwrap();
    let (first, d1) = sent_id(&mut a, "burst");
    let (second, d2) = sent_id(&mut a, "burst");
    assert_eq!((first, d1, d2), (second, false, true));

    let extra = b.drain(Duration::from_millis(300)).unwrap();
    let ids: Vec<_> = extra.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.id) } else { None }).collect();
    assert_eq!(ids, vec![first], "only the new message arrives: {extra:?}");
    assert_eq!(gw.metric("chatgw_messages_stored_total"), 2.0);
    assert_eq!(gw.metric("chatgw_messages_deduplicated_total"), 2.0);
}

each_store!(sync_after_sync_returns_nothing_new);
fn sync_after_sync_returns_nothing_new(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    for i in 0..5 {
        a.send_message(UserId(2), &format!("c{i}"), MessageKind::Text, "m").unwrap();
        sent_id(&mut a, &format!("c{i}"));
    }
    let mut b = gw.connect(2);
    let first = sync_all(&mut b);
    assert_eq!(first.len(), 5);
    let second = sync_all(&mut b);
    assert!(second.is_empty(), "{second:?}");
}

each_store!(sync_pages_through_a_long_backlog_in_order);
fn sync_pages_through_a_long_backlog_in_order(on: Setup) {
    let gw = TestGateway::start_with(on, 2, |c| {
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
        c.user_send_rate = 0;
    });
    let mut a = gw.online(1);
    let n = 1200; // more than two pages of 500
    for i in 0..n {
        a.send_message(UserId(2), &format!("c{i}"), MessageKind::Text, &format!("{i}")).unwrap();
        if i % 100 == 99 {
            for j in i - 99..=i {
                sent_id(&mut a, &format!("c{j}"));
            }
        }
    }
    let mut b = gw.connect(2);
    let events = sync_all(&mut b);
    let bodies: Vec<String> =
        events.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.body.clone()) } else { None }).collect();
    assert_eq!(bodies, (0..n).map(|i| i.to_string()).collect::<Vec<_>>());
}

each_store!(cross_core_delivery);
fn cross_core_delivery(on: Setup) {
    let gw = TestGateway::start(on, 2);
    // Connect users until two of them sit on different cores.
    let mut clients = Vec::new();
    let mut pair = None;
    for user in 1..=64u64 {
        clients.push((user, gw.online(user)));
        let core = gw.handle().cores_of(user)[0];
        if let Some((other, _)) = clients.iter().find(|(u, _)| gw.handle().cores_of(*u)[0] != core) {
            pair = Some((*other, user));
            break;
        }
    }
    let (x, y) = pair.expect("64 connections all landed on one core");
    assert_ne!(gw.handle().cores_of(x), gw.handle().cores_of(y));
    let ix = clients.iter().position(|(u, _)| *u == x).unwrap();
    let iy = clients.iter().position(|(u, _)| *u == y).unwrap();
    clients[ix].1.send_message(UserId(y), "cc", MessageKind::Text, "across").unwrap();
    let (id, _) = sent_id(&mut clients[ix].1, "cc");
    let m = next_message(&mut clients[iy].1);
    assert_eq!((m.id, m.body.as_str()), (id, "across"));
    clients[iy].1.ack_delivered(UserId(x), &[id]).unwrap();
    clients[ix]
        .1
        .wait_for(WAIT, "receipt across cores", |e| matches!(e, Event::Receipt(r) if r.ids == vec![id]).then_some(()))
        .unwrap();
}

each_store!(every_device_of_recipient_and_senders_other_devices_get_it);
fn every_device_of_recipient_and_senders_other_devices_get_it(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a_phone = gw.online(1);
    let mut a_laptop = gw.online(1);
    let mut b_phone = gw.online(2);
    let mut b_laptop = gw.online(2);
    a_phone.send_message(UserId(2), "md", MessageKind::Text, "to all").unwrap();
    let (id, _) = sent_id(&mut a_phone, "md");
    for c in [&mut a_laptop, &mut b_phone, &mut b_laptop] {
        assert_eq!(next_message(c).id, id);
    }
    // The sending device does not get its own message back.
    let own = a_phone.drain(Duration::from_millis(300)).unwrap();
    assert!(own.iter().all(|e| !matches!(e, Event::Message(_))), "{own:?}");
}

each_store!(history_pages_newest_first);
fn history_pages_newest_first(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut ids = Vec::new();
    for i in 0..7 {
        a.send_message(UserId(2), &format!("h{i}"), MessageKind::Text, &format!("{i}")).unwrap();
        ids.push(sent_id(&mut a, &format!("h{i}")).0);
    }
    let page = |c: &mut chatgw_client::Client, before: Option<MessageId>| {
        c.history(UserId(1), before, 3).unwrap();
        c.wait_for(WAIT, "history", |e| match e {
            Event::History { messages, more } => Some((messages.iter().map(|m| m.id).collect::<Vec<_>>(), *more)),
            _ => None,
        })
        .unwrap()
    };
    let mut b = gw.connect(2);
    let (p1, more1) = page(&mut b, None);
    assert_eq!((p1.clone(), more1), (vec![ids[6], ids[5], ids[4]], true));
    let (p2, _) = page(&mut b, Some(p1[2]));
    assert_eq!(p2, vec![ids[3], ids[2], ids[1]]);
    let (p3, _) = page(&mut b, Some(p2[2]));
    assert_eq!(p3, vec![ids[0]]);
    // A third party sees nothing of it.
    let mut c = gw.connect(3);
    let (p, more) = page(&mut c, None);
    assert!(p.is_empty() && !more);
}

each_store!(acks_for_messages_not_addressed_to_you_are_refused);
fn acks_for_messages_not_addressed_to_you_are_refused(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut c = gw.online(3);
    a.send_message(UserId(2), "p", MessageKind::Text, "private").unwrap();
    let (id, _) = sent_id(&mut a, "p");
    // User 3 claims delivery of a message of the 1-2 conversation.
    c.ack_delivered(UserId(1), &[id]).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");
    c.mark_read(UserId(1), id).unwrap();
    assert_eq!(next_error(&mut c).0, "not_allowed");
    // The sender acknowledging its own message records nothing.
    a.ack_delivered(UserId(2), &[id]).unwrap();
    let quiet = a.drain(Duration::from_millis(300)).unwrap();
    assert!(quiet.iter().all(|e| !matches!(e, Event::Receipt(_))), "{quiet:?}");
}

each_store!(ids_are_unique_and_increasing_under_concurrent_senders);
fn ids_are_unique_and_increasing_under_concurrent_senders(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let senders: Vec<_> = (10..14u64)
        .map(|u| {
            let mut c = gw.online(u);
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..100 {
                    c.send_message(UserId(99), &format!("{u}-{i}"), MessageKind::Text, "x").unwrap();
                    ids.push(sent_id(&mut c, &format!("{u}-{i}")).0);
                }
                ids
            })
        })
        .collect();
    let mut all = HashSet::new();
    for s in senders {
        let ids = s.join().unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        all.extend(ids);
    }
    assert_eq!(all.len(), 400);
    let mut r = gw.connect(99);
    let events = sync_all(&mut r);
    let got: Vec<_> = events.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.id) } else { None }).collect();
    assert_eq!(got.len(), 400);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "sync is in id order");
}

each_store!(history_pages_stay_under_the_outbound_bound_for_large_bodies);
fn history_pages_stay_under_the_outbound_bound_for_large_bodies(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let body = "b".repeat(60_000);
    let mut ids = Vec::new();
    for i in 0..20 {
        a.send_message(UserId(2), &format!("big{i}"), MessageKind::Document, &body).unwrap();
        ids.push(sent_id(&mut a, &format!("big{i}")).0);
    }
    let mut b = gw.connect(2);
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        b.history(UserId(1), before, 20).unwrap();
        let (page, more) = b
            .wait_for(WAIT, "history", |e| match e {
                Event::History { messages, more } => Some((messages.clone(), *more)),
                Event::Closed { code, .. } => panic!("closed with {code}"),
                _ => None,
            })
            .unwrap();
        assert!(page.len() < 20, "a 1.2 MB page was cut to fit");
        seen.extend(page.iter().map(|m| m.id));
        before = page.last().map(|m| m.id);
        if !more {
            break;
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "paging on from the last message returns everything once");
}

each_store!(read_receipts_name_the_conversation_for_every_device);
fn read_receipts_name_the_conversation_for_every_device(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let mut b_phone = gw.online(2);
    let mut b_laptop = gw.online(2);
    a.send_message(UserId(2), "p", MessageKind::Text, "x").unwrap();
    let (id, _) = sent_id(&mut a, "p");
    next_message(&mut b_phone);
    next_message(&mut b_laptop);
    b_phone.mark_read(UserId(1), id).unwrap();
    let on_sender = a
        .wait_for(WAIT, "read", |e| match e {
            Event::Receipt(r) if r.status == "read" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((on_sender.by, on_sender.peer), (UserId(2), Some(UserId(2))));
    let on_laptop = b_laptop
        .wait_for(WAIT, "read", |e| match e {
            Event::Receipt(r) if r.status == "read" => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((on_laptop.by, on_laptop.peer, on_laptop.up_to), (UserId(2), Some(UserId(1)), Some(id)));
}

each_store!(an_idle_writer_is_not_woken_and_a_burst_keeps_id_order);
fn an_idle_writer_is_not_woken_and_a_burst_keeps_id_order(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut recipient = gw.online(99);

    // One send at a time: every batch is one request and the writer thread
    // is idle each time, so the committer writes them itself. (A writer
    // thread still holding its lock when the next send arrives would take
    // that one; this allows for a few.)
    let mut a = gw.online(1);
    for i in 0..20 {
        a.send_message(UserId(99), &format!("one-{i}"), MessageKind::Text, "x").unwrap();
        sent_id(&mut a, &format!("one-{i}"));
    }
    let by_committer = gw.metric("chatgw_batches_written_by_committer_total");
    assert!(by_committer >= 15.0, "only {by_committer} of 20 idle batches were written by the committer");

    // A burst from four senders that do not wait for their acks: batches
    // queue for the writer thread as well. Whoever writes each, the
    // recipient sees every message once, live, in id order.
    let senders: Vec<_> = (10..14u64)
        .map(|u| {
            let mut c = gw.online(u);
            std::thread::spawn(move || {
                for i in 0..100 {
                    c.send_message(UserId(99), &format!("{u}-{i}"), MessageKind::Text, "x").unwrap();
                }
                (0..100).map(|i| sent_id(&mut c, &format!("{u}-{i}")).0).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for s in senders {
        let ids = s.join().unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one sender's acks are in id order");
        acked.extend(ids);
    }
    assert_eq!(acked.len(), 400);
    let live: Vec<MessageId> = (0..420).map(|_| next_message(&mut recipient).id).collect();
    assert!(live.windows(2).all(|w| w[0] < w[1]), "live deliveries are in id order, without duplicates");
    assert!(acked.iter().all(|id| live.contains(id)), "every acked message was delivered");
    assert_eq!(gw.metric("chatgw_messages_stored_total"), 420.0);
}

//! Corners of the protocol a client relies on (docs/PROTOCOL.md): a client
//! id reused for another message is refused rather than acknowledged as the
//! old one, sends pipelined by one device keep their order, and `welcome`
//! announces the body that really fits in a frame.

mod util;

use std::{io::Write, time::Duration};

use chatgw_client::{Event, MessageId, MessageKind, UserId};
use util::*;

/// The next `sent` or `error` answering `client_id`: `Ok((id, duplicate))`
/// or `Err(code)`.
fn answer(c: &mut chatgw_client::Client, client_id: &str) -> Result<(MessageId, bool), String> {
    c.wait_for(WAIT, "sent or error", |e| match e {
        Event::Sent { client_id: cid, id, duplicate } if cid == client_id => Some(Ok((*id, *duplicate))),
        Event::Error { code, reference: Some(r), .. } if r == client_id => Some(Err(code.clone())),
        Event::Error { code, message, .. } => panic!("unexpected error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// Message events (id, body) among `events`.
fn messages(events: &[Event]) -> Vec<(MessageId, String)> {
    events.iter().filter_map(|e| if let Event::Message(m) = e { Some((m.id, m.body.clone())) } else { None }).collect()
}

each_store!(a_client_id_reused_for_another_message_is_refused);
fn a_client_id_reused_for_another_message_is_refused(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    a.send_message(UserId(2), "k1", MessageKind::Text, "one").unwrap();
    let (id, dup) = sent_id(&mut a, "k1");
    assert!(!dup);
    assert_eq!(next_message(&mut b).id, id);

    // Decided from the store: the batch that took `k1` is written.
    a.send_message(UserId(2), "k1", MessageKind::Text, "one").unwrap();
    assert_eq!(answer(&mut a, "k1"), Ok((id, true)), "the same message again is a resend");
    a.send_message(UserId(3), "k1", MessageKind::Text, "one").unwrap();
    assert_eq!(answer(&mut a, "k1"), Err("client_id_conflict".into()), "another conversation");
    a.send_message(UserId(2), "k1", MessageKind::Text, "two").unwrap();
    assert_eq!(answer(&mut a, "k1"), Err("client_id_conflict".into()), "another body");
    a.send_message(UserId(2), "k1", MessageKind::Image, "one").unwrap();
    assert_eq!(answer(&mut a, "k1"), Err("client_id_conflict".into()), "another kind");
    // From another device of the same user, after a reconnect.
    let mut a2 = gw.online(1);
    a2.send_message(UserId(2), "k1", MessageKind::Text, "one").unwrap();
    assert_eq!(answer(&mut a2, "k1"), Ok((id, true)));
    a2.send_message(UserId(2), "k1", MessageKind::Text, "ONE").unwrap();
    assert_eq!(answer(&mut a2, "k1"), Err("client_id_conflict".into()));

    // Decided in flight: written back to back, in one batch or in batches
    // the writer has not stored yet.
    a.send_message(UserId(2), "k2", MessageKind::Text, "first").unwrap();
    a.send_message(UserId(2), "k2", MessageKind::Text, "second").unwrap();
    a.send_message(UserId(3), "k2", MessageKind::Text, "first").unwrap();
    a.send_message(UserId(2), "k2", MessageKind::Text, "first").unwrap();
    let (k2, dup) = answer(&mut a, "k2").expect("the first use is stored");
    assert!(!dup);
    assert_eq!(answer(&mut a, "k2"), Err("client_id_conflict".into()), "another body in flight");
    assert_eq!(answer(&mut a, "k2"), Err("client_id_conflict".into()), "another conversation in flight");
    assert_eq!(answer(&mut a, "k2"), Ok((k2, true)), "a resend in flight");

    // Nothing but the two first uses was stored or delivered.
    let to_b = messages(&b.drain(Duration::from_millis(300)).unwrap());
    assert_eq!(to_b, vec![(k2, "first".to_owned())]);
    assert!(messages(&c.drain(Duration::from_millis(300)).unwrap()).is_empty());
    let mut b_later = gw.connect(2);
    let stored = messages(&sync_all(&mut b_later));
    assert_eq!(stored, vec![(id, "one".to_owned()), (k2, "first".to_owned())]);
    assert_eq!(gw.metric("chatgw_messages_stored_total"), 2.0);
    assert_eq!(gw.metric("chatgw_messages_deduplicated_total"), 3.0);
}

each_store!(a_client_id_used_in_a_group_conflicts_with_a_direct_send);
fn a_client_id_used_in_a_group_conflicts_with_a_direct_send(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    a.create_group("g", "team", &[UserId(2)]).unwrap();
    let g = group_id(&mut a);
    a.send_group(g, "gk", MessageKind::Text, "hi team").unwrap();
    let (id, _) = sent_id(&mut a, "gk");
    a.send_message(UserId(2), "gk", MessageKind::Text, "hi team").unwrap();
    assert_eq!(answer(&mut a, "gk"), Err("client_id_conflict".into()));
    a.send_group(g, "gk", MessageKind::Text, "hi team").unwrap();
    assert_eq!(answer(&mut a, "gk"), Ok((id, true)));
}

each_store!(sends_pipelined_by_one_device_are_stored_and_delivered_in_order);
fn sends_pipelined_by_one_device_are_stored_and_delivered_in_order(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let n = 200;
    // Written back to back without waiting for any `sent`.
    for i in 0..n {
        a.send_message(UserId(2), &format!("p{i}"), MessageKind::Text, &i.to_string()).unwrap();
    }
    let acked: Vec<MessageId> = (0..n).map(|i| sent_id(&mut a, &format!("p{i}")).0).collect();
    assert!(acked.windows(2).all(|w| w[0] < w[1]), "ids increase in the order the device sent");

    let live: Vec<(MessageId, String)> = (0..n)
        .map(|_| {
            let m = next_message(&mut b);
            (m.id, m.body)
        })
        .collect();
    let expected: Vec<(MessageId, String)> = acked.iter().zip(0..n).map(|(id, i)| (*id, i.to_string())).collect();
    assert_eq!(live, expected, "delivered live in the order sent");
    let mut b_later = gw.connect(2);
    assert_eq!(messages(&sync_all(&mut b_later)), expected, "replayed in the order sent");
}

each_driver!(welcome_announces_the_body_that_fits_in_a_frame);
fn welcome_announces_the_body_that_fits_in_a_frame(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let (_, welcome) = raw_ws_welcome(gw.addr, &gw.token(1));
    assert_eq!(welcome, r#"{"type":"welcome","protocol":1,"user":"1","max_body":65536,"max_frame":131072}"#);

    let gw = TestGateway::start_with(io, 1, |c| c.max_frame = 4096);
    let (mut s, welcome) = raw_ws_welcome(gw.addr, &gw.token(1));
    assert_eq!(welcome, r#"{"type":"welcome","protocol":1,"user":"1","max_body":3952,"max_frame":4096}"#);
    // A body of `max_body` bytes in the longest envelope is exactly one
    // frame of `max_frame` bytes, and it is taken.
    let id = "i".repeat(64);
    let body = "b".repeat(3952 - 2);
    let frame =
        format!(r#"{{"type":"send","id":"{id}","to":"18446744073709551615","kind":"document","body":"{body}"}}"#);
    assert!(frame.len() <= 4096);
    s.write_all(&masked_frame(0x81, frame.as_bytes())).unwrap();
    let (op, reply) = read_server_frame(&mut s);
    let reply = String::from_utf8(reply).unwrap();
    assert_eq!(op, 0x1, "{reply}");
    assert!(reply.starts_with(&format!(r#"{{"type":"sent","id":"{id}","msg":""#)), "{reply}");
}

//! Two gateways with their own node ids on one PostgreSQL database and no
//! links between them: what the store and the cores make safe on their own.
//! A device on gateway A sees nothing live of what B commits to its inbox,
//! but the next event A delivers to it skips positions, so it catches up
//! from the store and receives every message exactly once, in order; a
//! catch-up can also be asked for. A group message sent through A after B
//! changed the group's membership is refused `unavailable` (nothing
//! stored), and the resend with the same client id reaches the members as
//! they are now. Each test starts its own server (`TestPostgres`).

mod util;

use std::time::Duration;

use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_gateway::{config::IoDriver, store};
use chatgw_storage::conformance::TestPostgres;
use util::*;

/// Gateways with node ids 1 and 2 on one freshly initialised database.
fn two_gateways(pg: &TestPostgres) -> [TestGateway; 2] {
    let db = pg.create_database();
    let url: store::StoreUrl = pg.url(&db).parse().expect("a postgres URL parses");
    store::init(&url).expect("store init");
    [1, 2].map(|node| {
        TestGateway::start_with(IoDriver::Epoll, 1, |c| {
            c.store = url.clone();
            c.node_id = node;
        })
    })
}

/// Bodies of the text messages that arrive within `wait`.
fn texts_within(c: &mut Client, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(e) = c.next_event(wait).unwrap() {
        if let Event::Message(m) = e {
            if m.kind != MessageKind::System {
                out.push(m.body.clone());
            }
        }
    }
    out
}

/// Bodies of the next `n` text messages.
fn next_texts(c: &mut Client, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            c.wait_for(WAIT, "message", |e| match e {
                Event::Message(m) if m.kind != MessageKind::System => Some(m.body.clone()),
                _ => None,
            })
            .unwrap()
        })
        .collect()
}

fn send(c: &mut Client, to: u64, body: &str) {
    c.send_message(UserId(to), body, MessageKind::Text, body).unwrap();
    sent_id(c, body);
}

#[test]
fn a_gap_in_positions_is_caught_up_from_the_store_once_and_in_order() {
    let pg = TestPostgres::start();
    let [a, b] = two_gateways(&pg);
    let mut recipient = a.online(2);
    let mut on_a = a.online(10);
    let mut on_b = b.online(11);

    send(&mut on_a, 2, "a1");
    assert_eq!(next_texts(&mut recipient, 1), vec!["a1"], "A's own send is live");
    send(&mut on_b, 2, "b1");
    send(&mut on_b, 2, "b2");
    assert_eq!(
        texts_within(&mut recipient, Duration::from_millis(300)),
        Vec::<String>::new(),
        "no links: nothing of B's"
    );

    // A's next event is at position 4 while the device has 1: a gap.
    send(&mut on_a, 2, "a2");
    assert_eq!(next_texts(&mut recipient, 3), vec!["b1", "b2", "a2"]);
    assert_eq!(texts_within(&mut recipient, Duration::from_millis(300)), Vec::<String>::new(), "each once");
    assert_eq!(a.metric("chatgw_catch_ups_total{reason=\"gap\"}"), 1.0);

    // Live again on A; and what B commits is caught up when asked.
    send(&mut on_a, 2, "a3");
    assert_eq!(next_texts(&mut recipient, 1), vec!["a3"]);
    send(&mut on_b, 2, "b3");
    a.handle().catch_up_user(2);
    assert_eq!(next_texts(&mut recipient, 1), vec!["b3"]);
    a.handle().catch_up_all();
    assert_eq!(texts_within(&mut recipient, Duration::from_millis(300)), Vec::<String>::new(), "nothing new");
    send(&mut on_a, 2, "a4");
    assert_eq!(next_texts(&mut recipient, 1), vec!["a4"], "position 6 follows 5: live, no catch-up");
    assert_eq!(a.metric("chatgw_catch_ups_total{reason=\"gap\"}"), 1.0);
}

#[test]
fn a_group_send_on_a_membership_changed_elsewhere_is_refused_and_the_resend_reaches_the_new_members() {
    let pg = TestPostgres::start();
    let [a, b] = two_gateways(&pg);
    let mut admin_a = a.online(1);
    admin_a.create_group("g", "Team", &[UserId(2)]).unwrap();
    let g = group_id(&mut admin_a);
    admin_a.send_group(g, "before", MessageKind::Text, "before").unwrap();
    sent_id(&mut admin_a, "before");

    // The same admin, on another device through B, adds user 3.
    let mut admin_b = b.online(1);
    admin_b.change_members("add_members", g, &[UserId(3)]).unwrap();
    group_id(&mut admin_b);

    // A's cached membership is one version behind: nothing is stored.
    admin_a.send_group(g, "after", MessageKind::Text, "after").unwrap();
    let (code, reference) = next_error(&mut admin_a);
    assert_eq!((code.as_str(), reference.as_deref()), ("unavailable", Some("after")));
    assert_eq!(a.metric("chatgw_stale_group_sends_total"), 1.0);

    // The resend with the same client id reaches the new member.
    admin_a.send_group(g, "after", MessageKind::Text, "after").unwrap();
    let (_, duplicate) = sent_id(&mut admin_a, "after");
    assert!(!duplicate, "the refused send stored nothing");
    let mut three = a.connect(3);
    let synced: Vec<String> = sync_all(&mut three)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.kind != MessageKind::System => Some(m.body),
            _ => None,
        })
        .collect();
    assert_eq!(synced, vec!["after"], "a member added on B gets the message sent on A");
}

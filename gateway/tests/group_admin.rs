//! Group administration over real sockets with the real store: demoting
//! admins (never the last), renaming, descriptions and the admins-only send
//! mode; who may do each, the system messages they write, what a change
//! that changes nothing does, and frames refused for bad input.

mod util;

use std::time::Duration;

use chatgw_client::{Client, Event, GroupId, MessageKind, UserId};
use serde_json::Value;
use util::*;

/// The `group` reply: (name, description, admins_only, members with admin flags).
type GroupState = (String, String, bool, Vec<(UserId, bool)>);

fn group_state(c: &mut Client) -> GroupState {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { name, description, admins_only, members, .. } => {
            Some((name.clone(), description.clone(), *admins_only, members.clone()))
        }
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next error: (code, message, ref).
fn error(c: &mut Client) -> (String, String, Option<String>) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, reference } => Some((code.clone(), message.clone(), reference.clone())),
        Event::Group { .. } => panic!("a group reply where an error was due"),
        _ => None,
    })
    .unwrap()
}

/// The next system message's body, decoded.
fn next_system(c: &mut Client) -> Value {
    let m = c
        .wait_for(WAIT, "system message", |e| match e {
            Event::Message(m) if m.kind == MessageKind::System => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    serde_json::from_str(&m.body).unwrap()
}

fn system_events(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.kind == MessageKind::System => Some(m.body.clone()),
            _ => None,
        })
        .map(|b| serde_json::from_str::<Value>(&b).unwrap()["event"].as_str().unwrap().to_owned())
        .collect()
}

fn create(c: &mut Client, members: &[u64]) -> GroupId {
    let users: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.create_group("create-1", "Team", &users).unwrap();
    group_id(c)
}

/// No system message arrives within a short wait.
fn quiet(c: &mut Client) {
    let events = c.drain(Duration::from_millis(300)).unwrap();
    assert!(system_events(&events).is_empty(), "{events:?}");
}

each_store!(admins_rename_describe_and_demote);
fn admins_rename_describe_and_demote(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let mut c = gw.online(3);
    let g = create(&mut a, &[2, 3]);
    next_system(&mut b);

    a.rename_group(g, "Team \"B\" ☕").unwrap();
    let (name, description, admins_only, _) = group_state(&mut a);
    assert_eq!((name.as_str(), description.as_str(), admins_only), ("Team \"B\" ☕", "", false));
    let renamed = next_system(&mut b);
    assert_eq!((renamed["event"].as_str(), renamed["by"].as_str()), (Some("renamed"), Some("1")));
    assert_eq!(renamed["name"], "Team \"B\" ☕");

    a.set_group_description(g, "weekly planning\nand \"fun\"").unwrap();
    assert_eq!(group_state(&mut a).1, "weekly planning\nand \"fun\"");
    let described = next_system(&mut b);
    assert_eq!(
        (described["event"].as_str(), described["description"].as_str()),
        (Some("described"), Some("weekly planning\nand \"fun\""))
    );

    // The same name and description again change nothing and write nothing.
    a.rename_group(g, "Team \"B\" ☕").unwrap();
    assert_eq!(group_state(&mut a).0, "Team \"B\" ☕");
    a.set_group_description(g, "weekly planning\nand \"fun\"").unwrap();
    group_state(&mut a);
    quiet(&mut b);

    // A plain member may do none of it.
    c.rename_group(g, "Mine").unwrap();
    assert_eq!(error(&mut c), ("not_allowed".into(), "only group admins may change the group".into(), None));
    c.set_group_description(g, "x").unwrap();
    assert_eq!(error(&mut c).1, "only group admins may change the group");
    c.set_admins_only(g, true).unwrap();
    assert_eq!(error(&mut c).1, "only group admins may change the group");
    c.change_members("demote", g, &[UserId(1)]).unwrap();
    assert_eq!(error(&mut c), ("not_allowed".into(), "only group admins may change members".into(), None));

    // Demotion: user 2 is made admin, then demotes user 1.
    a.change_members("promote", g, &[UserId(2)]).unwrap();
    group_state(&mut a);
    b.change_members("demote", g, &[UserId(1), UserId(3)]).unwrap();
    let (_, _, _, members) = group_state(&mut b);
    assert_eq!(members, vec![(UserId(1), false), (UserId(2), true), (UserId(3), false)]);
    let demoted = next_system(&mut a);
    let demoted = if demoted["event"] == "promoted" { next_system(&mut a) } else { demoted };
    assert_eq!(demoted["event"], "demoted");
    assert_eq!(demoted["members"], serde_json::json!(["1"]), "only admins are listed");
    // Demoting plain members changes nothing.
    b.change_members("demote", g, &[UserId(1)]).unwrap();
    group_state(&mut b);
    // The last admin cannot be demoted, alone or with others.
    for users in [vec![UserId(2)], vec![UserId(1), UserId(2)]] {
        b.change_members("demote", g, &users).unwrap();
        let refused =
            ("not_allowed".into(), "a group keeps at least one admin: promote another member first".into(), None);
        assert_eq!(error(&mut b), refused);
    }
    // A non-member cannot be demoted.
    b.change_members("demote", g, &[UserId(9)]).unwrap();
    let (code, message, _) = error(&mut b);
    assert_eq!((code.as_str(), message.as_str()), ("bad_field", "field `members`: 9 is not a member of this group"));
    // A demoted admin is a plain member now.
    a.rename_group(g, "Back").unwrap();
    assert_eq!(error(&mut a).1, "only group admins may change the group");

    // group_info shows it all, and an offline device learns it by sync.
    c.group_info(g).unwrap();
    let (name, description, admins_only, members) = group_state(&mut c);
    assert_eq!(
        (name.as_str(), description.as_str(), admins_only),
        ("Team \"B\" ☕", "weekly planning\nand \"fun\"", false)
    );
    assert_eq!(members.iter().filter(|(_, admin)| *admin).count(), 1);
    let mut c2 = gw.connect(3);
    assert_eq!(system_events(&sync_all(&mut c2)), vec!["created", "renamed", "described", "promoted", "demoted"]);
}

each_store!(admins_only_mode_refuses_sends_by_plain_members);
fn admins_only_mode_refuses_sends_by_plain_members(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut a = gw.online(1);
    let mut b = gw.online(2);
    let g = create(&mut a, &[2]);
    next_system(&mut b);

    a.set_admins_only(g, true).unwrap();
    assert!(group_state(&mut a).2);
    let on = next_system(&mut b);
    assert_eq!(
        (on["event"].as_str(), on["by"].as_str(), on["on"].as_bool()),
        (Some("admins_only"), Some("1"), Some(true))
    );
    // Turning it on again writes nothing.
    a.set_admins_only(g, true).unwrap();
    assert!(group_state(&mut a).2);
    quiet(&mut b);

    b.send_group(g, "b-1", MessageKind::Text, "may I?").unwrap();
    let refused = error(&mut b);
    let why = "only group admins may send to this group while it is admins-only";
    assert_eq!(refused, ("not_allowed".into(), why.into(), Some("b-1".into())));
    let others = a.drain(Duration::from_millis(300)).unwrap();
    assert!(others.iter().all(|e| !matches!(e, Event::Message(m) if m.body == "may I?")), "{others:?}");

    // Admins still may, and members still receive.
    a.send_group(g, "a-1", MessageKind::Text, "announcement").unwrap();
    sent_id(&mut a, "a-1");
    assert_eq!(next_chat(&mut b).body, "announcement");
    b.group_info(g).unwrap();
    assert!(group_state(&mut b).2);

    // Off again: the plain member sends (the refused client id is free).
    a.set_admins_only(g, false).unwrap();
    assert!(!group_state(&mut a).2);
    assert_eq!(next_system(&mut b)["on"], false);
    b.send_group(g, "b-1", MessageKind::Text, "now?").unwrap();
    let (id, _) = sent_id(&mut b, "b-1");
    assert_eq!(next_chat(&mut a).id, id);
}

each_store!(bad_administration_frames_are_refused);
fn bad_administration_frames_are_refused(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut a = gw.online(1);
    let g = create(&mut a, &[2]);
    let long_name = "n".repeat(101);
    let long_text = "d".repeat(513);
    let cases = [
        (
            format!(r#"{{"type":"rename_group","group":"{g}","name":" "}}"#),
            "field `name`: must have a visible character and be at most 100 bytes",
        ),
        (
            format!(r#"{{"type":"rename_group","group":"{g}","name":"{long_name}"}}"#),
            "field `name`: must have a visible character and be at most 100 bytes",
        ),
        (format!(r#"{{"type":"rename_group","group":"{g}"}}"#), "field `name`: missing"),
        (
            format!(r#"{{"type":"set_description","group":"{g}","description":"{long_text}"}}"#),
            "field `description`: must be at most 512 bytes",
        ),
        (
            format!(r#"{{"type":"set_description","group":"{g}","description":false}}"#),
            "field `description`: must be a string",
        ),
        (
            format!(r#"{{"type":"set_admins_only","group":"{g}","admins_only":1}}"#),
            "field `admins_only`: must be true or false",
        ),
        (format!(r#"{{"type":"set_admins_only","group":"{g}"}}"#), "field `admins_only`: missing"),
        (format!(r#"{{"type":"demote","group":"{g}","members":[]}}"#), "field `members`: must list at least one user"),
        (r#"{"type":"demote","members":["1"]}"#.to_owned(), "field `group`: missing"),
    ];
    for (text, why) in &cases {
        a.send_raw(text).unwrap();
        let (code, message, _) = error(&mut a);
        assert_eq!((code.as_str(), message.as_str()), ("bad_field", *why), "{text}");
    }
    // Nothing changed, and the longest allowed values are taken.
    a.set_group_description(g, &"d".repeat(512)).unwrap();
    let (name, description, _, _) = group_state(&mut a);
    assert_eq!((name.as_str(), description.len()), ("Team", 512));
    a.rename_group(g, &"n".repeat(100)).unwrap();
    assert_eq!(group_state(&mut a).0.len(), 100);
}

/// Two gateways on one PostgreSQL store, one per I/O driver. The second has
/// the group cached from a send while the mode was off; the first turns it
/// on. The plain member's next send through the second gateway is refused
/// by the store (the mode moved the group's version), answered `unavailable`,
/// and its resend meets the mode: `not_allowed`. Nothing of it is stored.
#[test]
fn admins_only_set_on_another_gateway_refuses_a_send_fanned_out_before() {
    let on = Setup { io: chatgw_gateway::config::IoDriver::Epoll, store: TestStore::Postgres };
    let first = TestGateway::start(on, 1);
    let shared = first.store.clone();
    let other = Setup { io: chatgw_gateway::config::IoDriver::Uring, store: TestStore::Postgres };
    let second = TestGateway::start_with(other, 1, |c| c.store = shared);
    let mut a = first.online(1);
    let mut b = second.online(2);
    let g = create(&mut a, &[2]);
    b.send_group(g, "warm", MessageKind::Text, "hello").unwrap();
    sent_id(&mut b, "warm");

    a.set_admins_only(g, true).unwrap();
    assert!(group_state(&mut a).2);
    b.send_group(g, "b-late", MessageKind::Text, "sneaking in").unwrap();
    let (code, message, reference) = error(&mut b);
    assert_eq!((code.as_str(), reference.as_deref()), ("unavailable", Some("b-late")), "{message}");
    b.send_group(g, "b-late", MessageKind::Text, "sneaking in").unwrap();
    let (code, message, reference) = error(&mut b);
    assert_eq!((code.as_str(), reference.as_deref()), ("not_allowed", Some("b-late")), "{message}");

    let mut a2 = first.connect(1);
    let seen = sync_all(&mut a2);
    assert!(seen.iter().all(|e| !matches!(e, Event::Message(m) if m.body == "sneaking in")), "{seen:?}");
}

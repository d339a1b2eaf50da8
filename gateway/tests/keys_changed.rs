//! `keys_changed` over real sockets, on the embedded store and PostgreSQL
//! (docs/PROTOCOL.md, "keys_changed"; docs/E2EE.md): a device's first
//! upload tells the user's contacts (the other user of a direct
//! conversation live, a group member by `sync` when it comes back) and the
//! user's other devices, and nobody else; an upload that only adds one-time
//! keys or replaces the fallback key tells nobody; a new identity and a
//! logout tell them again.

mod util;

use std::time::Duration;

use chatgw_client::{Client, DeviceName, Event, MessageKind, UserId};
use chatgw_gateway::auth::unix_now;
use util::{
    keys::{device_keys as keys, next_keys_changed as keys_changed, one_time_keys as one_time, upload},
    *,
};

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn named(gw: &TestGateway, user: u64, device: &str) -> Client {
    let now = unix_now();
    let token = gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600);
    Client::connect(gw.addr, &token).unwrap()
}

fn online(gw: &TestGateway, user: u64, device: &str) -> Client {
    let mut c = named(gw, user, device);
    sync_all(&mut c);
    c
}

/// Every `keys_changed` event that arrives before nothing has arrived for
/// a while.
fn quiet_keys_changed(c: &mut Client) -> Vec<UserId> {
    let events = c.drain(Duration::from_millis(700)).unwrap();
    events
        .iter()
        .filter_map(|e| match e {
            Event::KeysChanged { user, .. } => Some(*user),
            _ => None,
        })
        .collect()
}

/// User 1 (`phone`, `laptop`) has a direct conversation with user 2 and a
/// group with user 3; users 2 and 4 talk, so 4 knows 2 but not 1.
fn contacts_of_user_1(gw: &TestGateway) -> Client {
    let mut phone = online(gw, 1, "phone");
    phone.send_message(UserId(2), "hi-2", MessageKind::Text, "hello").unwrap();
    sent_id(&mut phone, "hi-2");
    phone.create_group("g", "Team", &[UserId(3)]).unwrap();
    group_id(&mut phone);
    let mut four = online(gw, 4, "desk");
    four.send_message(UserId(2), "hi-4", MessageKind::Text, "hello").unwrap();
    sent_id(&mut four, "hi-4");
    phone
}

each_store!(contacts_are_told_live_and_by_sync_and_nobody_else);
fn contacts_are_told_live_and_by_sync_and_nobody_else(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut phone = contacts_of_user_1(&gw);
    let mut laptop = online(&gw, 1, "laptop");
    let mut two = online(&gw, 2, "desk");
    let mut four = online(&gw, 4, "desk");
    // User 3 was online once, then went away with its cursor.
    let three = online(&gw, 3, "desk");
    let cursor = three.cursor();
    three.close();

    upload(&mut phone, &keys(1, "phone", 7, 1), &one_time(1, "phone", 7, "a"));
    assert_eq!(keys_changed(&mut two), UserId(1), "a direct contact, live");
    assert_eq!(keys_changed(&mut laptop), UserId(1), "the user's other device, live");
    assert!(quiet_keys_changed(&mut four).is_empty(), "not a contact: nothing");

    let mut back = named(&gw, 3, "desk");
    back.set_cursor(cursor);
    let replay = sync_all(&mut back);
    let told: Vec<_> = replay.iter().filter(|e| matches!(e, Event::KeysChanged { .. })).collect();
    assert_eq!(told.len(), 1, "a group member, by sync: {replay:?}");
    assert!(matches!(told[0], Event::KeysChanged { user: UserId(1), .. }));
    // The event moved the cursor: the next sync has nothing.
    assert!(sync_all(&mut back).is_empty(), "the cursor covers the event");
}

each_store!(only_a_change_of_devices_or_identity_tells_the_contacts);
fn only_a_change_of_devices_or_identity_tells_the_contacts(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut phone = contacts_of_user_1(&gw);
    let mut laptop = online(&gw, 1, "laptop");
    let mut two = online(&gw, 2, "desk");

    upload(&mut phone, &keys(1, "phone", 7, 1), &one_time(1, "phone", 7, "a"));
    assert_eq!(quiet_keys_changed(&mut two), vec![UserId(1)], "the first upload");

    // Replenished one-time keys, then a new fallback key: same identity.
    upload(&mut phone, &keys(1, "phone", 7, 1), &one_time(1, "phone", 7, "b"));
    upload(&mut phone, &keys(1, "phone", 7, 2), &[]);
    upload(&mut phone, &keys(1, "phone", 7, 2), &[]);
    assert!(quiet_keys_changed(&mut two).is_empty(), "nothing changed that a contact encrypts to");

    // A new account on the device (another signing and identity key).
    upload(&mut phone, &keys(1, "phone", 8, 1), &one_time(1, "phone", 8, "c"));
    assert_eq!(quiet_keys_changed(&mut two), vec![UserId(1)], "a new identity");

    // A second device with keys, then logging the first one out.
    upload(&mut laptop, &keys(1, "laptop", 9, 1), &[]);
    assert_eq!(quiet_keys_changed(&mut two), vec![UserId(1)], "a new device");
    laptop.logout_device(dev("phone")).unwrap();
    laptop.wait_for(WAIT, "logged_out", |e| matches!(e, Event::LoggedOut { .. }).then_some(())).unwrap();
    assert_eq!(keys_changed(&mut two), UserId(1), "a device with keys logged out");
    // A device without keys logged out: nobody is told.
    laptop.logout_device(dev("tablet")).unwrap();
    laptop.wait_for(WAIT, "logged_out", |e| matches!(e, Event::LoggedOut { .. }).then_some(())).unwrap();
    assert!(quiet_keys_changed(&mut two).is_empty(), "the tablet had no keys");
    assert!(gw.metric("chatgw_keys_changed_events_total") >= 4.0);
}

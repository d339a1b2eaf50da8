//! Push targets over real sockets (docs/PROTOCOL.md, "Push notifications"):
//! a named device registers one with `register_push` (answered
//! `push_registered`), registering again replaces it, `unregister_push`
//! removes it (answered `push_unregistered`, also when there was none); an
//! unnamed connection and bad providers or tokens are refused with the
//! documented codes while the connection stays usable; logging a device
//! out removes its target; targets are in the store, so they survive a
//! restart and are shared by every gateway on a PostgreSQL store.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Client, DeviceName, Event, PushProvider, UserId};
use chatgw_gateway::auth::unix_now;
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore, PostgresOptions, PostgresStore, PushTarget};
use util::*;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn device_token(gw: &TestGateway, user: u64, device: &str) -> String {
    let now = unix_now();
    gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600)
}

fn online(gw: &TestGateway, token: &str) -> Client {
    let mut c = Client::connect(gw.addr, token).unwrap();
    sync_all(&mut c);
    c
}

fn target(provider: PushProvider, token: &str) -> PushTarget {
    PushTarget { provider, token: token.to_owned() }
}

/// Register and wait for the answer.
fn register(c: &mut Client, provider: PushProvider, token: &str) -> (String, PushProvider) {
    c.register_push(provider, token).unwrap();
    c.wait_for(WAIT, "push_registered", |e| match e {
        Event::PushRegistered { device, provider } => Some((device.clone(), *provider)),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

fn unregister(c: &mut Client) -> String {
    c.unregister_push().unwrap();
    c.wait_for(WAIT, "push_unregistered", |e| match e {
        Event::PushUnregistered { device } => Some(device.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next error's code and message.
fn refused(c: &mut Client) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
        Event::PushRegistered { .. } | Event::PushUnregistered { .. } => panic!("accepted: {e:?}"),
        _ => None,
    })
    .unwrap()
}

fn targets(store: &dyn MessageStore, user: u64) -> Vec<(String, PushTarget)> {
    let mut all: Vec<(String, PushTarget)> =
        store.push_targets(&[UserId(user)]).unwrap().into_iter().map(|(_, d, t)| (d.as_str().to_owned(), t)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Shut the gateway down (if it runs) and read its embedded store's
/// targets of `user`.
fn stored_after_shutdown(mut gw: TestGateway, user: u64) -> Vec<(String, PushTarget)> {
    if let Some(h) = gw.handle.take() {
        h.shutdown();
    }
    let store =
        EmbeddedStore::open(chatgw_gateway::store::embedded_dir(gw.dir.path()), &EmbeddedOptions::default()).unwrap();
    targets(&store, user)
}

each_driver!(a_named_device_registers_replaces_and_unregisters_its_target);
fn a_named_device_registers_replaces_and_unregisters_its_target(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let mut phone = online(&gw, &device_token(&gw, 7, "phone"));
    let mut laptop = online(&gw, &device_token(&gw, 7, "laptop"));
    assert_eq!(register(&mut phone, PushProvider::Apns, "apns-token-1"), ("phone".into(), PushProvider::Apns));
    assert_eq!(register(&mut laptop, PushProvider::Webhook, "hook~1"), ("laptop".into(), PushProvider::Webhook));
    // Registering again replaces the device's target.
    assert_eq!(register(&mut phone, PushProvider::Fcm, "fcm:token/2"), ("phone".into(), PushProvider::Fcm));
    // Unregistering is answered whether or not there is a target.
    assert_eq!(unregister(&mut laptop), "laptop");
    assert_eq!(unregister(&mut laptop), "laptop");
    // The connections are served as before.
    sync_all(&mut phone);
    sync_all(&mut laptop);
    drop((phone, laptop));
    // A restart on the same data directory keeps the phone's target; the
    // laptop registers again on the restarted gateway.
    let mut gw = gw;
    gw.handle.take().expect("running").shutdown();
    let again = TestGateway::start_with(io, 1, |c| c.data = gw.dir.path().to_path_buf());
    let mut laptop = online(&again, &device_token(&again, 7, "laptop"));
    register(&mut laptop, PushProvider::Webhook, "hook~2");
    drop(laptop);
    drop(again);
    assert_eq!(
        stored_after_shutdown(gw, 7),
        vec![
            ("laptop".into(), target(PushProvider::Webhook, "hook~2")),
            ("phone".into(), target(PushProvider::Fcm, "fcm:token/2")),
        ],
        "the phone's second target survived the restart"
    );
}

each_driver!(unnamed_connections_and_bad_frames_are_refused_and_the_connection_stays_usable);
fn unnamed_connections_and_bad_frames_are_refused_and_the_connection_stays_usable(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut unnamed = gw.online(7);
    unnamed.register_push(PushProvider::Apns, "t").unwrap();
    let (code, message) = refused(&mut unnamed);
    assert_eq!(code, "not_allowed");
    assert_eq!(
        message,
        "push targets belong to named devices: connect with a token whose `dev` claim names this device"
    );
    unnamed.unregister_push().unwrap();
    assert_eq!(refused(&mut unnamed).0, "not_allowed");
    sync_all(&mut unnamed);

    let mut phone = online(&gw, &device_token(&gw, 7, "phone"));
    let long = format!(r#"{{"type":"register_push","provider":"apns","token":"{}"}}"#, "t".repeat(4097));
    for (text, why) in [
        (
            r#"{"type":"register_push","provider":"sms","token":"t"}"#,
            r#"field `provider`: must be "webhook", "apns" or "fcm""#,
        ),
        (r#"{"type":"register_push","token":"t"}"#, "field `provider`: missing"),
        (r#"{"type":"register_push","provider":"fcm"}"#, "field `token`: missing"),
        (r#"{"type":"register_push","provider":"fcm","token":""}"#, "field `token`:"),
        (
            r#"{"type":"register_push","provider":"fcm","token":"has space"}"#,
            "field `token`: must be 1 to 4096 bytes of printable ASCII without spaces",
        ),
        (r#"{"type":"register_push","provider":"fcm","token":"caf\u00e9"}"#, "field `token`:"),
        (long.as_str(), "field `token`:"),
    ] {
        phone.send_raw(text).unwrap();
        let (code, message) = refused(&mut phone);
        assert_eq!(code, "bad_field", "{text}");
        assert!(message.starts_with(why), "{text}: {message}");
    }
    // Still usable: a good registration goes through.
    assert_eq!(register(&mut phone, PushProvider::Apns, "ok").1, PushProvider::Apns);
    drop((unnamed, phone));
    assert_eq!(stored_after_shutdown(gw, 7), vec![("phone".into(), target(PushProvider::Apns, "ok"))]);
}

each_driver!(logging_a_device_out_removes_its_target);
fn logging_a_device_out_removes_its_target(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut phone = online(&gw, &device_token(&gw, 7, "phone"));
    let mut laptop = online(&gw, &device_token(&gw, 7, "laptop"));
    let mut tablet = online(&gw, &device_token(&gw, 7, "tablet"));
    register(&mut phone, PushProvider::Apns, "phone-token");
    register(&mut laptop, PushProvider::Webhook, "laptop-token");
    register(&mut tablet, PushProvider::Fcm, "tablet-token");
    // `logout_device` from another device, and the admin listener.
    phone.logout_device(dev("laptop")).unwrap();
    phone.wait_for(WAIT, "logged_out", |e| matches!(e, Event::LoggedOut { .. }).then_some(())).unwrap();
    assert_eq!(next_close(&mut laptop), 4004);
    let answer = raw_exchange(
        gw.admin_addr(),
        b"POST /revoke?user=7&device=tablet HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(next_close(&mut tablet), 4004);
    drop(phone);
    assert_eq!(
        stored_after_shutdown(gw, 7),
        vec![("phone".into(), target(PushProvider::Apns, "phone-token"))],
        "only the device still logged in keeps its target"
    );
}

/// Two gateways on one PostgreSQL store: a target registered through one
/// is in the store every gateway (and a push worker) reads, is replaced
/// through the other, and a logout through the other removes it.
#[test]
fn targets_are_shared_by_gateways_on_one_postgres_store() {
    let store = fresh_postgres_store();
    let a = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = store.clone());
    let b = TestGateway::start_with(IoDriver::Uring, 1, |c| c.store = store.clone());
    let reader = PostgresStore::open(store.as_str(), &PostgresOptions::default()).unwrap();
    let mut phone_on_a = online(&a, &device_token(&a, 7, "phone"));
    register(&mut phone_on_a, PushProvider::Apns, "from-a");
    assert_eq!(targets(&reader, 7), vec![("phone".into(), target(PushProvider::Apns, "from-a"))]);

    let mut phone_on_b = online(&b, &device_token(&b, 7, "phone"));
    register(&mut phone_on_b, PushProvider::Fcm, "from-b");
    assert_eq!(targets(&reader, 7), vec![("phone".into(), target(PushProvider::Fcm, "from-b"))]);
    // A provider said the old token is dead: it no longer removes anything.
    assert!(!reader.remove_push_target_if(UserId(7), dev("phone"), "from-a").unwrap());

    let mut laptop_on_b = online(&b, &device_token(&b, 7, "laptop"));
    laptop_on_b.logout_device(dev("phone")).unwrap();
    laptop_on_b.wait_for(WAIT, "logged_out", |e| matches!(e, Event::LoggedOut { .. }).then_some(())).unwrap();
    assert!(targets(&reader, 7).is_empty(), "the logout through b removed it");
    assert_eq!(next_close(&mut phone_on_b), 4004);
    // Gateway a closes its connection of the device within its refresh.
    let started = Instant::now();
    assert_eq!(next_close(&mut phone_on_a), 4004);
    // Within the 2 s refresh; 10 s leaves room for a slow store read.
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
}

//! Which named devices are live over real sockets: a named device is live
//! on a gateway from the first `synced` of one of its connections until
//! its last such connection closes; unnamed connections are never listed.
//! The in-process handle (`ServerHandle::live_devices`) and the admin
//! listener's `GET /live-devices` give the same answer.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Client, DeviceName, UserId};
use chatgw_gateway::{auth::unix_now, LiveDevices};
use util::*;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

fn connect(gw: &TestGateway, user: u64, device: &str) -> Client {
    let now = unix_now();
    Client::connect(gw.addr, &gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600)).unwrap()
}

/// The live devices of `users`, as the handle answers and as JSON.
fn live(handle: &LiveDevices, users: &[u64]) -> (Vec<(u64, Vec<String>)>, String) {
    let ids: Vec<UserId> = users.iter().map(|&u| UserId(u)).collect();
    let listed = handle
        .of(&ids)
        .into_iter()
        .map(|(u, d)| (u.0, d.iter().map(|d| d.as_str().to_owned()).collect()))
        .collect::<Vec<_>>();
    (listed, json(&ids, handle))
}

fn json(users: &[UserId], handle: &LiveDevices) -> String {
    let mut sorted = users.to_vec();
    sorted.sort_unstable();
    let parts: Vec<String> = handle
        .of(&sorted)
        .into_iter()
        .map(|(u, d)| {
            let names: Vec<String> = d.iter().map(|d| format!("\"{d}\"")).collect();
            format!("\"{}\":[{}]", u.0, names.join(","))
        })
        .collect();
    format!("{{{}}}\n", parts.join(","))
}

/// The admin listener's answer for `users`, body only.
fn admin_live(gw: &TestGateway, users: &[u64]) -> String {
    let query: Vec<String> = users.iter().map(|u| format!("user={u}")).collect();
    let resp = gw.admin_get(&format!("/live-devices?{}", query.join("&")));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("application/json"), "{resp}");
    resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).expect("a body")
}

/// Wait until `user`'s live devices are `want` (a close is seen by the
/// gateway a moment after the client sends it).
fn until_live(gw: &TestGateway, user: u64, want: &[&str]) {
    let handle = gw.handle().live_devices();
    let deadline = Instant::now() + WAIT;
    loop {
        let (listed, _) = live(&handle, &[user]);
        if listed[0].1 == want {
            return;
        }
        assert!(Instant::now() < deadline, "live devices of {user}: {listed:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

each_driver!(a_named_device_is_live_from_its_first_sync_until_its_last_connection_closes);
fn a_named_device_is_live_from_its_first_sync_until_its_last_connection_closes(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let handle = gw.handle().live_devices();
    let mut phone = connect(&gw, 7, "phone");
    // Connected but not synced: receives no live events, so not live.
    phone.drain(Duration::from_millis(200)).unwrap();
    assert_eq!(live(&handle, &[7]).0, vec![(7, vec![])]);
    assert_eq!(admin_live(&gw, &[7]), "{\"7\":[]}\n");

    sync_all(&mut phone);
    assert_eq!(live(&handle, &[7]).0, vec![(7, vec!["phone".to_owned()])], "live once synced");
    assert!(handle.is_live(UserId(7), dev("phone")));

    // A second connection of the same device, and an unnamed one.
    let mut phone_again = connect(&gw, 7, "phone");
    sync_all(&mut phone_again);
    let mut unnamed = gw.online(7);
    let mut laptop = connect(&gw, 7, "laptop");
    sync_all(&mut laptop);
    let mut other = connect(&gw, 8, "phone");
    sync_all(&mut other);
    let (listed, as_json) = live(&handle, &[8, 7, 9]);
    assert_eq!(
        listed,
        vec![(8, vec!["phone".to_owned()]), (7, vec!["laptop".to_owned(), "phone".to_owned()]), (9, vec![])],
        "named devices only, per user"
    );
    assert_eq!(admin_live(&gw, &[8, 7, 9]), as_json, "the admin listener answers the same");
    assert_eq!(as_json, "{\"7\":[\"laptop\",\"phone\"],\"8\":[\"phone\"],\"9\":[]}\n");

    // One of the phone's two connections closes: still live.
    phone.close();
    std::thread::sleep(Duration::from_millis(200));
    until_live(&gw, 7, &["laptop", "phone"]);
    phone_again.close();
    until_live(&gw, 7, &["laptop"]);
    // A connection dropped without a close frame counts as closed too.
    drop(laptop);
    until_live(&gw, 7, &[]);
    sync_all(&mut unnamed);
    assert_eq!(admin_live(&gw, &[7, 8]), "{\"7\":[],\"8\":[\"phone\"]}\n");
    sync_all(&mut other);
}

/// The admin listener refuses what is not a batch of user ids.
#[test]
fn the_admin_endpoint_refuses_bad_queries() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    for path in ["/live-devices", "/live-devices?user=0", "/live-devices?user=x", "/live-devices?device=phone"] {
        let resp = gw.admin_get(path);
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
    }
    let resp = raw_exchange(gw.admin_addr(), b"POST /live-devices?user=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
}

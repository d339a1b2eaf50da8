//! Named devices over real sockets (docs/PROTOCOL.md, "Devices"): revoking
//! one device (`POST /revoke?user=N&device=D`, `chatgw revoke --device`)
//! closes only that device's connections with 4004 and refuses its older
//! tokens while the user's other devices stay connected; `devices` lists
//! the named devices with their times; `logout_device` from one device
//! closes another (on this gateway at once, on a second gateway on the same
//! store within its refresh), logs out the asking device itself after
//! answering, and succeeds for a name never seen; bad input is refused with
//! the documented answers.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Client, DeviceInfo, DeviceName, Event, UserId};
use chatgw_gateway::auth::unix_now;
use util::*;

const DEVICE_401: &str = "token revoked: issued before this device was logged out; get a new token\n";

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// A token of `user` for `device`, issued a minute ago, valid for an hour.
fn old_token(gw: &TestGateway, user: u64, device: &str) -> String {
    let now = unix_now();
    gw.key.mint_device(UserId(user), dev(device), now - 60, now + 3600)
}

/// A token of `user` for `device` issued now.
fn new_token(gw: &TestGateway, user: u64, device: &str) -> String {
    let now = unix_now();
    gw.key.mint_device(UserId(user), dev(device), now, now + 3600)
}

fn upgrade(gw: &TestGateway, token: &str) -> String {
    raw_exchange(
        gw.addr,
        format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
}

fn post(addr: std::net::SocketAddr, target: &str) -> String {
    raw_exchange(addr, format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes())
}

fn online(gw: &TestGateway, token: &str) -> Client {
    let mut c = Client::connect(gw.addr, token).unwrap();
    sync_all(&mut c);
    c
}

/// The answer to one `devices`.
fn devices(c: &mut Client) -> Vec<DeviceInfo> {
    c.devices().unwrap();
    c.wait_for(WAIT, "devices", |e| match e {
        Event::Devices { devices } => Some(devices.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// `devices` until `done` holds of the list (the recorder writes within
/// about a second).
fn devices_until(c: &mut Client, what: &str, done: impl Fn(&[DeviceInfo]) -> bool) -> Vec<DeviceInfo> {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = devices(c);
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "{what}: still {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn logged_out(c: &mut Client) -> String {
    c.wait_for(WAIT, "logged_out", |e| match e {
        Event::LoggedOut { device } => Some(device.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The connection is still open and served.
fn still_open(c: &mut Client) {
    sync_all(c);
}

each_driver!(revoking_one_device_closes_only_it_and_refuses_its_old_tokens);
fn revoking_one_device_closes_only_it_and_refuses_its_old_tokens(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let phone_token = old_token(&gw, 7, "phone");
    let mut phones = [online(&gw, &phone_token), online(&gw, &phone_token)];
    let mut laptop = online(&gw, &old_token(&gw, 7, "laptop"));
    let mut unnamed = online(&gw, &gw.key.mint_issued(UserId(7), unix_now() - 60, unix_now() + 3600));
    let mut other_user = online(&gw, &old_token(&gw, 8, "phone"));

    let answer = post(gw.admin_addr(), "/revoke?user=7&device=phone");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("revoked device phone of user 7 at "), "{answer}");
    assert!(answer.ends_with(": its connections on this gateway closing with 4004\n"), "{answer}");
    for p in &mut phones {
        assert_eq!(next_close(p), 4004);
    }
    still_open(&mut laptop);
    still_open(&mut unnamed);
    still_open(&mut other_user);
    assert_eq!(gw.metric("chatgw_sessions_revoked_total"), 2.0);

    // The phone's old token is refused, and one without `iat`; the
    // laptop's old token, another user's phone and a new phone token work.
    let refused = upgrade(&gw, &phone_token);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    let undated = gw.key.sign(&format!(r#"{{"sub":"7","dev":"phone","exp":{}}}"#, unix_now() + 3600));
    let refused = upgrade(&gw, &undated);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    online(&gw, &old_token(&gw, 7, "laptop"));
    online(&gw, &old_token(&gw, 8, "phone"));
    let mut phone = online(&gw, &new_token(&gw, 7, "phone"));
    assert!(phone.drain(Duration::from_millis(300)).unwrap().iter().all(|e| !matches!(e, Event::Closed { .. })));
}

each_driver!(devices_lists_named_devices_and_logout_device_closes_the_other);
fn devices_lists_named_devices_and_logout_device_closes_the_other(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let before = unix_now();
    let mut phone = online(&gw, &old_token(&gw, 7, "phone"));
    let laptop_token = old_token(&gw, 7, "laptop");
    let mut laptop = online(&gw, &laptop_token);
    let mut unnamed = gw.online(7);

    let list = devices_until(&mut phone, "both devices noted", |l| l.len() == 2);
    let names: Vec<&str> = list.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(names, ["laptop", "phone"], "in name order; the unnamed connection is not listed");
    for d in &list {
        assert!((before..=unix_now()).contains(&d.first_seen), "{d:?}");
        assert!((d.first_seen..=unix_now()).contains(&d.last_active), "{d:?}");
        assert_eq!(d.revoked_at, None);
        assert_eq!(d.current, d.device == "phone", "{d:?}");
    }
    assert!(devices(&mut unnamed).iter().all(|d| !d.current), "an unnamed connection is none of them");

    // The phone logs the laptop out: answered, the laptop closed with
    // 4004, its token refused; the phone and the unnamed connection stay.
    phone.logout_device(dev("laptop")).unwrap();
    assert_eq!(logged_out(&mut phone), "laptop");
    assert_eq!(next_close(&mut laptop), 4004);
    let refused = upgrade(&gw, &laptop_token);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    still_open(&mut phone);
    still_open(&mut unnamed);
    let laptop_listed = |l: &[DeviceInfo]| l.iter().find(|d| d.device == "laptop").cloned().unwrap();
    let revoked_at = laptop_listed(&devices(&mut phone)).revoked_at.expect("listed as logged out");
    assert!((before..=unix_now()).contains(&revoked_at));

    // Signed in again (a new token): listed as active again.
    let mut laptop = online(&gw, &new_token(&gw, 7, "laptop"));
    devices_until(&mut laptop, "the laptop listed as signed in again", |l| laptop_listed(l).revoked_at.is_none());

    // A name never seen: logged out all the same (its tokens issued until
    // now are refused when it comes).
    phone.logout_device(dev("tablet")).unwrap();
    assert_eq!(logged_out(&mut phone), "tablet");
    let refused = upgrade(&gw, &old_token(&gw, 7, "tablet"));
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    still_open(&mut laptop);

    // The phone logs itself out: the answer, then the close.
    phone.logout_device(dev("phone")).unwrap();
    assert_eq!(logged_out(&mut phone), "phone");
    assert_eq!(next_close(&mut phone), 4004);
    still_open(&mut laptop);
}

each_driver!(bad_device_input_is_refused_with_the_documented_answers);
fn bad_device_input_is_refused_with_the_documented_answers(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut c = online(&gw, &old_token(&gw, 7, "phone"));
    let long = format!(r#"{{"type":"logout_device","device":"{}"}}"#, "x".repeat(33));
    for (frame, message) in [
        (r#"{"type":"logout_device"}"#, "field `device`: missing"),
        (r#"{"type":"logout_device","device":""}"#, "field `device`: must be 1 to 32 bytes of A-Z a-z 0-9 . _ -"),
        (
            r#"{"type":"logout_device","device":"my phone"}"#,
            "field `device`: must be 1 to 32 bytes of A-Z a-z 0-9 . _ -",
        ),
        (
            r#"{"type":"logout_device","device":["phone"]}"#,
            "field `device`: must be 1 to 32 bytes of A-Z a-z 0-9 . _ -",
        ),
        (&long, "field `device`: must be 1 to 32 bytes of A-Z a-z 0-9 . _ -"),
    ] {
        c.send_raw(frame).unwrap();
        let got = c
            .wait_for(WAIT, "error", |e| match e {
                Event::Error { code, message, .. } => Some((code.clone(), message.clone())),
                _ => None,
            })
            .unwrap();
        assert_eq!(got, ("bad_field".to_owned(), message.to_owned()), "{frame}");
    }
    still_open(&mut c);

    // A token whose `dev` is no device name.
    for dev in [r#""my phone""#, r#""""#, "7"] {
        let token = gw.key.sign(&format!(r#"{{"sub":"7","dev":{dev},"exp":{}}}"#, unix_now() + 3600));
        let refused = upgrade(&gw, &token);
        assert!(
            refused.starts_with("HTTP/1.1 401")
                && refused.ends_with("token device (`dev`) must be 1 to 32 bytes of A-Z a-z 0-9 . _ -\n"),
            "{dev}: {refused}"
        );
    }

    // The admin listener.
    for target in ["/revoke?user=7&device=", "/revoke?user=7&device=my%20phone", "/revoke?user=7&device=a&device=b"] {
        let r = post(gw.admin_addr(), target);
        assert!(
            r.starts_with("HTTP/1.1 400")
                && r.ends_with("expected &device=D with D 1 to 32 bytes of A-Z a-z 0-9 . _ -\n"),
            "{target}: {r}"
        );
    }
    let r = post(gw.admin_addr(), "/revoke?device=phone");
    assert!(r.starts_with("HTTP/1.1 400") && r.ends_with("expected ?user=N with N a numeric user id\n"), "{r}");
    // Nothing was revoked by any of them.
    still_open(&mut c);
    online(&gw, &old_token(&gw, 7, "phone"));
}

each_driver!(a_hash_collision_closes_the_other_device_once_and_it_reconnects);
fn a_hash_collision_closes_the_other_device_once_and_it_reconnects(io: IoDriver) {
    // Two names with one 32-bit FNV-1a hash (found by a search over
    // six-character names): connections are found by the hash, tokens are
    // checked against the name.
    let (a, b) = (dev("dayqfs"), dev("da1wja"));
    assert_eq!(a.hash32(), b.hash32());
    let gw = TestGateway::start(io, 1);
    let mut on_a = online(&gw, &old_token(&gw, 7, "dayqfs"));
    let b_token = old_token(&gw, 7, "da1wja");
    let mut on_b = online(&gw, &b_token);
    let mut phone = online(&gw, &old_token(&gw, 7, "phone"));
    phone.logout_device(a).unwrap();
    assert_eq!(logged_out(&mut phone), "dayqfs");
    assert_eq!(next_close(&mut on_a), 4004);
    assert_eq!(next_close(&mut on_b), 4004, "the colliding device is closed too, once");
    let mut on_b = online(&gw, &b_token);
    assert!(on_b.drain(Duration::from_millis(300)).unwrap().iter().all(|e| !matches!(e, Event::Closed { .. })));
    let refused = upgrade(&gw, &old_token(&gw, 7, "dayqfs"));
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    still_open(&mut phone);
}

/// Two gateways on one PostgreSQL store: a device logged out through the
/// first is closed on the second within its refresh period (2 s), which
/// then refuses its old token.
#[test]
fn a_second_gateway_closes_a_logged_out_device_within_the_refresh() {
    let store = fresh_postgres_store();
    let a = TestGateway::start_with(IoDriver::Uring, 1, |c| c.store = store.clone());
    let b = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = store.clone());
    let laptop_token = old_token(&a, 7, "laptop");
    let mut laptop_on_b = online(&b, &laptop_token);
    let mut phone_on_b = online(&b, &old_token(&b, 7, "phone"));
    let mut phone_on_a = online(&a, &old_token(&a, 7, "phone"));
    // The listing is the store's: both gateways' devices.
    devices_until(&mut phone_on_a, "devices of both gateways", |l| l.len() == 2);

    phone_on_a.logout_device(dev("laptop")).unwrap();
    assert_eq!(logged_out(&mut phone_on_a), "laptop");
    let started = Instant::now();
    assert_eq!(next_close(&mut laptop_on_b), 4004);
    // Within the 2 s refresh; 10 s leaves room for a slow store read.
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
    let refused = upgrade(&b, &laptop_token);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(DEVICE_401), "{refused}");
    still_open(&mut phone_on_b);
    still_open(&mut phone_on_a);
}

/// `chatgw revoke --user N --device D --admin ADDR` revokes one device; a
/// bad name is refused by the command itself.
#[test]
fn the_revoke_command_revokes_one_device() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let mut phone = online(&gw, &old_token(&gw, 5, "phone"));
    let mut laptop = online(&gw, &old_token(&gw, 5, "laptop"));
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_chatgw")).args(args).output().unwrap();
    let admin = gw.admin_addr().to_string();
    let ok = run(&["revoke", "--user", "5", "--device", "phone", "--admin", &admin]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout.starts_with("revoked device phone of user 5 at "), "{stdout}");
    assert_eq!(next_close(&mut phone), 4004);
    still_open(&mut laptop);
    let bad = run(&["revoke", "--user", "5", "--device", "my phone", "--admin", &admin]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be 1 to 32 bytes"), "{bad:?}");
    still_open(&mut laptop);
}

/// `chatgw token --device D` writes the `dev` claim.
#[test]
fn the_token_command_names_the_device() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["token", "--user", "5", "--device", "phone", "--secret", SECRET])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = gw.key.verify(token.trim(), unix_now()).unwrap();
    assert_eq!((claims.user, claims.device), (UserId(5), Some(dev("phone"))));
}

//! Session revocation over real sockets: `POST /revoke?user=N` on the
//! admin listener closes every device of the user at once with 4004,
//! refuses the user's older and undated tokens with 401 while a new token
//! works, leaves other users alone, is not served on the public port, and
//! answers bad requests with 4xx. On a shared PostgreSQL store a second
//! gateway honours a revocation made through the first, for upgrades and
//! for its live connections.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Client, Event, UserId};
use chatgw_gateway::auth::unix_now;
use util::*;

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

/// A token of `user` issued a minute ago, valid for an hour.
fn old_token(gw: &TestGateway, user: u64) -> String {
    let now = unix_now();
    gw.key.mint_issued(UserId(user), now - 60, now + 3600)
}

const REVOKED_401: &str = "token revoked: issued before the user's sessions were revoked; get a new token\n";

each_driver!(revocation_closes_every_device_and_refuses_old_tokens);
fn revocation_closes_every_device_and_refuses_old_tokens(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let old = old_token(&gw, 7);
    let mut devices: Vec<Client> = (0..3).map(|_| Client::connect(gw.addr, &old).unwrap()).collect();
    for d in &mut devices {
        sync_all(d);
    }
    let mut other = gw.online(8);

    // Not on the public port.
    let public = post(gw.addr, "/revoke?user=7");
    assert!(public.starts_with("HTTP/1.1 405"), "{public}");
    sync_all(&mut devices[0]);

    let answer = post(gw.admin_addr(), "/revoke?user=7");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("3 connection(s) on this gateway closing with 4004"), "{answer}");
    for d in &mut devices {
        assert_eq!(next_close(d), 4004);
    }
    assert_eq!(gw.metric("chatgw_sessions_revoked_total"), 3.0);

    // The old token and a token without `iat` are refused; a new one works.
    let refused = upgrade(&gw, &old);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(REVOKED_401), "{refused}");
    let undated = gw.key.sign(&format!(r#"{{"sub":"7","exp":{}}}"#, unix_now() + 3600));
    let refused = upgrade(&gw, &undated);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(REVOKED_401), "{refused}");
    let mut fresh = gw.online(7);
    assert!(fresh.drain(Duration::from_millis(300)).unwrap().iter().all(|e| !matches!(e, Event::Closed { .. })));

    // Another user is untouched, and may still use an old token.
    sync_all(&mut other);
    let mut other_old = Client::connect(gw.addr, &old_token(&gw, 8)).unwrap();
    sync_all(&mut other_old);
}

each_driver!(bad_revoke_requests_get_4xx);
fn bad_revoke_requests_get_4xx(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let admin = gw.admin_addr();
    let get = gw.admin_get("/revoke?user=7");
    assert!(get.starts_with("HTTP/1.1 405") && get.ends_with("only POST\n"), "{get}");
    for target in ["/revoke", "/revoke?user=", "/revoke?user=abc", "/revoke?user=0", "/revoke?user=1&user=2"] {
        let r = post(admin, target);
        assert!(
            r.starts_with("HTTP/1.1 400") && r.ends_with("expected ?user=N with N a numeric user id\n"),
            "{target}: {r}"
        );
    }
    // Nothing was revoked by them.
    let mut c = Client::connect(gw.addr, &old_token(&gw, 1)).unwrap();
    sync_all(&mut c);
}

/// Two gateways on one PostgreSQL store: a revocation through the first
/// reaches the second within its refresh period (2 s), which then refuses
/// the old token and closes its own connection of the user with 4004.
#[test]
fn a_second_gateway_on_the_store_honours_the_revocation() {
    let store = fresh_postgres_store();
    let a = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = store.clone());
    let b = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = store.clone());
    let old = old_token(&a, 7);
    let mut on_b = Client::connect(b.addr, &old).unwrap();
    sync_all(&mut on_b);
    let answer = post(a.admin_addr(), "/revoke?user=7");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = Instant::now();
    assert_eq!(next_close(&mut on_b), 4004);
    // Within the 2 s refresh; 10 s leaves room for a slow store read.
    assert!(started.elapsed() < Duration::from_secs(10), "closed after {:?}", started.elapsed());
    let refused = upgrade(&b, &old);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(REVOKED_401), "{refused}");
    // And a restart of the first still refuses it (read from the store at start).
    drop(a);
    let a = TestGateway::start_with(IoDriver::Uring, 1, |c| c.store = store.clone());
    let refused = upgrade(&a, &old);
    assert!(refused.starts_with("HTTP/1.1 401") && refused.ends_with(REVOKED_401), "{refused}");
    let _fresh = a.online(7);
}

/// `chatgw revoke --user N --admin ADDR` calls the endpoint: it prints the
/// gateway's answer and exits 0, and exits 1 with the answer on a refusal
/// or when nothing listens.
#[test]
fn the_revoke_command_calls_the_admin_listener() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let mut device = Client::connect(gw.addr, &old_token(&gw, 5)).unwrap();
    sync_all(&mut device);
    let run = |args: &[&str]| std::process::Command::new(env!("CARGO_BIN_EXE_chatgw")).args(args).output().unwrap();
    let admin = gw.admin_addr().to_string();
    let ok = run(&["revoke", "--user", "5", "--admin", &admin]);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{ok:?}");
    assert!(stdout.starts_with("revoked user 5 at ") && stdout.contains("1 connection(s)"), "{stdout}");
    assert_eq!(next_close(&mut device), 4004);
    // The public port is not the admin listener: refused, exit 1.
    let public = gw.addr.to_string();
    let refused = run(&["revoke", "--user", "5", "--admin", &public]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the gateway answered 405"), "{refused:?}");
}

//! The admin listener: `/metrics` only there, `/healthz` on both
//! listeners, a blocking thread that outlasts bad clients while the public
//! port carries on; and the typed errors of a start that cannot bind it.

mod util;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use chatgw_gateway::{ConfigError, Server, StartError};
use util::*;

fn get(addr: SocketAddr, path: &str) -> String {
    raw_exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
}

each_driver!(metrics_is_404_on_the_public_port_and_served_on_the_admin_port);
fn metrics_is_404_on_the_public_port_and_served_on_the_admin_port(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let _c = gw.online(1);
    for _ in 0..4 {
        // Several tries, so both cores' listeners answer.
        let public = get(gw.addr, "/metrics");
        assert!(public.starts_with("HTTP/1.1 404"), "{public}");
        assert!(!public.contains("chatgw_"), "no metric leaks on the public port: {public}");
    }
    let admin = gw.admin_get("/metrics");
    assert!(admin.starts_with("HTTP/1.1 200"), "{admin}");
    assert!(admin.contains("Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"), "{admin}");
    assert!(admin.ends_with("# EOF\n"), "{admin}");
    let body = admin.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(metric_value(body, "chatgw_connections_open"), 1.0, "{body}");
    for addr in [gw.addr, gw.admin_addr()] {
        let health = get(addr, "/healthz");
        assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{addr}: {health}");
    }
}

/// The admin listener's answers to what it does not serve.
#[test]
fn admin_listener_refuses_other_paths_and_methods() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let admin = gw.admin_addr();
    for (request, status) in [
        ("GET /ws HTTP/1.1\r\n\r\n", "404"),
        ("GET /metrics?x=1 HTTP/1.1\r\n\r\n", "200"),
        ("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405"),
        ("HEAD /healthz HTTP/1.1\r\n\r\n", "405"),
    ] {
        let resp = raw_exchange(admin, request.as_bytes());
        assert!(resp.starts_with(&format!("HTTP/1.1 {status}")), "{request:?}: {resp}");
    }
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
    let resp = raw_exchange(admin, huge.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
}

each_driver!(admin_listener_survives_garbage_and_a_slow_client_while_public_traffic_continues);
fn admin_listener_survives_garbage_and_a_slow_client_while_public_traffic_continues(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let admin = gw.admin_addr();
    let mut ok = Healthy::new(&gw);

    // A client that starts a request and goes silent holds the (single)
    // admin thread, but only until the request deadline.
    let started = Instant::now();
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    // Garbage queued behind it: answered once the slow client is cut off.
    let garbage = std::thread::spawn(move || raw_exchange(admin, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"));
    // The public port does not wait for the admin thread.
    ok.check();
    assert!(started.elapsed() < Duration::from_millis(1500), "public traffic went on at once");
    ok.check();

    let mut cut = Vec::new();
    let _ = slow.read_to_end(&mut cut);
    let waited = started.elapsed();
    let cut = String::from_utf8_lossy(&cut);
    assert!(cut.starts_with("HTTP/1.1 408"), "{cut}");
    assert!(waited >= Duration::from_millis(1500) && waited < WAIT, "cut off at the deadline: {waited:?}");
    let garbage = garbage.join().unwrap();
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");

    // A client that connects and says nothing at all is cut off the same way.
    let silent = TcpStream::connect(admin).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let resp = http_on(silent, b"");
    assert!(resp.starts_with("HTTP/1.1 408"), "{resp}");

    // Still serving, and the public port never stopped.
    assert!(gw.scrape().contains("chatgw_connections_open 2"), "the two healthy clients are counted");
    ok.check();
}

/// `off`: no admin address, `/metrics` only in process (the process test
/// `admin_listen_off_binds_nothing` counts the listening sockets).
#[test]
fn admin_listen_off_leaves_metrics_in_process_only() {
    let gw = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.admin_listen = None);
    assert_eq!(gw.handle().admin_addr(), None);
    assert!(gw.handle().metrics_text().contains("chatgw_connections_open"));
    let public = get(gw.addr, "/metrics");
    assert!(public.starts_with("HTTP/1.1 404"), "{public}");
}

#[test]
fn shutdown_closes_the_admin_listener() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    let admin = gw.admin_addr();
    assert!(gw.admin_get("/healthz").starts_with("HTTP/1.1 200"));
    drop(gw);
    assert!(TcpStream::connect(admin).is_err(), "nothing listens on {admin} after shutdown");
}

#[test]
fn admin_address_in_use_is_a_clear_start_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = chatgw_gateway::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().into(), SECRET.into());
    config.admin_listen = Some(addr);
    config.workers = 1;
    let err = Server::start(config.clone()).expect_err("the admin address is taken");
    assert!(matches!(err, StartError::AdminInUse { addr: a } if a == addr), "{err:?}");
    assert_eq!(err.to_string(), format!("admin address {addr} in use: set --admin-listen to another address or off"));

    config.workers = 0;
    let err = Server::start(config).expect_err("invalid settings");
    assert!(matches!(err, StartError::Config(ConfigError::Invalid(_))), "{err:?}");
    assert_eq!(err.to_string(), "workers must be 1..=256");
}

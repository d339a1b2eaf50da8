//! `one-to-one --reconnect` through a gateway drain (docs/DRAIN.md): two
//! gateways on one shared PostgreSQL store, one of them drained with
//! `POST /admin/drain` while the load runs. Its connections are closed
//! with 1012 and a `retry_after_ms` hint; the load generator waits the
//! hint, reconnects to the other gateway, syncs from its cursor and
//! resends, and must end with nothing lost and nothing duplicated.

mod util;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use chatgw_storage::conformance::TestPostgres;
use serde_json::Value;

use crate::util::{init_store, spawn_gateway_with};

const SECRET: &str = "drain-test-secret";

/// `POST /admin/drain` on the admin listener at `admin`; the status line.
fn post_drain(admin: &str) -> String {
    let mut s = TcpStream::connect(admin).expect("the admin listener answers");
    s.write_all(b"POST /admin/drain HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// `chatgw_connections_open` from a gateway's `/metrics` (0 while it does
/// not answer).
fn open_connections(admin: &str) -> f64 {
    let Ok(mut s) = TcpStream::connect(admin) else { return 0.0 };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .lines()
        .find_map(|l| l.strip_prefix("chatgw_connections_open ").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn one_to_one_reconnects_through_a_drain_without_loss_or_duplicates() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let url = pg.url(&pg.create_database());
    init_store(&url);
    let drain = ["--drain-delay", "200ms", "--drain-period", "2s"];
    let a =
        spawn_gateway_with(&dir.path().join("a"), SECRET, &[&["--store", &url, "--node-id", "1"][..], &drain].concat());
    let mut b =
        spawn_gateway_with(&dir.path().join("b"), SECRET, &[&["--store", &url, "--node-id", "2"][..], &drain].concat());
    let json = dir.path().join("one-to-one.json");
    let urls = format!("{},{}", a.addr, b.addr);
    let loadgen = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["one-to-one", "--reconnect", "--url", &urls, "--same-node", "--quiet", "--secret", SECRET])
        .args(["--pairs", "8", "--rate", "80", "--duration", "5s", "--drain", "20s"])
        .args(["--check", "lost=0,dup=0", "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    // Drain node 2 once its 4 pairs (8 devices) are up and sending, and
    // with a good part of the 5 s run still to go.
    let started = std::time::Instant::now();
    while open_connections(&b.admin) < 8.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "node 2 never held its 8 devices");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let status = post_drain(&b.admin);
    assert!(status.contains(" 20"), "the drain was accepted: {status}");
    let out = loadgen.wait_with_output().expect("loadgen finishes");
    let explain = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{explain}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((r["lost"].as_u64(), r["duplicated"].as_u64()), (Some(0), Some(0)), "{r}");
    assert_eq!(r["acked"].as_u64(), r["scheduled"].as_u64(), "every message was acknowledged: {r}");
    assert!(r["reconnects"].as_u64().is_some_and(|n| n >= 8), "node 2's 4 pairs (8 devices) came back: {r}");
    assert_eq!(r["gave_up"].as_u64(), Some(0));
    // The drained node finished its drain and exited.
    let exited = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        b.child.try_wait().ok().flatten().is_some()
    });
    assert!(exited, "the drained gateway stopped after its drain period");
}

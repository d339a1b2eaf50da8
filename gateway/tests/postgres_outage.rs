//! A PostgreSQL outage under an idle gateway: the server is stopped as a
//! crash would (`pg_ctl stop -m immediate`) while no client sends anything.
//! `/healthz` turns 503 with the cause within seconds and the metrics say
//! why; a send meanwhile is refused with `unavailable`; once the server is
//! started again the same gateway process answers 200 and acknowledges
//! again, with no restart. Its own server: stopping a shared one would
//! break the other tests.

mod util;

use std::time::{Duration, Instant};

use chatgw_client::{Event, MessageKind, UserId};
use chatgw_gateway::store;
use chatgw_storage::conformance::TestPostgres;
use util::*;

/// `/healthz` from the public listener and the admin listener, which must agree.
fn healthz(gw: &TestGateway) -> String {
    let public = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let admin = gw.admin_get("/healthz");
    assert_eq!(public.lines().next(), admin.lines().next(), "both listeners report the same health");
    public
}

/// Poll `/healthz` until it starts with `status`; the response and how long it took.
fn wait_for_health(gw: &TestGateway, status: &str, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let resp = healthz(gw);
        if resp.starts_with(status) {
            return (resp, started.elapsed());
        }
        assert!(started.elapsed() < within, "no {status} within {within:?}; last: {resp}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send one message; `Ok(id)` for `sent`, `Err(code)` for an error.
fn send(c: &mut chatgw_client::Client, cid: &str) -> Result<u64, String> {
    c.send_message(UserId(2), cid, MessageKind::Text, "through an outage").unwrap();
    c.wait_for(WAIT, "an answer", |e| match e {
        Event::Sent { client_id, id, .. } if client_id == cid => Some(Ok(id.0)),
        Event::Error { code, .. } => Some(Err(code.clone())),
        _ => None,
    })
    .unwrap()
}

#[test]
fn an_idle_gateway_reports_a_postgres_outage_and_comes_back_without_a_restart() {
    let pg = TestPostgres::start();
    let url: store::StoreUrl = pg.url(&pg.create_database()).parse().unwrap();
    store::init(&url).unwrap();
    let gw = TestGateway::start_with(IoDriver::Epoll, 1, |c| c.store = url.clone());
    let (mut a, mut b) = (gw.online(1), gw.online(2));
    let before = send(&mut a, "before").expect("sent while the server is up");
    assert_eq!(next_message(&mut b).id.0, before);
    assert_eq!(wait_for_health(&gw, "HTTP/1.1 200", WAIT).0.split("\r\n\r\n").nth(1), Some("ok\n"));

    if pg.crash().is_none() {
        eprintln!("CHATGW_TEST_POSTGRES names an external server: not stopping it");
        return;
    }
    // No client sends anything: the probe alone must notice.
    let (health, took) = wait_for_health(&gw, "HTTP/1.1 503", Duration::from_secs(5));
    eprintln!("/healthz 503 {took:?} after the server stopped: {health}");
    let body = health.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.starts_with("store not writable: unreachable: ")
            || body.starts_with("store not writable: connection_lost: "),
        "the cause is in the body: {body}"
    );
    assert_eq!(body.lines().count(), 1, "{body}");
    // Give the probe time to count a few failures, then read the metrics.
    std::thread::sleep(Duration::from_millis(600));
    let metrics = gw.scrape();
    assert_eq!(metric_value(&metrics, "chatgw_store_writable"), 0.0, "{metrics}");
    let by_cause = |cause: &str| metric_value(&metrics, &format!("chatgw_store_errors_total{{cause=\"{cause}\"}}"));
    assert!(by_cause("unreachable") >= 1.0, "a stopped server refuses connections: {metrics}");

    // A send meanwhile: refused, never acknowledged.
    assert_eq!(send(&mut a, "during"), Err("unavailable".into()));
    let quiet = b.drain(Duration::from_millis(200)).unwrap();
    assert!(quiet.iter().all(|e| !matches!(e, Event::Message(_))), "{quiet:?}");

    pg.restart();
    let (health, took) = wait_for_health(&gw, "HTTP/1.1 200", Duration::from_secs(10));
    eprintln!("/healthz 200 {took:?} after the server started again");
    assert!(health.ends_with("ok\n"), "{health}");
    assert_eq!(gw.metric("chatgw_store_writable"), 1.0);
    // The same process acknowledges again: the refused message on resend,
    // and a new one, both delivered live.
    let during = send(&mut a, "during").expect("sent after the restart");
    assert_eq!(next_message(&mut b).id.0, during);
    let after = send(&mut a, "after").expect("sent after the restart");
    assert_eq!(next_message(&mut b).id.0, after);
    assert!(before < during && during < after, "ids never go backwards");
}

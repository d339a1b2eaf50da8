//! The paced drain of SIGTERM on a real `chatgw serve`: `/readyz` turns
//! 503 at once on both listeners, new connections are refused after
//! `--drain-delay`, open ones are closed with 1012 and a reconnect hint in
//! waves over `--drain-period`, the process exits 0, and every message a
//! sender was told is `sent`, even during the drain, is in the
//! recipient's sync after a restart.

mod util;

use std::{
    collections::BTreeSet,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_protocol::close;
use util::{child::*, *};

fn token(user: u64) -> String {
    chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes()).mint(UserId(user), chatgw_gateway::auth::unix_now() + 600)
}

/// When a client was closed, with which code and reason.
fn await_close(mut c: Client) -> JoinHandle<(Instant, u16, String)> {
    std::thread::spawn(move || loop {
        match c.next_event(Duration::from_secs(30)) {
            Ok(Some(Event::Closed { code, reason })) => return (Instant::now(), code, reason),
            Ok(Some(_)) => {}
            other => panic!("no close: {other:?}"),
        }
    })
}

/// Send to user 2 one message after another until the connection closes:
/// the ids acknowledged with `sent`.
fn send_until_closed(mut a: Client) -> JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0.. {
            if a.send_message(UserId(2), &format!("d{i}"), MessageKind::Text, "during the drain").is_err() {
                return acked;
            }
            loop {
                match a.next_event(Duration::from_secs(30)) {
                    Ok(Some(Event::Sent { id, .. })) => {
                        acked.push(id.0);
                        break;
                    }
                    Ok(Some(Event::Closed { .. })) | Err(_) => return acked,
                    Ok(Some(Event::Error { code, .. })) => {
                        assert_eq!(code, "shutting_down");
                        break;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("no answer to a send"),
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        acked
    })
}

each_driver!(sigterm_drains_in_waves_with_1012_and_loses_no_acknowledged_message);
fn sigterm_drains_in_waves_with_1012_and_loses_no_acknowledged_message(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    // The delay leaves room for a loaded machine: readiness must flip
    // within half of it, and connections are still taken until it ends.
    let (delay, period) = (Duration::from_secs(3), Duration::from_secs(4));
    let flags = ["--workers", "2", "--drain-delay", "3s", "--drain-period", "4s"];
    let mut gw = ChildGateway::spawn(dir.path(), io, &flags);
    assert_eq!(http_status(gw.addr, "/readyz"), Some(200));
    assert_eq!(http_status(gw.admin, "/readyz"), Some(200));

    let idle: Vec<Client> = (100..140).map(|u| Client::connect(gw.addr, &token(u)).unwrap()).collect();
    let b = Client::connect(gw.addr, &token(2)).unwrap();
    let sender = send_until_closed(Client::connect(gw.addr, &token(1)).unwrap());
    std::thread::sleep(Duration::from_millis(200));

    gw.signal(libc::SIGTERM);
    let t0 = Instant::now();
    let closes: Vec<_> = idle.into_iter().chain([b]).map(await_close).collect();
    // Readiness flips at once (as soon as the signal is handled), health
    // stays.
    while http_status(gw.addr, "/readyz") != Some(503) && t0.elapsed() < delay / 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(http_status(gw.addr, "/readyz"), Some(503));
    assert_eq!(http_status(gw.admin, "/readyz"), Some(503));
    assert_eq!(http_status(gw.addr, "/healthz"), Some(200));
    assert!(t0.elapsed() < delay / 2, "readiness took {:?}", t0.elapsed());
    // Within the delay, new connections are still taken (the balancer has
    // not noticed yet); after it, refused.
    let late = Client::connect(gw.addr, &token(200)).expect("taken during the delay");
    let late = await_close(late);
    std::thread::sleep((delay + Duration::from_millis(300)).saturating_sub(t0.elapsed()));
    // The listener closes at the end of the delay; a drain thread woken
    // late on a busy box may close it a little after.
    while std::net::TcpStream::connect(gw.addr).is_ok() {
        assert!(t0.elapsed() < delay + WAIT, "a connection taken {:?} after the signal", t0.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut waves = std::collections::BTreeMap::<u64, usize>::new();
    for c in closes.into_iter().chain([late]) {
        let (at, code, reason) = c.join().unwrap();
        let since = at.duration_since(t0);
        assert_eq!(code, close::SERVICE_RESTART, "{reason}");
        let hint = close::retry_after_ms(&reason).unwrap_or_else(|| panic!("no hint in {reason:?}"));
        assert!(hint <= 1000, "{hint}");
        assert!(since >= delay && since <= delay + period, "closed at {since:?}");
        *waves.entry((since - delay).as_secs()).or_default() += 1;
    }
    eprintln!("closes per second after the delay: {waves:?}");
    assert!(waves.len() >= 3, "closed in the waves {waves:?}");
    let acked = sender.join().unwrap();
    assert!(acked.len() > 10, "{} acknowledged", acked.len());
    let status = gw.exit_within(delay + period + Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");

    // Every acknowledged message is stored: restart on the same data.
    let gw = ChildGateway::spawn(dir.path(), io, &["--workers", "1"]);
    let mut b = Client::connect(gw.addr, &token(2)).unwrap();
    let stored: BTreeSet<u64> =
        sync_all(&mut b).iter().filter_map(|e| if let Event::Message(m) = e { Some(m.id.0) } else { None }).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    eprintln!("{} acknowledged during the run, {} stored, {} lost", acked.len(), stored.len(), lost.len());
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
}

each_driver!(post_admin_drain_starts_a_drain_like_sigterm);
fn post_admin_drain_starts_a_drain_like_sigterm(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    let mut gw =
        ChildGateway::spawn(dir.path(), io, &["--workers", "1", "--drain-delay", "0s", "--drain-period", "1s"]);
    let c = await_close(Client::connect(gw.addr, &token(1)).unwrap());
    assert!(raw_exchange(gw.admin, b"GET /admin/drain HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    let answer = raw_exchange(gw.admin, b"POST /admin/drain HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let (_, code, _) = c.join().unwrap();
    assert_eq!(code, close::SERVICE_RESTART);
    assert!(gw.exit_within(Duration::from_secs(15)).success());
}

each_driver!(a_drained_gateways_client_reconnects_to_another_and_loses_nothing);
fn a_drained_gateways_client_reconnects_to_another_and_loses_nothing(io: IoDriver) {
    let url = fresh_postgres_store();
    let [mut first, second] = [1, 2].map(|node| {
        TestGateway::start_with(io, 1, |c| {
            c.store = url.clone();
            c.node_id = node;
        })
    });
    let token_a = first.token(1);
    let mut reconnect = chatgw_client::Reconnect::new(vec![first.addr, second.addr]);
    let mut a = reconnect.connect(&token_a, WAIT).unwrap();
    assert_eq!(reconnect.current(), first.addr);

    let mut handle = first.handle.take();
    let plan = chatgw_gateway::drain::DrainPlan { delay: Duration::ZERO, period: Duration::from_secs(2) };
    let mut drain = None;
    // Send through the drain: on a close, reconnect (hint, other address,
    // sync) and resend what has no `sent`, with the same client id.
    let (mut acked, mut moved) = (BTreeSet::new(), None);
    let mut i = 0;
    while i < 60 {
        if i == 10 && drain.is_none() {
            let handle = handle.take().unwrap();
            drain = Some(std::thread::spawn(move || handle.drain(plan)));
        }
        let cid = format!("r{i}");
        a.send_message(UserId(2), &cid, MessageKind::Text, &cid).unwrap();
        let outcome = a.wait_for(WAIT, "sent or close", |e| match e {
            Event::Sent { client_id, .. } if *client_id == cid => Some(None),
            Event::Closed { code, reason } => Some(Some((*code, reason.clone()))),
            _ => None,
        });
        match outcome {
            Ok(None) => {
                acked.insert(cid);
                i += 1;
                std::thread::sleep(Duration::from_millis(40));
            }
            Ok(Some((code, reason))) => {
                assert_eq!(code, close::SERVICE_RESTART, "{reason}");
                assert!(moved.is_none(), "closed twice");
                moved = Some(i);
                a = reconnect.reconnect(&token_a, a.cursor(), &reason, WAIT).unwrap();
                a.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();
            }
            Err(e) => panic!("message {i}: {e}"),
        }
    }
    drain.unwrap().join().unwrap();
    let moved = moved.expect("the drain closed the sender's connection");
    assert!((10..60).contains(&moved), "moved at {moved}");
    assert_eq!(reconnect.current(), second.addr);

    // The recipient, on the gateway that stayed, gets each message once.
    let mut b = second.connect(2);
    let bodies: Vec<String> = sync_all(&mut b)
        .iter()
        .filter_map(|e| if let Event::Message(m) = e { Some(m.body.clone()) } else { None })
        .collect();
    assert_eq!(bodies.len(), 60, "{bodies:?}");
    assert_eq!(bodies.iter().cloned().collect::<BTreeSet<_>>(), acked);
}

each_driver!(a_second_sigterm_hurries_the_drain);
fn a_second_sigterm_hurries_the_drain(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--workers", "1", "--drain-delay", "30s", "--drain-period", "30s"];
    let mut gw = ChildGateway::spawn(dir.path(), io, &flags);
    let c = await_close(Client::connect(gw.addr, &token(1)).unwrap());
    gw.signal(libc::SIGTERM);
    eventually_status(gw.addr, 503);
    gw.signal(libc::SIGINT);
    let (_, code, _) = c.join().unwrap();
    assert_eq!(code, close::SERVICE_RESTART);
    assert!(gw.exit_within(Duration::from_secs(10)).success());
}

/// Wait until `/readyz` answers `status`.
fn eventually_status(addr: std::net::SocketAddr, status: u16) {
    let deadline = Instant::now() + WAIT;
    while http_status(addr, "/readyz") != Some(status) {
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

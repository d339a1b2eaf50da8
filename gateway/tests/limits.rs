//! Abuse limits: each test crosses one limit and shows that the offender is
//! refused as documented, the refusal is counted on /metrics, and a healthy
//! pair on the same gateway keeps messaging.

mod util;

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, MessageKind, UserId};
use util::*;

const UPGRADE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn offender() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))
}

each_driver!(a_source_over_its_connection_cap_gets_429_and_others_are_served);
fn a_source_over_its_connection_cap_gets_429_and_others_are_served(io: IoDriver) {
    let gw = TestGateway::start_with(io, 2, |c| c.max_connections_per_ip = 5);
    let mut ok = Healthy::new(&gw);
    let held: Vec<_> = (0..5).map(|_| connect_from(offender(), gw.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let resp = http_on(connect_from(offender(), gw.addr).unwrap(), UPGRADE);
    assert!(resp.starts_with("HTTP/1.1 429"), "{resp}");
    assert!(resp.contains("too many connections from address"), "{resp}");
    assert_eq!(gw.metric("chatgw_ip_connection_refusals_total"), 1.0);
    // Another address is not affected, and the healthy pair keeps talking.
    let resp = http_on(connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10)), gw.addr).unwrap(), UPGRADE);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    ok.check();
    // A connection that goes frees its share.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let resp = http_on(connect_from(offender(), gw.addr).unwrap(), UPGRADE);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

each_driver!(a_source_connecting_too_fast_gets_429_until_its_bucket_refills);
fn a_source_connecting_too_fast_gets_429_until_its_bucket_refills(io: IoDriver) {
    let gw = TestGateway::start_with(io, 2, |c| {
        c.ip_connect_rate = 2;
        c.ip_connect_burst = 4;
    });
    let mut ok = Healthy::new(&gw);
    let answers: Vec<String> = (0..6).map(|_| http_on(connect_from(offender(), gw.addr).unwrap(), UPGRADE)).collect();
    let refused = answers.iter().filter(|r| r.starts_with("HTTP/1.1 429")).count();
    assert!(answers[..4].iter().all(|r| r.starts_with("HTTP/1.1 200")), "the burst is served: {answers:?}");
    assert!(refused >= 1, "{answers:?}");
    assert!(answers.iter().any(|r| r.contains("connecting too fast")), "{answers:?}");
    assert_eq!(gw.metric("chatgw_ip_rate_refusals_total"), refused as f64);
    ok.check();
    // Two per second: a new connection is allowed again after a moment.
    std::thread::sleep(Duration::from_millis(600));
    let resp = http_on(connect_from(offender(), gw.addr).unwrap(), UPGRADE);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

each_driver!(a_user_over_the_send_rate_is_refused_on_every_device_and_nothing_refused_is_stored);
fn a_user_over_the_send_rate_is_refused_on_every_device_and_nothing_refused_is_stored(io: IoDriver) {
    let gw = TestGateway::start_with(io, 2, |c| {
        c.user_send_rate = 1;
        c.user_send_burst = 4;
    });
    let mut ok = Healthy::new(&gw);
    // Two devices of the same user share one allowance.
    let mut phone = gw.online(10);
    let mut laptop = gw.online(10);
    // All six go out before any answer is read: the allowance refills one
    // send a second, so waiting for each commit (a slow fsync) could let
    // a fifth through.
    let cids: Vec<String> = (0..6).map(|i| format!("{}{i}", if i % 2 == 0 { "p" } else { "l" })).collect();
    for (i, cid) in cids.iter().enumerate() {
        let dev = if i % 2 == 0 { &mut phone } else { &mut laptop };
        dev.send_message(UserId(20), cid, MessageKind::Text, "spam").unwrap();
    }
    // A refusal may overtake an earlier send's `sent` (which waits for its
    // commit), so each device's answers are gathered in any order.
    let (mut sent, mut refused) = (BTreeSet::new(), BTreeSet::new());
    for dev in [&mut phone, &mut laptop] {
        for _ in 0..3 {
            let (cid, outcome) = dev
                .wait_for(WAIT, "sent or error", |e| match e {
                    Event::Sent { client_id, .. } => Some((client_id.clone(), "sent".to_owned())),
                    Event::Error { code, reference: Some(cid), .. } => Some((cid.clone(), code.clone())),
                    _ => None,
                })
                .unwrap();
            assert!(cids.contains(&cid), "an answer to {cid}");
            match outcome.as_str() {
                "sent" => assert!(sent.insert(cid.clone()), "{cid} answered twice"),
                "rate_limited" => assert!(refused.insert(cid.clone()), "{cid} answered twice"),
                other => panic!("{cid}: {other}"),
            }
        }
    }
    assert_eq!((sent.len(), refused.len()), (4, 2), "sent {sent:?}, refused {refused:?}");
    assert_eq!(gw.metric("chatgw_user_rate_limited_total"), 2.0);
    // Another user is not affected.
    ok.check();
    // The recipient gets exactly the four accepted messages.
    let mut rcpt = gw.connect(20);
    let got: BTreeSet<String> = sync_all(&mut rcpt)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.client_id),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent);
}

each_driver!(an_idle_connection_is_closed_with_4003_and_a_talking_one_is_not);
fn an_idle_connection_is_closed_with_4003_and_a_talking_one_is_not(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| c.idle_timeout = Duration::from_secs(2));
    let mut idle = gw.online(30);
    let mut talker = gw.online(31);
    let started = Instant::now();
    // The talker sends a protocol frame every half second for four seconds.
    let mut code = None;
    while started.elapsed() < Duration::from_secs(4) {
        talker.sync().unwrap();
        if code.is_none() {
            if let Some(Event::Closed { code: c, .. }) = idle.next_event(Duration::from_millis(500)).unwrap() {
                code = Some(c);
            }
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert_eq!(code, Some(4003), "idle connection closed with 4003");
    assert_eq!(gw.metric("chatgw_idle_closes_total"), 1.0);
    // The talker is still open and served.
    let events = sync_all(&mut talker);
    assert!(events.iter().all(|e| !matches!(e, Event::Closed { .. })), "{events:?}");
}

each_driver!(slowloris_is_cut_off_at_the_handshake_deadline_and_counted);
fn slowloris_is_cut_off_at_the_handshake_deadline_and_counted(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| c.handshake_timeout = Duration::from_secs(1));
    let mut ok = Healthy::new(&gw);
    let mut slow = connect_from(offender(), gw.addr).unwrap();
    let started = Instant::now();
    std::io::Write::write_all(&mut slow, b"GET /ws HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = [0u8; 64];
    // The gateway closes without answering once the deadline passes.
    let n = std::io::Read::read(&mut slow, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    assert!(started.elapsed() < Duration::from_secs(4), "cut off at the deadline: {:?}", started.elapsed());
    assert_eq!(gw.metric("chatgw_handshake_timeouts_total"), 1.0);
    ok.check();
}

each_driver!(an_oversized_frame_closes_with_1009_and_is_counted);
fn an_oversized_frame_closes_with_1009_and_is_counted(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| c.max_frame = 4096);
    let mut ok = Healthy::new(&gw);
    let mut s = raw_ws(gw.addr, &gw.token(40));
    let big = vec![b'x'; 5000];
    std::io::Write::write_all(&mut s, &masked_frame(0x81, &big)).unwrap();
    assert_eq!(read_close_code(&mut s), 1009);
    assert_eq!(gw.metric("chatgw_oversize_closes_total"), 1.0);
    ok.check();
}

each_driver!(the_limits_are_off_when_set_to_zero);
fn the_limits_are_off_when_set_to_zero(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| {
        c.max_connections_per_ip = 0;
        c.ip_connect_rate = 0;
        c.user_send_rate = 0;
        c.rate_limit = 1_000_000;
        c.rate_burst = 1_000_000;
    });
    let conns: Vec<Client> = (0..40).map(|u| gw.connect(100 + u)).collect();
    assert_eq!(conns.len(), 40);
    let mut a = gw.online(1);
    for i in 0..600 {
        a.send_message(UserId(2), &format!("m{i}"), MessageKind::Text, "x").unwrap();
    }
    let (_, _) = sent_id(&mut a, "m599");
    assert_eq!(gw.metric("chatgw_user_rate_limited_total"), 0.0);
}

each_driver!(a_connection_over_its_frame_rate_gets_rate_limited_and_recovers);
fn a_connection_over_its_frame_rate_gets_rate_limited_and_recovers(io: IoDriver) {
    let gw = TestGateway::start_with(io, 2, |c| {
        c.rate_limit = 4;
        c.rate_burst = 4;
    });
    let mut ok = Healthy::new(&gw);
    let mut fast = gw.connect(50);
    for i in 0..7 {
        fast.send_message(UserId(51), &format!("r{i}"), MessageKind::Text, "x").unwrap();
    }
    let mut outcomes = Vec::new();
    while outcomes.len() < 7 {
        match fast.next_event(WAIT).unwrap() {
            Some(Event::Sent { .. }) => outcomes.push("sent".to_owned()),
            Some(Event::Error { code, .. }) => outcomes.push(code),
            Some(_) => {}
            None => panic!("no answer; got {outcomes:?}"),
        }
    }
    assert_eq!(outcomes.iter().filter(|o| *o == "sent").count(), 4, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "rate_limited").count(), 3, "{outcomes:?}");
    assert_eq!(gw.metric("chatgw_rate_limited_total"), 3.0);
    // The healthy pair (its own buckets) is not affected; a quarter second
    // later the connection may send again.
    ok.check();
    std::thread::sleep(Duration::from_millis(300));
    fast.send_message(UserId(51), "later", MessageKind::Text, "x").unwrap();
    let (_, dup) = sent_id(&mut fast, "later");
    assert!(!dup);
}

//! Hostile and broken input: each case gets its documented error or close,
//! and a healthy pair on the same gateway keeps talking throughout.
//!
//! Cases about the store's side of bad input (protocol errors, refused
//! frames, health and metrics, a slow consumer whose messages are stored and
//! synced) run on PostgreSQL too (`each_store!`). Cases about the
//! connection alone (HTTP and WebSocket framing, tokens, connection limits,
//! handshake, ping and token timers) run on the embedded store only
//! (`each_driver!`): the store does nothing there but carry the healthy
//! pair's few messages, and their timers would only add seconds.

mod util;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use chatgw_client::{Client, ClientError, Event, MessageKind, UserId};
use util::*;

each_store!(protocol_errors_get_error_frames_and_connection_stays_usable);
fn protocol_errors_get_error_frames_and_connection_stays_usable(on: Setup) {
    let gw = TestGateway::start(on, 2);
    let mut ok = Healthy::new(&gw);
    let mut c = gw.online(7);
    for (text, code) in [
        ("{not json", "bad_json"),
        (r#"{"type":"teleport"}"#, "unknown_type"),
        (r#"{"type":"send","id":"r1","to":"two","body":"x"}"#, "bad_field"),
        (r#"{"type":"send","id":"r2","to":"2","body":{"obj":1}}"#, "bad_field"),
        (r#"{"type":"sync","limit":100000}"#, "bad_field"),
    ] {
        c.send_raw(text).unwrap();
        assert_eq!(next_error(&mut c).0, code, "for {text}");
        ok.check();
    }
    // The error for a send names the client id.
    c.send_raw(r#"{"type":"send","id":"r3","to":"2","kind":"hologram","body":"x"}"#).unwrap();
    assert_eq!(next_error(&mut c), ("bad_field".into(), Some("r3".into())));
    // Body over 64 KiB.
    let big = format!(r#"{{"type":"send","id":"big","to":"2","body":"{}"}}"#, "x".repeat(70_000));
    c.send_raw(&big).unwrap();
    assert_eq!(next_error(&mut c), ("bad_field".into(), Some("big".into())));
    // And the connection still works.
    c.send_message(UserId(2), "fine", MessageKind::Text, "ok").unwrap();
    sent_id(&mut c, "fine");
    ok.check();
    assert!(gw.metric("chatgw_protocol_errors_total") >= 7.0);
}

each_driver!(framing_violations_close_with_their_codes);
fn framing_violations_close_with_their_codes(io: IoDriver) {
    let gw = TestGateway::start(io, 2);
    let mut ok = Healthy::new(&gw);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("oversized frame", masked_frame(0x81, &vec![b'a'; 200 * 1024]), 1009),
        ("invalid UTF-8", masked_frame(0x81, &[0xC3, 0x28, 0xFF]), 1007),
        ("binary frame", masked_frame(0x82, b"\x00\x01"), 1003),
        ("reserved bits", masked_frame(0xC1, b"{}"), 1002),
        ("unknown opcode", masked_frame(0x83, b""), 1002),
        ("unmasked frame", vec![0x81, 0x02, b'{', b'}'], 1002),
        ("orphan continuation", masked_frame(0x80, b"x"), 1002),
        ("fragmented ping", masked_frame(0x09, b""), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut s = raw_ws(gw.addr, &gw.token(8));
        s.write_all(&bytes).unwrap();
        assert_eq!(read_close_code(&mut s), code, "{what}");
        ok.check();
    }
    assert!(gw.metric("chatgw_framing_errors_total") >= 8.0);
}

each_driver!(fragmented_text_is_reassembled);
fn fragmented_text_is_reassembled(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut b = gw.online(2);
    let mut s = raw_ws(gw.addr, &gw.token(1));
    let text = br#"{"type":"send","id":"frag","to":"2","body":"in three parts"}"#;
    let (p1, rest) = text.split_at(10);
    let (p2, p3) = rest.split_at(20);
    s.write_all(&masked_frame(0x01, p1)).unwrap();
    s.write_all(&masked_frame(0x89, b"ping in between")).unwrap();
    s.write_all(&masked_frame(0x00, p2)).unwrap();
    s.write_all(&masked_frame(0x80, p3)).unwrap();
    let (op, pong) = read_server_frame(&mut s);
    assert_eq!((op, pong.as_slice()), (0xA, &b"ping in between"[..]));
    let (_, sent) = read_server_frame(&mut s);
    assert!(sent.starts_with(br#"{"type":"sent","id":"frag""#), "{}", String::from_utf8_lossy(&sent));
    assert_eq!(next_message(&mut b).body, "in three parts");
}

each_driver!(bad_tokens_get_401_before_upgrade);
fn bad_tokens_get_401_before_upgrade(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut ok = Healthy::new(&gw);
    let forged =
        chatgw_gateway::auth::TokenKey::new(b"not the secret").mint(UserId(1), chatgw_gateway::auth::unix_now() + 60);
    let expired = gw.key.mint(UserId(1), chatgw_gateway::auth::unix_now() - 1);
    for token in [forged.as_str(), expired.as_str(), "garbage"] {
        match Client::connect(gw.addr, token) {
            Err(ClientError::Refused { status, .. }) => assert_eq!(status, 401, "token {token:?}"),
            other => panic!("token {token:?} was not refused: {other:?}"),
        }
        ok.check();
    }
    // An empty token is no token: the upgrade goes ahead and the first
    // frame must be `auth` (token_passing.rs). The Authorization header
    // works as well as the query string.
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n",
        gw.token(5)
    )
    .unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 101");
    assert_eq!(gw.metric("chatgw_auth_failures_total"), 3.0);
}

each_driver!(garbage_instead_of_http_gets_400_and_close);
fn garbage_instead_of_http_gets_400_and_close(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut ok = Healthy::new(&gw);
    let resp = raw_exchange(gw.addr, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    ok.check();
    let resp = raw_exchange(gw.addr, b"POST /ws HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    let resp = raw_exchange(gw.addr, b"GET /nope HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    let resp = raw_exchange(gw.addr, format!("GET /ws?token={} HTTP/1.1\r\n\r\n", gw.token(1)).as_bytes());
    assert!(resp.starts_with("HTTP/1.1 400"), "plain GET on /ws: {resp}");
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(10_000));
    let resp = raw_exchange(gw.addr, huge.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    let complete = format!("GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    let resp = raw_exchange(gw.addr, complete.as_bytes());
    assert!(resp.starts_with("HTTP/1.1 431"), "a complete head over the limit too: {resp}");
    ok.check();
}

each_store!(health_and_metrics_endpoints);
fn health_and_metrics_endpoints(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200") && resp.ends_with("ok\n"), "{resp}");
    let _c = gw.online(1);
    let body = &gw.scrape();
    assert_eq!(metric_value(body, "chatgw_connections_open"), 1.0);
    for name in [
        "chatgw_messages_stored_total",
        "chatgw_commit_batch_size_count",
        "chatgw_commit_seconds_count",
        "chatgw_events_delivered_total",
    ] {
        metric_value(body, name);
    }
}

each_driver!(handshake_that_never_completes_is_cut_off);
fn handshake_that_never_completes_is_cut_off(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| c.handshake_timeout = Duration::from_secs(1));
    let mut ok = Healthy::new(&gw);
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: slow").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "the server hangs up");
    ok.check();
}

each_store!(client_that_stops_reading_is_closed_as_slow_consumer_without_hurting_others);
fn client_that_stops_reading_is_closed_as_slow_consumer_without_hurting_others(on: Setup) {
    let gw = TestGateway::start_with(on, 2, |c| {
        c.max_frame = 16 * 1024;
        c.max_outbound = 64 * 1024;
        c.rate_limit = 100_000;
        c.rate_burst = 100_000;
        c.user_send_rate = 0;
    });
    let mut ok = Healthy::new(&gw);
    // A device of user 20 that syncs, then never reads again, with a tiny receive buffer.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&gw.addr.into()).unwrap();
    let mut stuck = Client::handshake(sock.into(), &format!("ws://{}/ws?token={}", gw.addr, gw.token(20))).unwrap();
    stuck.sync().unwrap();
    stuck.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();

    let mut flooder = gw.online(21);
    let body = "z".repeat(8 * 1024);
    let mut closed = false;
    let mut flooded = 0;
    for i in 0..2000 {
        flooder.send_message(UserId(20), &format!("f{i}"), MessageKind::Text, &body).unwrap();
        sent_id(&mut flooder, &format!("f{i}"));
        flooded += 1;
        if gw.metric("chatgw_slow_consumers_total") >= 1.0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the stuck device was never closed");
    // The stuck device, reading at last (within the 2 s the server waits
    // for a close frame to drain), finds the close code at the end.
    let mut last = 0;
    while let Ok(Some(ev)) = stuck.next_event(Duration::from_secs(3)) {
        if let Event::Closed { code, .. } = ev {
            last = code;
            break;
        }
    }
    assert_eq!(last, 4000);
    ok.check();
    // Every message was stored: the device catches up by sync on a new connection.
    let mut again = gw.connect(20);
    let events = sync_all(&mut again);
    let n = events.iter().filter(|e| matches!(e, Event::Message(_))).count();
    assert_eq!(n, flooded, "a fresh device replays every acknowledged message");
}

each_driver!(silent_peer_is_pinged_then_closed_with_4001_while_a_responsive_one_stays);
fn silent_peer_is_pinged_then_closed_with_4001_while_a_responsive_one_stays(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| {
        c.ping_interval = Duration::from_secs(1);
        c.pong_timeout = Duration::from_secs(1);
    });
    let mut responsive = gw.online(31);
    // The tungstenite client answers pings while it reads: keep it reading.
    let reader = std::thread::spawn(move || {
        let events = responsive.drain(Duration::from_millis(4000)).unwrap();
        (responsive, events)
    });
    let mut silent = raw_ws(gw.addr, &gw.token(30));
    let (op, _) = read_server_frame(&mut silent);
    assert_eq!(op, 0x9, "a ping after a second of silence");
    assert_eq!(read_close_code(&mut silent), 4001);
    let (mut responsive, events) = reader.join().unwrap();
    assert!(events.iter().all(|e| !matches!(e, Event::Closed { .. })), "{events:?}");
    responsive.send_message(UserId(31), "self", MessageKind::Text, "note to self").unwrap();
    sent_id(&mut responsive, "self");
    assert!(gw.metric("chatgw_timeouts_total") >= 1.0);
}

each_store!(a_connection_that_keeps_sending_refused_frames_is_closed_with_1008);
fn a_connection_that_keeps_sending_refused_frames_is_closed_with_1008(on: Setup) {
    let gw = TestGateway::start(on, 1);
    let mut ok = Healthy::new(&gw);
    let mut c = gw.online(40);
    // A valid frame in between resets the count.
    for _ in 0..20 {
        c.send_raw("{nope").unwrap();
    }
    for _ in 0..20 {
        assert_eq!(next_error(&mut c).0, "bad_json");
    }
    c.send_message(UserId(41), "valid", MessageKind::Text, "fine").unwrap();
    sent_id(&mut c, "valid");
    for _ in 0..40 {
        let _ = c.send_raw("{nope");
    }
    assert_eq!(next_close(&mut c), 1008);
    ok.check();
    assert_eq!(gw.metric("chatgw_policy_closes_total"), 1.0);
}

each_driver!(a_full_gateway_refuses_with_503_and_recovers_when_room_frees);
fn a_full_gateway_refuses_with_503_and_recovers_when_room_frees(io: IoDriver) {
    let gw = TestGateway::start_with(io, 1, |c| c.max_connections = 4);
    let mut ok = Healthy::new(&gw);
    // Two more TCP connections fill it (in any phase they count).
    let idle1 = TcpStream::connect(gw.addr).unwrap();
    let _idle2 = TcpStream::connect(gw.addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(gw.metric("chatgw_connections_refused_total") >= 1.0);
    ok.check();
    drop(idle1);
    std::thread::sleep(Duration::from_millis(300));
    let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200"), "room again: {resp}");
}

each_driver!(a_connection_is_closed_with_4002_when_its_token_expires);
fn a_connection_is_closed_with_4002_when_its_token_expires(io: IoDriver) {
    let gw = TestGateway::start(io, 1);
    let mut ok = Healthy::new(&gw);
    let short = gw.key.mint(UserId(50), chatgw_gateway::auth::unix_now() + 2);
    let mut c = Client::connect(gw.addr, &short).unwrap();
    let code = c
        .wait_for(Duration::from_secs(6), "close", |e| match e {
            Event::Closed { code, .. } => Some(*code),
            _ => None,
        })
        .unwrap();
    assert_eq!(code, 4002);
    assert_eq!(gw.metric("chatgw_tokens_expired_total"), 1.0);
    ok.check();
}

//! Where a connection's token may travel, over real sockets: in an
//! `Authorization: Bearer` header, or, for a connection opened without
//! one, in its first frame (`auth`). A connection that does not
//! authenticate that way (another frame first, a refused or revoked token,
//! a binary frame, nothing within the handshake timeout) is closed with
//! 4005 and never becomes a device of anyone; an `auth` frame on a
//! connection that is already authenticated is refused with `not_allowed`.

mod util;

use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

use chatgw_client::{Client, MessageKind, UserId};
use chatgw_gateway::auth::unix_now;
use chatgw_protocol::close;
use util::*;

/// A WebSocket opened with no token at all: the socket after the 101.
fn open_without_token(gw: &TestGateway) -> TcpStream {
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        std::io::Read::read_exact(&mut s, &mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

/// The close frame's code and reason.
fn read_close(s: &mut TcpStream) -> (u16, String) {
    let (op, p) = read_server_frame(s);
    assert_eq!(op, 0x8, "a frame before the close: {}", String::from_utf8_lossy(&p));
    (u16::from_be_bytes([p[0], p[1]]), String::from_utf8_lossy(&p[2..]).into_owned())
}

fn auth_frame(token: &str) -> Vec<u8> {
    let mut text = String::new();
    chatgw_protocol::client::auth(&mut text, token);
    masked_frame(0x81, text.as_bytes())
}

each_driver!(a_token_in_the_first_frame_opens_a_device_like_one_in_the_url);
fn a_token_in_the_first_frame_opens_a_device_like_one_in_the_url(on: IoDriver) {
    let gw = TestGateway::start(on, 2);
    let mut a = Client::connect_with_auth_frame(gw.addr, &gw.token(1)).unwrap();
    assert_eq!(a.user(), UserId(1));
    let mut b = Client::connect_with_header(gw.addr, &gw.token(2)).unwrap();
    assert_eq!(b.user(), UserId(2));
    for c in [&mut a, &mut b] {
        sync_all(c);
    }
    a.send_message(UserId(2), "m1", MessageKind::Text, "via the first frame").unwrap();
    sent_id(&mut a, "m1");
    assert_eq!(next_message(&mut b).body, "via the first frame");
    b.send_message(UserId(1), "m2", MessageKind::Text, "via the header").unwrap();
    sent_id(&mut b, "m2");
    assert_eq!(next_message(&mut a).body, "via the header");

    // A second `auth` on an authenticated connection is refused, and the
    // connection carries on.
    let mut again = String::new();
    chatgw_protocol::client::auth(&mut again, &gw.token(3));
    a.send_raw(&again).unwrap();
    assert_eq!(next_error(&mut a).0, "not_allowed");
    a.send_message(UserId(2), "m3", MessageKind::Text, "still user 1").unwrap();
    sent_id(&mut a, "m3");
    let m = next_message(&mut b);
    assert_eq!((m.from, m.body.as_str()), (UserId(1), "still user 1"));
    assert_eq!(gw.metric("chatgw_connections_open"), 2.0);
}

each_driver!(a_connection_that_does_not_authenticate_first_is_closed_with_4005);
fn a_connection_that_does_not_authenticate_first_is_closed_with_4005(on: IoDriver) {
    let gw = TestGateway::start(on, 1);
    let mut ok = Healthy::new(&gw);
    let forged = chatgw_gateway::auth::TokenKey::new(b"not the secret").mint(UserId(1), unix_now() + 60);
    let expired = gw.key.mint(UserId(1), unix_now() - 1);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (masked_frame(0x81, br#"{"type":"sync"}"#), "authenticate first"),
        (masked_frame(0x81, br#"{"type":"auth"}"#), "bad auth frame: field `token`"),
        (masked_frame(0x81, br#"{"type":"auth","token":7}"#), "bad auth frame: field `token`"),
        (masked_frame(0x81, br#"{"type":"auth","token":""}"#), "bad auth frame: field `token`"),
        (masked_frame(0x81, b"not json"), "bad auth frame"),
        (auth_frame(&forged), "bad token signature"),
        (auth_frame(&expired), "token expired"),
        (auth_frame("garbage"), "malformed token"),
    ];
    for (frame, reason) in cases {
        let mut s = open_without_token(&gw);
        s.write_all(&frame).unwrap();
        let (code, why) = read_close(&mut s);
        assert_eq!(code, close::UNAUTHENTICATED, "{reason}");
        assert!(why.starts_with(reason), "close reason {why:?}, expected it to start with {reason:?}");
        ok.check();
    }
    // A binary frame is not part of protocol v1, authenticated or not.
    let mut s = open_without_token(&gw);
    s.write_all(&masked_frame(0x82, b"\x00\x01")).unwrap();
    assert_eq!(read_close(&mut s).0, close::UNSUPPORTED_DATA);
    assert!(gw.metric("chatgw_auth_failures_total") >= 8.0);
    assert_eq!(gw.metric("chatgw_connections_open"), 2.0, "only the healthy pair is anyone's device");
}

each_driver!(a_revoked_token_in_the_first_frame_is_refused);
fn a_revoked_token_in_the_first_frame_is_refused(on: IoDriver) {
    let gw = TestGateway::start(on, 1);
    let minted = |iat: u64| gw.key.sign(&format!(r#"{{"sub":"7","exp":{},"iat":{iat}}}"#, unix_now() + 3600));
    let old = minted(unix_now() - 60);
    let answer = raw_exchange(gw.admin_addr(), b"POST /revoke?user=7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut s = open_without_token(&gw);
    s.write_all(&auth_frame(&old)).unwrap();
    let (code, why) = read_close(&mut s);
    assert_eq!(code, close::UNAUTHENTICATED);
    assert!(why.starts_with("token revoked"), "{why}");
    // A token issued in the revocation second or later is accepted.
    let fresh = minted(unix_now() + 1);
    let c = Client::connect_with_auth_frame(gw.addr, &fresh).unwrap();
    assert_eq!(c.user(), UserId(7));
}

each_driver!(a_connection_that_stays_silent_is_closed_after_the_handshake_timeout);
fn a_connection_that_stays_silent_is_closed_after_the_handshake_timeout(on: IoDriver) {
    let gw = TestGateway::start_with(on, 1, |c| c.handshake_timeout = Duration::from_secs(1));
    let started = Instant::now();
    let mut s = open_without_token(&gw);
    let (code, why) = read_close(&mut s);
    assert_eq!((code, why.as_str()), (close::UNAUTHENTICATED, "no auth frame within the handshake timeout"));
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    assert_eq!(gw.metric("chatgw_connections_open"), 0.0);
}

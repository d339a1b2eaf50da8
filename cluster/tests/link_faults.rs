//! Node links under faults: bad bytes from a peer (after the handshake,
//! and from peers that never pass it), a cut link, a stalled link, and a
//! server stopped with sessions open.

mod link_util;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use chatgw_cluster::{
    link::{
        frame::{self, Frame},
        LinkServer, LinkSettings, Links, PeerAddr, Sent,
    },
    testing::FaultProxy,
};
use link_util::{delivery, open, serve, short, Recorder, Seen};

fn raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s
}

/// A session of node `node` to node 9's server at `addr`, past the
/// handshake, that then writes `bytes`.
fn opened(addr: SocketAddr, node: u16, bytes: &[u8]) -> TcpStream {
    let mut s = open(addr, node, 9);
    s.write_all(bytes).unwrap();
    s
}

fn encoded(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(f, &mut out);
    out
}

/// The server closed `s`: a read ends (EOF or reset) within the wait.
fn closed_by_server(mut s: TcpStream) {
    s.set_read_timeout(Some(link_util::WAIT)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[test]
fn bad_frames_end_only_their_session() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 9, short());
    let addr = server.local_addr();
    let hello = Frame::Hello { node: 5, epoch: 1, version: frame::VERSION, nonce: [0; 32], mac: [0; 32] };
    let cases: [(u16, Vec<u8>); 5] = [
        (1, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (2, vec![0, 0, 0, 1, 42]),
        (3, vec![0xff, 0xff, 0xff, 0xf0]),
        (4, vec![0, 0, 0, 2, 3, 0]),
        (5, encoded(&hello)),
    ];
    for (node, bad) in cases {
        closed_by_server(opened(addr, node, &bad));
        rec.wait_ended(node, false);
    }
    assert_eq!(server.stats().bad_frames, 5);
    assert_eq!(server.stats().auth_failures, 0);

    // Bytes from a peer that never passed the handshake: refused (counted
    // and reported as such), and nobody to tell that a session ended.
    let refused: [Vec<u8>; 3] =
        [encoded(&Frame::Deliver(delivery(1))), encoded(&hello), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()];
    for bytes in &refused {
        closed_by_server(raw(addr, bytes));
    }
    rec.wait("three refusals", |s| s.iter().filter(|s| matches!(s, Seen::Refused(_))).count() == 3);
    assert_eq!(server.stats().auth_failures, 3);
    assert_eq!(server.stats().bad_frames, 5);
    assert_eq!(server.stats().sessions_opened, 5);
    assert!(link_util::events(&rec.seen()).is_empty());

    // The server still serves: a well-formed session, a Ping answered on
    // the same socket, the deliveries of one write in one call.
    let mut bytes = Vec::new();
    frame::encode(&Frame::Deliver(delivery(1)), &mut bytes);
    frame::encode(&Frame::Deliver(delivery(2)), &mut bytes);
    frame::encode(&Frame::Ping, &mut bytes);
    let mut s = opened(addr, 7, &bytes);
    let mut pong = [0u8; 5];
    s.set_read_timeout(Some(link_util::WAIT)).unwrap();
    s.read_exact(&mut pong).unwrap();
    assert_eq!(frame::decode(&pong, 16), Ok(Some((Frame::Pong, 5))));
    let seen = rec.wait("node 7's events", |s| link_util::events(s) == [1, 2]);
    assert!(seen.contains(&Seen::Deliver(7, vec![delivery(1), delivery(2)])), "{seen:?}");
    let mut goodbye = Vec::new();
    frame::encode(&Frame::Goodbye, &mut goodbye);
    s.write_all(&goodbye).unwrap();
    rec.wait_ended(7, true);
}

#[test]
fn a_session_that_says_nothing_is_dead_after_the_timeout() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 9, short());
    let started = Instant::now();
    let s = open(server.local_addr(), 3, 9);
    rec.wait_ended(3, false);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(450), "ended after {waited:?}");
    closed_by_server(s);
}

/// Node 1's links to node 2's server through a fault proxy, with one
/// delivery already across.
fn linked_through_proxy() -> (LinkServer, Arc<Recorder>, FaultProxy, Links) {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let proxy = FaultProxy::start(server.local_addr());
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: proxy.addr() }]);
    links.send(2, delivery(1));
    rec.wait_events(1);
    (server, rec, proxy, links)
}

#[test]
fn a_cut_link_ends_unclean_and_the_sender_redials_after_restore() {
    let (server, rec, proxy, links) = linked_through_proxy();

    let redials = links.stats().redials;
    proxy.cut();
    rec.wait_ended(1, false);
    // Queued once the sender has seen its session end too (it redials):
    // frames taken by a session that then fails are lost by design, and
    // replaced by a CatchUpAll.
    let give_up = Instant::now() + Duration::from_secs(10);
    while links.stats().redials == redials {
        assert!(Instant::now() < give_up, "the sender never saw the cut");
        thread::sleep(Duration::from_millis(5));
    }
    for e in 2..5 {
        assert_eq!(links.send(2, delivery(e)), Sent::Queued);
    }
    while links.stats().redials < redials + 2 {
        assert!(Instant::now() < give_up, "the sender keeps redialling: {}", links.stats().redials);
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rec.events(), [1], "nothing crosses a cut link");

    proxy.restore();
    assert_eq!(rec.wait_events(4), [1, 2, 3, 4], "what was queued during the cut survives it");
    links.send(2, delivery(5));
    assert_eq!(rec.wait_events(5), [1, 2, 3, 4, 5]);
    assert!(server.stats().sessions_opened >= 2);
}

#[test]
fn a_stalled_link_is_declared_dead_and_recovers() {
    let (_server, rec, proxy, links) = linked_through_proxy();

    proxy.stall();
    let stalled = Instant::now();
    links.send(2, delivery(2));
    rec.wait_ended(1, false);
    let waited = stalled.elapsed();
    // Dead after 500 ms without a frame; the last ping may have crossed up
    // to 100 ms (`ping_after`) before the stall, or later on a busy box.
    assert!(waited >= Duration::from_millis(300), "a stall is not a close ({waited:?})");
    assert!(waited < Duration::from_secs(3), "the dead timeout is 500 ms ({waited:?})");

    proxy.restore();
    links.send(2, delivery(3));
    let seen = rec.wait("event 3", |s| link_util::events(s).contains(&3));
    // Event 2 was written into the stalled session: lost with it, or
    // delivered late; either way the session's end told the node to
    // catch up. Event 3 arrives on a new session.
    assert!(link_util::events(&seen).ends_with(&[3]), "{seen:?}");
}

#[test]
fn stop_is_prompt_with_sessions_open() {
    // Default timers: stopping must not wait for a 15 s dead timeout.
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, LinkSettings::default());
    let links = Links::new(1, 1, link_util::key(), LinkSettings::default());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    links.send(2, delivery(1));
    rec.wait_events(1);
    let _silent = open(server.local_addr(), 3, 2);
    let mut partial = open(server.local_addr(), 4, 2);
    partial.write_all(&[0, 0, 1, 0, 2, 0, 0]).unwrap();
    let _unopened = TcpStream::connect(server.local_addr()).unwrap();
    thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
    let started = Instant::now();
    drop(links);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "dropping the links took {took:?}");
}

#[test]
fn shutdown_is_bounded_when_the_peer_is_unreachable() {
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: link_util::free_addr() }]);
    links.send(2, delivery(1));
    let started = Instant::now();
    links.shutdown(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
}

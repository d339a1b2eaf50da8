//! Node links end to end on loopback: ordering, batching, dialling late,
//! overflow, goodbye, peer changes, the bound on handshakes.

mod link_util;

use std::{thread, time::Duration};

use chatgw_cluster::link::{LinkKey, LinkSettings, Links, PeerAddr, Sent};
use link_util::{delivery, free_addr, serve, short, Seen};

#[test]
fn deliveries_arrive_in_order_whole_and_batched() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 7, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    for e in 0..2000 {
        assert_eq!(links.send(2, delivery(e)), Sent::Queued);
    }
    let events = rec.wait_events(2000);
    assert_eq!(events, (0..2000).collect::<Vec<_>>());
    let seen = rec.seen();
    let calls = seen.iter().filter(|s| matches!(s, Seen::Deliver(..))).count();
    assert!(calls < 2000, "deliveries were handed over one by one ({calls} calls)");
    for s in &seen {
        match s {
            Seen::Deliver(from, ds) => {
                assert_eq!(*from, 1);
                ds.iter().for_each(|d| assert_eq!(*d, delivery(d.event)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let stats = links.stats();
    assert!(stats.writes < 2000, "frames were written one by one: {stats:?}");
    assert_eq!(stats.sessions_opened, 1);
    assert_eq!(server.stats().deliveries, 2000);
    assert_eq!(server.stats().sessions_opened, 1);
}

#[test]
fn unknown_peers_are_refused() {
    let links = Links::new(1, 1, link_util::key(), short());
    assert_eq!(links.send(9, delivery(1)), Sent::Dropped);
    assert_eq!(links.catch_up(9, None), Sent::Dropped);
    assert_eq!(links.catch_up(9, Some(vec![1])), Sent::Dropped);
    assert_eq!(links.stats().dropped, 2);
}

#[test]
fn a_peer_that_starts_late_is_dialled_with_backoff_and_gets_what_was_queued() {
    let addr = free_addr();
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr }]);
    for e in 0..10 {
        assert_eq!(links.send(2, delivery(e)), Sent::Queued);
    }
    thread::sleep(Duration::from_millis(400));
    let redials = links.stats().redials;
    // 10, 20, 40, 80, 100, 100 ms: a handful of dials, not hundreds.
    assert!(redials <= 12, "{redials} redials in 400 ms");
    // And it keeps dialling (on a busy box the first few may come late).
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while links.stats().redials < 3 {
        assert!(std::time::Instant::now() < give_up, "{} redials", links.stats().redials);
        thread::sleep(Duration::from_millis(20));
    }
    let (_server, rec) = serve(addr, 2, short());
    assert_eq!(rec.wait_events(10), (0..10).collect::<Vec<_>>());
    assert_eq!(links.send(2, delivery(10)), Sent::Queued);
    assert_eq!(rec.wait_events(11), (0..11).collect::<Vec<_>>());
    assert!(!rec.seen().iter().any(|s| matches!(s, Seen::CatchUp(..))), "nothing was dropped");
}

#[test]
fn a_full_queue_refuses_and_the_peer_catches_up_before_anything_later() {
    let addr = free_addr();
    let settings = LinkSettings { queue_events: 4, ..short() };
    let links = Links::new(1, 1, link_util::key(), settings);
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr }]);
    let sent: Vec<Sent> = (0..10).map(|e| links.send(2, delivery(e))).collect();
    assert_eq!(sent[..4], [Sent::Queued; 4]);
    assert_eq!(sent[4..], [Sent::Dropped; 6]);
    assert_eq!(links.catch_up(2, Some(vec![5])), Sent::Dropped, "a CatchUp needs room too");
    assert_eq!(links.stats().dropped, 7);

    let (_server, rec) = serve(addr, 2, short());
    rec.wait_events(4);
    assert_eq!(links.send(2, delivery(100)), Sent::Queued);
    let seen = rec.wait("the later event", |s| link_util::events(s).contains(&100));
    assert_eq!(seen.first(), Some(&Seen::CatchUp(1, None)), "CatchUpAll comes first: {seen:?}");
    assert_eq!(link_util::events(&seen), [0, 1, 2, 3, 100]);
    assert_eq!(seen.iter().filter(|s| matches!(s, Seen::CatchUp(..))).count(), 1);
    assert_eq!(links.stats().catch_up_all_sent, 1);
}

#[test]
fn catch_up_notices_arrive_in_order_with_deliveries() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    links.send(2, delivery(1));
    assert_eq!(links.catch_up(2, Some(vec![4, 5])), Sent::Queued);
    links.send(2, delivery(2));
    let seen = rec.wait("two events", |s| link_util::events(s).len() == 2);
    let order: Vec<String> = seen
        .iter()
        .flat_map(|s| match s {
            Seen::Deliver(_, ds) => ds.iter().map(|d| format!("d{}", d.event)).collect(),
            Seen::CatchUp(_, u) => vec![format!("c{u:?}")],
            Seen::Ended(..) => vec!["end".into()],
            Seen::Refused(_) => vec!["refused".into()],
            Seen::Shed(_) => vec!["shed".into()],
        })
        .collect();
    assert_eq!(order, ["d1", "cSome([4, 5])", "d2"]);
}

#[test]
fn shutdown_writes_what_is_queued_then_says_goodbye() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    for e in 0..50 {
        links.send(2, delivery(e));
    }
    links.shutdown(Duration::from_secs(5));
    let seen = rec.wait("a clean end", |s| s.contains(&Seen::Ended(1, true)));
    assert_eq!(seen.last(), Some(&Seen::Ended(1, true)));
    assert_eq!(link_util::events(&seen), (0..50).collect::<Vec<_>>());
    assert_eq!(server.stats().sessions_clean, 1);
    assert_eq!(server.stats().sessions_unclean, 0);
}

#[test]
fn dropping_links_ends_sessions_without_goodbye() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    links.send(2, delivery(1));
    rec.wait_events(1);
    drop(links);
    rec.wait_ended(1, false);
}

#[test]
fn a_new_epoch_gets_a_fresh_link_and_a_peer_no_longer_listed_is_stopped() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 1, link_util::key(), short());
    let first = PeerAddr { node: 2, epoch: 1, addr: server.local_addr() };
    links.set_peers(&[first]);
    links.send(2, delivery(1));
    rec.wait_events(1);

    // The same list again changes nothing.
    links.set_peers(&[first]);
    links.send(2, delivery(2));
    rec.wait_events(2);
    assert_eq!(server.stats().sessions_opened, 1);

    let second = PeerAddr { epoch: 2, ..first };
    links.set_peers(&[second]);
    assert_eq!(links.peers(), [second]);
    rec.wait_ended(1, false);
    links.send(2, delivery(3));
    assert_eq!(rec.wait_events(3), [1, 2, 3]);
    assert_eq!(server.stats().sessions_opened, 2);
    assert_eq!(links.stats().sessions_opened, 2);

    links.set_peers(&[]);
    assert!(links.peers().is_empty());
    assert_eq!(links.send(2, delivery(4)), Sent::Dropped);
    let ended = rec.wait("both sessions ended", |s| s.iter().filter(|s| matches!(s, Seen::Ended(..))).count() == 2);
    assert_eq!(link_util::events(&ended), [1, 2, 3]);
}

#[test]
fn a_frame_over_the_maximum_is_refused_and_owed_as_a_catch_up() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let settings = LinkSettings { max_frame: 1000, ..short() };
    let links = Links::new(1, 1, link_util::key(), settings);
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    let mut big = delivery(1);
    big.payload = vec![7u8; 1000].into();
    assert_eq!(links.send(2, big), Sent::Dropped);
    assert_eq!(links.send(2, delivery(2)), Sent::Queued);
    let seen = rec.wait("event 2", |s| link_util::events(s) == [2]);
    assert_eq!(seen.first(), Some(&Seen::CatchUp(1, None)));
}

#[test]
fn links_with_another_key_deliver_nothing_and_both_sides_count_it() {
    let (server, rec) = serve("127.0.0.1:0".parse().unwrap(), 2, short());
    let links = Links::new(1, 1, LinkKey::derive(b"another fleet"), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: server.local_addr() }]);
    assert_eq!(links.send(2, delivery(1)), Sent::Queued);
    rec.wait("refusals", |s| s.iter().filter(|s| matches!(s, Seen::Refused(_))).count() >= 2);
    thread::sleep(Duration::from_millis(200));
    assert!(rec.seen().iter().all(|s| matches!(s, Seen::Refused(_))), "{:?}", rec.seen());
    assert_eq!(server.stats().sessions_opened, 0);
    assert!(server.stats().auth_failures >= 2, "{:?}", server.stats());
    let stats = links.stats();
    assert_eq!(stats.sessions_opened, 0);
    assert!(stats.auth_failures >= 2, "{stats:?}");
}

/// A connection to `to` from source address `from` (any free port).
fn connect_from(from: [u8; 4], to: std::net::SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&std::net::SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(link_util::WAIT)).unwrap();
    stream
}

/// Whether the server sent its Challenge (`true`) or closed at once.
fn challenged(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(1))
}

/// Read what is left until the server closes: whether it did (rather
/// than the read timing out).
fn closed(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn silent_connections_are_bounded_per_address_and_in_all_and_timed_out() {
    let settings = LinkSettings {
        pending_handshakes_per_address: 2,
        pending_handshakes: 3,
        handshake_within: Duration::from_millis(1500),
        ..short()
    };
    let (server, rec) = serve("0.0.0.0:0".parse().unwrap(), 2, settings);
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
    // Two silent connections from one address take its share; a third
    // from it is closed before any Challenge.
    let mut held: Vec<_> = (0..2).map(|_| connect_from([127, 0, 0, 11], to)).collect();
    assert!(held.iter_mut().all(challenged));
    assert!(!challenged(&mut connect_from([127, 0, 0, 11], to)), "over the per-address bound");
    // Another address still gets in, until the bound in all is reached.
    let mut other = connect_from([127, 0, 0, 12], to);
    assert!(challenged(&mut other));
    assert!(!challenged(&mut connect_from([127, 0, 0, 13], to)), "over the bound in all");
    let shed = rec.wait("two sheds", |s| s.iter().filter(|s| matches!(s, Seen::Shed(_))).count() == 2);
    assert!(shed.iter().all(|s| matches!(s, Seen::Shed(_))), "nothing else happened: {shed:?}");
    assert_eq!(server.stats().handshakes_shed, 2);

    // A node of the fleet whose handshake ends (here: closing) gives its
    // slot back at once; the silent ones lose theirs at the handshake deadline.
    drop(other);
    let links = Links::new(1, 1, link_util::key(), short());
    links.set_peers(&[PeerAddr { node: 2, epoch: 1, addr: to }]);
    assert_eq!(links.send(2, delivery(7)), Sent::Queued);
    assert_eq!(rec.wait_events(1), vec![7], "a node of the fleet gets through");
    let started = std::time::Instant::now();
    for mut stream in held {
        assert!(closed(&mut stream), "closed at the deadline");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "closed within the handshake time");
    let mut again = connect_from([127, 0, 0, 11], to);
    assert!(challenged(&mut again), "the address's slots came back");
    assert_eq!(server.stats().auth_failures, 0, "silence is no refusal");
}

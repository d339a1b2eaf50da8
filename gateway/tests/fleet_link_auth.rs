//! Node links open only between nodes of one fleet (docs/CLUSTER.md, "Link
//! authentication"). Two real nodes, each started without any link option
//! (the key is derived from the shared --secret): they deliver to each
//! other, while raw TCP clients at a node's link port, one that knows no
//! key, one that skips the Hello and one that replays a Hello captured on
//! the wire, are closed at the handshake, counted, and the Deliver each
//! injects never reaches the connected device it names. A client that
//! holds the fleet's key shows that the very same frame would have. Silent
//! connections past the bound on handshakes are closed and counted, and a
//! node restarted with another key is refused by, and refuses, the other.

mod util;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use chatgw_client::{Event, MessageKind, UserId};
use chatgw_cluster::link::{
    frame::{self, Frame},
    handshake, Delivery, LinkKey,
};
use util::{fleet::TestFleet, *};

const ALICE: u64 = 1;
const BOB: u64 = 2;
const CAROL: u64 = 3;

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    frames.iter().for_each(|f| frame::encode(f, &mut out));
    out
}

/// A message to bob, as his node writes it to his devices, at his next
/// inbox position whichever it is (1 or 2 after one message): a repeat
/// below it would be dropped, so both are named.
fn forged_message() -> Frame {
    let json = r#"{"type":"message","event":"900000000000000001","msg":"900000000000000001","from":"1","to":"2","kind":"text","ts":1796392784678,"cid":"forged","body":"forged"}"#;
    Frame::Deliver(Delivery {
        event: 900_000_000_000_000_001,
        payload: Arc::from(json.as_bytes()),
        targets: vec![(BOB, 1), (BOB, 2)],
    })
}

/// A connection to a link port, and the Challenge it opens with.
fn challenged(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut bytes = [0u8; frame::LEN_BYTES];
    s.read_exact(&mut bytes).unwrap();
    let mut whole = bytes.to_vec();
    whole.resize(frame::LEN_BYTES + u32::from_be_bytes(bytes) as usize, 0);
    s.read_exact(&mut whole[frame::LEN_BYTES..]).unwrap();
    let (challenge, _) = frame::decode(&whole, handshake::HANDSHAKE_MAX).unwrap().unwrap();
    assert!(matches!(challenge, Frame::Challenge { version: frame::VERSION, .. }), "{challenge:?}");
    s
}

/// The node closes `s` without a byte more (no Welcome).
fn closed_without_answer(mut s: TcpStream) {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "the node answered {got:?}");
}

fn wait_metric(fleet: &TestFleet, i: usize, name: &str, want: f64) {
    let deadline = Instant::now() + WAIT;
    while fleet.metric(i, name) != want {
        assert!(Instant::now() < deadline, "{name} never reached {want}: {}", fleet.metric(i, name));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn forged_seen(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Message(m) if m.body == "forged"))
}

#[test]
fn only_holders_of_the_fleet_key_reach_devices_over_a_link() {
    // Node 1's link is behind a proxy that keeps what node 0 sent it.
    let fleet = TestFleet::start_with_proxies(2);
    let mut alice = fleet.online(0, ALICE);
    let mut bob = fleet.online(1, BOB);
    let mut carol = fleet.online(1, CAROL);
    fleet.settle();
    alice.send_message(UserId(BOB), "m1", MessageKind::Text, "hi bob").unwrap();
    let (id, _) = sent_id(&mut alice, "m1");
    let m = next_chat(&mut bob);
    assert_eq!((m.id, m.body.as_str()), (id, "hi bob"), "a keyed fleet delivers across nodes");

    let wire = fleet.nodes[1].proxy.as_ref().unwrap().sent();
    let captured = wire
        .iter()
        .find_map(|bytes| match frame::decode(bytes, handshake::HANDSHAKE_MAX) {
            Ok(Some((Frame::Hello { .. }, n))) => Some(bytes[..n].to_vec()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Hello on node 1's link: {wire:?}"));

    let link = fleet.nodes[1].link_listen;
    let received = fleet.metric(1, "chatgw_fleet_link_events_received_total");
    let no_key = Frame::Hello { node: 1, epoch: 1, version: frame::VERSION, nonce: [7; 32], mac: [0; 32] };
    let attempts = [
        encoded(&[no_key, forged_message()]),
        encoded(&[forged_message()]),
        [captured, encoded(&[forged_message()])].concat(),
    ];
    for bytes in &attempts {
        let mut s = challenged(link);
        s.write_all(bytes).unwrap();
        closed_without_answer(s);
    }
    wait_metric(&fleet, 1, "chatgw_fleet_link_auth_failures_total", 3.0);
    assert_eq!(fleet.metric(1, "chatgw_fleet_link_events_received_total"), received);
    let seen = bob.drain(Duration::from_millis(500)).unwrap();
    assert!(!forged_seen(&seen), "an unauthenticated Deliver reached bob: {seen:?}");

    // The links between the nodes are untouched (carol: bob's inbox
    // positions stay where the forged frame expects them).
    alice.send_message(UserId(CAROL), "m2", MessageKind::Text, "still here").unwrap();
    sent_id(&mut alice, "m2");
    assert_eq!(next_chat(&mut carol).body, "still here");

    // The same frame from a client that holds the key (derived from the
    // fleet's --secret) does reach bob: what kept it out was the handshake.
    let mut keyed = TcpStream::connect(link).unwrap();
    keyed.set_read_timeout(Some(WAIT)).unwrap();
    let node = fleet.nodes[1].node;
    handshake::dial(&mut keyed, 9, 1, node, &LinkKey::derive(SECRET.as_bytes())).unwrap();
    keyed.write_all(&encoded(&[forged_message()])).unwrap();
    let got = bob
        .wait_for(WAIT, "the keyed injection", |e| match e {
            Event::Message(m) if m.body == "forged" => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(got.from, UserId(ALICE));
    assert_eq!(fleet.metric(1, "chatgw_fleet_link_auth_failures_total"), 3.0);
    drop(keyed);

    // Silent connections from one address are bounded (4 in their
    // handshake); one more is closed before any Challenge, and counted.
    let held: Vec<TcpStream> = (0..4).map(|_| challenged(link)).collect();
    closed_without_answer(TcpStream::connect(link).unwrap());
    wait_metric(&fleet, 1, "chatgw_fleet_link_handshakes_shed_total", 1.0);
    drop(held);

    // A node restarted with another link key: node 0's dials to it are
    // refused and counted on both sides; nothing crosses.
    let other_key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_key.path(), "another fleet's link secret").unwrap();
    let mut fleet = fleet;
    fleet.set_flags(1, &["--link-secret-file", other_key.path().to_str().unwrap()]);
    fleet.kill(1);
    fleet.spawn(1);
    fleet.wait_live_nodes(0, 2);
    let deadline = Instant::now() + WAIT;
    while fleet.metric(0, "chatgw_fleet_link_dial_refusals_total") < 1.0
        || fleet.metric(1, "chatgw_fleet_link_auth_failures_total") < 1.0
    {
        assert!(Instant::now() < deadline, "no refused dial counted between nodes with different keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fleet.metric(1, "chatgw_fleet_link_events_received_total"), 0.0);
}

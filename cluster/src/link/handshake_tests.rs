//! Both halves of the handshake over real loopback sockets: a fleet's key
//! opens a session both ways, anything else is refused with the reason,
//! and a captured Hello replays nowhere.

use std::{
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use super::*;

const NODE_A: u16 = 2;
const NODE_D: u16 = 1;

fn key() -> LinkKey {
    LinkKey::derive(b"fleet secret")
}

/// A connected pair: (dialler's end, acceptor's end), reads bounded.
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dialler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (acceptor, _) = listener.accept().unwrap();
    for s in [&dialler, &acceptor] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    (dialler, acceptor)
}

/// The acceptor's half on its own thread, as node `NODE_A` in run 20; its
/// socket is closed when the handshake fails, as a session's is.
fn accepting(mut s: TcpStream, key: LinkKey) -> thread::JoinHandle<Result<(Side, TcpStream), HandshakeError>> {
    thread::spawn(move || accept(&mut s, NODE_A, 20, &key).map(|side| (side, s)))
}

fn bytes(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(f, &mut out);
    out
}

fn challenge(s: &mut TcpStream) -> Side {
    match read_one(s).unwrap() {
        Frame::Challenge { node, epoch, version: VERSION, nonce } => Side { node, epoch, nonce },
        other => panic!("not a Challenge: {other:?}"),
    }
}

#[test]
fn the_same_key_opens_a_session_and_each_side_learns_the_other() {
    let (mut d, a) = pair();
    let acceptor = accepting(a, key());
    let peer = dial(&mut d, NODE_D, 10, NODE_A, &key()).unwrap();
    assert_eq!((peer.node, peer.epoch), (NODE_A, 20));
    let (dialler, _) = acceptor.join().unwrap().unwrap();
    assert_eq!((dialler.node, dialler.epoch), (NODE_D, 10));
    assert_ne!(dialler.nonce, peer.nonce);
}

#[test]
fn another_key_is_refused_on_both_sides() {
    let (mut d, a) = pair();
    let acceptor = accepting(a, key());
    let err = dial(&mut d, NODE_D, 10, NODE_A, &LinkKey::derive(b"another")).unwrap_err();
    let result = acceptor.join().unwrap();
    assert!(matches!(result, Err(HandshakeError::BadMac)), "{result:?}");
    // The acceptor returned without a Welcome; its socket closes with it.
    assert!(matches!(err, HandshakeError::Refused), "{err}");
    assert!(err.is_refusal());
}

#[test]
fn a_dialler_checks_the_acceptor_too() {
    // Something at the peer's address that sends a Challenge but cannot
    // compute the Welcome.
    let (mut d, mut a) = pair();
    let fake = thread::spawn(move || {
        a.write_all(&bytes(&Frame::Challenge { node: NODE_A, epoch: 20, version: VERSION, nonce: [3; 32] })).unwrap();
        let hello = read_one(&mut a).unwrap();
        assert!(matches!(hello, Frame::Hello { node: NODE_D, .. }), "{hello:?}");
        a.write_all(&bytes(&Frame::Welcome { mac: [0; 32] })).unwrap();
        a
    });
    let err = dial(&mut d, NODE_D, 10, NODE_A, &key()).unwrap_err();
    assert!(matches!(err, HandshakeError::BadMac), "{err}");
    drop(fake.join().unwrap());

    // Or that is another node of the fleet than the one dialled.
    let (mut d, a) = pair();
    let acceptor = accepting(a, key());
    let err = dial(&mut d, NODE_D, 10, 5, &key()).unwrap_err();
    assert!(matches!(err, HandshakeError::WrongNode { want: 5, got: NODE_A }), "{err}");
    drop(d);
    let result = acceptor.join().unwrap();
    assert!(matches!(result, Err(HandshakeError::Closed)), "{result:?}");
}

#[test]
fn a_captured_hello_does_not_open_another_session() {
    // A session opened by a real dialler, its Hello captured on the wire.
    let (mut d, mut a) = pair();
    let dialler = thread::spawn(move || dial(&mut d, NODE_D, 10, NODE_A, &key()).map(|_| d));
    let first = Side { node: NODE_A, epoch: 20, nonce: [1; 32] };
    a.write_all(&bytes(&Frame::Challenge {
        node: first.node,
        epoch: first.epoch,
        version: VERSION,
        nonce: first.nonce,
    }))
    .unwrap();
    let captured = read_one(&mut a).unwrap();
    let Frame::Hello { node, epoch, nonce, mac, .. } = captured.clone() else { panic!("{captured:?}") };
    let d_side = Side { node, epoch, nonce };
    a.write_all(&bytes(&Frame::Welcome { mac: key().welcome_mac(VERSION, &first, &d_side) })).unwrap();
    assert!(dialler.join().unwrap().is_ok());
    assert!(key().check_hello(VERSION, &first, &d_side, &mac), "the captured Hello was good for its session");

    // Replayed to a real acceptor: its fresh nonce makes the MAC wrong.
    let (mut r, a) = pair();
    let acceptor = accepting(a, key());
    challenge(&mut r);
    r.write_all(&bytes(&captured)).unwrap();
    let result = acceptor.join().unwrap();
    assert!(matches!(result, Err(HandshakeError::BadMac)), "{result:?}");
}

/// What a refusal must look like.
type Expect = fn(&HandshakeError) -> bool;

#[test]
fn a_peer_without_the_key_is_refused_whatever_it_sends_first() {
    let forged = Frame::Hello { node: 7, epoch: 1, version: VERSION, nonce: [0; 32], mac: [0; 32] };
    let deliver = Frame::Deliver(crate::link::Delivery {
        event: 1,
        payload: std::sync::Arc::from(&b"x"[..]),
        targets: vec![(1, 1)],
    });
    let mut v1_hello = vec![0, 0, 0, 12, 1, 0, 7];
    v1_hello.extend_from_slice(&1u64.to_be_bytes());
    v1_hello.push(1);
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (bytes(&forged), |e| matches!(e, HandshakeError::BadMac)),
        (bytes(&deliver), |e| matches!(e, HandshakeError::Unexpected { want: Kind::Hello, got: Kind::Deliver })),
        (bytes(&Frame::Welcome { mac: [0; 32] }), |e| matches!(e, HandshakeError::Unexpected { .. })),
        (v1_hello, |e| matches!(e, HandshakeError::Version(1))),
        (bytes(&Frame::Hello { node: 7, epoch: 1, version: 3, nonce: [0; 32], mac: [0; 32] }), |e| {
            matches!(e, HandshakeError::Version(3))
        }),
        (vec![0, 0, 0, 200, 2], |e| matches!(e, HandshakeError::Frame(FrameError::TooLarge { len: 200, .. }))),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), |e| matches!(e, HandshakeError::Frame(_))),
    ];
    for (sent, expected) in cases {
        let (mut r, a) = pair();
        let acceptor = accepting(a, key());
        challenge(&mut r);
        r.write_all(&sent).unwrap();
        let err = acceptor.join().unwrap().unwrap_err();
        assert!(expected(&err), "{sent:?}: {err}");
        assert!(err.is_refusal(), "{err}");
    }
}

#[test]
fn a_connection_that_closes_or_stays_silent_is_no_refusal() {
    let (mut r, a) = pair();
    let acceptor = accepting(a, key());
    challenge(&mut r);
    drop(r);
    let err = acceptor.join().unwrap().unwrap_err();
    assert!(matches!(err, HandshakeError::Closed) && !err.is_refusal(), "{err}");

    // An acceptor that never challenges (a version 1 node waits for a
    // Hello): the dialler gives up at its read timeout.
    let (mut d, _a) = pair();
    d.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let err = dial(&mut d, NODE_D, 10, NODE_A, &key()).unwrap_err();
    assert!(matches!(err, HandshakeError::NoChallenge) && !err.is_refusal(), "{err}");
}

#[test]
fn the_handshake_reads_nothing_past_its_own_frames() {
    let (mut d, a) = pair();
    let acceptor = accepting(a, key());
    dial(&mut d, NODE_D, 10, NODE_A, &key()).unwrap();
    d.write_all(&bytes(&Frame::Ping)).unwrap();
    let (_, mut a) = acceptor.join().unwrap().unwrap();
    assert_eq!(read_one(&mut a).unwrap(), Frame::Ping);
}

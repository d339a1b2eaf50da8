//! Round trips of every kind, and every way bytes can fail to be a frame.

use std::sync::Arc;

use super::*;
use crate::link::PresenceEntry;

const MAX: usize = 16 << 20;

fn delivery(event: u64, payload: &[u8], targets: &[(u64, u64)]) -> Delivery {
    Delivery { event, payload: Arc::from(payload), targets: targets.to_vec() }
}

fn all_kinds() -> Vec<Frame> {
    vec![
        Frame::Hello { node: 1023, epoch: u64::MAX - 1, version: VERSION, nonce: [7; 32], mac: [0xff; 32] },
        Frame::Challenge { node: 0, epoch: 1, version: VERSION, nonce: [1; 32] },
        Frame::Welcome { mac: [2; 32] },
        Frame::Deliver(delivery(7, b"{\"t\":\"msg\"}", &[(1, 10), (u64::MAX, 0)])),
        Frame::Deliver(delivery(0, b"", &[])),
        Frame::CatchUp(vec![3, 4, 5]),
        Frame::CatchUp(Vec::new()),
        Frame::CatchUpAll,
        Frame::Goodbye,
        Frame::Ping,
        Frame::Pong,
        Frame::Ephemeral { payload: Arc::from(&b"{\"type\":\"typing\"}"[..]), users: vec![1, u64::MAX] },
        Frame::Ephemeral { payload: Arc::from(&b""[..]), users: Vec::new() },
        Frame::Presence(vec![
            PresenceEntry { user: 8, flags: PresenceEntry::ONLINE, last_seen: 0 },
            PresenceEntry { user: u64::MAX, flags: PresenceEntry::HIDDEN, last_seen: 1_733_000_000_000 },
        ]),
        Frame::Presence(Vec::new()),
    ]
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode(frame, &mut out);
    out
}

#[test]
fn every_kind_round_trips_and_reports_its_size() {
    for frame in all_kinds() {
        let bytes = encoded(&frame);
        assert_eq!(bytes.len(), encoded_len(&frame), "{frame:?}");
        assert_eq!(decode(&bytes, MAX), Ok(Some((frame.clone(), bytes.len()))));
    }
}

#[test]
fn the_layout_is_the_documented_one() {
    let bytes = encoded(&Frame::Hello { node: 0x0102, epoch: 3, version: 2, nonce: [4; 32], mac: [5; 32] });
    let mut want = vec![0, 0, 0, 76, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3, 2];
    want.extend_from_slice(&[4; 32]);
    want.extend_from_slice(&[5; 32]);
    assert_eq!(bytes, want);
    let bytes = encoded(&Frame::Challenge { node: 0x0102, epoch: 3, version: 2, nonce: [6; 32] });
    let mut want = vec![0, 0, 0, 44, 10, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3, 2];
    want.extend_from_slice(&[6; 32]);
    assert_eq!(bytes, want);
    let mut want = vec![0, 0, 0, 33, 11];
    want.extend_from_slice(&[8; 32]);
    assert_eq!(encoded(&Frame::Welcome { mac: [8; 32] }), want);
    let bytes = encoded(&Frame::Deliver(delivery(9, b"ab", &[(5, 6)])));
    let mut want = vec![0, 0, 0, 35, 2];
    want.extend_from_slice(&9u64.to_be_bytes());
    want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1]);
    want.extend_from_slice(&5u64.to_be_bytes());
    want.extend_from_slice(&6u64.to_be_bytes());
    assert_eq!(bytes, want);
    assert_eq!(encoded(&Frame::CatchUpAll), [0, 0, 0, 1, 4]);
    assert_eq!(encoded(&Frame::CatchUp(vec![1])), [0, 0, 0, 13, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    let bytes = encoded(&Frame::Ephemeral { payload: Arc::from(&b"ab"[..]), users: vec![5] });
    assert_eq!(bytes, [0, 0, 0, 19, 8, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5]);
    let bytes = encoded(&Frame::Presence(vec![PresenceEntry { user: 5, flags: 3, last_seen: 7 }]));
    let mut want = vec![0, 0, 0, 22, 9, 0, 0, 0, 1];
    want.extend_from_slice(&5u64.to_be_bytes());
    want.push(3);
    want.extend_from_slice(&7u64.to_be_bytes());
    assert_eq!(bytes, want);
}

#[test]
fn presence_and_ephemeral_counts_past_the_body_are_short() {
    let bytes = [0, 0, 0, 5, 9, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Short { kind: Kind::Presence }));
    let bytes = [0, 0, 0, 9, 8, 0, 0, 0, 0, 0, 0, 0, 9];
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Short { kind: Kind::Ephemeral }));
}

#[test]
fn several_frames_in_one_buffer_decode_one_after_another() {
    let frames = all_kinds();
    let mut buf = Vec::new();
    frames.iter().for_each(|f| encode(f, &mut buf));
    let mut off = 0;
    let mut got = Vec::new();
    while let Some((frame, used)) = decode(&buf[off..], MAX).expect("valid") {
        got.push(frame);
        off += used;
    }
    assert_eq!(off, buf.len());
    assert_eq!(got, frames);
}

#[test]
fn every_truncation_asks_for_more_bytes() {
    for frame in all_kinds() {
        let bytes = encoded(&frame);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], MAX), Ok(None), "{frame:?} cut at {cut}");
        }
    }
}

#[test]
fn a_length_over_the_maximum_is_refused_before_the_body_arrives() {
    assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff], MAX), Err(FrameError::TooLarge { len: u32::MAX as usize, max: MAX }));
    let bytes = encoded(&Frame::Deliver(delivery(1, &[0; 100], &[])));
    assert!(matches!(decode(&bytes, 50), Err(FrameError::TooLarge { .. })));
    assert!(decode(&bytes, bytes.len() - LEN_BYTES).expect("at the maximum").is_some());
}

#[test]
fn an_empty_frame_is_refused() {
    assert_eq!(decode(&[0, 0, 0, 0], MAX), Err(FrameError::Empty));
}

#[test]
fn an_unknown_kind_is_refused() {
    for kind in [0u8, 12, 200, 255] {
        assert_eq!(decode(&[0, 0, 0, 1, kind], MAX), Err(FrameError::UnknownKind(kind)));
    }
}

#[test]
fn bodies_shorter_than_their_fields_are_refused() {
    // A Hello of version 1 (no nonce, no MAC), and one without its MAC.
    assert_eq!(
        decode(&[0, 0, 0, 12, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1], MAX),
        Err(FrameError::Short { kind: Kind::Hello })
    );
    let hello = encoded(&Frame::Hello { node: 1, epoch: 1, version: VERSION, nonce: [0; 32], mac: [0; 32] });
    let mut cut = hello[..hello.len() - 32].to_vec();
    cut[3] -= 32;
    assert_eq!(decode(&cut, MAX), Err(FrameError::Short { kind: Kind::Hello }));
    // A Welcome one byte short.
    let mut welcome = vec![0, 0, 0, 32, 11];
    welcome.extend_from_slice(&[0; 31]);
    assert_eq!(decode(&welcome, MAX), Err(FrameError::Short { kind: Kind::Welcome }));
    // A Hello without its version byte.
    assert_eq!(
        decode(&[0, 0, 0, 11, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1], MAX),
        Err(FrameError::Short { kind: Kind::Hello })
    );
    // A Deliver whose payload length points past the frame.
    let mut bytes = encoded(&Frame::Deliver(delivery(1, b"abc", &[])));
    bytes[LEN_BYTES + 1 + 8 + 3] = 200;
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Short { kind: Kind::Deliver }));
    // A Deliver whose target count is huge.
    let mut bytes = encoded(&Frame::Deliver(delivery(1, b"abc", &[(1, 1)])));
    let count_at = LEN_BYTES + 1 + 8 + 4 + 3;
    bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Short { kind: Kind::Deliver }));
    // A CatchUp whose count is one more than its users.
    let mut bytes = encoded(&Frame::CatchUp(vec![1, 2]));
    bytes[LEN_BYTES + 4] = 3;
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Short { kind: Kind::CatchUp }));
    // A Deliver that stops in the middle of its event id.
    assert_eq!(decode(&[0, 0, 0, 4, 2, 0, 0, 0], MAX), Err(FrameError::Short { kind: Kind::Deliver }));
}

#[test]
fn bytes_after_a_body_are_refused() {
    assert_eq!(decode(&[0, 0, 0, 2, 6, 0], MAX), Err(FrameError::Trailing { kind: Kind::Ping, extra: 1 }));
    let mut bytes = encoded(&Frame::CatchUp(vec![1, 2]));
    bytes[LEN_BYTES + 4] = 1;
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Trailing { kind: Kind::CatchUp, extra: 8 }));
    let mut bytes = encoded(&Frame::Deliver(delivery(1, b"", &[(1, 2), (3, 4)])));
    bytes[LEN_BYTES + 1 + 8 + 4 + 3] = 1;
    assert_eq!(decode(&bytes, MAX), Err(FrameError::Trailing { kind: Kind::Deliver, extra: 16 }));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator: every prefix of many pseudo-random
    // buffers, with lengths biased towards the small and the plausible.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        let mut buf = Vec::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as u32;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.push((x >> 8) as u8 % 9);
        for i in 0..(x >> 16) % 80 {
            buf.push((x >> (i % 56)) as u8);
        }
        for cut in 0..=buf.len() {
            let _ = decode(&buf[..cut], 1024);
        }
    }
}

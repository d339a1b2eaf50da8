//! Invariants of the frame decoder itself ([`decode_header`] and
//! [`unmask`]), checked on every complete frame at the start of a stream.

use crate::ws::frame::{client_frame, decode_header, unmask, unmask_reference, Decoded, Header};

/// Walk the frames at the start of `stream` the way the engine does (header,
/// whole payload, next) and check each; stops at the first refused or
/// incomplete frame. `cut` picks where a payload is split in two to check
/// that unmasking in pieces equals unmasking at once.
pub(crate) fn check_stream(stream: &[u8], max_payload: usize, cut: usize) {
    let mut rest = stream;
    while let Ok(Decoded::Header(h)) = decode_header(rest, max_payload) {
        let end = h.header_len + h.payload_len;
        if rest.len() < end {
            // Complete headers stay the same however many payload bytes follow.
            assert_eq!(decode_header(&rest[..h.header_len], max_payload), Ok(Decoded::Header(h)));
            return;
        }
        check_frame(&rest[..end], h, max_payload, cut);
        rest = &rest[end..];
    }
}

fn check_frame(frame: &[u8], h: Header, max_payload: usize, cut: usize) {
    assert!(h.payload_len <= max_payload, "payload {} over the limit {max_payload}", h.payload_len);
    assert!(matches!(h.header_len, 6 | 8 | 14), "header length {}", h.header_len);
    if h.opcode.is_control() {
        assert!(h.fin && h.payload_len <= 125, "control frame rules: {h:?}");
    }
    for short in 0..h.header_len {
        assert_eq!(decode_header(&frame[..short], max_payload), Ok(Decoded::NeedMore), "prefix of {short} bytes");
    }

    let masked = &frame[h.header_len..];
    let mut plain = masked.to_vec();
    unmask(&mut plain, h.mask, 0);
    let mut reference = masked.to_vec();
    unmask_reference(&mut reference, h.mask, 0);
    assert_eq!(plain, reference, "fast unmask differs from the definition");
    let split = if plain.is_empty() { 0 } else { cut % (plain.len() + 1) };
    let mut pieces = masked.to_vec();
    let (a, b) = pieces.split_at_mut(split);
    unmask(a, h.mask, 0);
    unmask(b, h.mask, split);
    assert_eq!(pieces, plain, "unmasking in two pieces at {split}");

    // Encode the frame again (the shortest length form) and decode that.
    let again = client_frame(frame[0], &plain, h.mask);
    let Ok(Decoded::Header(h2)) = decode_header(&again, max_payload) else {
        panic!("re-encoded frame refused: {h:?}");
    };
    assert_eq!((h2.fin, h2.opcode, h2.mask, h2.payload_len), (h.fin, h.opcode, h.mask, h.payload_len));
    assert!(h2.header_len <= h.header_len);
    if h2.header_len == h.header_len {
        assert_eq!(again, frame, "re-encoded frame differs");
    } else {
        assert_eq!(&again[h2.header_len..], masked, "re-encoded payload differs");
    }
}

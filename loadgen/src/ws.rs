//! WebSocket framing from the client's side (RFC 6455 section 5).
//!
//! The load path does not use tungstenite: a tungstenite `WebSocket` carries
//! buffers of several kilobytes per connection and wants a thread or an
//! async runtime, and the point of this program is to hold ~19,000
//! connections from one thread. Here a connection's framing state is a few
//! bytes: frames are encoded straight into the connection's output buffer
//! and decoded in place from whatever the socket returned.
//!
//! Client frames must be masked (the gateway closes with 1002 otherwise);
//! the mask only has to be unpredictable to a proxy, not secret, so a
//! per-connection xorshift is plenty. Server frames must not be masked.

/// Continuation of a fragmented message.
pub(crate) const OP_CONTINUATION: u8 = 0x0;
/// UTF-8 text (every protocol frame is one).
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary data (not part of protocol v1).
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping: answered with a pong carrying the same payload.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong.
pub(crate) const OP_PONG: u8 = 0xA;

/// A tiny PRNG for masks and handshake keys (xorshift32).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Xorshift(u32);

impl Xorshift {
    /// A generator from any seed (zero is mapped to a non-zero state).
    pub(crate) fn new(seed: u64) -> Self {
        let folded = (seed ^ (seed >> 32)) as u32;
        Xorshift(if folded == 0 { 0x9E37_79B9 } else { folded })
    }

    /// The next 32 random bits.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Append one masked, final client frame to `out`.
pub(crate) fn encode_client(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(14 + payload.len());
    out.push(0x80 | (opcode & 0x0F));
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(0x80 | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// The header of a server frame at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Last frame of its message.
    pub(crate) fin: bool,
    /// Opcode bits.
    pub(crate) opcode: u8,
    /// Bytes of header before the payload.
    pub(crate) header_len: usize,
    /// Bytes of payload.
    pub(crate) payload_len: usize,
}

impl Header {
    /// Header plus payload.
    pub(crate) fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Decode the header of a server frame at the start of `buf`: `Ok(None)`
/// when more bytes are needed, an error for a frame no server may send.
pub(crate) fn decode_server(buf: &[u8], max_payload: usize) -> Result<Option<Header>, &'static str> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("server frame with reserved bits set");
    }
    if b1 & 0x80 != 0 {
        return Err("masked server frame");
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(opcode, OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG) {
        return Err("server frame with an unknown opcode");
    }
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            None => return Ok(None),
            Some(b) => (4, usize::from(u16::from_be_bytes([b[0], b[1]]))),
        },
        127 => match buf.get(2..10) {
            None => return Ok(None),
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let n = u64::from_be_bytes(be);
                (10, usize::try_from(n).unwrap_or(usize::MAX))
            }
        },
        n => (2, usize::from(n)),
    };
    if opcode >= OP_CLOSE && (!fin || payload_len > 125) {
        return Err("fragmented or oversized control frame");
    }
    if payload_len > max_payload {
        return Err("server frame larger than the limit");
    }
    Ok(Some(Header { fin, opcode, header_len, payload_len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let b1 = frame[1];
        assert_eq!(b1 & 0x80, 0x80, "client frames are masked");
        let (len, at) = match b1 & 0x7F {
            126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&frame[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let mask = &frame[at..at + 4];
        let payload = frame[at + 4..].iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m).collect::<Vec<_>>();
        assert_eq!(payload.len(), len);
        (frame[0], payload)
    }

    #[test]
    fn client_frames_round_trip_through_the_mask_at_every_length_form() {
        let mut rng = Xorshift::new(7);
        for len in [0usize, 5, 125, 126, 200, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_client(&mut out, OP_TEXT, &payload, rng.next_u32().to_le_bytes());
            let (b0, got) = unmask(&out);
            assert_eq!(b0, 0x81);
            assert_eq!(got, payload, "length {len}");
        }
    }

    #[test]
    fn server_headers_decode_or_ask_for_more() {
        assert_eq!(decode_server(&[0x81], 1 << 20), Ok(None));
        assert_eq!(
            decode_server(&[0x81, 0x03, b'a', b'b', b'c'], 1 << 20),
            Ok(Some(Header { fin: true, opcode: OP_TEXT, header_len: 2, payload_len: 3 }))
        );
        assert_eq!(decode_server(&[0x81, 126, 0x01], 1 << 20), Ok(None));
        let h = decode_server(&[0x01, 126, 0x01, 0x00], 1 << 20).unwrap().unwrap();
        assert_eq!((h.fin, h.header_len, h.payload_len), (false, 4, 256));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(decode_server(&long, 1 << 20).unwrap().unwrap().payload_len, 70_000);
        assert!(decode_server(&long, 1000).is_err(), "over the limit");
        assert!(decode_server(&[0x81, 0x83], 100).is_err(), "masked");
        assert!(decode_server(&[0xC1, 0x00], 100).is_err(), "rsv1");
        assert!(decode_server(&[0x83, 0x00], 100).is_err(), "opcode 3");
        assert!(decode_server(&[0x09, 0x00], 100).is_err(), "fragmented ping");
        assert!(decode_server(&[0x89, 126, 0, 126], 1000).is_err(), "long ping");
    }

    #[test]
    fn xorshift_never_sticks_at_zero() {
        let mut r = Xorshift::new(0);
        let a = r.next_u32();
        let b = r.next_u32();
        assert!(a != 0 && b != 0 && a != b);
    }
}

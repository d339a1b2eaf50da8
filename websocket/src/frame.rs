//! The server's side of framing: decoding the headers of masked client
//! frames, unmasking, and encoding unmasked server frames. The client's side
//! is in [`crate::client`].

/// Frame opcodes the protocol defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Continues a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    pub(crate) fn from_bits(b: u8) -> Option<Self> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    pub(crate) fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A decoded client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Last frame of the message.
    pub fin: bool,
    /// What the frame is.
    pub opcode: Opcode,
    /// The client's masking key.
    pub mask: [u8; 4],
    /// Bytes of header before the payload.
    pub header_len: usize,
    /// Bytes of payload after the header.
    pub payload_len: usize,
}

/// Why a frame is refused; each maps to a close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV bits set, unknown opcode, wrongly masked frame, bad control
    /// frame: 1002.
    #[error("{0}")]
    Protocol(&'static str),
    /// Payload larger than the limit: 1009.
    #[error("frame larger than the maximum")]
    TooBig,
}

/// Result of looking at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Not enough bytes for the header yet.
    NeedMore,
    /// A complete header (the payload may still be arriving).
    Header(Header),
}

/// Decode the header at the start of `buf`. Client frames must be masked.
pub fn decode_header(buf: &[u8], max_payload: usize) -> Result<Decoded, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(Decoded::NeedMore);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set without a negotiated extension"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::Protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frames must be masked"));
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(Decoded::NeedMore);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(Decoded::NeedMore);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            let n = u64::from_be_bytes(a);
            if n >> 63 != 0 {
                return Err(FrameError::Protocol("payload length has the most significant bit set"));
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() {
        if !fin {
            return Err(FrameError::Protocol("fragmented control frame"));
        }
        if len > 125 {
            return Err(FrameError::Protocol("control frame payload over 125 bytes"));
        }
    }
    if len > max_payload as u64 {
        return Err(FrameError::TooBig);
    }
    let Some(m) = buf.get(at..at + 4) else {
        return Ok(Decoded::NeedMore);
    };
    let mask = [m[0], m[1], m[2], m[3]];
    at += 4;
    Ok(Decoded::Header(Header { fin, opcode, mask, header_len: at, payload_len: len as usize }))
}

/// XOR `data` with the 4-byte `mask`, starting at mask position `offset`.
/// Eight bytes at a time; [`unmask_reference`] is the byte-wise definition it
/// is tested against.
pub fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(a) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// The definition of masking, byte by byte (RFC 6455 section 5.3).
pub fn unmask_reference(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

/// Length of the header of an unmasked server frame with `len` payload bytes.
pub fn server_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Append the header of a final, unmasked server frame.
pub fn put_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    out.push(0x80 | opcode.bits());
    match len {
        0..=125 => out.push(len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Append a whole final server frame.
pub fn put_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.reserve(server_header_len(payload.len()) + payload.len());
    put_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Append a close frame with `code` and a reason (cut to fit 125 bytes on a
/// character boundary).
pub fn put_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    put_frame(out, Opcode::Close, &payload);
}

/// A masked client frame with a raw first byte (FIN, RSV and opcode bits as
/// given, so tests can build invalid frames too). The gateway never sends
/// these; tests, benchmarks and tools that play the client do (a client
/// that appends to its own buffer uses [`crate::client::put_client_frame`]).
pub fn client_frame(first_byte: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + payload.len());
    crate::client::put_raw_client_frame(&mut v, first_byte, payload, mask);
    v
}

/// Whether a close code received from a peer is one it may send (RFC 6455
/// section 7.4).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        client_frame((if fin { 0x80 } else { 0 }) | opcode, payload, mask)
    }

    #[test]
    fn fast_unmask_agrees_with_reference() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..4 {
                let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
                let (mut a, mut b) = (data.clone(), data.clone());
                unmask(&mut a, mask, offset);
                unmask_reference(&mut b, mask, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn decodes_all_length_forms() {
        for len in [0usize, 125, 126, 65535, 65536, 70000] {
            let payload = vec![b'a'; len];
            let f = masked(0x2, true, &payload, [1, 2, 3, 4]);
            let Decoded::Header(h) = decode_header(&f, 1 << 20).unwrap() else { panic!("need more") };
            assert_eq!(h.payload_len, len);
            assert_eq!(h.header_len + len, f.len());
            let mut p = f[h.header_len..].to_vec();
            unmask(&mut p, h.mask, 0);
            assert_eq!(p, payload);
            // Every strict prefix of the header asks for more.
            for cut in 0..h.header_len {
                assert_eq!(decode_header(&f[..cut], 1 << 20), Ok(Decoded::NeedMore));
            }
        }
    }

    #[test]
    fn refuses_protocol_violations() {
        let mut f = masked(0x1, true, b"x", [0; 4]);
        f[0] |= 0x40;
        assert!(matches!(decode_header(&f, 100), Err(FrameError::Protocol(_))));
        assert!(matches!(decode_header(&masked(0x3, true, b"", [0; 4]), 100), Err(FrameError::Protocol(_))));
        assert!(matches!(decode_header(&masked(0x9, false, b"", [0; 4]), 100), Err(FrameError::Protocol(_))));
        assert!(matches!(decode_header(&masked(0x9, true, &[0; 126], [0; 4]), 1000), Err(FrameError::Protocol(_))));
        assert!(matches!(decode_header(&[0x81, 0x01, b'x'], 100), Err(FrameError::Protocol(_))));
        assert_eq!(decode_header(&masked(0x1, true, &[0; 101], [0; 4]), 100), Err(FrameError::TooBig));
        let huge = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode_header(&huge, 100), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn server_frames_and_close_reason_cut() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            put_frame(&mut out, Opcode::Text, &vec![b'z'; len]);
            assert_eq!(out.len(), server_header_len(len) + len);
            assert_eq!(out[0], 0x81);
        }
        let mut out = Vec::new();
        put_close(&mut out, 1000, &"é".repeat(100));
        assert!(out.len() <= 2 + 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
        assert!(is_valid_close_code(1000) && is_valid_close_code(4000));
        assert!(!is_valid_close_code(1005) && !is_valid_close_code(999) && !is_valid_close_code(5000));
    }
}

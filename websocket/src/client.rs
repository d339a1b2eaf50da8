//! The client's side of framing (RFC 6455 section 5): encoding masked
//! frames and decoding the headers of the unmasked frames a server sends.
//!
//! Client frames must be masked (a server closes with 1002 otherwise); the
//! mask only has to be unpredictable to a proxy, not secret, so the caller
//! picks it (the load generator uses a per-connection xorshift). Server
//! frames must not be masked.

use crate::frame::{unmask, FrameError, Opcode};

/// Append one final, masked client frame with `payload` to `out`.
pub fn put_client_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    put_raw_client_frame(out, 0x80 | opcode.bits(), payload, mask);
}

/// [`put_client_frame`] with a raw first byte (FIN, RSV and opcode bits as
/// given), so tests can build frames no client may send.
pub fn put_raw_client_frame(out: &mut Vec<u8>, first_byte: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(14 + payload.len());
    out.push(first_byte);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=65535 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    // Masking and unmasking are the same XOR.
    unmask(&mut out[start..], mask, 0);
}

/// The header of a server frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHeader {
    /// Last frame of its message.
    pub fin: bool,
    /// What the frame is.
    pub opcode: Opcode,
    /// Bytes of header before the payload.
    pub header_len: usize,
    /// Bytes of payload.
    pub payload_len: usize,
}

impl ServerHeader {
    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Decode the header of a server frame at the start of `buf`: `Ok(None)`
/// when more bytes are needed, an error for a frame no server may send or
/// one whose payload exceeds `max_payload`.
pub fn decode_server_header(buf: &[u8], max_payload: usize) -> Result<Option<ServerHeader>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("server frame with reserved bits set"));
    }
    if b1 & 0x80 != 0 {
        return Err(FrameError::Protocol("masked server frame"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::Protocol("server frame with an unknown opcode"))?;
    let (header_len, payload_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            None => return Ok(None),
            Some(b) => (4, u64::from(u16::from_be_bytes([b[0], b[1]]))),
        },
        127 => match buf.get(2..10) {
            None => return Ok(None),
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                let n = u64::from_be_bytes(be);
                if n >> 63 != 0 {
                    return Err(FrameError::Protocol("payload length has the most significant bit set"));
                }
                (10, n)
            }
        },
        n => (2, u64::from(n)),
    };
    if opcode.is_control() && (!fin || payload_len > 125) {
        return Err(FrameError::Protocol("fragmented or oversized control frame"));
    }
    if payload_len > max_payload as u64 {
        return Err(FrameError::TooBig);
    }
    Ok(Some(ServerHeader { fin, opcode, header_len, payload_len: payload_len as usize }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_header, put_frame, Decoded};

    #[test]
    fn client_frames_decode_as_the_server_reads_them_at_every_length_form() {
        for len in [0usize, 5, 125, 126, 200, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = vec![0xEE];
            put_client_frame(&mut out, Opcode::Text, &payload, [9, 8, 7, 6]);
            let frame = &out[1..];
            let Ok(Decoded::Header(h)) = decode_header(frame, 1 << 20) else { panic!("length {len}") };
            assert!(h.fin && h.opcode == Opcode::Text && h.mask == [9, 8, 7, 6]);
            let mut got = frame[h.header_len..].to_vec();
            unmask(&mut got, h.mask, 0);
            assert_eq!(got, payload, "length {len}");
        }
    }

    #[test]
    fn server_frames_decode_as_the_client_reads_them() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let mut out = Vec::new();
            put_frame(&mut out, Opcode::Binary, &vec![b'q'; len]);
            let h = decode_server_header(&out, 1 << 20).unwrap().unwrap();
            assert_eq!((h.fin, h.opcode, h.frame_len()), (true, Opcode::Binary, out.len()));
            for cut in 0..h.header_len {
                assert_eq!(decode_server_header(&out[..cut], 1 << 20), Ok(None), "cut {cut}");
            }
        }
    }

    #[test]
    fn server_headers_no_server_may_send_are_refused() {
        let h = decode_server_header(&[0x01, 126, 0x01, 0x00], 1 << 20).unwrap().unwrap();
        assert_eq!((h.fin, h.header_len, h.payload_len), (false, 4, 256));
        let mut long = vec![0x82, 127];
        long.extend_from_slice(&70_000u64.to_be_bytes());
        assert_eq!(decode_server_header(&long, 1000), Err(FrameError::TooBig));
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(decode_server_header(&huge, usize::MAX), Err(FrameError::Protocol(_))));
        for (bytes, why) in [
            (&[0x81, 0x83][..], "masked"),
            (&[0xC1, 0x00], "rsv1"),
            (&[0x83, 0x00], "opcode 3"),
            (&[0x09, 0x00], "fragmented ping"),
            (&[0x89, 126, 0, 126], "long ping"),
        ] {
            assert!(matches!(decode_server_header(bytes, 1000), Err(FrameError::Protocol(_))), "{why}");
        }
    }
}

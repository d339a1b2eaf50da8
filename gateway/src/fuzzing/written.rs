//! Reading back what the engine wrote, and the rules it must follow: an
//! HTTP response head, then (after a 101) only well-formed server frames.

use crate::ws::frame::is_valid_close_code;

/// One frame the server wrote.
#[derive(Debug)]
pub(crate) struct ServerFrame<'a> {
    pub(crate) opcode: u8,
    pub(crate) payload: &'a [u8],
}

/// The status code of the response at the start of `written` and the bytes
/// after its head.
pub(crate) fn response(written: &[u8]) -> (u16, &[u8]) {
    let head_end = written
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or_else(|| panic!("response without a complete head: {:?}", String::from_utf8_lossy(written)));
    let head = std::str::from_utf8(&written[..head_end]).expect("response head is ASCII");
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    (status, &written[head_end..])
}

/// Split server frames, checking each: final, unmasked, no reserved bits,
/// a known opcode, data within `max_frame`, text valid UTF-8, a close frame
/// (if any) last with a code a peer may send.
pub(crate) fn server_frames(mut bytes: &[u8], max_frame: usize) -> Vec<ServerFrame<'_>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "truncated server frame header");
        let (b0, b1) = (bytes[0], bytes[1]);
        assert_eq!(b0 & 0xF0, 0x80, "server frames are final and use no reserved bit");
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, at) = match b1 & 0x7F {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&bytes[2..10]);
                (usize::try_from(u64::from_be_bytes(a)).expect("length fits"), 10)
            }
            n => (usize::from(n), 2),
        };
        assert!(bytes.len() >= at + len, "truncated server frame payload");
        let payload = &bytes[at..at + len];
        let opcode = b0 & 0x0F;
        match opcode {
            0x1 => {
                assert!(len <= max_frame, "echoed text of {len} bytes over max-frame {max_frame}");
                assert!(std::str::from_utf8(payload).is_ok(), "echoed text is not UTF-8");
            }
            0x2 => assert!(len <= max_frame, "echoed binary of {len} bytes over max-frame {max_frame}"),
            0xA => assert!(len <= 125, "pong payload over 125 bytes"),
            0x8 => {
                assert!(len >= 2, "the server always sends a close code");
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert!(is_valid_close_code(code), "close code {code} is not one a peer may send");
                assert!(std::str::from_utf8(&payload[2..]).is_ok(), "close reason is not UTF-8");
                assert_eq!(at + len, bytes.len(), "bytes written after the close frame");
            }
            other => panic!("server wrote opcode {other:#x}"),
        }
        frames.push(ServerFrame { opcode, payload });
        bytes = &bytes[at + len..];
    }
    frames
}

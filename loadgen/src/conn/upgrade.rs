//! The HTTP/1.1 upgrade that opens a WebSocket (RFC 6455 section 4.1),
//! written and checked by hand so it costs no allocation beyond the
//! request bytes themselves.
//!
//! The token travels in the query string (`/ws?token=...`), as browsers
//! must do it. The `Sec-WebSocket-Accept` answer is checked: a gateway
//! that answers 101 with the wrong accept value is a bug worth reporting,
//! not a connection to count as established.

use chatgw_websocket::handshake::{accept_key, client_key};

use crate::conn::ws::Xorshift;

/// Most headers a response may carry.
const MAX_HEADERS: usize = 32;
/// Largest response head accepted before the handshake is given up.
pub(crate) const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64 (24 characters).
pub(crate) fn new_key(rng: &mut Xorshift) -> [u8; 24] {
    let mut raw = [0u8; 16];
    for chunk in raw.chunks_mut(4) {
        chunk.copy_from_slice(&rng.next_u32().to_le_bytes());
    }
    client_key(raw)
}

/// Append the upgrade request to `out`.
pub(crate) fn write_request(out: &mut Vec<u8>, host: &str, token: &str, key: &[u8]) {
    out.extend_from_slice(b"GET /ws?token=");
    out.extend_from_slice(token.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Check the response head at the start of `buf`. `Ok(None)`: incomplete;
/// `Ok(Some(n))`: a valid 101 whose head is `n` bytes (frames may follow);
/// `Err(reason)`: the upgrade failed, with a short reason fit for counting.
pub(crate) fn parse_response(buf: &[u8], key: &[u8]) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err("upgrade: response head too large".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("upgrade: malformed response ({e})")),
    };
    match resp.code {
        Some(101) => {}
        Some(code) => {
            let body = String::from_utf8_lossy(buf.get(len..).unwrap_or_default());
            let first = body.lines().next().unwrap_or("").trim();
            return Err(if first.is_empty() { format!("http {code}") } else { format!("http {code}: {first}") });
        }
        None => return Err("upgrade: no status code".into()),
    }
    let accept =
        resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept")).map(|h| h.value.trim_ascii());
    match accept {
        Some(a) if a == accept_key(key).as_bytes() => Ok(Some(len)),
        Some(_) => Err("upgrade: wrong Sec-WebSocket-Accept".into()),
        None => Err("upgrade: no Sec-WebSocket-Accept".into()),
    }
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::STANDARD, Engine as _};

    use super::*;

    #[test]
    fn responses() {
        let key = b"dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x02{}";
        assert_eq!(parse_response(ok, key), Ok(Some(ok.len() - 4)));
        assert_eq!(parse_response(&ok[..20], key), Ok(None));
        let refused = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 20\r\n\r\nbad token signature\n";
        assert_eq!(parse_response(refused, key), Err("http 401: bad token signature".into()));
        let wrong = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n\r\n";
        assert!(parse_response(wrong, key).is_err());
    }

    #[test]
    fn request_is_well_formed() {
        let mut rng = Xorshift::new(3);
        let key = new_key(&mut rng);
        let mut out = Vec::new();
        write_request(&mut out, "127.0.0.1:1", "t.o.k", &key);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&out).unwrap().is_complete());
        assert_eq!(req.path, Some("/ws?token=t.o.k"));
        assert_eq!(STANDARD.decode(key).unwrap().len(), 16);
    }
}

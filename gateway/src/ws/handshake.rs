//! The HTTP/1.1 side of a connection: parsing the request that opens it,
//! the WebSocket upgrade (RFC 6455 section 4.2), and the plain responses
//! (`/healthz`, errors) sent before closing; the admin listener sends its
//! responses with [`respond`] too.

pub(crate) use chatgw_websocket::handshake::accept_key;

/// Most headers a request may carry.
const MAX_HEADERS: usize = 32;

/// What the gateway needs from a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// `Upgrade: websocket` and `Connection: upgrade` are both present.
    pub(crate) wants_upgrade: bool,
    pub(crate) ws_key: Option<&'a [u8]>,
    pub(crate) ws_version: Option<&'a [u8]>,
    pub(crate) bearer: Option<&'a str>,
    /// Bytes of the request head, which the caller consumes.
    pub(crate) len: usize,
}

impl<'a> Request<'a> {
    /// The token from `?token=` or `Authorization: Bearer`.
    pub(crate) fn token(&self) -> Option<&'a str> {
        let from_query =
            self.query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).filter(|t| !t.is_empty()));
        from_query.or(self.bearer)
    }
}

/// Why a request head could not be parsed: answered with 400 and a close.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequest(pub(crate) &'static str);

/// Parse a request head from `buf`; `Ok(None)` if more bytes are needed.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<Request<'_>>, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadRequest("too many headers")),
        Err(_) => return Err(BadRequest("malformed HTTP request")),
    };
    let method = req.method.ok_or(BadRequest("no method"))?;
    let target = req.path.ok_or(BadRequest("no path"))?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut upgrade = false;
    let mut connection_upgrade = false;
    let mut ws_key = None;
    let mut ws_version = None;
    let mut bearer = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = h.value.eq_ignore_ascii_case(b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade = h.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            ws_key = Some(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            ws_version = Some(h.value.trim_ascii());
        } else if name.eq_ignore_ascii_case("authorization") {
            bearer = std::str::from_utf8(h.value).ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        }
    }
    Ok(Some(Request {
        method,
        path,
        query,
        wants_upgrade: upgrade && connection_upgrade,
        ws_key,
        ws_version,
        bearer,
        len,
    }))
}

/// The 101 response that completes an upgrade.
pub(crate) fn switching_protocols(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept_key(key).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// A complete response after which the connection closes.
pub(crate) fn respond(out: &mut Vec<u8>, status: u16, reason: &str, content_type: &str, body: &[u8]) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            body.len(),
            if status == 426 { "Sec-WebSocket-Version: 13\r\n" } else { "" },
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upgrade_with_query_token_and_bearer() {
        let raw = b"GET /ws?x=1&token=abc HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\nextra";
        let r = parse(raw).unwrap().unwrap();
        assert_eq!(r.path, "/ws");
        assert!(r.wants_upgrade);
        assert_eq!(r.token(), Some("abc"));
        assert_eq!(r.ws_key, Some(&b"k"[..]));
        assert_eq!(r.len, raw.len() - 5);
        let raw = b"GET /ws HTTP/1.1\r\nAuthorization: Bearer tok\r\n\r\n";
        let r = parse(raw).unwrap().unwrap();
        assert_eq!(r.token(), Some("tok"));
        assert!(!r.wants_upgrade);
    }

    #[test]
    fn partial_and_garbage() {
        assert_eq!(parse(b"GET /ws HTTP/1.1\r\nHost:"), Ok(None));
        assert!(parse(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").is_err());
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), Err(BadRequest("too many headers")));
    }
}

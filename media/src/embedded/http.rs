//! One request of the media listener: a part `PUT` or an object `GET`
//! (`HEAD`), checked against its signed URL, the bytes streamed between the
//! socket and the files through one [`BUFFER`]-sized buffer.
//!
//! One request per connection (`Connection: close`): a transfer is
//! megabytes, so a new connection costs nothing next to it, and a client
//! cannot hold a transfer slot while idle between requests. The caller
//! (the gateway's listener) owns the socket's timeouts and the number of
//! transfers at once.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, TcpStream},
    time::SystemTime,
};

use super::{
    refusal::Refusal,
    sign::Method,
    store::{unix, Store, BUFFER},
    EmbeddedBackend,
};
use crate::MediaError;

/// Largest request head.
const MAX_HEAD: usize = 8 * 1024;
/// Bytes of a refused body read (and dropped) before the connection is
/// closed, so the client reads the refusal instead of a reset.
const DRAIN_LIMIT: u64 = 1 << 20;
/// How long a refused body is waited for at most.
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What was served, for the caller's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// The request's method as allowed (`None` for a request refused
    /// before its method was known to be one of ours).
    pub method: Option<Method>,
    /// The status answered.
    pub status: u16,
    /// The refusal's code, when refused.
    pub refused: Option<&'static str>,
    /// Body bytes received and kept.
    pub bytes_in: u64,
    /// Body bytes sent.
    pub bytes_out: u64,
}

struct Head {
    method: String,
    target: String,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
    range: Option<String>,
}

fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(Head, usize), Refusal> {
    let mut chunk = [0u8; 2048];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::trim)
                };
                let content_length = match header("content-length") {
                    Some(v) => Some(v.parse::<u64>().map_err(|_| Refusal::BadRequest("bad Content-Length"))?),
                    None => None,
                };
                let head = Head {
                    method: req.method.unwrap_or("").to_owned(),
                    target: req.path.unwrap_or("").to_owned(),
                    content_length,
                    chunked: header("transfer-encoding").is_some(),
                    expect_continue: header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")),
                    range: header("range").map(str::to_owned),
                };
                return Ok((head, len));
            }
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                return Err(Refusal::BadRequest("request head too large"))
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(Refusal::BadRequest("not an HTTP/1.1 request")),
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(Refusal::BadRequest("connection closed before the request head ended")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Refusal::Timeout),
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, headers: &str, body: &[u8]) -> io::Result<()> {
    let mut out =
        format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n", body.len())
            .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)
}

fn refuse(stream: &mut TcpStream, refusal: &Refusal, method: Option<Method>, drain: bool) -> Served {
    let (status, reason) = refusal.status();
    let mut headers = String::from("Content-Type: text/plain; charset=utf-8\r\n");
    match refusal {
        Refusal::WrongMethod { allow } => headers.push_str(&format!("Allow: {allow}\r\n")),
        Refusal::BadRange { size } => headers.push_str(&format!("Content-Range: bytes */{size}\r\n")),
        Refusal::Busy => headers.push_str("Retry-After: 1\r\n"),
        _ => {}
    }
    let _ = respond(stream, status, reason, &headers, refusal.body().as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
    if drain {
        let _ = stream.set_read_timeout(Some(DRAIN_WAIT));
        let _ = io::copy(&mut (&*stream).take(DRAIN_LIMIT), &mut io::sink());
    }
    Served { method, status, refused: Some(refusal.code()), bytes_in: 0, bytes_out: 0 }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` of an object of `size` bytes, as
/// `start..end`; `Ok(None)` for a header to ignore (several ranges, another
/// unit), as RFC 9110 allows.
fn range(header: &str, size: u64) -> Result<Option<(u64, u64)>, Refusal> {
    let Some(spec) = header.strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let unsatisfiable = Refusal::BadRange { size };
    let (start, end) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) if a <= b => (a, b.saturating_add(1).min(size)),
        (Ok(a), Err(_)) if b.is_empty() => (a, size),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (size.saturating_sub(n), size),
        (Err(_), Ok(0)) if a.is_empty() => return Err(unsatisfiable),
        _ => return Ok(None),
    };
    match start < size {
        true => Ok(Some((start, end))),
        false => Err(unsatisfiable),
    }
}

impl EmbeddedBackend {
    /// Serve one request on `stream` at `now`. Never panics on what the
    /// peer sends; every failure is answered with its status when the
    /// socket still takes it.
    pub fn serve(&self, stream: &mut TcpStream, now: SystemTime) -> Served {
        let mut buf = Vec::with_capacity(1024);
        let (head, head_len) = match read_head(stream, &mut buf) {
            Ok(h) => h,
            Err(refusal) => return refuse(stream, &refusal, None, false),
        };
        let method = match head.method.as_str() {
            "GET" | "HEAD" => Method::Get,
            "PUT" => Method::Put,
            _ => return refuse(stream, &Refusal::WrongMethod { allow: "GET, HEAD, PUT" }, None, true),
        };
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (head.target.as_str(), None),
        };
        let allowed = match self.signer.check(method, path, query, unix(now)) {
            Ok(a) => a,
            Err(refusal) => return refuse(stream, &refusal, Some(method), method == Method::Put),
        };
        let early = buf.get(head_len..).unwrap_or_default().to_vec();
        drop(buf);
        match allowed.part {
            Some(part) => self.put(stream, &head, early, &allowed.key, part, allowed.size),
            None => self.get(stream, &head, &allowed.key, allowed.size),
        }
    }

    fn put(
        &self,
        stream: &mut TcpStream,
        head: &Head,
        early: Vec<u8>,
        key: &crate::MediaKey,
        part: u32,
        signed: u64,
    ) -> Served {
        let put = Some(Method::Put);
        let len = match (head.content_length, head.chunked) {
            (Some(len), false) => len,
            _ => return refuse(stream, &Refusal::LengthRequired, put, true),
        };
        if len > signed {
            return refuse(stream, &Refusal::TooLarge { signed }, put, true);
        }
        if len < signed {
            return refuse(stream, &Refusal::TooSmall { signed }, put, true);
        }
        if head.expect_continue && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
            return Served { method: put, status: 0, refused: Some("too_small"), bytes_in: 0, bytes_out: 0 };
        }
        let mut body = io::Cursor::new(early).chain(&*stream).take(len);
        match self.store.put_part(key, part, len, &mut body) {
            Ok(tag) => {
                let _ = respond(stream, 200, "OK", &format!("ETag: \"{tag}\"\r\n"), b"");
                Served { method: put, status: 200, refused: None, bytes_in: len, bytes_out: 0 }
            }
            Err(refusal) => refuse(stream, &refusal, put, false),
        }
    }

    fn get(&self, stream: &mut TcpStream, head: &Head, key: &crate::MediaKey, signed: u64) -> Served {
        let get = Some(Method::Get);
        let meta = match Store::meta(&self.store.object_dir(key)) {
            Ok(m) if m.size == signed => m,
            Ok(_) | Err(MediaError::NotFound) => return refuse(stream, &Refusal::NotFound, get, false),
            Err(_) => return refuse(stream, &Refusal::Io, get, false),
        };
        let span = match head.range.as_deref().map(|r| range(r, meta.size)).transpose() {
            Ok(span) => span.flatten(),
            Err(refusal) => return refuse(stream, &refusal, get, false),
        };
        let (start, end) = span.unwrap_or((0, meta.size));
        let (status, reason, content_range) = match span {
            Some(_) => (206, "Partial Content", format!("Content-Range: bytes {start}-{}/{}\r\n", end - 1, meta.size)),
            None => (200, "OK", String::new()),
        };
        let head_text = format!(
            "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {}\r\n\
             Accept-Ranges: bytes\r\nCache-Control: private, max-age=31536000, immutable\r\n{content_range}\r\n",
            end - start,
            meta.content_type
        );
        if stream.write_all(head_text.as_bytes()).is_err() {
            return Served { method: get, status, refused: None, bytes_in: 0, bytes_out: 0 };
        }
        if head.method == "HEAD" {
            return Served { method: get, status, refused: None, bytes_in: 0, bytes_out: 0 };
        }
        let mut out = io::BufWriter::with_capacity(BUFFER, &*stream);
        let sent = self.store.copy_range(key, &meta, start, end, &mut out).and_then(|n| out.flush().map(|()| n));
        let bytes_out = sent.unwrap_or(0);
        Served { method: get, status, refused: None, bytes_in: 0, bytes_out }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 10))));
        assert_eq!(range("bytes=90-200", 100), Ok(Some((90, 100))));
        assert_eq!(range("bytes=10-", 100), Ok(Some((10, 100))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 100))));
        assert_eq!(range("bytes=-1000", 100), Ok(Some((0, 100))));
        assert_eq!(range("bytes=100-", 100), Err(Refusal::BadRange { size: 100 }));
        assert_eq!(range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(range("items=0-1", 100), Ok(None));
        assert_eq!(range("bytes=5-1", 100), Ok(None));
    }
}

//! Media helpers: a tiny HTTP/1.1 client for signed URLs (one request per
//! connection, as the media listener serves), streaming bodies through a
//! fixed buffer, and a deterministic byte pattern to check what comes back.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
};

use chatgw_client::{Client, Event};

use super::WAIT;

/// The byte at `offset` of every test file: cheap, and different at every
/// offset of a part, so a misplaced or repeated chunk shows.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(0x9E37_79B1) >> 13) as u8 ^ (offset >> 20) as u8
}

/// Fill `buf` with the pattern from `offset`.
pub fn fill(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(offset + i as u64);
    }
}

/// `http://host:port/path?query` as the address and the request target.
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, target) = rest.split_once('/').expect("a path");
    (host.parse().expect("host:port"), format!("/{target}"))
}

/// An HTTP response: status, head text and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_response(s: TcpStream, sink: &mut dyn FnMut(&[u8])) -> Response {
    let mut r = BufReader::with_capacity(64 * 1024, s);
    // A `100 Continue` comes before the response to a request that asked
    // for it.
    let (head, status) = loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status != 100 {
            break (head, status);
        }
    };
    let mut body = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if status >= 300 || body.len() < 4096 {
                    body.extend_from_slice(&buf[..n]);
                }
                sink(&buf[..n]);
            }
        }
    }
    Response { status, head, body }
}

/// `method url` with `headers` (each ending in `\r\n`) and a body of `len`
/// bytes made by `make(buf, offset)`; the response, its body handed to
/// `sink` as it comes (and kept, up to 4 KiB, or whole for an error).
pub fn request_streamed(
    method: &str,
    url: &str,
    headers: &str,
    len: u64,
    make: &mut dyn FnMut(&mut [u8], u64),
    sink: &mut dyn FnMut(&[u8]),
) -> Response {
    let (addr, target) = split_url(url);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT * 3)).unwrap();
    let length = if method == "PUT" { format!("Content-Length: {len}\r\n") } else { String::new() };
    write!(s, "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{length}{headers}\r\n").unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(buf.len() as u64) as usize;
        make(&mut buf[..n], sent);
        if s.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    read_response(s, sink)
}

/// `method url` with a body from memory.
pub fn request(method: &str, url: &str, headers: &str, body: &[u8]) -> Response {
    let mut make = |buf: &mut [u8], at: u64| buf.copy_from_slice(&body[at as usize..at as usize + buf.len()]);
    request_streamed(method, url, headers, body.len() as u64, &mut make, &mut |_| {})
}

/// `GET url`, the whole body.
pub fn get(url: &str, headers: &str) -> Response {
    let mut all = Vec::new();
    let mut r = request_streamed("GET", url, headers, 0, &mut |_, _| {}, &mut |b| all.extend_from_slice(b));
    if r.status < 300 {
        r.body = all;
    }
    r
}

/// Wait for the upload slot answering `request_id`.
pub fn upload_slot(c: &mut Client, request_id: &str) -> chatgw_protocol::UploadSlotFrame {
    c.wait_for(WAIT, "upload_slot", |e| match e {
        Event::UploadSlot(s) if s.request_id == request_id => Some(s.clone()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// Wait for the error answering `request_id`: code and message.
pub fn media_error(c: &mut Client, request_id: &str) -> (String, String) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, message, reference } if reference.as_deref() == Some(request_id) => {
            Some((code.clone(), message.clone()))
        }
        Event::Error { code, message, .. } => panic!("error {code}: {message} for another request"),
        _ => None,
    })
    .unwrap()
}

/// Complete an upload; panics unless `media_completed` answers.
pub fn complete(c: &mut Client, request_id: &str, slot: &chatgw_protocol::UploadSlotFrame, tags: &[String]) {
    c.complete_media(request_id, &slot.media, &slot.upload, tags).unwrap();
    c.wait_for(WAIT, "media_completed", |e| match e {
        Event::MediaCompleted { request_id: r, media } if r == request_id => {
            assert_eq!(media, &slot.media);
            Some(())
        }
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// A download URL of `media`, or the error code and message.
pub fn download_url(c: &mut Client, request_id: &str, media: &str) -> Result<String, (String, String)> {
    c.download_media(request_id, media).unwrap();
    c.wait_for(WAIT, "download_url", |e| match e {
        Event::DownloadUrl { request_id: r, url, media: m, .. } if r == request_id => {
            assert_eq!(m, media);
            Some(Ok(url.clone()))
        }
        Event::Error { code, message, reference } if reference.as_deref() == Some(request_id) => {
            Some(Err((code.clone(), message.clone())))
        }
        _ => None,
    })
    .unwrap()
}

/// `PUT` every part of `slot` from the pattern; the tags.
pub fn put_pattern(slot: &chatgw_protocol::UploadSlotFrame, size: u64) -> Vec<String> {
    slot.parts
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let start = i as u64 * slot.part_size;
            let len = slot.part_size.min(size - start);
            let r = request_streamed("PUT", url, "", len, &mut |buf, at| fill(buf, start + at), &mut |_| {});
            assert_eq!(r.status, 200, "part {}: {}", i + 1, r.text());
            r.header("etag").expect("an ETag").to_owned()
        })
        .collect()
}

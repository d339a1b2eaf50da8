//! The header parser against the specification's examples and every way a
//! header can be wrong.

use super::{parse, Header, Malformed, MAX_HEADER};

fn proxied(src: &str, dst: &str) -> Header {
    Header::Proxied { source: src.parse().unwrap(), destination: dst.parse().unwrap() }
}

/// A version 2 header: command, family byte, then the body.
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[ver_cmd, fam]);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v4_body() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 7, 10, 0, 0, 1];
    b.extend_from_slice(&51000u16.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b
}

fn v6_body() -> Vec<u8> {
    let src: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&dst.octets());
    b.extend_from_slice(&[0xc7, 0x38, 0x01, 0xbb]);
    b
}

/// Every proper prefix asks for more; the whole takes exactly its length.
fn complete(bytes: &[u8]) -> Header {
    for cut in 0..bytes.len() {
        assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
    }
    let mut with_request = bytes.to_vec();
    with_request.extend_from_slice(b"GET /ws HTTP/1.1\r\n");
    let (header, used) = parse(&with_request).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    header
}

#[test]
fn v1_tcp4_tcp6_and_unknown() {
    assert_eq!(complete(b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\r\n"), proxied("192.0.2.7:51000", "10.0.0.1:443"));
    assert_eq!(
        complete(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n"),
        proxied("[2001:db8::7]:51000", "[2001:db8::1]:443")
    );
    assert_eq!(complete(b"PROXY UNKNOWN\r\n"), Header::Local);
    assert_eq!(complete(b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"), Header::Local);
}

#[test]
fn v1_longest_line_is_taken_and_one_more_byte_is_not() {
    let host = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let line = format!("PROXY TCP6 {host} {host} 65535 65535\r\n");
    assert_eq!(line.len(), 104);
    let mut unknown = b"PROXY UNKNOWN ".to_vec();
    unknown.resize(105, b'x');
    unknown.extend_from_slice(b"\r\n");
    assert_eq!(complete(&unknown), Header::Local, "107 bytes with CRLF");
    let mut overlong = b"PROXY UNKNOWN ".to_vec();
    overlong.resize(106, b'x');
    assert_eq!(parse(&overlong), Ok(None));
    overlong.extend_from_slice(b"\r\n");
    assert_eq!(parse(&overlong), Err(Malformed::LineTooLong));
    assert_eq!(parse(&[b"PROXY ".as_slice(), &[b'1'; 200]].concat()), Err(Malformed::LineTooLong));
}

#[test]
fn v1_bad_lines() {
    for line in [
        "PROXY TCP5 192.0.2.7 10.0.0.1 51000 443\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 443 9\r\n",
        "PROXY TCP4 192.0.2.7  10.0.0.1 51000 443\r\n",
        "PROXY TCP4 192.0.2.300 10.0.0.1 51000 443\r\n",
        "PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n",
        "PROXY TCP6 192.0.2.7 2001:db8::1 51000 443\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 +1 443\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 051000 443\r\n",
        "PROXY TCP4 host 10.0.0.1 51000 443\r\n",
        "PROXY tcp4 192.0.2.7 10.0.0.1 51000 443\r\n",
        "PROXY \r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 51000 443\n\r\n",
    ] {
        assert_eq!(parse(line.as_bytes()), Err(Malformed::BadLine), "{line:?}");
    }
    assert_eq!(parse(b"PROXY TCP4 \xff\xfe 10.0.0.1 1 2\r\n"), Err(Malformed::BadLine), "not UTF-8");
}

#[test]
fn v2_proxy_over_inet_and_inet6() {
    assert_eq!(complete(&v2(0x21, 0x11, &v4_body())), proxied("192.0.2.7:51000", "10.0.0.1:443"));
    assert_eq!(complete(&v2(0x21, 0x21, &v6_body())), proxied("[2001:db8::7]:51000", "[2001:db8::1]:443"));
}

#[test]
fn v2_local_unspec_and_unix_keep_the_socket_address() {
    assert_eq!(complete(&v2(0x20, 0x00, &[])), Header::Local, "LOCAL, the balancer's health check");
    assert_eq!(complete(&v2(0x20, 0x11, &v4_body())), Header::Local, "LOCAL ignores addresses");
    assert_eq!(complete(&v2(0x21, 0x00, &[])), Header::Local, "PROXY over AF_UNSPEC");
    assert_eq!(complete(&v2(0x21, 0x31, &[0u8; 216])), Header::Local, "PROXY over AF_UNIX");
}

#[test]
fn v2_tlvs_are_skipped_and_must_fit() {
    let mut body = v4_body();
    body.extend_from_slice(&[0x04, 0, 3, 1, 2, 3]); // PP2_TYPE_NOOP, three bytes
    body.extend_from_slice(&[0x05, 0, 0]); // PP2_TYPE_UNIQUE_ID, empty
    assert_eq!(complete(&v2(0x21, 0x11, &body)), proxied("192.0.2.7:51000", "10.0.0.1:443"));
    let mut past = v4_body();
    past.extend_from_slice(&[0x04, 0, 9, 1, 2]);
    assert_eq!(parse(&v2(0x21, 0x11, &past)), Err(Malformed::Length), "TLV past the header");
    let mut stub = v4_body();
    stub.extend_from_slice(&[0x04, 0]);
    assert_eq!(parse(&v2(0x21, 0x11, &stub)), Err(Malformed::Length), "TLV cut inside its head");
}

#[test]
fn v2_lengths() {
    assert_eq!(parse(&v2(0x21, 0x11, &v4_body()[..11])), Err(Malformed::Length), "short of IPv4 addresses");
    assert_eq!(parse(&v2(0x21, 0x21, &v4_body())), Err(Malformed::Length), "short of IPv6 addresses");
    assert_eq!(parse(&v2(0x21, 0x31, &[0u8; 100])), Err(Malformed::Length), "short of Unix addresses");
    let mut longest = v4_body();
    longest.extend_from_slice(&[0x04, 0x01, 0xf9]);
    longest.resize(MAX_HEADER - 16, 0);
    assert_eq!(complete(&v2(0x21, 0x11, &longest)), proxied("192.0.2.7:51000", "10.0.0.1:443"));
    // One byte more is refused from the fixed part alone, before the body.
    let mut h = v2(0x21, 0x11, &[]);
    h[14..16].copy_from_slice(&((MAX_HEADER - 15) as u16).to_be_bytes());
    assert_eq!(parse(&h), Err(Malformed::Length));
    h[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(parse(&h), Err(Malformed::Length));
}

#[test]
fn v2_bad_version_command_family() {
    assert_eq!(parse(&v2(0x11, 0x11, &v4_body())), Err(Malformed::Version));
    assert_eq!(parse(&v2(0x31, 0x11, &v4_body())), Err(Malformed::Version));
    assert_eq!(parse(&v2(0x22, 0x11, &v4_body())), Err(Malformed::Command));
    assert_eq!(parse(&v2(0x2f, 0x11, &v4_body())), Err(Malformed::Command));
    assert_eq!(parse(&v2(0x21, 0x41, &v4_body())), Err(Malformed::Family), "family 4");
    assert_eq!(parse(&v2(0x21, 0x13, &v4_body())), Err(Malformed::Family), "transport 3");
    assert_eq!(parse(&v2(0x21, 0x12, &v4_body())), Err(Malformed::Family), "datagrams on a stream listener");
}

#[test]
fn anything_else_first_is_no_signature() {
    for bytes in [&b"GET /ws HTTP/1.1\r\n"[..], b"PROXX", b"proxy ", b"\r\n\r\n\0\r\nQUIx", b"\x16\x03\x01", b"\r\nX"] {
        assert_eq!(parse(bytes), Err(Malformed::Signature), "{bytes:?}");
    }
    // A start that could still be either signature waits.
    for bytes in [&b""[..], b"P", b"PRO", b"\r\n\r\n", b"\r\n\r\n\0\r\nQUIT\n\x21"] {
        assert_eq!(parse(bytes), Ok(None), "{bytes:?}");
    }
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random inputs after each signature.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        let tail: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
        for sig in [&b"PROXY "[..], b"\r\n\r\n\0\r\nQUIT\n"] {
            if let Ok(Some((_, used))) = parse(&[sig, &tail].concat()) {
                assert!(used <= sig.len() + tail.len());
            }
        }
    }
}

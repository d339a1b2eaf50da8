//! The PROXY protocol header, versions 1 (a text line) and 2 (binary), as
//! HAProxy's specification (proxy-protocol.txt) defines it. Pure: bytes in,
//! a verdict out; the engine feeds it what has arrived so far.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest version 1 line, CRLF included (the specification's bound).
pub const MAX_V1_LINE: usize = 107;
/// Longest header taken (either version): a version 2 header's 16 bytes
/// plus at most 520 of addresses and TLVs. HAProxy sends 28 (IPv4) or 52
/// (IPv6) bytes unless told to add TLVs; a longer one is refused rather
/// than buffered.
pub const MAX_HEADER: usize = 536;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;

/// What a complete header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// Relayed for this client, to this address of the balancer.
    Proxied {
        /// The client's address and port.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// The balancer's own connection (a version 2 LOCAL command, a health
    /// check), or a relayed one whose addresses it does not know
    /// (`UNKNOWN`, `AF_UNSPEC`, `AF_UNIX`): the socket's address stands.
    Local,
}

/// Why bytes are not a PROXY header; the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Neither signature: the client sent something else first.
    #[error("no PROXY protocol signature")]
    Signature,
    /// A version 1 line with no CRLF within [`MAX_V1_LINE`] bytes.
    #[error("version 1 line longer than 107 bytes")]
    LineTooLong,
    /// A version 1 line that is not `PROXY TCP4|TCP6|UNKNOWN ...`, or whose
    /// addresses or ports do not parse or do not match the family.
    #[error("bad version 1 line")]
    BadLine,
    /// A version 2 header whose version nibble is not 2.
    #[error("bad version 2 version")]
    Version,
    /// A version 2 command other than LOCAL (0) and PROXY (1).
    #[error("bad version 2 command")]
    Command,
    /// A version 2 address family or transport outside the specification,
    /// or a datagram transport on this stream listener.
    #[error("bad version 2 family or transport")]
    Family,
    /// A version 2 length shorter than its family's addresses, longer than
    /// [`MAX_HEADER`] allows, or TLVs that run past it.
    #[error("bad version 2 length")]
    Length,
}

/// Parse the header at the start of `buf`: `Ok(None)` while more bytes are
/// needed, else the header and how many bytes it took (what follows is the
/// client's).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    if starts_like(buf, &V2_SIGNATURE) {
        if buf.len() < V2_SIGNATURE.len() {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    if starts_like(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(None);
        }
        return parse_v1(buf);
    }
    Err(Malformed::Signature)
}

/// Whether `buf` is `sig` so far (possibly shorter).
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    let window = &buf[..buf.len().min(MAX_V1_LINE)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        return match buf.len() >= MAX_V1_LINE {
            true => Err(Malformed::LineTooLong),
            false => Ok(None),
        };
    };
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..cr]).map_err(|_| Malformed::BadLine)?;
    let used = cr + 2;
    let mut fields = line.split(' ');
    let header = match fields.next() {
        Some("UNKNOWN") => return Ok(Some((Header::Local, used))),
        Some("TCP4") => v1_addresses(fields, |s| s.parse::<Ipv4Addr>().ok().map(IpAddr::V4))?,
        Some("TCP6") => v1_addresses(fields, |s| s.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?,
        _ => return Err(Malformed::BadLine),
    };
    Ok(Some((header, used)))
}

fn v1_addresses<'a>(
    mut fields: impl Iterator<Item = &'a str>,
    ip: impl Fn(&str) -> Option<IpAddr>,
) -> Result<Header, Malformed> {
    let mut next = || fields.next().ok_or(Malformed::BadLine);
    let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
    if next().is_ok() {
        return Err(Malformed::BadLine);
    }
    let addr = |host: &str, port: &str| -> Result<SocketAddr, Malformed> {
        Ok(SocketAddr::new(ip(host).ok_or(Malformed::BadLine)?, v1_port(port)?))
    };
    Ok(Header::Proxied { source: addr(src, sport)?, destination: addr(dst, dport)? })
}

/// A port as the specification writes it: decimal digits, no sign, no
/// leading zero, at most 65535.
fn v1_port(s: &str) -> Result<u16, Malformed> {
    let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    match digits_only && !leading_zero {
        true => s.parse().map_err(|_| Malformed::BadLine),
        false => Err(Malformed::BadLine),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, Malformed> {
    let Some(fixed) = buf.get(..V2_FIXED) else {
        return Ok(None);
    };
    let (ver_cmd, fam, len) = (fixed[12], fixed[13], usize::from(u16::from_be_bytes([fixed[14], fixed[15]])));
    if ver_cmd >> 4 != 2 {
        return Err(Malformed::Version);
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(Malformed::Command),
    };
    // Address family (high nibble): UNSPEC, INET, INET6, UNIX; transport
    // (low nibble): UNSPEC, STREAM, DGRAM.
    let (family, transport) = (fam >> 4, fam & 0x0f);
    if family > 3 || transport > 2 || (transport == 2 && !local) {
        return Err(Malformed::Family);
    }
    let total = V2_FIXED + len;
    if total > MAX_HEADER {
        return Err(Malformed::Length);
    }
    let Some(body) = buf.get(V2_FIXED..total) else {
        return Ok(None);
    };
    let addresses = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < addresses {
        return Err(Malformed::Length);
    }
    skip_tlvs(&body[addresses..])?;
    let header = match (local, family) {
        (false, 1) => {
            let a = |i: usize| Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]);
            proxied(a(0).into(), a(4).into(), &body[8..12])
        }
        (false, 2) => {
            let a = |i: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[i..i + 16]);
                Ipv6Addr::from(octets)
            };
            proxied(a(0).into(), a(16).into(), &body[32..36])
        }
        _ => Header::Local,
    };
    Ok(Some((header, total)))
}

fn proxied(src: IpAddr, dst: IpAddr, ports: &[u8]) -> Header {
    let port = |i: usize| u16::from_be_bytes([ports[i], ports[i + 1]]);
    Header::Proxied { source: SocketAddr::new(src, port(0)), destination: SocketAddr::new(dst, port(2)) }
}

/// Walk the TLVs after the addresses without reading them: each must fit.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), Malformed> {
    while !rest.is_empty() {
        let [_kind, hi, lo, ..] = *rest else {
            return Err(Malformed::Length);
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        rest = rest.get(end..).ok_or(Malformed::Length)?;
    }
    Ok(())
}

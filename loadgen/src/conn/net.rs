//! Opening sockets: the target address, source addresses, non-blocking
//! connect.
//!
//! Every TCP connection is named by (source ip, source port, destination ip,
//! destination port). With one source address the kernel has only its
//! ephemeral range (32768-60999 here, ~28k ports) to tell connections to one
//! gateway apart, so ~19,000 connections plus the TIME_WAIT leftovers of an
//! earlier run would exhaust it. On loopback every address of 127.0.0.0/8 is
//! local, so each connection binds an explicit source address first,
//! round-robin over `--sources` of them (127.0.1.1, 127.0.1.2, ...): each
//! source has its own port range. With `--procs`, worker process `i` takes
//! its sources from 127.(i+1).0.0/16 instead, so the processes' ranges are
//! disjoint and even box-level runs of many processes never share a port
//! range.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
};

use anyhow::Context as _;
use socket2::{Domain, Protocol, Socket, Type};

/// Where the gateway is, as an address and as the `Host` header value.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The resolved address.
    pub(crate) addr: SocketAddr,
    /// `host:port` as given.
    pub(crate) host: String,
}

impl Target {
    /// Accepts `host:port`, optionally with a `ws://` or `http://` scheme and
    /// a path (both ignored).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("http://")).unwrap_or(url);
        let host = rest.split('/').next().unwrap_or(rest).to_owned();
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("resolving `{host}` (expected host:port)"))?
            .next()
            .with_context(|| format!("`{host}` resolved to no address"))?;
        Ok(Target { addr, host })
    }
}

/// Most worker processes: each needs its own second octet of 127.0.0.0/8.
pub(crate) const MAX_WORKERS: usize = 254;

/// The source addresses connections are spread over: `n` addresses from
/// 127.0.1.1 on (127.(w+1).1.1 on for worker process `w`), skipping .0 and
/// .255 in the last octet. Empty (let the kernel choose) when `n` is 0 or
/// the target is not on loopback, where other source addresses would not
/// be local.
pub(crate) fn source_addrs(n: usize, target: &SocketAddr, worker: Option<usize>) -> Vec<IpAddr> {
    if !target.ip().is_loopback() || !target.is_ipv4() {
        return Vec::new();
    }
    let second = worker.map_or(0, |w| (w + 1).min(MAX_WORKERS + 1)) as u8;
    (0..n)
        .map(|i| {
            let third = 1 + i / 254;
            let fourth = 1 + i % 254;
            // 254 * 254 sources are far more than anyone needs; wrap rather than overflow.
            IpAddr::V4(Ipv4Addr::new(127, second, (third % 255) as u8, fourth as u8))
        })
        .collect()
}

/// Start a non-blocking connect from `source` (port chosen by the kernel)
/// to `dest`. Completion is signalled by writability; see
/// [`connect_result`].
pub(crate) fn start_connect(
    dest: SocketAddr,
    source: Option<IpAddr>,
) -> Result<mio::net::TcpStream, (&'static str, io::Error)> {
    let s = Socket::new(Domain::for_address(dest), Type::STREAM.nonblocking(), Some(Protocol::TCP))
        .map_err(|e| ("socket", e))?;
    s.set_nodelay(true).map_err(|e| ("nodelay", e))?;
    if let Some(ip) = source {
        s.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| ("bind", e))?;
    }
    match s.connect(&dest.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(("connect", e)),
    }
    Ok(mio::net::TcpStream::from_std(s.into()))
}

/// After a writable (or error) event on a connecting socket: `Ok(true)`
/// connected, `Ok(false)` still in progress, `Err` failed.
pub(crate) fn connect_result(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// A short, countable name for an I/O error.
pub(crate) fn error_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let kind = format!("{:?}", e.kind());
            if kind == "Uncategorized" || kind == "Other" {
                format!("os error {code}")
            } else {
                kind
            }
        }
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_only_on_loopback_and_skip_zero_and_broadcast_octets() {
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let s = source_addrs(300, &lo, None);
        assert_eq!(s[0], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1)));
        assert_eq!(s[253], IpAddr::V4(Ipv4Addr::new(127, 0, 1, 254)));
        assert_eq!(s[254], IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1)));
        assert!(source_addrs(4, &"10.0.0.1:80".parse().unwrap(), None).is_empty());
        assert!(source_addrs(0, &lo, None).is_empty());
        // Worker processes get disjoint /16s.
        assert_eq!(source_addrs(1, &lo, Some(0))[0], IpAddr::V4(Ipv4Addr::new(127, 1, 1, 1)));
        assert_eq!(source_addrs(300, &lo, Some(2))[254], IpAddr::V4(Ipv4Addr::new(127, 3, 2, 1)));
    }

    #[test]
    fn targets() {
        let t = Target::parse("ws://127.0.0.1:18181/ws").unwrap();
        assert_eq!(t.host, "127.0.0.1:18181");
        assert_eq!(t.addr.port(), 18181);
        assert!(Target::parse("nohostport").is_err());
    }
}

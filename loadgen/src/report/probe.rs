//! Looking at the gateway from outside: its resident memory from
//! `/proc/PID/status`, and its own counters from `GET /metrics`.
//!
//! `/metrics` is on the gateway's admin listener (`--admin-listen`, by
//! default 127.0.0.1:8081), not on the port the WebSocket connections use:
//! `--gateway-admin` names it, and without it the gateway's host with port
//! 8081 is asked. It is fetched with a plain blocking `TcpStream` and a
//! hand-written request: one request per run needs no HTTP client.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream, ToSocketAddrs as _},
    time::Duration,
};

use anyhow::Context as _;

/// Resident set size of process `pid` in bytes (`VmRSS`).
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&text).with_context(|| format!("no VmRSS line in {path}"))
}

/// Sockets process `pid` has open (entries of `/proc/PID/fd` that are
/// sockets): with its listeners fixed, the change over a run is the
/// connections it accepted and still holds, which tells the gateways that
/// share a port (SO_REUSEPORT) apart.
pub(crate) fn socket_count(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else { continue };
        // An fd closed since the listing is simply not counted.
        if std::fs::read_link(entry.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:")) {
            n += 1;
        }
    }
    Ok(n)
}

/// Resident set size of this process in bytes.
pub(crate) fn own_rss_bytes() -> Option<u64> {
    rss_bytes(std::process::id()).ok()
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let n: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(n * 1024),
        Some(_) => None,
    }
}

/// The port of the gateway's admin listener when `--admin-listen` is not set.
const DEFAULT_ADMIN_PORT: u16 = 8081;

/// The gateway's admin address: `given` (`--gateway-admin`, host:port), or
/// the gateway's own host with the default admin port.
pub(crate) fn admin_addr(given: Option<&str>, gateway: SocketAddr) -> anyhow::Result<SocketAddr> {
    match given {
        None => Ok(SocketAddr::new(gateway.ip(), DEFAULT_ADMIN_PORT)),
        Some(a) => a
            .to_socket_addrs()
            .with_context(|| format!("resolving --gateway-admin `{a}` (expected host:port)"))?
            .next()
            .with_context(|| format!("--gateway-admin `{a}` resolved to no address")),
    }
}

/// The admin addresses of a run's gateways: `given` (`--gateway-admin`),
/// one per gateway URL in the same order, or by default each gateway's own
/// host with the default admin port (each host once, so gateways sharing a
/// host are not read, and summed, twice).
pub(crate) fn admin_addrs(given: &[String], gateways: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    if given.is_empty() {
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for g in gateways {
            let a = SocketAddr::new(g.ip(), DEFAULT_ADMIN_PORT);
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
        return Ok(addrs);
    }
    anyhow::ensure!(
        given.len() == gateways.len(),
        "--gateway-admin lists {} address(es) for {} --url gateway(s): give one per gateway, in the same order",
        given.len(),
        gateways.len()
    );
    given.iter().map(|a| admin_addr(Some(a.trim()), SocketAddr::from(([127, 0, 0, 1], 0)))).collect()
}

/// An unlabelled metric read from every admin address: the sum (None if
/// no gateway has it) and each gateway's value, or the first error.
pub(crate) fn sum_metric(admins: &[SocketAddr], name: &str) -> anyhow::Result<(Option<f64>, Vec<Option<f64>>)> {
    let each =
        admins.iter().map(|&a| fetch_metrics(a).map(|b| metric_value(&b, name))).collect::<anyhow::Result<Vec<_>>>()?;
    let total = each.iter().flatten().copied().reduce(|a, b| a + b);
    Ok((total, each))
}

/// `GET /metrics` from the gateway's admin listener at `addr`; returns the body.
pub(crate) fn fetch_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let host = addr.to_string();
    let timeout = Duration::from_secs(5);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr} for /metrics"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: `write!` on the socket would send each formatted piece as
    // its own segment.
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A server that keeps the socket open after the body: stop at the timeout.
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(e).context("reading /metrics"),
        }
        if body_complete(&raw) {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => anyhow::bail!("/metrics: incomplete or malformed HTTP response"),
    };
    anyhow::ensure!(resp.code == Some(200), "/metrics answered HTTP {}", resp.code.unwrap_or(0));
    Ok(String::from_utf8_lossy(&raw[head..]).into_owned())
}

/// The response head is in and as many body bytes as Content-Length says.
fn body_complete(raw: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(head)) = resp.parse(raw) else {
        return false;
    };
    resp.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len() >= head + len)
}

/// The value of an unlabelled gauge or counter in an OpenMetrics text.
pub(crate) fn metric_value(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_and_metrics_parse() {
        let status = "Name:\tchatgw\nVmPeak:\t  999 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(20480 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let body = "# HELP chatgw_connections_open WebSocket connections open.\n# TYPE chatgw_connections_open gauge\nchatgw_connections_open 1999\nchatgw_connections_opened_total 5\n# EOF\n";
        assert_eq!(metric_value(body, "chatgw_connections_open"), Some(1999.0));
        assert_eq!(metric_value(body, "chatgw_nothing"), None);
    }

    #[test]
    fn admin_address_defaults_to_the_gateway_host_on_8081() {
        let gateway: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        assert_eq!(admin_addr(None, gateway).unwrap(), "10.1.2.3:8081".parse().unwrap());
        assert_eq!(admin_addr(Some("127.0.0.1:9100"), gateway).unwrap(), "127.0.0.1:9100".parse().unwrap());
        assert!(admin_addr(Some("no-port"), gateway).is_err());
    }

    #[test]
    fn admin_addresses_match_the_urls_or_default_per_host() {
        let gw = |s: &str| s.parse::<SocketAddr>().unwrap();
        let urls = [gw("127.0.0.1:1"), gw("127.0.0.1:2"), gw("127.0.0.2:3")];
        let defaults = admin_addrs(&[], &urls).unwrap();
        assert_eq!(defaults, [gw("127.0.0.1:8081"), gw("127.0.0.2:8081")], "each host once");
        let given: Vec<String> = ["127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"].map(String::from).to_vec();
        assert_eq!(admin_addrs(&given, &urls).unwrap()[2], gw("127.0.0.1:13"));
        assert!(admin_addrs(&given[..2], &urls).is_err(), "one admin address per URL");
    }

    #[test]
    fn own_rss_and_sockets_are_readable() {
        assert!(own_rss_bytes().is_some_and(|b| b > 0));
        let before = socket_count(std::process::id()).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(socket_count(std::process::id()).unwrap() > before);
        drop(l);
    }
}

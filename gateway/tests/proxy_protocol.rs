//! `--proxy-protocol` behind a real HAProxy (TCP mode, `send-proxy-v2` and
//! `send-proxy`): clients on different loopback addresses reach the gateway
//! through one balancer, and the per-address connection limit engages per
//! client, not per balancer. Direct connections: without a header from the
//! trusted balancer address closed, from anywhere else closed unread.

mod util;

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, TcpStream},
    time::{Duration, Instant},
};

use util::{haproxy::Haproxy, *};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

fn client(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A gateway trusting PROXY headers from 127.0.0.1 (where HAProxy connects
/// from), at most `per_ip` connections per client address.
fn gateway(io: IoDriver, per_ip: usize) -> TestGateway {
    TestGateway::start_with(io, 2, |c| {
        c.proxy_protocol = true;
        c.proxy_from = chatgw_gateway::proxy::TrustedProxies(vec!["127.0.0.1/32".parse().unwrap()]);
        c.max_connections_per_ip = per_ip;
    })
}

/// `chatgw_proxy_headers_total` of one outcome (0 until its first).
fn proxy_metric(gw: &TestGateway, outcome: &str) -> f64 {
    let name = format!("chatgw_proxy_headers_total{{outcome=\"{outcome}\"}} ");
    let text = gw.handle().metrics_text();
    text.lines().find_map(|l| l.strip_prefix(name.as_str())).map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Wait until `cond` holds (a metric catching up with a socket).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the gateway has neither answered nor closed `s`.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let open = matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// What the gateway wrote before closing (empty: closed without a byte).
fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

each_driver!(through_haproxy_the_per_address_limit_is_per_client_not_per_balancer);
fn through_haproxy_the_per_address_limit_is_per_client_not_per_balancer(io: IoDriver) {
    let gw = gateway(io, 2);
    let lb = Haproxy::start(gw.addr);
    // Each front its own clients: connections of the first may still be
    // closing at the gateway while the second begins.
    for (front, version, (held_by, other_client)) in [(lb.v2, "v2", (2, 3)), (lb.v1, "v1", (4, 5))] {
        // One client holds two connections through the balancer: its share.
        // Each sends the start of a request, so the balancer surely has
        // connected it to the gateway. The balancer's threads may pass a
        // later connection on first, so a held one can itself be refused
        // (the third took its place): it is replaced, until the third is
        // refused while both held ones are open.
        let mut held: Vec<TcpStream> = Vec::new();
        let mut third = String::new();
        eventually("the holding client's third connection refused", || {
            held.retain(still_open);
            while held.len() < 2 {
                let mut s = connect_from(client(held_by), front).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
                held.push(s);
            }
            third = http_on(connect_from(client(held_by), front).unwrap(), HEALTHZ);
            third.starts_with("HTTP/1.1 429") && held.iter().all(still_open)
        });
        assert!(third.starts_with("HTTP/1.1 429"), "{version}: the holding client's third connection: {third}");
        assert!(third.contains("too many connections from address"), "{third}");
        // Another client comes through the same balancer and is served.
        let other = http_on(connect_from(client(other_client), front).unwrap(), HEALTHZ);
        assert!(other.starts_with("HTTP/1.1 200"), "{version}: another client: {other}");
        // A WebSocket session through the balancer works end to end.
        let mut c = chatgw_client::Client::connect(front, &gw.token(7)).expect("client connects through haproxy");
        c.sync().unwrap();
        drop(c);
        drop(held);
        // The holding client's connections went: it connects again.
        eventually("the holding client served again", || {
            http_on(connect_from(client(held_by), front).unwrap(), HEALTHZ).starts_with("HTTP/1.1 200")
        });
    }
    assert!(gw.metric("chatgw_ip_connection_refusals_total") >= 2.0);
    // A balancer's health check carries a v2 LOCAL header (HAProxy's
    // connect-only checks reset at once, so whether the gateway reads one is
    // a race; this one waits for its answer): served, counted, not malformed.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(HEALTHZ);
    let answer = http_on(connect_from(client(1), gw.addr).unwrap(), &local);
    assert!(answer.starts_with("HTTP/1.1 200"), "a LOCAL health check: {answer}");
    eventually("a LOCAL health check counted", || proxy_metric(&gw, "local") >= 1.0);
    assert_eq!(proxy_metric(&gw, "malformed"), 0.0);
}

each_driver!(direct_connections_without_a_header_are_closed_and_untrusted_ones_refused);
fn direct_connections_without_a_header_are_closed_and_untrusted_ones_refused(io: IoDriver) {
    let gw = gateway(io, 1024);
    // From the trusted address but no header: closed, nothing answered.
    let got = http_on(connect_from(client(1), gw.addr).unwrap(), HEALTHZ);
    assert_eq!(got, "", "a plain request from the balancer's address");
    eventually("a malformed header counted", || proxy_metric(&gw, "malformed") >= 1.0);
    // From an address outside --proxy-from: closed unread, header or not.
    let untrusted = connect_from(client(9), gw.addr).unwrap();
    assert!(read_all(untrusted).is_empty());
    let mut with_header = connect_from(client(9), gw.addr).unwrap();
    let _ = with_header.write_all(b"PROXY TCP4 192.0.2.7 127.0.0.1 5000 80\r\nGET /healthz HTTP/1.1\r\n\r\n");
    assert!(read_all(with_header).is_empty());
    eventually("untrusted counted", || proxy_metric(&gw, "untrusted") >= 2.0);
    // A header written by hand from the trusted address, in pieces: served.
    let mut s = connect_from(client(1), gw.addr).unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.7 ").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"127.0.0.1 5000 80\r\nGET /healthz HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let got = http_on(s, b"Host: x\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // An overlong v1 line, and a bad v2 version: closed.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(200, b'x');
    for bad in [long, b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c".to_vec()] {
        let mut s = connect_from(client(1), gw.addr).unwrap();
        s.write_all(&bad).unwrap();
        assert!(read_all(s).is_empty());
    }
    eventually("three malformed headers", || proxy_metric(&gw, "malformed") >= 3.0);
}

/// The "Routing by user" HAProxy config of docs/DEPLOY.md, with its Lua
/// file, in front of three listeners standing for nodes a, b and c: each
/// `GET /ws?user=N` reaches the node `chatgw route` names
/// (`affinity::node_for`); a request without a numeric user still reaches one.
#[test]
fn haproxy_routes_each_user_to_the_node_chatgw_route_names() {
    let nodes: Vec<std::net::TcpListener> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a node listener")).collect();
    for n in &nodes {
        n.set_nonblocking(true).unwrap();
    }
    let addr = |i: usize| nodes[i].local_addr().unwrap();
    let lua = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/haproxy/chatgw_route.lua");
    let (front, spare) = (haproxy::free_port(), haproxy::free_port());
    let _lb = Haproxy::run(
        &format!(
            "frontend chat\n  bind {front}\n  tcp-request inspect-delay 5s\n\
             tcp-request content set-var(txn.node) url_param(user),lua.chatgw_node(a,b,c)\n\
             tcp-request content accept if HTTP\n  default_backend chatgw\n\
             frontend unused\n  bind {spare}\n  default_backend chatgw\n\
             backend chatgw\n  balance leastconn\n\
             use-server a if {{ var(txn.node) -m str a }}\n\
             use-server b if {{ var(txn.node) -m str b }}\n\
             use-server c if {{ var(txn.node) -m str c }}\n\
             server a {}\n  server b {}\n  server c {}\n",
            addr(0),
            addr(1),
            addr(2)
        ),
        &format!("  lua-load {}\n", lua.display()),
        (front, spare),
    );
    // Connections HAProxy's start-up check made carry no request: drain them.
    std::thread::sleep(Duration::from_millis(200));
    let accepted_by = |nodes: &[std::net::TcpListener]| -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            for (i, n) in nodes.iter().enumerate() {
                if let Ok((mut s, _)) = n.accept() {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut head = [0u8; 64];
                    let got = s.read(&mut head).unwrap_or(0);
                    if got > 0 {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no node got the request");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for n in &nodes {
        while n.accept().is_ok() {}
    }
    let names = ["a", "b", "c"];
    let mut seen = [0usize; 3];
    for user in [1u64, 2, 3, 42, 1000, 123_456, 987_654_321, 5, 6, 7, 8, 9] {
        let mut c = TcpStream::connect(front).unwrap();
        write!(c, "GET /ws?user={user} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let got = accepted_by(&nodes);
        let want = chatgw_gateway::affinity::node_for(user, &names).unwrap();
        assert_eq!(names[got], want, "user {user}");
        seen[got] += 1;
    }
    assert!(seen.iter().all(|n| *n > 0), "every node got some users: {seen:?}");
    let mut c = TcpStream::connect(front).unwrap();
    c.write_all(b"GET /ws?user=someone HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    accepted_by(&nodes);
}

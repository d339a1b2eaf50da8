//! `abuse-report`: drives each abuse limit past its threshold while a
//! healthy pair keeps messaging, and reports when the limit engaged and
//! what the healthy pair's latency was meanwhile.
//!
//! The gateway runs in this process with its store in a temp dir, as it
//! would behind `chatgw serve` (same code, same threads), so one command
//! measures every limit with nothing else to start. The healthy pair is a
//! sender and a recipient on 127.0.0.1 that exchange one message every few
//! milliseconds; its send -> delivered latency is recorded alone first
//! ("quiet") and then during each attack. Offenders come from 127.0.0.9
//! (or 127.0.1.x for the process-wide cap), so per-source limits hit them
//! and not the healthy pair.
//!
//! This is a measurement, not a test: the assertions live in
//! `gateway/tests/limits.rs` and `gateway/tests/bad_input.rs`.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use chatgw_auth::TokenKey;
use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_gateway::{Config, Server, ServerHandle};
use clap::Parser;
use hdrhistogram::Histogram;

const SECRET: &str = "abuse-report";
const OFFENDER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

#[derive(Parser, Debug)]
#[command(about = "Cross every abuse limit while a healthy pair messages; report engagement and latency")]
struct Args {
    /// Seconds each attack runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Milliseconds between the healthy pair's messages.
    #[arg(long, default_value_t = 5)]
    probe_every_ms: u64,
    /// Only run scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
}

/// What one attack did and how the healthy pair fared.
struct Row {
    limit: &'static str,
    setting: String,
    load: String,
    engaged: String,
    healthy: Histogram<u64>,
    healthy_failures: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("abuse-report: {} s per attack, healthy pair probing every {} ms", args.seconds, args.probe_every_ms);
    let mut rows = Vec::new();
    type Scenario = fn(&Args) -> anyhow::Result<Row>;
    let scenarios: [(&str, Scenario); 8] = [
        ("quiet", quiet),
        ("ip-connections", ip_connections),
        ("ip-rate", ip_rate),
        ("user-send", user_send),
        ("handshake", slowloris),
        ("frame-size", oversize),
        ("outbound", slow_consumer),
        ("max-connections", max_connections),
    ];
    for (name, run) in scenarios {
        if args.only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        eprintln!("running {name}...");
        rows.push(run(&args)?);
    }
    println!();
    println!("| limit | setting | offender load | engaged | healthy p50 | healthy p99 | healthy max | healthy msgs | failed |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let ms = |q: f64| r.healthy.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {} | {} |",
            r.limit,
            r.setting,
            r.load,
            r.engaged,
            ms(0.5),
            ms(0.99),
            r.healthy.max() as f64 / 1000.0,
            r.healthy.len(),
            r.healthy_failures
        );
    }
    Ok(())
}

struct Gateway {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
    key: TokenKey,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn start(tune: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut c = Config::new("127.0.0.1:0".parse()?, dir.path().to_path_buf(), SECRET.into());
        tune(&mut c);
        let handle = Server::start(c)?;
        let addr = handle.addr();
        Ok(Gateway { handle: Some(handle), addr, key: TokenKey::new(SECRET.as_bytes()), _dir: dir })
    }

    fn token(&self, user: u64) -> String {
        self.key.mint(UserId(user), chatgw_auth::unix_now() + 3600)
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.handle.as_ref().map(|h| h.metrics_text()).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

/// The healthy pair: user 1 sends to user 2, one message at a time,
/// recording send -> delivery until `stop`.
fn probe(
    gw: &Gateway,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<(Histogram<u64>, u64)>> {
    let mut a = Client::connect(gw.addr, &gw.token(1))?;
    let mut b = Client::connect(gw.addr, &gw.token(2))?;
    b.sync()?;
    b.wait_for(Duration::from_secs(10), "synced", |e| matches!(e, Event::Synced { .. }).then_some(()))?;
    Ok(thread::spawn(move || {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        let mut failures = 0;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let cid = format!("p{n}");
            let t = Instant::now();
            let ok = a.send_message(UserId(2), &cid, MessageKind::Text, "healthy").is_ok()
                && b.wait_for(Duration::from_secs(5), "message", |e| match e {
                    Event::Message(m) if m.client_id == cid => Some(()),
                    _ => None,
                })
                .is_ok();
            if ok {
                let _ = h.record(t.elapsed().as_micros() as u64);
            } else {
                failures += 1;
            }
            // Keep the sender's queue of acks from growing.
            let _ = a.drain(Duration::ZERO);
            thread::sleep(every);
        }
        (h, failures)
    }))
}

/// Run `attack` for the configured time next to the healthy pair.
fn with_probe<T>(
    gw: &Gateway,
    args: &Args,
    attack: impl FnOnce(Instant) -> T,
) -> anyhow::Result<(T, Histogram<u64>, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let probe = probe(gw, Duration::from_millis(args.probe_every_ms), stop.clone())?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let out = attack(deadline);
    stop.store(true, Ordering::Relaxed);
    let (h, failures) = probe.join().map_err(|_| anyhow::anyhow!("probe thread panicked"))?;
    Ok((out, h, failures))
}

fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect(&addr.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// The status code of a one-shot `GET /healthz` on `s`.
fn status_of(mut s: TcpStream) -> u16 {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").is_err() {
        return 0;
    }
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    std::str::from_utf8(&buf[..n]).ok().and_then(|t| t.get(9..12)).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Open connections from `source(i)` as fast as possible until `deadline`
/// and keep those the gateway keeps. A refused connection is answered at
/// once (429 or 503) and closed; a held one is silent. Returns the number
/// held, the number refused, and how many were held when the first refusal
/// came.
fn flood_connections(
    addr: SocketAddr,
    deadline: Instant,
    source: impl Fn(u32) -> IpAddr,
) -> (usize, u64, Option<usize>) {
    let mut held: Vec<TcpStream> = Vec::new();
    let (mut refused, mut first, mut i) = (0u64, None, 0u32);
    while Instant::now() < deadline {
        let mut batch = Vec::with_capacity(64);
        for _ in 0..64 {
            i += 1;
            if let Ok(s) = connect_from(source(i), addr) {
                let _ = s.set_nonblocking(true);
                batch.push(s);
            }
        }
        thread::sleep(Duration::from_millis(20));
        for mut s in batch {
            let mut b = [0u8; 12];
            match s.read(&mut b) {
                Ok(n) if n > 0 => {
                    refused += 1;
                    first.get_or_insert(held.len());
                }
                Ok(_) => refused += 1,
                Err(_) => held.push(s),
            }
        }
    }
    (held.len(), refused, first)
}

fn per_sec(n: u64, since: Instant) -> f64 {
    n as f64 / since.elapsed().as_secs_f64().max(1e-3)
}

fn quiet(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|_| {})?;
    let ((), healthy, healthy_failures) = with_probe(&gw, args, |deadline| thread::sleep(deadline - Instant::now()))?;
    Ok(Row {
        limit: "none (quiet)",
        setting: "defaults".into(),
        load: "none".into(),
        engaged: "-".into(),
        healthy,
        healthy_failures,
    })
}

fn ip_connections(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| c.ip_connect_rate = 0)?;
    let ((held, refused, first_refusal_at), healthy, healthy_failures) =
        with_probe(&gw, args, |deadline| flood_connections(gw.addr, deadline, |_| OFFENDER))?;
    Ok(Row {
        limit: "connections per source",
        setting: "--max-connections-per-ip 1024 (rate limit off)".into(),
        load: format!("{} held + {refused} refused from one address", held),
        engaged: first_refusal_at.map_or("never".into(), |n| format!("at {n} concurrent (429)")),
        healthy,
        healthy_failures,
    })
}

fn ip_rate(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|_| {})?;
    let ((tried, refused, first_at), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        let started = Instant::now();
        let (mut tried, mut refused, mut first) = (0u64, 0u64, None);
        while Instant::now() < deadline {
            let Ok(s) = connect_from(OFFENDER, gw.addr) else { continue };
            tried += 1;
            if status_of(s) == 429 {
                refused += 1;
                first.get_or_insert((tried, started.elapsed()));
            }
        }
        (tried, refused, first)
    })?;
    Ok(Row {
        limit: "new connections per source",
        setting: "--ip-connect-rate 200 --ip-connect-burst 1000".into(),
        load: format!(
            "{tried} connections in {} s ({:.0}/s), {refused} refused",
            args.seconds,
            tried as f64 / args.seconds as f64
        ),
        engaged: first_at
            .map_or("never".into(), |(n, t)| format!("connection {n}, after {:.2} s (429)", t.as_secs_f64())),
        healthy,
        healthy_failures,
    })
}

fn user_send(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| {
        // The per-connection frame limit would engage first otherwise.
        c.rate_limit = 1_000_000;
        c.rate_burst = 1_000_000;
    })?;
    let mut phone = Client::connect(gw.addr, &gw.token(10))?;
    let mut laptop = Client::connect(gw.addr, &gw.token(10))?;
    let ((sent, started), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        let started = Instant::now();
        let mut sent = 0u64;
        while Instant::now() < deadline {
            for dev in [&mut phone, &mut laptop] {
                for _ in 0..50 {
                    sent += 1;
                    let _ = dev.send_message(UserId(11), &format!("s{sent}"), MessageKind::Text, "spam");
                }
                let _ = dev.drain(Duration::ZERO);
            }
            thread::sleep(Duration::from_millis(5));
        }
        (sent, started)
    })?;
    let refused = gw.metric("chatgw_user_rate_limited_total");
    let stored = gw.metric("chatgw_messages_stored_total");
    Ok(Row {
        limit: "messages per user",
        setting: "--user-send-rate 200 --user-send-burst 400".into(),
        load: format!("{:.0} msg/s from 2 devices of one user", per_sec(sent, started)),
        engaged: format!("after the burst: {stored:.0} stored, {refused:.0} refused (rate_limited)"),
        healthy,
        healthy_failures,
    })
}

fn slowloris(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| {
        c.handshake_timeout = Duration::from_secs(2);
        c.ip_connect_rate = 0;
        c.max_connections_per_ip = 0;
    })?;
    let ((opened, started), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        let started = Instant::now();
        let mut stalled = Vec::new();
        while Instant::now() < deadline {
            if stalled.len() < 2000 {
                if let Ok(mut s) = connect_from(OFFENDER, gw.addr) {
                    let _ = s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n");
                    stalled.push(s);
                }
            } else {
                thread::sleep(Duration::from_millis(10));
            }
        }
        (stalled.len(), started)
    })?;
    let cut = gw.metric("chatgw_handshake_timeouts_total");
    Ok(Row {
        limit: "handshake time (slowloris)",
        setting: "--handshake-timeout 2s".into(),
        load: format!("{opened} stalled requests opened in {:.1} s", started.elapsed().as_secs_f64()),
        engaged: format!("{cut:.0} cut off at the deadline"),
        healthy,
        healthy_failures,
    })
}

fn oversize(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| {
        c.ip_connect_rate = 0;
    })?;
    let big = chatgw_websocket::frame::client_frame(0x81, &vec![b'x'; 200 * 1024], [1, 2, 3, 4]);
    let token = gw.token(20);
    let ((tries, started), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        let started = Instant::now();
        let mut tries = 0u64;
        while Instant::now() < deadline {
            let Ok(mut c) = Client::handshake(
                match connect_from(OFFENDER, gw.addr) {
                    Ok(s) => s,
                    Err(_) => continue,
                },
                &format!("ws://{}/ws?token={token}", gw.addr),
            ) else {
                continue;
            };
            tries += 1;
            let mut sock = c.socket();
            let _ = sock.write_all(&big);
            let _ = c.wait_for(Duration::from_secs(2), "close", |e| matches!(e, Event::Closed { .. }).then_some(()));
        }
        (tries, started)
    })?;
    let closed = gw.metric("chatgw_oversize_closes_total");
    Ok(Row {
        limit: "frame size",
        setting: "--max-frame 131072".into(),
        load: format!("{:.0} connections/s each sending a 200 KiB frame", per_sec(tries, started)),
        engaged: format!("first frame each time: {closed:.0} closed with 1009"),
        healthy,
        healthy_failures,
    })
}

fn slow_consumer(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| {
        c.rate_limit = 1_000_000;
        c.rate_burst = 1_000_000;
        c.user_send_rate = 0;
    })?;
    let mut flooder = Client::connect(gw.addr, &gw.token(31))?;
    let body = "z".repeat(8 * 1024);
    let ((sent, started), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        let started = Instant::now();
        let mut sent = 0u64;
        while Instant::now() < deadline {
            // A device with a tiny receive buffer that never reads; a fresh
            // user each time, so it has no backlog to sync.
            let victim = 100 + sent;
            let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).and_then(|s| {
                s.set_recv_buffer_size(4096)?;
                s.connect(&gw.addr.into())?;
                Ok(s)
            });
            let Ok(sock) = stuck else { continue };
            let Ok(mut stuck) =
                Client::handshake(sock.into(), &format!("ws://{}/ws?token={}", gw.addr, gw.token(victim)))
            else {
                continue;
            };
            let _ = stuck.sync();
            let closes = gw.metric("chatgw_slow_consumers_total");
            while Instant::now() < deadline && gw.metric("chatgw_slow_consumers_total") == closes {
                for _ in 0..20 {
                    sent += 1;
                    let _ = flooder.send_message(UserId(victim), &format!("f{sent}"), MessageKind::Text, &body);
                }
                let _ = flooder.drain(Duration::ZERO);
                thread::sleep(Duration::from_millis(2));
            }
        }
        (sent, started)
    })?;
    let closed = gw.metric("chatgw_slow_consumers_total");
    Ok(Row {
        limit: "outbound queue (slow consumer)",
        setting: "--max-outbound 1048576".into(),
        load: format!("{:.0} x 8 KiB msg/s to a device that never reads", per_sec(sent, started)),
        engaged: format!("{closed:.0} closes with 4000 (each after about 1 MiB queued)"),
        healthy,
        healthy_failures,
    })
}

fn max_connections(args: &Args) -> anyhow::Result<Row> {
    let gw = Gateway::start(|c| c.max_connections = 2000)?;
    let ((held, refused, first), healthy, healthy_failures) = with_probe(&gw, args, |deadline| {
        flood_connections(gw.addr, deadline, |i| IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 200) as u8 + 1)))
    })?;
    Ok(Row {
        limit: "connections per process",
        setting: "--max-connections 2000".into(),
        load: format!("{held} held + {refused} refused from 200 addresses"),
        engaged: first.map_or("never".into(), |n| format!("at {} connections incl. the healthy pair (503)", n + 2)),
        healthy,
        healthy_failures,
    })
}

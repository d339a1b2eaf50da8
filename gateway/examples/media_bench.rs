//! Media throughput against a running `chatgw serve` with the embedded
//! media backend (scripts/media-bench.sh starts one): a file of `--mb`
//! megabytes uploaded in parts and downloaded through signed URLs, one
//! stream each way, with the gateway's CPU (utime + stime of `--pid`) per
//! megabyte and its peak RSS while bytes move; then signed-URL requests
//! (`upload_media`, `download_media`) per second over `--conns` pipelined
//! connections.
//!
//! Usage: media_bench --ws 127.0.0.1:18300 --pid <gateway pid> --secret S
//!        [--mb 100] [--requests 20000] [--conns 8]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chatgw_client::{Client, ConversationRef, Event, UserId};
use chatgw_gateway::auth::{unix_now, TokenKey};
use chatgw_protocol::MediaKind;

const WAIT: Duration = Duration::from_secs(60);
const BUF: usize = 256 * 1024;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the gateway's stat");
    let after = stat.rsplit_once(')').expect("stat").1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after `)`.
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, target) = rest.split_once('/').expect("a path");
    (host.parse().expect("host:port"), format!("/{target}"))
}

/// One request; returns the status, the ETag and the body bytes read.
fn http(method: &str, url: &str, len: u64) -> (u16, Option<String>, u64) {
    let (addr, target) = split_url(url);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let length = if method == "PUT" { format!("Content-Length: {len}\r\n") } else { String::new() };
    write!(s, "{method} {target} HTTP/1.1\r\nHost: {addr}\r\n{length}\r\n").unwrap();
    let buf = vec![0x5au8; BUF];
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(BUF as u64) as usize;
        s.write_all(&buf[..n]).unwrap();
        sent += n as u64;
    }
    let mut r = BufReader::with_capacity(BUF, s);
    let (mut status, mut etag) = (0, None);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if line.starts_with("HTTP/1.1 ") {
            status = line[9..12].parse().unwrap_or(0);
        }
        if let Some(v) = line.strip_prefix("ETag: ") {
            etag = Some(v.trim().to_owned());
        }
    }
    let mut got = 0u64;
    let mut body = vec![0u8; BUF];
    loop {
        match r.read(&mut body) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    (status, etag, got)
}

/// Peak RSS of `pid` while `f` runs, and `f`'s result.
fn sampled<T>(pid: u32, f: impl FnOnce() -> T) -> (T, u64) {
    let (peak, stop) = (Arc::new(AtomicU64::new(rss_kib(pid))), Arc::new(AtomicBool::new(false)));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    (out, peak.load(Ordering::Relaxed))
}

fn answer(c: &mut Client) -> Event {
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(Event::Error { code, message, .. }) => panic!("error {code}: {message}"),
            Some(e @ (Event::UploadSlot(_) | Event::MediaCompleted { .. } | Event::DownloadUrl { .. })) => return e,
            Some(_) => {}
            None => panic!("no answer"),
        }
    }
}

fn main() {
    let ws: SocketAddr = arg("--ws").expect("--ws").parse().unwrap();
    let pid: u32 = arg("--pid").expect("--pid").parse().unwrap();
    let key = TokenKey::new(arg("--secret").expect("--secret").as_bytes());
    let mb: u64 = arg("--mb").map_or(100, |v| v.parse().unwrap());
    let requests: usize = arg("--requests").map_or(20_000, |v| v.parse().unwrap());
    let conns: usize = arg("--conns").map_or(8, |v| v.parse().unwrap());
    let token = |u: u64| key.mint(UserId(u), unix_now() + 3600);
    let mut a = Client::connect(ws, &token(1)).unwrap();
    let size = mb * 1_000_000;

    a.upload_media("u", ConversationRef::Peer(UserId(2)), MediaKind::Video, size, "video/mp4").unwrap();
    let Event::UploadSlot(slot) = answer(&mut a) else { unreachable!() };
    let rss_before = rss_kib(pid);
    let (cpu0, t0) = (proc_cpu_secs(pid), Instant::now());
    let (tags, up_peak) = sampled(pid, || {
        slot.parts
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let len = slot.part_size.min(size - i as u64 * slot.part_size);
                let (status, etag, _) = http("PUT", url, len);
                assert_eq!(status, 200);
                etag.unwrap()
            })
            .collect::<Vec<_>>()
    });
    let (up_secs, up_cpu) = (t0.elapsed().as_secs_f64(), proc_cpu_secs(pid) - cpu0);
    a.complete_media("c", &slot.media, &slot.upload, &tags).unwrap();
    answer(&mut a);
    a.download_media("d", &slot.media).unwrap();
    let Event::DownloadUrl { url, .. } = answer(&mut a) else { unreachable!() };
    let (cpu0, t0) = (proc_cpu_secs(pid), Instant::now());
    let ((status, _, got), down_peak) = sampled(pid, || http("GET", &url, 0));
    let (down_secs, down_cpu) = (t0.elapsed().as_secs_f64(), proc_cpu_secs(pid) - cpu0);
    assert_eq!((status, got), (200, size));
    let mbs = size as f64 / 1e6;
    println!(
        "| upload {mb} MB, {} parts of {} MiB | {:.0} MB/s | {:.2} ms CPU/MB | RSS {} -> peak {} MiB |",
        slot.parts.len(),
        slot.part_size >> 20,
        mbs / up_secs,
        up_cpu * 1000.0 / mbs,
        rss_before >> 10,
        up_peak >> 10
    );
    println!(
        "| download {mb} MB, one GET | {:.0} MB/s | {:.2} ms CPU/MB | RSS peak {} MiB |",
        mbs / down_secs,
        down_cpu * 1000.0 / mbs,
        down_peak >> 10
    );

    // Signed URLs per second: each connection pipelines its share.
    for (what, frame) in [("upload_media", 0), ("download_media", 1)] {
        let per = requests / conns;
        let (cpu0, t0) = (proc_cpu_secs(pid), Instant::now());
        let threads: Vec<_> = (0..conns)
            .map(|_| {
                let (token, media) = (token(1), slot.media.clone());
                std::thread::spawn(move || {
                    let mut c = Client::connect(ws, &token).unwrap();
                    let to = ConversationRef::Peer(UserId(2));
                    let mut answered = 0;
                    let count = |e: Event, answered: &mut usize| match e {
                        Event::UploadSlot(_) | Event::DownloadUrl { .. } => *answered += 1,
                        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
                        _ => {}
                    };
                    for n in 0..per {
                        match frame {
                            0 => c.upload_media(&format!("r{n}"), to, MediaKind::Image, 1000, "image/png").unwrap(),
                            _ => c.download_media(&format!("r{n}"), &media).unwrap(),
                        }
                        while let Some(e) = c.next_event(Duration::ZERO).unwrap() {
                            count(e, &mut answered);
                        }
                    }
                    while answered < per {
                        if let Some(e) = c.next_event(WAIT).unwrap() {
                            count(e, &mut answered);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (secs, cpu) = (t0.elapsed().as_secs_f64(), proc_cpu_secs(pid) - cpu0);
        println!(
            "| {what} x {} over {conns} connections | {:.0} /s | {:.0} µs CPU each |",
            per * conns,
            (per * conns) as f64 / secs,
            cpu * 1e6 / (per * conns) as f64
        );
    }
}

//! Upload and download throughput of one encrypted file through the
//! embedded media backend's HTTP serving, on loopback.
//!
//! `cargo run --release -p chatgw-media-client --example transfer_throughput [MB] [part MiB]`
//! writes a file of MB (default 100, 1 MB = 10^6 bytes), uploads it
//! sealed in parts of `part MiB` (default 8) to an embedded backend
//! served a thread per connection (the code the gateway's media listener
//! runs, without the gateway), downloads, checks and decrypts it, and
//! prints MB/s of plaintext for each direction, and the CPU seconds the
//! process (client and backend together) spent on each (from
//! /proc/self/stat), which a busy shared machine distorts less. The
//! backend syncs every part to disk, so the disk is part of the figure.

use std::{
    fs,
    net::TcpListener,
    sync::Arc,
    thread,
    time::{Duration, Instant, SystemTime},
};

use chatgw_media::{embedded::EmbeddedBackend, random_bytes, MediaBackend, MediaConversation, MediaKey};
use chatgw_media_client::{agent, download::fetch_to, MediaDetails, OutgoingFile, Retry};
use chatgw_protocol::GroupId;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().expect("a number"));
    let size = args.next().unwrap_or(100) * 1_000_000;
    let part_size = args.next().unwrap_or(8) << 20;
    let work = tempfile::tempdir().expect("temp dir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let root = work.path().join("media");
    let backend = Arc::new(EmbeddedBackend::open(&root, b"secret", &format!("http://{addr}")).expect("backend"));
    let serving = backend.clone();
    thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let backend = serving.clone();
            thread::spawn(move || backend.serve(&mut stream, SystemTime::now()));
        }
    });

    let source = work.path().join("source.bin");
    let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    fs::write(&source, &plain).expect("write the file");
    drop(plain);

    let http = agent(Duration::from_secs(30));
    let key = MediaKey::new(MediaConversation::Group(GroupId(1)), random_bytes().expect("random"));
    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut file = OutgoingFile::open(&source).expect("open");
    let slot = backend
        .start_upload(&key, file.encrypted_size(), "application/octet-stream", part_size, Duration::from_secs(600))
        .expect("slot");
    let parts = file.upload(&http, Retry::default(), slot.part_size, &slot.part_urls, |_| {}).expect("upload");
    backend.complete_upload(&key, &slot.upload_id, file.encrypted_size(), &parts.tags).expect("complete");
    let (up, up_cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let details =
        MediaDetails { content_type: "application/octet-stream".into(), name: "x".into(), ..Default::default() };
    let reference = file.reference(key.to_string(), &details, parts.sha256).expect("reference");

    let (started, cpu) = (Instant::now(), cpu_seconds());
    let url = backend.download_url(&key, Duration::from_secs(600)).expect("url").url;
    let dest = work.path().join("back.bin");
    fetch_to(&http, Retry::default(), &url, &reference, &dest).expect("download");
    let (down, down_cpu) = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(fs::metadata(&dest).expect("received").len(), size);

    let mb = size as f64 / 1e6;
    println!("{mb:.0} MB in {} parts of {} MiB", slot.part_urls.len(), part_size >> 20);
    println!("upload   (seal + SHA-256 + PUT + sync)   {:6.0} MB/s ({up:.2} s, {up_cpu:.2} CPU s)", mb / up);
    println!("download (GET + SHA-256 + open + write)  {:6.0} MB/s ({down:.2} s, {down_cpu:.2} CPU s)", mb / down);
}

/// User + system CPU time of this process, in seconds (clock ticks of
/// 1/100 s on Linux).
fn cpu_seconds() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

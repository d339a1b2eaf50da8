//! Client-side encryption and decryption throughput, memory to memory.
//!
//! `cargo run --release -p chatgw-media-client --example seal_throughput [MiB]`
//! seals a buffer of MiB (default 256) with a fresh key, opens it again,
//! and prints MB/s for each direction (1 MB = 10^6 bytes) and for SHA-256
//! of the ciphertext, which both directions also compute: per second of
//! wall time, and per second of this process's CPU time (from
//! /proc/self/stat), which a busy shared machine does not distort.

use std::{
    io::{Cursor, Read},
    time::Instant,
};

use chatgw_media_client::seal::{FileKey, OpeningWriter, SealingReader};
use sha2::{Digest, Sha256};

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let plain: Vec<u8> = (0..mib << 20).map(|i| (i * 31 % 251) as u8).collect();
    let key = FileKey::random();
    let mb = plain.len() as f64 / 1e6;

    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut sealed = Vec::with_capacity(plain.len() + plain.len() / 4000);
    SealingReader::new(Cursor::new(&plain), plain.len() as u64, &key).read_to_end(&mut sealed).expect("seal");
    let seal = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);

    let (started, cpu) = (Instant::now(), cpu_seconds());
    let digest = Sha256::digest(&sealed);
    let hash = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);

    let (started, cpu) = (Instant::now(), cpu_seconds());
    let mut opener = OpeningWriter::new(Vec::with_capacity(plain.len()), &key);
    for piece in sealed.chunks(64 * 1024) {
        opener.update(piece).expect("open");
    }
    let opened = opener.finish().expect("last chunk");
    let open = (started.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    assert_eq!(opened, plain);

    println!("{mib} MiB, sha256 {:02x}{:02x}..", digest[0], digest[1]);
    for (what, (wall, cpu)) in [("seal", seal), ("open", open), ("sha256", hash)] {
        println!("{what:<7}{:7.0} MB/s wall {:7.0} MB/s per CPU second", mb / wall, mb / cpu.max(0.01));
    }
}

/// User + system CPU time of this process, in seconds (clock ticks of
/// 1/100 s on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which ends with the last `)`.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

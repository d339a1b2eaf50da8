//! Replays the checked-in fuzz corpora (`fuzz/corpus/http_upgrade`,
//! `fuzz/corpus/ws_frames` and `fuzz/corpus/proxy_header`) through the same harnesses the cargo-fuzz
//! targets call, so every seed and every input that once crashed runs in
//! `cargo test` on stable, without a fuzzer; and checks the harnesses' engine
//! against a real gateway on a real socket.

mod util;

use std::path::PathBuf;

use chatgw_gateway::fuzzing;
use util::{each_driver, IoDriver};

/// Every file of one target's corpus, sorted, with its name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (path.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus {target} has only {} files", files.len());
    files
}

fn replay(target: &str, harness: fn(&[u8])) {
    for (name, bytes) in corpus(target) {
        if std::panic::catch_unwind(|| harness(&bytes)).is_err() {
            panic!("{target} corpus file {name} fails the harness");
        }
    }
}

#[test]
fn http_upgrade_corpus_passes_the_harness() {
    replay("http_upgrade", fuzzing::http_upgrade);
}

#[test]
fn ws_frames_corpus_passes_the_harness() {
    replay("ws_frames", fuzzing::ws_frames);
}

#[test]
fn proxy_header_corpus_passes_the_harness() {
    replay("proxy_header", fuzzing::proxy_header);
}

each_driver!(ws_frames_corpus_over_a_real_socket_matches_the_harness);
/// The harness's engine runs without sockets; this checks it stands for the
/// real thing: each `ws_frames` corpus input sent to a real gateway's echo
/// endpoint over TCP gets exactly the bytes the harness's engine wrote.
fn ws_frames_corpus_over_a_real_socket_matches_the_harness(io: IoDriver) {
    let mut gateways: Vec<(usize, util::TestGateway)> = Vec::new();
    let mut compared = 0;
    for (name, bytes) in corpus("ws_frames") {
        let Some(case) = fuzzing::ws_frames_echo(&bytes) else { continue };
        // --max-frame is at least 1024; the harness's smaller choice has no real twin.
        if case.max_frame < 1024 {
            continue;
        }
        if !gateways.iter().any(|(m, _)| *m == case.max_frame) {
            let gw = util::TestGateway::start_with(io, 1, |c| {
                c.echo_endpoint = true;
                c.max_frame = case.max_frame;
                c.max_outbound = 64 << 20;
            });
            gateways.push((case.max_frame, gw));
        }
        let addr = gateways.iter().find(|(m, _)| *m == case.max_frame).map(|(_, g)| g.addr).expect("started");
        let got = exchange(addr, &case.sent, case.written.len(), case.closed);
        assert_eq!(got, case.written, "{name}: a real gateway wrote other bytes than the harness's engine");
        compared += 1;
    }
    assert!(compared >= 10, "only {compared} corpus inputs compared");
}

/// Send `bytes`, then read until `expected` bytes and the close (when
/// `closes`) have arrived, or for a short while more otherwise, so bytes the
/// harness did not expect are seen too.
fn exchange(addr: std::net::SocketAddr, bytes: &[u8], expected: usize, closes: bool) -> Vec<u8> {
    use std::{
        io::{ErrorKind, Read, Write},
        time::{Duration, Instant},
    };
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("send");
    let deadline = Instant::now() + util::WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let quiet_enough = got.len() >= expected && !closes;
        s.set_read_timeout(Some(if quiet_enough { Duration::from_millis(200) } else { Duration::from_millis(100) }))
            .expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if quiet_enough || Instant::now() > deadline {
                    return got;
                }
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

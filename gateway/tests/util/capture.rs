//! A packet capture of the loopback traffic to one port (tcpdump on `lo`),
//! read back as the bytes each TCP direction carried and, past the HTTP
//! upgrade, the WebSocket payloads unmasked: a client's frames are masked
//! with a random key, so a plaintext in them would not show in the raw
//! capture, and a search that misses it would prove nothing.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// tcpdump writing every packet to or from `port` on `lo` into a file.
pub struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Start tcpdump and wait until it listens. Packets are written as they
    /// arrive (`-U`, `--immediate-mode`: otherwise packets wait in the
    /// kernel's ring for a block to fill, and a SIGTERM loses them), whole (`-s 0`), by root (`-Z root`, so it may write
    /// into a test's private temp dir).
    pub fn start(port: u16, dir: &Path) -> Capture {
        let file = dir.join(format!("lo-{port}.pcap"));
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-s", "0", "-U", "--immediate-mode", "-n", "-Z", "root", "-w"])
            .arg(&file)
            .arg(format!("tcp port {port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump starts (Debian package tcpdump; .ci/run installs it)");
        let stderr = child.stderr.take().expect("piped");
        // Owned from here, so a failed wait below still stops it.
        let capture = Capture { child, file };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx.recv_timeout(Duration::from_secs(20)).expect("tcpdump says it is listening");
            if line.contains("listening on") {
                return capture;
            }
        }
    }

    /// Stop tcpdump (SIGTERM, so it flushes) and read the capture.
    pub fn stop(mut self) -> Captured {
        // SAFETY: `kill` with a pid of our own child and a valid signal
        // number has no memory effects.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "signal tcpdump");
        self.child.wait().expect("tcpdump exits");
        let raw = std::fs::read(&self.file).expect("the capture file");
        Captured::parse(raw)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP direction: (source port, destination port).
type Ports = (u16, u16);

/// A TCP segment's sequence number and payload.
type Segment = (u32, Vec<u8>);

/// What a capture holds.
pub struct Captured {
    /// The pcap file as written.
    pub raw: Vec<u8>,
    /// Each TCP direction's bytes in sequence order, keyed by
    /// (source port, destination port).
    pub streams: HashMap<Ports, Vec<u8>>,
    /// Packets read.
    pub packets: usize,
}

impl Captured {
    fn parse(raw: Vec<u8>) -> Captured {
        assert!(raw.len() >= 24, "a pcap header");
        let le = match &raw[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
            other => panic!("not a pcap file: magic {other:?}"),
        };
        let u32_at = |b: &[u8], at: usize| {
            let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            if le {
                u32::from_le_bytes(w)
            } else {
                u32::from_be_bytes(w)
            }
        };
        let link_header = match u32_at(&raw, 20) {
            1 => 14,   // Ethernet (what `lo` gives)
            113 => 16, // Linux cooked
            276 => 20, // Linux cooked v2
            other => panic!("link type {other} not handled"),
        };
        let mut segments: HashMap<Ports, Vec<Segment>> = HashMap::new();
        let (mut at, mut packets) = (24, 0);
        while at + 16 <= raw.len() {
            let len = u32_at(&raw, at + 8) as usize;
            let frame = &raw[at + 16..(at + 16 + len).min(raw.len())];
            at += 16 + len;
            packets += 1;
            if let Some((ports, seq, payload)) = tcp_payload(frame.get(link_header..).unwrap_or_default()) {
                if !payload.is_empty() {
                    segments.entry(ports).or_default().push((seq, payload.to_vec()));
                }
            }
        }
        let streams = segments.into_iter().map(|(ports, segs)| (ports, reassemble(segs))).collect();
        Captured { raw, streams, packets }
    }

    /// Every WebSocket payload of every stream, unmasked, one after the
    /// other (streams that are not WebSocket contribute nothing).
    pub fn websocket_payloads(&self) -> Vec<u8> {
        self.streams.values().flat_map(|s| ws_payloads(s)).collect()
    }
}

/// An IPv4 packet's TCP ports, sequence number and payload.
fn tcp_payload(ip: &[u8]) -> Option<(Ports, u32, &[u8])> {
    if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let tcp = ip.get(ihl..total)?;
    if tcp.len() < 20 {
        return None;
    }
    let ports = (u16::from_be_bytes([tcp[0], tcp[1]]), u16::from_be_bytes([tcp[2], tcp[3]]));
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let offset = usize::from(tcp[12] >> 4) * 4;
    Some((ports, seq, tcp.get(offset..)?))
}

/// One direction's bytes from its segments in capture order: retransmitted
/// bytes are taken once.
fn reassemble(segments: Vec<Segment>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next: Option<u32> = None;
    for (seq, data) in segments {
        let skip = match next {
            Some(n) if (n.wrapping_sub(seq) as i32) > 0 => n.wrapping_sub(seq) as usize,
            _ => 0,
        };
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
            next = Some(seq.wrapping_add(data.len() as u32));
        }
    }
    out
}

/// The payloads of the WebSocket frames after a stream's HTTP head,
/// unmasked; frames cut off by the end of the capture are left out.
fn ws_payloads(stream: &[u8]) -> Vec<u8> {
    let Some(head_end) = stream.windows(4).position(|w| w == b"\r\n\r\n") else { return Vec::new() };
    let mut at = head_end + 4;
    let mut out = Vec::new();
    while at + 2 <= stream.len() {
        let masked = stream[at + 1] & 0x80 != 0;
        let (len, mut p) = match stream[at + 1] & 0x7f {
            126 if at + 4 <= stream.len() => {
                (usize::from(u16::from_be_bytes([stream[at + 2], stream[at + 3]])), at + 4)
            }
            127 if at + 10 <= stream.len() => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&stream[at + 2..at + 10]);
                (u64::from_be_bytes(b) as usize, at + 10)
            }
            n @ 0..=125 => (usize::from(n), at + 2),
            _ => break,
        };
        let mut key = [0u8; 4];
        if masked {
            let Some(k) = stream.get(p..p + 4) else { break };
            key.copy_from_slice(k);
            p += 4;
        }
        let Some(payload) = stream.get(p..p + len) else { break };
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out.push(b'\n');
        at = p + len;
    }
    out
}

//! A real [`Engine`] with one connection and no sockets: the fuzzer plays
//! the driver, handing it reads exactly as `driver::epoll` does and
//! collecting what it would write.
//!
//! Each run builds its own [`CoreContext`], so counters (and so `/metrics`) start
//! from zero and two runs over the same bytes must write the same bytes.

use std::{net::SocketAddr, path::PathBuf};

use crate::{
    config::Config,
    core::{CoreContext, Engine, Phase},
};

/// The upgrade to the echo endpoint that opens every frame-layer run.
pub(crate) const ECHO_UPGRADE: &[u8] = b"GET /echo HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Outbound bound of the rig: far above anything an input of the fuzzer's
/// size can make the echo endpoint write, so the slow-consumer close (which
/// depends on when the driver flushes) never fires.
const MAX_OUTBOUND: usize = 64 << 20;

/// What one run wrote and how it left the connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Every byte written to the socket, in order.
    pub(crate) written: Vec<u8>,
    /// The connection's phase at the end; `None` once the engine dropped it.
    pub(crate) phase: Option<Phase>,
}

impl Outcome {
    /// Sort the lines of a `/metrics` body: a labelled metric lists its
    /// label sets in hash order, which differs between two fresh engines.
    /// Anything else is left as written.
    pub(crate) fn order_metric_lines(&mut self) {
        const METRICS: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text";
        if !self.written.starts_with(METRICS) {
            return;
        }
        let Some(body_at) = self.written.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) else { return };
        let mut lines: Vec<&[u8]> = self.written[body_at..].split(|&b| b == b'\n').collect();
        lines.sort_unstable();
        let mut ordered = self.written[..body_at].to_vec();
        ordered.extend(lines.join(&b'\n'));
        self.written = ordered;
    }
}

/// Run a fresh engine with the echo endpoint and `max_frame` over `reads`,
/// flushing after each read like the driver's loop turn.
pub(crate) fn run(max_frame: usize, reads: &[&[u8]]) -> Outcome {
    let mut config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "fuzz".into());
    config.workers = 1;
    config.max_connections = 4;
    config.max_frame = max_frame;
    config.max_outbound = MAX_OUTBOUND;
    config.echo_endpoint = true;
    // Nothing is committed or queried: an unauthenticated connection never
    // makes an action.
    let mut engine: Engine<()> = Engine::new(0, CoreContext::standalone(&config));
    let slot = engine.accept((), std::net::IpAddr::from([127, 0, 0, 1]));
    let mut written = Vec::new();
    for read in reads {
        // The driver reads into its own buffer, which the engine may unmask in place.
        let mut buf = read.to_vec();
        engine.on_bytes(slot, &mut buf);
        engine.flush(|_, bytes| {
            written.extend_from_slice(bytes);
            Ok(bytes.len())
        });
    }
    let phase = engine.conns.get(slot).map(|c| c.phase);
    Outcome { written, phase }
}

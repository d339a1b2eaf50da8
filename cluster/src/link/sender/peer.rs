//! One peer's writer thread: dial, pass the handshake (`handshake::dial`:
//! answer the peer's Challenge, check its Welcome), then write everything
//! queued in one write per wake-up, ping every `ping_after`, and redial
//! with backoff when anything fails. A refused handshake is logged as a
//! warning at most once a minute per peer.
//!
//! A second, small thread per session reads what the peer sends back
//! (Pongs) so that a peer that stopped answering is noticed even while
//! nothing is being written; a write blocked on a stalled peer fails after
//! `dead_after` (the socket's write timeout).
//!
//! A session takes nothing from the queue until the peer answered the
//! Ping sent after the handshake, so frames still queued survive a redial and a
//! connection that is accepted and dropped (the queue is bounded). Frames
//! of a failed write are lost: the receiver sees its session end without
//! a Goodbye and catches everyone up, and the next session starts with a
//! CatchUpAll as well.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::queue::{Next, Queue};
use crate::link::{
    frame::{self, Frame},
    handshake::{self, HandshakeError},
    stats::{add, SendCounters},
    LinkKey, LinkSettings,
};

/// How long a Goodbye waits for the peer to close its side.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// At most one warning per peer this often about refused handshakes.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// Everything a writer thread needs.
pub(super) struct Peer {
    pub(super) me: u16,
    pub(super) epoch: u64,
    pub(super) node: u16,
    pub(super) addr: SocketAddr,
    pub(super) key: LinkKey,
    pub(super) settings: LinkSettings,
    pub(super) queue: Arc<Queue>,
    pub(super) counters: Arc<SendCounters>,
}

/// How a session ended.
enum End {
    /// Stopped, or closed after a Goodbye: the thread exits.
    Done,
    /// The peer or the network failed: redial.
    Failed(io::Error),
    /// The handshake failed: redial.
    Handshake(HandshakeError),
}

impl Peer {
    pub(super) fn spawn(self) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name(format!("chatgw-link-to-{}", self.node)).spawn(move || self.run())
    }

    fn run(self) {
        let mut backoff = self.settings.redial_min;
        let mut warned: Option<Instant> = None;
        while !self.queue.done() {
            match TcpStream::connect_timeout(&self.addr, self.settings.connect_timeout) {
                Ok(stream) => {
                    let started = Instant::now();
                    match self.session(stream) {
                        End::Done => break,
                        End::Failed(e) => {
                            tracing::info!(peer = self.node, addr = %self.addr, error = %e, "node link failed; redialling");
                        }
                        End::Handshake(e) if e.is_refusal() || matches!(e, HandshakeError::NoChallenge) => {
                            if warned.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                                warned = Some(Instant::now());
                                tracing::warn!(
                                    peer = self.node, addr = %self.addr, error = %e,
                                    "a node link handshake failed; redialling (every node of a fleet needs the same link key and version; logged at most once a minute)",
                                );
                            }
                        }
                        End::Handshake(e) => {
                            tracing::info!(peer = self.node, addr = %self.addr, error = %e, "node link handshake failed; redialling");
                        }
                    }
                    // A session that lasted was a working link: the next dial
                    // starts from the shortest wait again. One that failed at
                    // once (a peer that accepts and closes) keeps backing off.
                    if started.elapsed() >= self.settings.redial_max {
                        backoff = self.settings.redial_min;
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = self.node, addr = %self.addr, error = %e, retry_in = ?backoff, "dialling a peer failed");
                }
            }
            add(&self.counters.redials, 1);
            if self.queue.pause(backoff) {
                break;
            }
            backoff = (backoff * 2).min(self.settings.redial_max);
        }
        self.queue.finish();
    }

    fn session(&self, mut stream: TcpStream) -> End {
        let setup = (|| -> io::Result<(TcpStream, TcpStream)> {
            stream.set_nodelay(true)?;
            stream.set_write_timeout(Some(self.settings.dead_after))?;
            stream.set_read_timeout(Some(self.settings.dead_after))?;
            Ok((stream.try_clone()?, stream.try_clone()?))
        })();
        let (for_reader, for_queue) = match setup {
            Ok(clones) => clones,
            Err(e) => return End::Failed(e),
        };
        if !self.queue.begin_session(for_queue) {
            return End::Done;
        }
        // The handshake first, on this thread: a stop shuts the socket
        // down, which ends any wait in it. The pong reader blocks without a
        // timeout: `dead_after` is the writer's to enforce.
        let opened = handshake::dial(&mut stream, self.me, self.epoch, self.node, &self.key)
            .and_then(|_| stream.set_read_timeout(None).map_err(HandshakeError::Io));
        if let Err(e) = opened {
            let _ = stream.shutdown(Shutdown::Both);
            self.queue.end_session();
            if self.queue.done() {
                return End::Done;
            }
            if e.is_refusal() {
                add(&self.counters.auth_failures, 1);
            }
            return End::Handshake(e);
        }
        let queue = self.queue.clone();
        let max = self.settings.max_frame;
        let reader = std::thread::Builder::new()
            .name(format!("chatgw-link-pong-{}", self.node))
            .spawn(move || read_pongs(for_reader, &queue, max));
        let (end, reader) = match reader {
            Ok(reader) => (self.converse(&mut stream), Some(reader)),
            Err(e) => (End::Failed(e), None),
        };
        let _ = stream.shutdown(Shutdown::Both);
        self.queue.end_session();
        if let Some(reader) = reader {
            let _ = reader.join();
        }
        end
    }

    /// After the handshake: a Ping, then (once the peer answered) batches,
    /// pings and finally a Goodbye.
    fn converse(&self, stream: &mut TcpStream) -> End {
        let mut out = Vec::with_capacity(64 << 10);
        frame::encode(&Frame::Ping, &mut out);
        if let Err(e) = self.write(stream, &mut out, 1) {
            return End::Failed(e);
        }
        let mut last_ping = Instant::now();
        // Nothing queued is taken before the peer's first Pong: then its
        // session is past the handshake, and any frame lost from here on ends
        // that session without a Goodbye, which the peer answers by
        // catching up. A connection accepted and dropped (a proxy, a
        // restarting peer) never takes frames from the queue.
        match self.queue.wait_answer(last_ping + self.settings.dead_after) {
            None => {}
            Some(Next::Stop) => return End::Done,
            Some(_) => {
                return End::Failed(io::Error::new(io::ErrorKind::TimedOut, "the peer did not answer the first Ping"))
            }
        }
        add(&self.counters.sessions_opened, 1);
        // From here on, a session that fails may have lost frames written
        // earlier (a write succeeds into the kernel's buffer before the
        // peer's end is seen): the next session starts with CatchUpAll.
        loop {
            let dead_at = self.queue.heard_at() + self.settings.dead_after;
            let next = self.queue.next((last_ping + self.settings.ping_after).min(dead_at));
            let now = Instant::now();
            let mut frames = 0;
            match next {
                Next::Stop => return End::Done,
                Next::Dead => {
                    self.queue.owe_all();
                    return End::Failed(io::Error::new(io::ErrorKind::UnexpectedEof, "the peer closed"));
                }
                Next::Close => {
                    frame::encode(&Frame::Goodbye, &mut out);
                    if let Err(e) = self.write(stream, &mut out, 1) {
                        return End::Failed(e);
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                    self.queue.wait_dead(now + GOODBYE_WAIT.min(self.settings.dead_after));
                    return End::Done;
                }
                Next::Batch { owe_all, frames: batch } => {
                    if owe_all {
                        frame::encode(&Frame::CatchUpAll, &mut out);
                        add(&self.counters.catch_up_all_sent, 1);
                        frames += 1;
                    }
                    batch.iter().for_each(|f| frame::encode(f, &mut out));
                    frames += batch.len() as u64;
                }
                Next::Tick => {}
            }
            // Heard again: a Pong may have come in while waiting.
            if now >= self.queue.heard_at() + self.settings.dead_after {
                self.queue.owe_all();
                return End::Failed(io::Error::new(io::ErrorKind::TimedOut, "the peer stopped answering"));
            }
            if now >= last_ping + self.settings.ping_after {
                frame::encode(&Frame::Ping, &mut out);
                frames += 1;
                last_ping = now;
            }
            if frames > 0 {
                if let Err(e) = self.write(stream, &mut out, frames) {
                    // What this write carried may be lost, whatever the
                    // peer saw of it.
                    self.queue.owe_all();
                    return End::Failed(e);
                }
            }
        }
    }

    /// Write `out` (holding `frames` frames) in one call and empty it.
    fn write(&self, stream: &mut TcpStream, out: &mut Vec<u8>, frames: u64) -> io::Result<()> {
        let result = stream.write_all(out);
        if result.is_ok() {
            add(&self.counters.writes, 1);
            add(&self.counters.frames_sent, frames);
            add(&self.counters.bytes_sent, out.len() as u64);
        }
        out.clear();
        if out.capacity() > 1 << 20 {
            out.shrink_to(64 << 10);
        }
        result
    }
}

/// The session's reading half: every byte counts as a sign of life; a
/// frame other than a Pong, bytes that are no frame, the end of the stream
/// or an error end the session.
fn read_pongs(mut stream: TcpStream, queue: &Queue, max_frame: usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        queue.heard();
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut used_total = 0;
        let ok = loop {
            match frame::decode(buf.get(used_total..).unwrap_or_default(), max_frame) {
                Ok(Some((Frame::Pong, used))) => used_total += used,
                Ok(Some((other, _))) => {
                    tracing::warn!(kind = ?other.kind(), "a peer sent an unexpected frame on an outgoing link");
                    break false;
                }
                Ok(None) => break true,
                Err(e) => {
                    tracing::warn!(error = %e, "a peer sent bytes that are no frame on an outgoing link");
                    break false;
                }
            }
        };
        if !ok {
            break;
        }
        buf.drain(..used_total.min(buf.len()));
    }
    queue.reader_ended();
}

//! Counters of the links, kept as relaxed atomics by the threads and read
//! as plain snapshots by the gateway's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// What [`Links`](super::Links) did since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames written after the handshake (Deliver, CatchUp, CatchUpAll,
    /// Ping, Goodbye, ...).
    pub frames_sent: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Writes (each carries everything that was queued).
    pub writes: u64,
    /// Sessions opened (dialled, Hello answered by the peer).
    pub sessions_opened: u64,
    /// Failed dials and failed sessions, each followed by a redial.
    pub redials: u64,
    /// Events refused (queue full, unknown peer, frame too large).
    pub dropped: u64,
    /// CatchUpAll frames written.
    pub catch_up_all_sent: u64,
    /// Handshakes that failed for what the peer sent (a wrong MAC or
    /// node, another version) or because it closed after this node's
    /// Hello (it refused the key).
    pub auth_failures: u64,
}

/// What a [`LinkServer`](super::LinkServer) did since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Sessions that said Hello.
    pub sessions_opened: u64,
    /// Sessions that ended after a Goodbye.
    pub sessions_clean: u64,
    /// Sessions that ended any other way (EOF, error, timeout, bad frame).
    pub sessions_unclean: u64,
    /// Frames decoded.
    pub frames_received: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Deliveries handed to the node.
    pub deliveries: u64,
    /// Sessions ended by a bad frame after the handshake (too large,
    /// unknown kind, malformed).
    pub bad_frames: u64,
    /// Connections refused at the handshake: a wrong or missing MAC (a
    /// first frame other than a Hello, a replayed Hello), another protocol
    /// version, bytes that are no frame.
    pub auth_failures: u64,
    /// Connections closed on accept because too many were still in their
    /// handshake (from their address, or in all).
    pub handshakes_shed: u64,
}

/// The senders' live counters.
#[derive(Debug, Default)]
pub(crate) struct SendCounters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) redials: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) catch_up_all_sent: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
}

impl SendCounters {
    pub(crate) fn snapshot(&self) -> LinkStats {
        LinkStats {
            frames_sent: get(&self.frames_sent),
            bytes_sent: get(&self.bytes_sent),
            writes: get(&self.writes),
            sessions_opened: get(&self.sessions_opened),
            redials: get(&self.redials),
            dropped: get(&self.dropped),
            catch_up_all_sent: get(&self.catch_up_all_sent),
            auth_failures: get(&self.auth_failures),
        }
    }
}

/// The server's live counters.
#[derive(Debug, Default)]
pub(crate) struct ServerCounters {
    pub(crate) sessions_opened: AtomicU64,
    pub(crate) sessions_clean: AtomicU64,
    pub(crate) sessions_unclean: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) handshakes_shed: AtomicU64,
}

impl ServerCounters {
    pub(crate) fn snapshot(&self) -> ServerStats {
        ServerStats {
            sessions_opened: get(&self.sessions_opened),
            sessions_clean: get(&self.sessions_clean),
            sessions_unclean: get(&self.sessions_unclean),
            frames_received: get(&self.frames_received),
            bytes_received: get(&self.bytes_received),
            deliveries: get(&self.deliveries),
            bad_frames: get(&self.bad_frames),
            auth_failures: get(&self.auth_failures),
            handshakes_shed: get(&self.handshakes_shed),
        }
    }
}

/// Add `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

//! The limits and timers of node links, with the documented defaults
//! (docs/CLUSTER.md): bounded queues, keepalives, redial backoff.

use std::time::Duration;

/// Limits and timers of [`Links`](super::Links) and
/// [`LinkServer`](super::LinkServer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSettings {
    /// Events (Deliver and CatchUp frames) queued per peer before sends
    /// are refused.
    pub queue_events: usize,
    /// Encoded bytes queued per peer before sends are refused.
    pub queue_bytes: usize,
    /// A sender pings its peer this often, so a live session never goes
    /// quiet for long.
    pub ping_after: Duration,
    /// A session that has not heard a byte for this long is dead (both
    /// sides), and a write blocked this long fails.
    pub dead_after: Duration,
    /// The first wait before redialling a peer.
    pub redial_min: Duration,
    /// The wait before redialling doubles up to this.
    pub redial_max: Duration,
    /// The largest frame (kind byte and body) sent or accepted.
    pub max_frame: usize,
    /// How long dialling a peer may take.
    pub connect_timeout: Duration,
    /// An accepted connection must be through the handshake within this
    /// (a wait for each handshake frame is bounded by it too).
    pub handshake_within: Duration,
    /// Accepted connections from one address still in their handshake;
    /// one more is closed at once.
    pub pending_handshakes_per_address: usize,
    /// Accepted connections still in their handshake, from all addresses.
    pub pending_handshakes: usize,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            queue_events: 65_536,
            queue_bytes: 64 << 20,
            ping_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            redial_min: Duration::from_millis(50),
            redial_max: Duration::from_secs(2),
            max_frame: 16 << 20,
            connect_timeout: Duration::from_secs(1),
            handshake_within: Duration::from_secs(5),
            pending_handshakes_per_address: 4,
            pending_handshakes: 64,
        }
    }
}

//! Prometheus metrics, served at `GET /metrics`.
//!
//! Counters are atomics shared by every thread; nothing on the message path
//! takes a lock to count.

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// WebSocket connections open now.
    pub connections_open: Gauge,
    /// TCP connections accepted.
    pub connections_accepted: Counter,
    /// Connections refused with 503 because the process was full.
    pub connections_refused: Counter,
    /// Handshakes refused with 401.
    pub auth_failures: Counter,
    /// Requests refused with 400/404/405/426 or cut off by the handshake timeout.
    pub bad_requests: Counter,
    /// Messages made durable.
    pub messages_stored: Counter,
    /// Duplicate sends answered with the original id.
    pub messages_deduplicated: Counter,
    /// Receipts made durable.
    pub receipts_stored: Counter,
    /// Inbox events (messages, receipts) written to device connections, live or by sync.
    pub events_delivered: Counter,
    /// Requests per group commit.
    pub commit_batch_size: Histogram,
    /// Time of one group commit including fsync, seconds.
    pub commit_seconds: Histogram,
    /// Bytes handed to the store.
    pub commit_bytes: Counter,
    /// Failed group commits.
    pub commit_errors: Counter,
    /// `error` frames sent for malformed or refused frames.
    pub protocol_errors: Counter,
    /// Frames refused by the per-connection rate limit.
    pub rate_limited: Counter,
    /// Connections closed with 4000 because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Connections closed for WebSocket framing or UTF-8 violations.
    pub framing_errors: Counter,
    /// Connections closed with 1008 after too many refused frames in a row.
    pub policy_closes: Counter,
    /// Connections closed with 4002 because their token expired.
    pub tokens_expired: Counter,
    /// Connections closed with 4001 for missing pongs.
    pub timeouts: Counter,
    /// Sync requests served.
    pub syncs: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chatgw");
        let m = Metrics {
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            auth_failures: Counter::default(),
            connections_refused: Counter::default(),
            bad_requests: Counter::default(),
            messages_stored: Counter::default(),
            messages_deduplicated: Counter::default(),
            receipts_stored: Counter::default(),
            events_delivered: Counter::default(),
            commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            commit_bytes: Counter::default(),
            commit_errors: Counter::default(),
            protocol_errors: Counter::default(),
            rate_limited: Counter::default(),
            slow_consumers: Counter::default(),
            framing_errors: Counter::default(),
            timeouts: Counter::default(),
            tokens_expired: Counter::default(),
            policy_closes: Counter::default(),
            syncs: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("connections_open", "WebSocket connections open", m.connections_open.clone());
        registry.register("connections_accepted", "TCP connections accepted", m.connections_accepted.clone());
        registry.register(
            "connections_refused",
            "Connections refused with 503: --max-connections reached or out of descriptors",
            m.connections_refused.clone(),
        );
        registry.register("auth_failures", "Handshakes refused with 401", m.auth_failures.clone());
        registry.register("bad_requests", "HTTP requests refused or timed out before upgrade", m.bad_requests.clone());
        registry.register("messages_stored", "Messages made durable", m.messages_stored.clone());
        registry.register(
            "messages_deduplicated",
            "Resent messages answered with their original id",
            m.messages_deduplicated.clone(),
        );
        registry.register("receipts_stored", "Delivery and read receipts made durable", m.receipts_stored.clone());
        registry.register("events_delivered", "Inbox events written to device connections", m.events_delivered.clone());
        registry.register("commit_batch_size", "Requests per group commit", m.commit_batch_size.clone());
        registry.register("commit_seconds", "Duration of one group commit including fsync", m.commit_seconds.clone());
        registry.register("commit_bytes", "Key and value bytes written to the store", m.commit_bytes.clone());
        registry.register("commit_errors", "Group commits that failed", m.commit_errors.clone());
        registry.register("protocol_errors", "Error frames sent", m.protocol_errors.clone());
        registry.register("rate_limited", "Frames refused by the per-connection rate limit", m.rate_limited.clone());
        registry.register(
            "slow_consumers",
            "Connections closed because their outbound queue was full",
            m.slow_consumers.clone(),
        );
        registry.register(
            "framing_errors",
            "Connections closed for WebSocket protocol violations",
            m.framing_errors.clone(),
        );
        registry.register("policy_closes", "Connections closed after too many refused frames", m.policy_closes.clone());
        registry.register("tokens_expired", "Connections closed because their token expired", m.tokens_expired.clone());
        registry.register("timeouts", "Connections closed for a missing pong", m.timeouts.clone());
        registry.register("syncs", "Sync requests served", m.syncs.clone());
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }
}

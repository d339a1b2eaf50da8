//! The publisher's metrics (`chatgw_events_*`).

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// Counters and gauges of the Kafka publisher; all zero without `--events`.
#[derive(Default)]
pub struct EventMetrics {
    /// Records the broker acknowledged.
    pub published: Counter,
    /// Batches that failed (broker down or refusing), each retried.
    pub publish_errors: Counter,
    /// Committed events not yet acknowledged by the broker.
    pub lag_records: Gauge,
    /// Age of the oldest event not yet acknowledged, seconds (0 when none).
    pub lag_seconds: Gauge,
}

impl EventMetrics {
    /// Create and register under `r` (prefix `chatgw`).
    pub(crate) fn new(r: &mut Registry) -> Self {
        let m = EventMetrics::default();
        r.register("events_published", "Committed events Kafka acknowledged", m.published.clone());
        r.register(
            "events_publish_errors",
            "Event batches Kafka did not acknowledge (retried)",
            m.publish_errors.clone(),
        );
        r.register("events_lag_records", "Committed events not yet acknowledged by Kafka", m.lag_records.clone());
        r.register(
            "events_lag_seconds",
            "Age of the oldest committed event not yet acknowledged by Kafka, seconds",
            m.lag_seconds.clone(),
        );
        m
    }
}

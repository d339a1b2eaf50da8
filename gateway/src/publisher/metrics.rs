//! The publisher's metrics (`chatgw_events_*`).
//!
//! Why a lag histogram beside the lag gauges: the gauges say how far
//! behind the publisher is at the moment of a scrape (whole seconds of the
//! oldest record waiting), which shows a stuck broker but not how late a
//! typical event reaches Kafka. The histogram records, for every record,
//! the time from its commit to the broker's acknowledgement of its batch,
//! so `histogram_quantile` (or two scrapes subtracted) gives p50/p99.

use prometheus_client::{
    metrics::{
        counter::Counter,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// Counters, gauges and the lag histogram of the Kafka publisher; all zero
/// without `--events`.
pub struct EventMetrics {
    /// Records the broker acknowledged.
    pub published: Counter,
    /// Batches that failed (broker down or refusing), each retried.
    pub publish_errors: Counter,
    /// Committed events not yet acknowledged by the broker.
    pub lag_records: Gauge,
    /// Age of the oldest event not yet acknowledged, seconds (0 when none).
    pub lag_seconds: Gauge,
    /// Per record acknowledged: seconds from its commit (`at`) to the
    /// acknowledgement of its batch.
    pub publish_lag: Histogram,
}

impl EventMetrics {
    /// Create and register under `r` (prefix `chatgw`).
    pub(crate) fn new(r: &mut Registry) -> Self {
        let m = EventMetrics {
            published: Counter::default(),
            publish_errors: Counter::default(),
            lag_records: Gauge::default(),
            lag_seconds: Gauge::default(),
            // 1 ms (the resolution of `at`) to about 50 s, each bound 1.5
            // times the last: p99 read within a factor of 1.5.
            publish_lag: Histogram::new(exponential_buckets(0.001, 1.5, 28)),
        };
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
        r.register(
            "events_publish_lag_seconds",
            "Per event, seconds from its commit to Kafka's acknowledgement of its batch",
            m.publish_lag.clone(),
        );
        m
    }
}

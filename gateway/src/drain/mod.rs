//! Draining a gateway before it stops, so a rolling restart loses no
//! message and sends no storm of reconnects to the nodes that stay.
//!
//! A drain starts with SIGTERM or `POST /admin/drain` ([`DrainSwitch`]):
//!
//! ```text
//!  request ──▶ /readyz 503 ──(--drain-delay)──▶ listeners closed ──▶ waves of 1012
//!              (balancer takes the node           (new connections   over --drain-period
//!               out of rotation)                   go elsewhere)          │
//!                                                                          ▼
//!                     exit 0 ◀── close the rest (1001) ◀── commits finish ◀─┘
//! ```
//!
//! The stages are the shutdown's own (`driver::lifecycle`): a drain only
//! waits before each and adds the waves (`core::drain`); the server walks
//! them (`ServerHandle::drain`). Nothing a client was told is `sent` is
//! lost: acknowledgements follow the commit, and the committer finishes
//! every request it took before the process exits.

mod switch;

use std::time::Duration;

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

pub use self::switch::DrainSwitch;
use crate::metrics::Metrics;

/// How a drain is paced (`--drain-delay`, `--drain-period`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainPlan {
    /// From the request to closing the listeners: time for a load
    /// balancer's readiness checks to see 503.
    pub delay: Duration,
    /// Over which open connections are closed, in waves a second apart.
    pub period: Duration,
}

impl DrainPlan {
    /// The waves: one a second over the period (at least one), each
    /// `(offset from the first, share per mille)`, the last 1000.
    pub(crate) fn waves(&self) -> Vec<(Duration, u32)> {
        let n = self.period.as_secs().max(1) as u32;
        let interval = self.period / n;
        (1..=n).map(|k| (interval * (k - 1), k * 1000 / n)).collect()
    }

    /// The largest reconnect hint of a wave: its interval, so each wave's
    /// clients come back spread over it.
    pub(crate) fn spread(&self) -> Duration {
        self.period / self.period.as_secs().max(1) as u32
    }
}

/// The drain's metrics (`chatgw_draining`, `chatgw_drain_closes_total`).
#[derive(Debug, Default)]
pub struct DrainMetrics {
    /// 1 from a drain request on (`/readyz` answers 503).
    pub draining: Gauge,
    /// Connections closed with 1012 by a drain's waves.
    pub closed: Counter,
}

impl DrainMetrics {
    /// Create and register under `r` (prefix `chatgw`).
    pub(crate) fn new(r: &mut Registry) -> Self {
        let m = DrainMetrics::default();
        r.register("draining", "1 while the gateway drains (/readyz answers 503)", m.draining.clone());
        r.register("drain_closes", "Connections closed with 1012 by a drain", m.closed.clone());
        m
    }
}

/// `GET /readyz`: 200 while this gateway takes new connections; 503 while
/// it drains or while its store refuses writes.
pub(crate) fn readiness(metrics: &Metrics) -> (u16, &'static str, String) {
    if metrics.drain.draining.get() > 0 {
        return (503, "Service Unavailable", "draining\n".into());
    }
    match metrics.store_failure() {
        None => (200, "OK", "ready\n".into()),
        Some(cause) => (503, "Service Unavailable", format!("store not writable: {cause}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_come_a_second_apart_and_end_with_everyone() {
        let plan = DrainPlan { delay: Duration::ZERO, period: Duration::from_secs(4) };
        let secs = Duration::from_secs;
        assert_eq!(plan.waves(), vec![(secs(0), 250), (secs(1), 500), (secs(2), 750), (secs(3), 1000)]);
        assert_eq!(plan.spread(), secs(1));
        let now = DrainPlan { delay: Duration::ZERO, period: Duration::ZERO };
        assert_eq!(now.waves(), vec![(Duration::ZERO, 1000)]);
    }

    #[test]
    fn ready_until_a_drain_starts() {
        let m = Metrics::new();
        assert_eq!(readiness(&m).0, 200);
        m.drain.draining.set(1);
        assert_eq!(readiness(&m), (503, "Service Unavailable", "draining\n".into()));
    }
}

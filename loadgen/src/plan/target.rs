//! What the fleet must carry, and the machine it is built from.
//!
//! The defaults are the product's design target (a WhatsApp-class
//! service): 2 billion users, 500 million concurrent connections, 100
//! billion messages a day, 1.2 million a second at peak, groups of up to
//! 256, p99 delivery under 100 ms.

use serde::Serialize;

/// Seconds in a day.
pub(crate) const DAY_SECS: f64 = 86_400.0;

/// The design's peak over its mean: 1.2 M/s over 100 G / 86,400 s
/// (1.157 M/s) = 1.2 x 0.864.
pub(crate) const DESIGN_PEAK_FACTOR: f64 = 1.0368;

/// The load to plan for.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(crate) struct Target {
    /// Registered users (context only: the registry and the gateways hold
    /// the online ones).
    pub(crate) users: f64,
    /// Concurrent connections at peak, one per online device.
    pub(crate) concurrent: f64,
    pub(crate) messages_per_day: f64,
    /// Peak message rate over the day's mean.
    pub(crate) peak_factor: f64,
    /// Members of a group message (every group message is planned at this
    /// size: the design's largest, so a bound).
    pub(crate) group_size: f64,
    /// p99 send -> deliver the sweep run used must meet, ms.
    pub(crate) p99_ms: f64,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            users: 2e9,
            concurrent: 500e6,
            messages_per_day: 100e9,
            peak_factor: DESIGN_PEAK_FACTOR,
            group_size: 256.0,
            p99_ms: 100.0,
        }
    }
}

impl Target {
    /// Messages per second at peak.
    pub(crate) fn peak_rate(&self) -> f64 {
        self.messages_per_day / DAY_SECS * self.peak_factor
    }

    /// The same target with `share` of its users and traffic (for the
    /// plot against concurrent users).
    pub(crate) fn scaled(&self, share: f64) -> Self {
        Target {
            users: self.users * share,
            concurrent: self.concurrent * share,
            messages_per_day: self.messages_per_day * share,
            ..self.clone()
        }
    }
}

/// A gateway node type.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) cores: f64,
    pub(crate) memory_gib: f64,
}

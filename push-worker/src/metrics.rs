//! The push worker's counters (`chatgw_push_*`), in a registry of their own
//! so `chatgw push` can serve them and `chatgw serve` can append them to
//! its `/metrics`.

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Metric, Registry},
};

/// Every metric of the push worker. Counters are atomics: cheap to share.
pub struct PushMetrics {
    registry: Registry,
    /// Event records read from the source.
    pub events_seen: Counter,
    /// Records skipped, by `reason` (`unknown_version`, `malformed`).
    pub events_rejected: Family<[(&'static str, &'static str); 1], Counter>,
    /// Notifications a provider took.
    pub notifications_sent: Counter,
    /// Messages folded into a notification already pending for the same
    /// user and conversation.
    pub messages_collapsed: Counter,
    /// Notifications not sent because the device was live when they fell due.
    pub suppressed_live: Counter,
    /// Pending notifications closed by a read receipt of the user.
    pub cancelled_by_read: Counter,
    /// Notifications answered `Unregistered` (the target was removed).
    pub unregistered: Counter,
    /// Hand-offs that failed and were queued again.
    pub send_failures: Counter,
    /// Notifications given up after every attempt failed.
    pub notifications_dropped: Counter,
    /// Due windows of users with no push target at all.
    pub without_target: Counter,
    /// Lookups of push targets the store failed (retried).
    pub target_lookup_errors: Counter,
    /// Offset commits the source refused (retried at the next commit).
    pub commit_errors: Counter,
    /// Events read but not yet committed.
    pub commit_lag: Gauge,
    /// Notifications pending (waiting for grace, or for a retry).
    pub pending: Gauge,
    /// Seconds from the first message's commit to the hand-off of its
    /// notification.
    pub handoff_latency_seconds: Histogram,
}

impl std::fmt::Debug for PushMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushMetrics")
    }
}

impl Default for PushMetrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl PushMetrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("chatgw_push");
        let c = |r: &mut Registry, name: &str, help: &str| register(r, name, help, Counter::default());
        PushMetrics {
            events_seen: c(&mut r, "events_seen", "Event records read"),
            events_rejected: register(&mut r, "events_rejected", "Event records skipped, by reason", Family::default()),
            notifications_sent: c(&mut r, "notifications_sent", "Notifications a provider took"),
            messages_collapsed: c(&mut r, "messages_collapsed", "Messages folded into a pending notification"),
            suppressed_live: c(&mut r, "suppressed_live", "Notifications not sent: the device was live"),
            cancelled_by_read: c(&mut r, "cancelled_by_read", "Pending notifications closed by a read receipt"),
            unregistered: c(&mut r, "unregistered", "Notifications whose target was gone (removed)"),
            send_failures: c(&mut r, "send_failures", "Hand-offs that failed and were queued again"),
            notifications_dropped: c(&mut r, "notifications_dropped", "Notifications given up after every attempt"),
            without_target: c(&mut r, "without_target", "Due notifications of users with no push target"),
            target_lookup_errors: c(&mut r, "target_lookup_errors", "Push target lookups the store failed"),
            commit_errors: c(&mut r, "commit_errors", "Offset commits the source refused"),
            commit_lag: register(&mut r, "commit_lag", "Events read but not yet committed", Gauge::default()),
            pending: register(&mut r, "pending", "Notifications pending", Gauge::default()),
            handoff_latency_seconds: register(
                &mut r,
                "handoff_latency_seconds",
                "From the first message's commit to the hand-off of its notification",
                Histogram::new(exponential_buckets(0.25, 2.0, 12)),
            ),
            registry: r,
        }
    }

    /// A record skipped for `reason`.
    pub fn rejected(&self, reason: &'static str) {
        self.events_rejected.get_or_create(&[("reason", reason)]).inc();
    }

    /// The metrics in the Prometheus text format (without the `# EOF` line
    /// when `append` is set, so they can follow another registry's).
    pub fn render(&self, append: bool) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        if append {
            if let Some(stripped) = out.strip_suffix("# EOF\n") {
                out.truncate(stripped.len());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_under_the_push_prefix() {
        let m = PushMetrics::new();
        m.notifications_sent.inc();
        m.rejected("unknown_version");
        let text = m.render(false);
        assert!(text.contains("chatgw_push_notifications_sent_total 1"), "{text}");
        assert!(text.contains(r#"chatgw_push_events_rejected_total{reason="unknown_version"} 1"#), "{text}");
        assert!(!m.render(true).contains("# EOF"));
    }
}

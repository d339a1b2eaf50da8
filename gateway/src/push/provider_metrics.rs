//! The providers' counters (`chatgw_push::PushStats`) in the Prometheus
//! text format, appended to the push worker's metrics.

use std::fmt::Write as _;

use chatgw_push::{Provider, PushStats, StatsSnapshot};

/// A counter's name, its help, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Every counter.
const COUNTERS: [Counter; 5] = [
    ("sent", "Notifications a provider accepted", |s| s.sent),
    ("unregistered", "Notifications answered: the token is no longer valid", |s| s.unregistered),
    ("failed", "Notifications a provider did not take (after its attempts)", |s| s.failed),
    ("retries", "Attempts after the first within one hand-off", |s| s.retries),
    ("auth_refreshes", "Provider credentials minted or exchanged (APNs JWTs, FCM access tokens)", |s| s.auth_refreshes),
];

/// `chatgw_push_provider_<counter>_total{provider="..."}` for every
/// provider, without an `# EOF` line.
pub fn render_provider_stats(stats: &PushStats) -> String {
    let mut out = String::new();
    for (name, help, read) in COUNTERS {
        let metric = format!("chatgw_push_provider_{name}");
        let _ = writeln!(out, "# HELP {metric} {help}.\n# TYPE {metric} counter");
        for provider in Provider::ALL {
            let _ = writeln!(out, "{metric}_total{{provider=\"{provider}\"}} {}", read(&stats.snapshot(provider)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_every_counter() {
        let text = render_provider_stats(&PushStats::default());
        for provider in ["webhook", "apns", "fcm"] {
            for name in ["sent", "unregistered", "failed", "retries", "auth_refreshes"] {
                let line = format!("chatgw_push_provider_{name}_total{{provider=\"{provider}\"}} 0\n");
                assert!(text.contains(&line), "{line} in {text}");
            }
        }
        assert!(!text.contains("# EOF"));
    }
}

//! How often a part or a download is tried again, and which failures are
//! worth it.

use std::time::Duration;

/// Retry policy for one part or one download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in a row without progress before giving up (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub first_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for Retry {
    /// Six attempts, 200 ms doubling to at most 5 s: about 11 s of an
    /// unreachable store before the transfer fails.
    fn default() -> Self {
        Retry { attempts: 6, first_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5) }
    }
}

impl Retry {
    /// The wait after failed attempt number `failures` (1-based).
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first_backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Whether an HTTP status is worth another attempt: the store was busy or
/// failed, not the request.
pub(crate) fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// A blocking HTTP agent for signed URLs: statuses are answers, not
/// errors; no overall timeout (a 100 MB part may take long), but a
/// connection that stalls fails after `stall`.
pub fn agent(stall: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(stall))
        .timeout_per_write(Some(stall))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = Retry::default();
        assert_eq!(r.backoff(1), Duration::from_millis(200));
        assert_eq!(r.backoff(3), Duration::from_millis(800));
        assert_eq!(r.backoff(40), Duration::from_secs(5));
    }
}

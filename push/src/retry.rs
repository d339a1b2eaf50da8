//! How often and how patiently a notification is retried.
//!
//! The delay computation is a pure function of the attempt number, the provider's
//! `Retry-After` and a jitter draw, so it is tested without clocks or sockets.

use std::time::Duration;

/// Bounds on retrying one notification. Transient answers (429, 5xx, connection errors)
/// are retried with exponential backoff and jitter until `max_attempts` attempts were made
/// or the next attempt would start after `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles for each further one.
    pub base_delay: Duration,
    /// Cap of one delay computed by backoff.
    pub max_delay: Duration,
    /// Time from the first attempt after which no further attempt starts.
    pub deadline: Duration,
    /// Time limit of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            deadline: Duration::from_secs(120),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after `attempt` (1-based) failed
    /// transiently. `jitter` in `[0, 1]` spreads retries of many senders: the backoff
    /// delay is scaled into `[d/2, d]`. A provider's `Retry-After` is a lower bound.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1));
        let backoff = self.base_delay.saturating_mul(doubling).min(self.max_delay);
        let jittered = backoff.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(wait) => jittered.max(wait),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy { base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1), ..Default::default() }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.delay(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, None, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(4, None, 1.0), Duration::from_millis(800));
        assert_eq!(p.delay(5, None, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(40, None, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay() {
        let p = policy();
        assert_eq!(p.delay(2, None, 0.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, None, 7.0), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_is_a_lower_bound() {
        let p = policy();
        assert_eq!(p.delay(1, Some(Duration::from_secs(3)), 1.0), Duration::from_secs(3));
        assert_eq!(p.delay(3, Some(Duration::from_millis(10)), 1.0), Duration::from_millis(400));
    }
}

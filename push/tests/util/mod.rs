//! Helpers shared by the provider tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use chatgw_push::{Notification, Provider, PushConfig, RetryPolicy};

/// Retries fast enough for tests, still bounded.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        deadline: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
    }
}

/// A configuration trusting the test CA at `ca_file`.
pub fn config_trusting(ca_file: std::path::PathBuf) -> PushConfig {
    PushConfig { retry: quick_retry(), extra_ca_file: Some(ca_file), ..Default::default() }
}

/// A notification for `token` in group 7.
pub fn notification(provider: Provider, token: &str) -> Notification {
    Notification::new("alice", "phone", provider, token, "g:7", 3, "e42")
}

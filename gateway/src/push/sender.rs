//! Hands the push worker's notifications to the providers of `chatgw-push`.
//!
//! The worker hands off one notification at a time on its own thread and
//! waits for the answer; the providers are async (HTTP/2 with pooled
//! connections), so the sender owns a small tokio runtime and blocks on
//! each send. The runtime's one thread keeps the pooled connections
//! serviced between sends.
//!
//! Retries: the worker tries a failed device again on its own schedule (1
//! s, 2 s, 4 s, ... without blocking the others), so within one hand-off
//! the providers try at most twice within 5 s unless the operator gives a
//! `retry:` spec.

use std::{sync::Arc, time::Duration};

use chatgw_protocol::{PushProvider, PushTarget};
use chatgw_push::{ConfigError, Provider, PushStats, Pusher, RetryPolicy};
use chatgw_push_worker::{Notification, NotificationSender, Outcome};

/// Why the providers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// A `--push` spec is wrong, or names a key, secret or CA file that
    /// cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No spec names a provider (only `retry:` or `tls:`).
    #[error("no provider: give webhook:..., apns:... or fcm:...")]
    NoProvider,
    /// The runtime the providers run on could not be started.
    #[error("starting the push providers' runtime")]
    Runtime(#[source] std::io::Error),
}

/// Attempts within one hand-off when no `retry:` spec is given.
const HANDOFF_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 2,
    base_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(1),
    deadline: Duration::from_secs(5),
    request_timeout: Duration::from_secs(10),
};

/// [`NotificationSender`] over [`Pusher`].
pub struct ProviderSender {
    pusher: Pusher,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ProviderSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderSender")
    }
}

impl ProviderSender {
    /// Providers from `--push` specs (docs/PUSH.md); every key, secret and
    /// CA file is read now.
    pub fn from_specs<S: AsRef<str>>(specs: &[S]) -> Result<Self, SenderError> {
        let mut config = chatgw_push::parse_specs(specs)?;
        if config.webhook.is_none() && config.apns.is_none() && config.fcm.is_none() {
            return Err(SenderError::NoProvider);
        }
        if !specs.iter().any(|s| s.as_ref().starts_with("retry:")) {
            config.retry = HANDOFF_RETRY;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("push-providers")
            .enable_all()
            .build()
            .map_err(SenderError::Runtime)?;
        // reqwest's clients are built inside the runtime they will run on.
        let pusher = runtime.block_on(async { Pusher::new(&config) })?;
        Ok(ProviderSender { pusher, runtime })
    }

    /// The providers' counters (see [`super::render_provider_stats`]).
    pub fn stats(&self) -> Arc<PushStats> {
        self.pusher.stats()
    }
}

fn provider(p: PushProvider) -> Provider {
    match p {
        PushProvider::Webhook => Provider::Webhook,
        PushProvider::Apns => Provider::Apns,
        PushProvider::Fcm => Provider::Fcm,
    }
}

impl NotificationSender<PushTarget> for ProviderSender {
    fn send(&self, n: &Notification<PushTarget>) -> Outcome {
        let push = chatgw_push::Notification::new(
            n.user.to_string(),
            n.device.as_str(),
            provider(n.target.provider),
            n.target.token.as_str(),
            n.conversation.as_str(),
            n.count,
            n.latest_event.as_str(),
        );
        match self.runtime.block_on(self.pusher.send(&push)) {
            chatgw_push::Outcome::Delivered => Outcome::Delivered,
            chatgw_push::Outcome::Unregistered { .. } => Outcome::Unregistered,
            chatgw_push::Outcome::Failed { permanent: true, .. } => Outcome::Rejected,
            chatgw_push::Outcome::Failed { permanent: false, .. } => Outcome::Failed,
        }
    }
}

//! The retry loop around the providers' single attempts.

use std::{sync::Arc, time::Instant};

use rand::Rng;

use crate::{
    apns::Apns,
    fcm::Fcm,
    http::{build_client, Attempt},
    webhook::Webhook,
    ConfigError, Notification, Outcome, Provider, PushConfig, PushStats, RetryPolicy,
};

/// Sends notifications through the configured providers. Cheap to share (`Arc`), safe to
/// call concurrently; connections and provider credentials are reused across sends.
pub struct Pusher {
    webhook: Option<Webhook>,
    apns: Option<Apns>,
    fcm: Option<Fcm>,
    retry: RetryPolicy,
    stats: Arc<PushStats>,
}

impl Pusher {
    /// Reads every key, secret and CA file the configuration names; fails on the first
    /// unusable one.
    pub fn new(config: &PushConfig) -> Result<Pusher, ConfigError> {
        // Webhook and FCM share one client (HTTP/2 or HTTP/1.1); APNs needs HTTP/2 alone.
        let client = build_client(config, false)?;
        let apns_client = || build_client(config, true);
        Ok(Pusher {
            webhook: config.webhook.as_ref().map(|c| Webhook::new(c, client.clone())).transpose()?,
            apns: config.apns.as_ref().map(|c| Apns::new(c, apns_client()?)).transpose()?,
            fcm: config.fcm.as_ref().map(|c| Fcm::new(c, client.clone())).transpose()?,
            retry: config.retry,
            stats: Arc::default(),
        })
    }

    /// Whether targets of `provider` can be served.
    pub fn serves(&self, provider: Provider) -> bool {
        match provider {
            Provider::Webhook => self.webhook.is_some(),
            Provider::Apns => self.apns.is_some(),
            Provider::Fcm => self.fcm.is_some(),
        }
    }

    /// The counters, shared with the sends (export them as metrics).
    pub fn stats(&self) -> Arc<PushStats> {
        Arc::clone(&self.stats)
    }

    /// Delivers `n`, retrying transient failures within the [`RetryPolicy`].
    /// [`Outcome::Unregistered`] tells the caller to remove the device target.
    pub async fn send(&self, n: &Notification) -> Outcome {
        let stats = self.stats.of(n.provider);
        let started = Instant::now();
        let mut last_reason = String::new();
        for attempt in 1..=self.retry.max_attempts.max(1) {
            if attempt > 1 {
                stats.retry();
            }
            let mut refreshed = false;
            let result = self.attempt_once(n, &mut refreshed).await;
            if refreshed {
                stats.auth_refresh();
            }
            match result {
                Attempt::Delivered => {
                    stats.sent();
                    return Outcome::Delivered;
                }
                Attempt::Unregistered(reason) => {
                    stats.unregistered();
                    return Outcome::Unregistered { reason };
                }
                Attempt::Permanent(reason) => {
                    tracing::warn!(provider = %n.provider, user = %n.user, device = %n.device, %reason, "push refused");
                    stats.failed();
                    return Outcome::Failed { reason, permanent: true };
                }
                Attempt::RetryNow(reason) => last_reason = reason,
                Attempt::Retry { reason, retry_after } => {
                    last_reason = reason;
                    if attempt == self.retry.max_attempts {
                        break;
                    }
                    let delay = self.retry.delay(attempt, retry_after, rand::rng().random());
                    if started.elapsed().saturating_add(delay) > self.retry.deadline {
                        last_reason.push_str(" (retry deadline reached)");
                        break;
                    }
                    tracing::debug!(provider = %n.provider, attempt, ?delay, reason = %last_reason, "push retry");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        tracing::warn!(provider = %n.provider, user = %n.user, device = %n.device, reason = %last_reason, "push given up");
        stats.failed();
        Outcome::Failed { reason: last_reason, permanent: false }
    }

    async fn attempt_once(&self, n: &Notification, refreshed: &mut bool) -> Attempt {
        let missing = || Attempt::Permanent(format!("no {} provider is configured", n.provider));
        match n.provider {
            Provider::Webhook => match &self.webhook {
                Some(webhook) => webhook.attempt(n).await,
                None => missing(),
            },
            Provider::Apns => match &self.apns {
                Some(apns) => apns.attempt(n, refreshed).await,
                None => missing(),
            },
            Provider::Fcm => match &self.fcm {
                Some(fcm) => fcm.attempt(n, refreshed).await,
                None => missing(),
            },
        }
    }
}

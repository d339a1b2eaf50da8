//! Counters per provider, for the gateway's metrics.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::Provider;

/// Live counters of one provider. Shared by every send; read with [`PushStats::snapshot`].
#[derive(Debug, Default)]
pub struct ProviderStats {
    sent: AtomicU64,
    unregistered: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    auth_refreshes: AtomicU64,
}

/// Counters of every provider.
#[derive(Debug, Default)]
pub struct PushStats {
    webhook: ProviderStats,
    apns: ProviderStats,
    fcm: ProviderStats,
}

/// A copy of one provider's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Notifications the provider accepted.
    pub sent: u64,
    /// Notifications answered with "token no longer valid".
    pub unregistered: u64,
    /// Notifications given up on (permanent error, attempts or deadline exhausted).
    pub failed: u64,
    /// Attempts after the first one.
    pub retries: u64,
    /// Provider credentials minted or exchanged (APNs JWTs, FCM access tokens).
    pub auth_refreshes: u64,
}

impl PushStats {
    pub(crate) fn of(&self, provider: Provider) -> &ProviderStats {
        match provider {
            Provider::Webhook => &self.webhook,
            Provider::Apns => &self.apns,
            Provider::Fcm => &self.fcm,
        }
    }

    /// The counters of one provider.
    pub fn snapshot(&self, provider: Provider) -> StatsSnapshot {
        let s = self.of(provider);
        StatsSnapshot {
            sent: s.sent.load(Relaxed),
            unregistered: s.unregistered.load(Relaxed),
            failed: s.failed.load(Relaxed),
            retries: s.retries.load(Relaxed),
            auth_refreshes: s.auth_refreshes.load(Relaxed),
        }
    }
}

impl ProviderStats {
    pub(crate) fn sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }
    pub(crate) fn unregistered(&self) {
        self.unregistered.fetch_add(1, Relaxed);
    }
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn auth_refresh(&self) {
        self.auth_refreshes.fetch_add(1, Relaxed);
    }
}

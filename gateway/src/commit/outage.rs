//! A store that stopped taking writes: say why once, probe with backoff,
//! and come back by itself.
//!
//! Why the committer owns this: the writer thread reports every refused
//! commit to it, and it prepares every batch, so it is the one that can stop
//! acknowledging and forget what it assumed the store held. While
//! the outage lasts, batches still go through the normal path (requests that
//! need no write, such as a resend answered with its original id, are still
//! served; the others fail fast with `unavailable` because the store refuses
//! writes at once), and between batches the committer asks the store to
//! recover, at growing intervals so a full disk is not hammered. The log
//! gets one line when the outage starts and one when it ends; every failed
//! commit is counted in `/metrics`.

use std::time::{Duration, Instant};

use chatgw_storage::{MessageStore, StoreError, WriteFailure};

use crate::metrics::Metrics;

/// First pause between recovery attempts.
const FIRST_PROBE: Duration = Duration::from_millis(10);
/// Longest pause between recovery attempts: once the disk is back, acks
/// resume within this plus one reopen of the store. A probe is one 16 KiB
/// write and fsync, cheap enough to repeat this often.
const MAX_PROBE: Duration = Duration::from_millis(100);

/// The store refuses writes since `since`.
pub(super) struct Outage {
    since: Instant,
    cause: WriteFailure,
    pause: Duration,
    next_probe: Instant,
}

impl Outage {
    /// A commit failed. Returns the outage to track if this one starts it
    /// (logged once); during an outage the failure is only counted.
    pub(super) fn on_failed_commit(
        current: Option<&Outage>,
        error: &StoreError,
        requests: usize,
        metrics: &Metrics,
    ) -> Option<Outage> {
        let cause = error.failure();
        metrics.commit_failed(error);
        if current.is_some() {
            tracing::debug!(error = %error, requests, "commit refused while the store is failing");
            return None;
        }
        metrics.store_failing(error);
        tracing::error!(
            error = %error,
            cause = %cause,
            requests,
            "the store stopped taking writes; refusing writes with `unavailable` until a probe write succeeds"
        );
        let now = Instant::now();
        Some(Outage { since: now, cause, pause: FIRST_PROBE, next_probe: now + FIRST_PROBE })
    }

    /// When the next recovery attempt is due.
    pub(super) fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// Ask the store to recover if an attempt is due. Returns `true` once it
    /// takes writes again (logged once), `false` while it still refuses.
    pub(super) fn try_recover(&mut self, store: &dyn MessageStore, metrics: &Metrics) -> bool {
        let now = Instant::now();
        if now < self.next_probe {
            return false;
        }
        match store.recover() {
            Ok(()) => {
                metrics.store_recovered();
                tracing::info!(
                    cause = %self.cause,
                    down_for = ?self.since.elapsed(),
                    "the store takes writes again; acknowledging again"
                );
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "the store still refuses writes");
                self.pause = (self.pause * 2).min(MAX_PROBE);
                self.next_probe = now + self.pause;
                false
            }
        }
    }
}

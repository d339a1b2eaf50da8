//! The idempotency-key retention sweep: one small thread that removes keys
//! older than `--idempotency-retention`, a few hundred at a time.
//!
//! Why: every message with a client id leaves a `(sender, client id)` key
//! behind, and nothing else ever removes it, so the table grew forever. A
//! key only matters while a client may resend (the outbox resends within
//! minutes), so after the retention (default 7 days) it is dropped
//! (docs/STORAGE.md, "Retention"; what a client sees: docs/PROTOCOL.md).
//!
//! Why a thread of its own and small steps: the committer must never wait
//! for retention. Each step asks the store to look at [`STEP_KEYS`] keys
//! ([`MessageStore::sweep_idempotency_keys`]), which on PostgreSQL is one
//! short statement and on the embedded store one small unsynced batch, and
//! then pauses [`STEP_PAUSE`], so the sweep takes a bounded, small share of
//! the store. A pass walks the whole table and the next starts
//! [`PASS_INTERVAL`] later. A failed step is counted, logged and retried
//! at the next pass; the sweep never touches health (the probe and the
//! committer own that). On Cassandra the store writes keys with a TTL and
//! its sweep does nothing. The same thread then sweeps inboxes
//! (`inbox_retention`).

use std::{io, sync::Arc, thread::JoinHandle, time::Duration};

use chatgw_protocol::{now_ms, UserId};
use chatgw_storage::{retention_cutoff, MessageStore};
use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::metrics::Metrics;

/// Keys looked at per step.
pub(crate) const STEP_KEYS: usize = 500;
/// Pause between two steps of a pass.
const STEP_PAUSE: Duration = Duration::from_millis(50);
/// Pause between two passes.
const PASS_INTERVAL: Duration = Duration::from_secs(600);

/// The running sweep thread.
pub(crate) struct Sweeper {
    /// Dropped to stop the thread.
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Sweeper {
    /// Sweep keys older than `retention` and inbox entries older than
    /// `inbox_retention` (each unless zero) from `store` on a new thread
    /// until [`Sweeper::stop`]; the first pass starts at once.
    pub(crate) fn start(
        store: Arc<dyn MessageStore>,
        metrics: Arc<Metrics>,
        retention: Duration,
        inbox_retention: Duration,
    ) -> io::Result<Sweeper> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let wait = move |pause| !matches!(stopped.recv_timeout(pause), Err(RecvTimeoutError::Timeout));
        let thread = std::thread::Builder::new().name("chatgw-retention".into()).spawn(move || loop {
            let keys = !retention.is_zero() && pass(store.as_ref(), &metrics, retention, &wait);
            if keys
                || (!inbox_retention.is_zero()
                    && crate::inbox_retention::pass(store.as_ref(), &metrics, inbox_retention, &wait))
                || wait(PASS_INTERVAL)
            {
                return;
            }
        })?;
        Ok(Sweeper { stop, thread })
    }

    /// Stop sweeping and wait for the thread (at most one step in flight).
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// One pass over the whole table; `wait` pauses between steps and answers
/// whether to stop. Returns whether it was told to stop.
pub(crate) fn pass(
    store: &dyn MessageStore,
    metrics: &Metrics,
    retention: Duration,
    wait: &dyn Fn(Duration) -> bool,
) -> bool {
    // One cutoff per pass: keys that expire during the pass wait for the next.
    let cutoff = retention_cutoff(Some(retention), now_ms());
    if cutoff.0 == 0 {
        return false;
    }
    let mut after: Option<(UserId, String)> = None;
    steps(
        wait,
        "idempotency key",
        || {
            let step = store.sweep_idempotency_keys(after.as_ref().map(|(u, c)| (*u, c.as_str())), cutoff, STEP_KEYS);
            step.map(|step| {
                metrics.idempotency_keys_swept.inc_by(step.examined as u64);
                metrics.idempotency_keys_expired.inc_by(step.removed);
                let more = step.next.is_some();
                after = step.next;
                (step.removed, more)
            })
        },
        metrics,
    )
}

/// Run one pass of a bounded sweep: `step` removes what one step may and
/// answers (entries removed, whether more remain); steps are [`STEP_PAUSE`]
/// apart. A failed step is counted and logged and ends the pass (the next
/// pass retries). Returns whether `wait` said to stop.
pub(crate) fn steps(
    wait: &dyn Fn(Duration) -> bool,
    what: &str,
    mut step: impl FnMut() -> Result<(u64, bool), chatgw_storage::StoreError>,
    metrics: &Metrics,
) -> bool {
    let mut removed = 0;
    loop {
        match step() {
            Ok((n, more)) => {
                removed += n;
                if !more {
                    break;
                }
            }
            Err(e) => {
                metrics.retention_sweep_errors.inc();
                tracing::warn!(error = %e, "{what} retention sweep failed; retried at the next pass");
                break;
            }
        }
        if wait(STEP_PAUSE) {
            return true;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "expired {what} entries removed");
    }
    false
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{ConversationId, Message, MessageKind, Snowflake, EPOCH_MS};
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore, Write};

    use super::*;

    const DAY_MS: u64 = 86_400_000;

    fn message(id: chatgw_protocol::MessageId, client_id: String) -> Message {
        let conversation = ConversationId::direct(UserId(1), UserId(2));
        let ts = Snowflake::unix_ms(id);
        Message {
            id,
            conversation,
            from: UserId(1),
            kind: MessageKind::Text,
            client_id,
            ts,
            body: "\"x\"".into(),
            amended: None,
        }
    }

    /// A pass over more keys than one step removes exactly the expired
    /// ones, in several steps, and counts them; the next finds nothing.
    #[test]
    fn a_pass_removes_expired_keys_in_steps_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let now = now_ms();
        assert!(now > EPOCH_MS + 30 * DAY_MS);
        let mut g = Snowflake::new(0);
        let expired = STEP_KEYS + 20;
        let mut ms: Vec<Message> =
            (0..expired).map(|i| message(g.next_at(now - 10 * DAY_MS + i as u64), format!("old{i}"))).collect();
        ms.extend((0..7).map(|i| message(g.next_at(now - 1000 + i), format!("new{i}"))));
        let both = [UserId(1), UserId(2)];
        let writes: Vec<Write<'_>> =
            ms.iter().map(|m| Write::Message { message: m, inboxes: &both, membership: None }).collect();
        store.commit(&writes, ms[ms.len() - 1].id).unwrap();
        let metrics = Metrics::new();
        let steps = std::cell::Cell::new(0);
        let wait = |_| {
            steps.set(steps.get() + 1);
            false
        };
        assert!(!pass(&store, &metrics, Duration::from_secs(7 * 86_400), &wait));
        assert_eq!(metrics.idempotency_keys_expired.get(), expired as u64);
        assert_eq!(metrics.idempotency_keys_swept.get(), ms.len() as u64);
        assert!(steps.get() >= 1, "more keys than one step: paused between steps");
        let new_keys: Vec<(UserId, &str)> = ms[expired..].iter().map(|m| (m.from, m.client_id.as_str())).collect();
        assert!(store.messages_by_client_ids(&new_keys).unwrap().iter().all(Option::is_some));
        assert_eq!(store.messages_by_client_ids(&[(UserId(1), "old0")]).unwrap(), vec![None]);
        let report = store.check_integrity_keys_from(retention_cutoff(Some(Duration::from_secs(7 * 86_400)), now));
        assert!(report.unwrap().is_clean(), "swept keys are no violation");
        assert!(!store.check_integrity().unwrap().is_clean(), "unless keys are meant to be kept forever");
        pass(&store, &metrics, Duration::from_secs(7 * 86_400), &wait);
        assert_eq!(metrics.idempotency_keys_expired.get(), expired as u64, "the next pass finds nothing");
    }

    /// A failed step is counted and the pass ends, to resume later.
    #[test]
    fn a_failed_step_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        store.inject_write_failure(chatgw_storage::WriteFailure::Io);
        let metrics = Metrics::new();
        assert!(!pass(&store, &metrics, Duration::from_secs(86_400), &|_| false));
        assert_eq!(metrics.retention_sweep_errors.get(), 1);
    }
}

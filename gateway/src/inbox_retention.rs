//! The inbox retention pass: the oldest entries of every inbox, older than
//! `--inbox-retention`, removed a few inboxes at a time by the retention
//! thread (`retention`), after its idempotency-key pass.
//!
//! Why: an inbox entry is a delivery queue reference (what `sync` replays
//! to a device that was away), one per event per user, and nothing else
//! ever removed one, so inboxes grew forever. A device away for longer than
//! the retention (default 30 days) gets what is left and the `truncated`
//! flag on `synced`, and reloads history, which stays whole: messages and
//! marks are never swept (docs/STORAGE.md, "Inbox retention";
//! docs/PROTOCOL.md, `synced`).
//!
//! Why the same bounded steps as the key sweep: the committer never waits
//! for retention. A step visits at most [`STEP_INBOXES`] inboxes and
//! removes at most that many entries ([`MessageStore::sweep_inboxes`]),
//! then the thread pauses (`retention::steps`); a failed step is counted, logged
//! and retried at the next pass.

use std::time::Duration;

use chatgw_protocol::{now_ms, UserId};
use chatgw_storage::{retention_cutoff, MessageStore};

use crate::metrics::Metrics;

/// Inboxes looked at per step, and entries removed per step.
pub(crate) const STEP_INBOXES: usize = 100;

/// One pass over every inbox; `wait` pauses between steps and answers
/// whether to stop. Returns whether it was told to stop.
pub(crate) fn pass(
    store: &dyn MessageStore,
    metrics: &Metrics,
    retention: Duration,
    wait: &dyn Fn(Duration) -> bool,
) -> bool {
    // One cutoff per pass: entries that expire during the pass wait for the next.
    let cutoff = retention_cutoff(Some(retention), now_ms());
    if cutoff.0 == 0 {
        return false;
    }
    let mut from: Option<UserId> = None;
    crate::retention::steps(
        wait,
        "inbox",
        || {
            store.sweep_inboxes(from, cutoff, STEP_INBOXES).map(|step| {
                metrics.inboxes_swept.inc_by(step.inboxes as u64);
                metrics.inbox_entries_expired.inc_by(step.removed);
                from = step.next;
                (step.removed, from.is_some())
            })
        },
        metrics,
    )
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{ConversationId, Message, MessageKind, Snowflake, EPOCH_MS};
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore, InboxPos, Write};

    use super::*;

    const DAY_MS: u64 = 86_400_000;

    /// A pass over more inboxes than one step, one of them with more
    /// expired entries than one step removes, empties exactly the expired
    /// entries and counts them; the next pass finds nothing.
    #[test]
    fn a_pass_removes_expired_entries_in_steps_and_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let now = now_ms();
        assert!(now > EPOCH_MS + 60 * DAY_MS);
        let mut g = Snowflake::new(0);
        let mut ms = Vec::new();
        // User 1 writes to itself (one inbox) past one step; users 2.. get one old entry each.
        for i in 0..(STEP_INBOXES + 5) as u64 {
            ms.push((UserId(1), g.next_at(now - 40 * DAY_MS + i)));
        }
        for u in 2..(STEP_INBOXES + 10) as u64 {
            ms.push((UserId(u), g.next_at(now - 35 * DAY_MS + u)));
        }
        let fresh = g.next_at(now - 1000);
        ms.push((UserId(1), fresh));
        let messages: Vec<(Message, [UserId; 1])> = ms
            .iter()
            .map(|&(u, id)| {
                let conversation = ConversationId::direct(u, u);
                let m = Message {
                    id,
                    conversation,
                    from: u,
                    kind: MessageKind::Text,
                    client_id: String::new(),
                    ts: Snowflake::unix_ms(id),
                    body: "\"x\"".into(),
                    amended: None,
                };
                (m, [u])
            })
            .collect();
        let writes: Vec<Write<'_>> =
            messages.iter().map(|(m, i)| Write::Message { message: m, inboxes: i, membership: None }).collect();
        store.commit(&writes, fresh).unwrap();
        let metrics = Metrics::new();
        let steps = std::cell::Cell::new(0);
        let wait = |_| {
            steps.set(steps.get() + 1);
            false
        };
        assert!(!pass(&store, &metrics, Duration::from_secs(30 * 86_400), &wait));
        assert_eq!(metrics.inbox_entries_expired.get(), ms.len() as u64 - 1, "every entry but the fresh one");
        assert!(steps.get() >= 2, "more than one step's worth: paused between steps");
        let left = store.inbox_after(UserId(1), InboxPos(0), 10).unwrap();
        assert_eq!(left.iter().map(|e| e.event.id()).collect::<Vec<_>>(), vec![fresh]);
        assert!(store.inbox_after(UserId(7), InboxPos(0), 10).unwrap().is_empty());
        pass(&store, &metrics, Duration::from_secs(30 * 86_400), &wait);
        assert_eq!(metrics.inbox_entries_expired.get(), ms.len() as u64 - 1, "the next pass finds nothing");
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

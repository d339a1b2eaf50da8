//! `keys_changed`: telling a user's contacts that the user's devices with
//! keys, or a device's identity, changed (docs/E2EE.md, "keys_changed"), so
//! their clients fetch the keys again before they next encrypt to the user.
//!
//! When: a device uploads keys for the first time or with another signing
//! or identity key (the store says so: `put_device_keys` is true), or a
//! device that had keys is logged out (`remove_device_keys` is true). An
//! upload of one-time keys or of a new fallback key alone tells nobody.
//!
//! Who: the user's contacts, read from the user's conversation list (a row
//! per conversation the user has, kept by every commit): the other user of
//! each direct conversation and every member of each group the user is
//! still in; and the user themself, whose other devices encrypt to the
//! changed device too.
//!
//! Why here and then through the committer: finding the contacts reads the
//! store (pages of the list, a group record per group), which the committer
//! must not wait for, so the thread that made the change (a reader, or the
//! admin listener for `POST /revoke`) reads them; the events are then
//! ordinary inbox events, written by the committer with ids and positions
//! on every backend, delivered live by its dispatch (to other gateways of a
//! fleet too) and replayed by `sync`.
//!
//! Bounds: the [`MAX_CONVERSATIONS`] most recent conversations are read,
//! and the contacts go to the committer in requests of at most
//! [`KEYS_CHANGED_BATCH`] inboxes, each one commit write with one event id,
//! so one change never makes one huge write. A contact beyond the bound
//! is not told; its client still fetches keys before starting a session.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use chatgw_protocol::{ConversationId, MessageId, UserId};
use chatgw_storage::{MessageStore, StoreError};

use crate::{commit::CommitQueues, events::CommitRequest, metrics::Metrics};

/// Inboxes one `keys_changed` commit request writes at most.
pub(crate) const KEYS_CHANGED_BATCH: usize = 256;

/// Conversations of the user read to find the contacts, most recent first.
pub(crate) const MAX_CONVERSATIONS: usize = 5_000;

/// Conversations read per page of the list.
const PAGE: usize = 500;

/// How long a request waits for room in a full commit queue before the
/// announcement is given up (and counted).
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Hands `keys_changed` announcements to the committer. Made before the
/// commit pipelines start (the revoker needs it first), connected to their
/// queues once they run.
#[derive(Clone, Default)]
pub(crate) struct KeysChanged {
    queues: Arc<OnceLock<CommitQueues>>,
    metrics: Arc<OnceLock<Arc<Metrics>>>,
}

impl KeysChanged {
    /// From now on, announcements go to `queues`.
    pub(crate) fn connect(&self, queues: CommitQueues, metrics: Arc<Metrics>) {
        let _ = self.queues.set(queues);
        let _ = self.metrics.set(metrics);
    }

    /// Tell `user`'s contacts that the user's keys changed. A failure is
    /// logged, not returned: the change itself is made and answered.
    pub(crate) fn announce(&self, store: &dyn MessageStore, user: UserId) {
        let Some(queues) = self.queues.get() else { return };
        let contacts = match contacts(store, user) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, user = user.0, "could not read the contacts to tell of changed keys");
                return self.given_up();
            }
        };
        for chunk in contacts.chunks(KEYS_CHANGED_BATCH) {
            let request = CommitRequest::KeysChanged { user, contacts: chunk.to_vec() };
            if queues.send_timeout(request, QUEUE_WAIT).is_err() {
                tracing::warn!(user = user.0, "the commit queue stayed full; changed keys not announced");
                return self.given_up();
            }
        }
    }

    fn given_up(&self) {
        if let Some(m) = self.metrics.get() {
            m.keys_changed_dropped.inc();
        }
    }
}

/// `user` and the user's contacts, each once, in id order: the other user
/// of each direct conversation and the members of each group `user` is in,
/// from the [`MAX_CONVERSATIONS`] most recent conversations.
pub(crate) fn contacts(store: &dyn MessageStore, user: UserId) -> Result<Vec<UserId>, StoreError> {
    let mut out = vec![user];
    let mut before: Option<MessageId> = None;
    let mut read = 0;
    while read < MAX_CONVERSATIONS {
        let rows = store.conversations(user, before, PAGE.min(MAX_CONVERSATIONS - read))?;
        read += rows.len();
        for r in &rows {
            match r.conversation {
                ConversationId::Direct { .. } => out.extend(r.conversation.peer_of(user)),
                ConversationId::Group(g) => {
                    if let Some(group) = store.group(g)? {
                        if group.members.iter().any(|m| m.user == user) {
                            out.extend(group.members.iter().map(|m| m.user));
                        }
                    }
                }
            }
        }
        match rows.last() {
            Some(last) if rows.len() == PAGE => before = Some(last.last),
            _ => break,
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

//! Idempotency keys being committed, so that two commits binding one key
//! never run at once.
//!
//! A gateway's commit pipelines commit in parallel, each for its own
//! conversations; a sender may still use one client id in two
//! conversations at the same moment, and those land in two pipelines. The
//! commit checks whether a key is bound, then binds it: run at once, both
//! would find it free. So a commit first claims every key it binds; one
//! that finds a key claimed waits for that commit to finish, and then
//! finds the key bound (a duplicate, answered as one). Only commits
//! sharing a key wait for each other, and a commit claims all its keys at
//! once, so two commits never wait for each other.

use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Condvar, Mutex, PoisonError},
};

use chatgw_protocol::UserId;

use crate::Write;

/// Keys claimed by commits in progress, by digest: two keys with one
/// digest only make a commit wait without need.
#[derive(Default)]
pub(super) struct KeyClaims {
    claimed: Mutex<HashSet<u64>>,
    freed: Condvar,
}

/// Keys claimed until dropped.
pub(super) struct Claim<'a> {
    claims: &'a KeyClaims,
    keys: Vec<u64>,
}

impl KeyClaims {
    /// Claim every key `writes` bind, waiting for commits that hold one.
    pub(super) fn claim(&self, writes: &[Write<'_>]) -> Claim<'_> {
        let mut keys: Vec<u64> = writes.iter().filter_map(key_of).collect();
        if keys.is_empty() {
            return Claim { claims: self, keys };
        }
        keys.sort_unstable();
        keys.dedup();
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        while keys.iter().any(|k| claimed.contains(k)) {
            claimed = self.freed.wait(claimed).unwrap_or_else(PoisonError::into_inner);
        }
        claimed.extend(keys.iter().copied());
        Claim { claims: self, keys }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        let mut claimed = self.claims.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        for k in &self.keys {
            claimed.remove(k);
        }
        self.claims.freed.notify_all();
    }
}

/// The digest of the idempotency key a write binds, if it binds one.
fn key_of(w: &Write<'_>) -> Option<u64> {
    let m = match w {
        Write::Message { message, .. } => message,
        Write::Group { announce: Some(m), .. } => m,
        _ => return None,
    };
    (!m.client_id.is_empty()).then(|| digest(m.from, &m.client_id))
}

fn digest(from: UserId, client_id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    from.0.hash(&mut h);
    client_id.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use chatgw_protocol::Snowflake;

    use crate::{conformance::text, EmbeddedOptions, EmbeddedStore, MessageStore, Write, WriteOutcome};

    /// Two commits binding one key in two conversations, started together
    /// over and over: one is applied, the other finds the key bound; and
    /// the high-water mark ends at the larger of the two.
    #[test]
    fn concurrent_commits_bind_a_key_once_and_never_lower_the_high_water() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap());
        let mut ids = Snowflake::new(1);
        for round in 0..100 {
            let key = format!("k{round}");
            let messages = [text(&mut ids, 1, 2, &key), text(&mut ids, 1, 3, &key)];
            let barrier = Arc::new(Barrier::new(2));
            let outcomes: Vec<WriteOutcome> = std::thread::scope(|s| {
                let handles: Vec<_> = messages
                    .iter()
                    .map(|m| {
                        let (store, barrier) = (store.clone(), barrier.clone());
                        s.spawn(move || {
                            let inboxes = [m.from, m.conversation.peer_of(m.from).unwrap()];
                            barrier.wait();
                            let w = [Write::Message { message: m, inboxes: &inboxes, membership: None }];
                            store.commit(&w, m.id).unwrap().outcome(0).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let applied = outcomes.iter().filter(|o| **o == WriteOutcome::Applied).count();
            assert_eq!(applied, 1, "round {round}: {outcomes:?}");
            assert_eq!(store.high_water(1).unwrap(), messages[1].id, "round {round}");
        }
    }
}

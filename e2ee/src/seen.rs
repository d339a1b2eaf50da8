//! The Olm ciphertexts this device has opened, to tell a replay (the same
//! ciphertext under another message id) from a second delivery of the same
//! message (sync after a live delivery).
//!
//! Olm itself refuses a used message key, so a replay is refused either
//! way; this memory only says which it was, and which message came first.
//! It is bounded: past [`MAX_SEEN`] the oldest are forgotten, and a replay
//! of one of those is still refused, as `Replayed` without a first id.
//! (Megolm opens any index as often as asked, so each inbound group session
//! keeps its own exact record of the indices it opened.)

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Ciphertexts remembered.
pub(crate) const MAX_SEEN: usize = 10_000;

#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Seen {
    first: HashMap<String, u64>,
    order: VecDeque<String>,
}

impl Seen {
    /// The message id `key` was first seen in, if it was.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.first.get(key).copied()
    }

    /// Remember that `key` was opened in message `id`.
    pub(crate) fn insert(&mut self, key: String, id: u64) {
        if self.first.contains_key(&key) {
            return;
        }
        self.first.insert(key.clone(), id);
        self.order.push_back(key);
        while self.order.len() > MAX_SEEN {
            if let Some(old) = self.order.pop_front() {
                self.first.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_first_message() {
        let mut seen = Seen::default();
        assert_eq!(seen.get("a"), None);
        seen.insert("a".into(), 5);
        seen.insert("a".into(), 6);
        assert_eq!(seen.get("a"), Some(5));
    }
}

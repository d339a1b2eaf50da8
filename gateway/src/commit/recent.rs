//! Messages this committer stored recently, with everyone who has
//! acknowledged them since.
//!
//! Acknowledgements follow messages within seconds, so most checks of "does
//! this message exist, who sent it, was it already delivered to this user"
//! are answered here without asking the store. An entry is complete by
//! construction: every delivery mark passes through the committer thread,
//! so the marks held for a message are all it has. Completeness is kept
//! under the bounds by evicting whole messages, never single marks: a
//! message that is not here is asked of the in-flight decisions and the
//! store instead.
//!
//! Why bounded twice: the message count alone does not bound memory, since
//! one group message collects a mark from each member (up to
//! `--max-group-members`). Both the messages held and the marks held have a
//! cap; past either, the oldest messages leave with their marks. Marks are
//! per-message hash sets, so a check is O(1) however large the group.

use std::collections::{HashMap, HashSet, VecDeque};

use chatgw_protocol::{ConversationId, MessageId, UserId};

/// Messages remembered.
pub(super) const RECENT_MESSAGES: usize = 200_000;
/// Delivery marks remembered, over all messages.
pub(super) const RECENT_DELIVERY_MARKS: usize = 1_000_000;

type Key = (ConversationId, MessageId);

pub(super) struct RecentMessages {
    map: HashMap<Key, Recent>,
    /// Insertion order, for eviction; every key in `map` is here once.
    order: VecDeque<Key>,
    /// Marks over all entries of `map`.
    marks: usize,
    max_messages: usize,
    max_marks: usize,
}

struct Recent {
    from: UserId,
    system: bool,
    delivered: HashSet<UserId>,
}

/// What [`RecentMessages::first_delivery`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// The message is not held: ask elsewhere.
    Unknown,
    /// Already acknowledged by this user.
    Repeated,
    /// The first acknowledgement by this user, now recorded.
    First,
}

impl Default for RecentMessages {
    fn default() -> Self {
        Self::with_limits(RECENT_MESSAGES, RECENT_DELIVERY_MARKS)
    }
}

impl RecentMessages {
    pub(super) fn with_limits(max_messages: usize, max_marks: usize) -> Self {
        RecentMessages {
            map: HashMap::new(),
            order: VecDeque::new(),
            marks: 0,
            max_messages: max_messages.max(1),
            max_marks,
        }
    }

    pub(super) fn insert(&mut self, key: Key, from: UserId, system: bool) {
        while self.order.len() >= self.max_messages {
            self.evict_oldest();
        }
        if self.map.insert(key, Recent { from, system, delivered: HashSet::new() }).is_none() {
            self.order.push_back(key);
        }
    }

    /// The sender of a held message and whether it is a system message.
    pub(super) fn sender_of(&self, key: Key) -> Option<(UserId, bool)> {
        self.map.get(&key).map(|r| (r.from, r.system))
    }

    pub(super) fn contains(&self, key: Key) -> bool {
        self.map.contains_key(&key)
    }

    /// Record `user`'s acknowledgement of a held message, if it is the first.
    pub(super) fn first_delivery(&mut self, key: Key, user: UserId) -> Delivery {
        let Some(r) = self.map.get_mut(&key) else { return Delivery::Unknown };
        if !r.delivered.insert(user) {
            return Delivery::Repeated;
        }
        self.marks += 1;
        // May evict this very message; its mark then lives on in the
        // in-flight decisions until the writer has stored it.
        while self.marks > self.max_marks && !self.order.is_empty() {
            self.evict_oldest();
        }
        Delivery::First
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            if let Some(r) = self.map.remove(&old) {
                self.marks -= r.delivered.len();
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.marks = 0;
    }

    /// Messages held.
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Delivery marks held, over all messages.
    pub(super) fn marks(&self) -> usize {
        self.marks
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::GroupId;

    use super::*;

    const C: ConversationId = ConversationId::Group(GroupId(1));

    #[test]
    fn marks_of_a_large_group_are_bounded_and_whole_messages_leave() {
        let mut r = RecentMessages::with_limits(10, 25);
        for id in 1..=3 {
            r.insert((C, MessageId(id)), UserId(1), false);
        }
        for user in 2..=11 {
            assert_eq!(r.first_delivery((C, MessageId(1)), UserId(user)), Delivery::First);
            assert_eq!(r.first_delivery((C, MessageId(2)), UserId(user)), Delivery::First);
        }
        assert_eq!(r.first_delivery((C, MessageId(1)), UserId(5)), Delivery::Repeated);
        assert_eq!(r.marks(), 20);
        for user in 2..=7 {
            r.first_delivery((C, MessageId(3)), UserId(user));
        }
        // 26 marks: message 1, the oldest, left with its 10.
        assert_eq!(r.marks(), 16);
        assert_eq!(r.len(), 2);
        assert_eq!(r.first_delivery((C, MessageId(1)), UserId(5)), Delivery::Unknown, "gone whole, not forgotten");
        assert_eq!(r.sender_of((C, MessageId(3))), Some((UserId(1), false)));
        assert_eq!(r.first_delivery((C, MessageId(3)), UserId(7)), Delivery::Repeated, "complete while held");
    }

    #[test]
    fn messages_are_bounded_oldest_first() {
        let mut r = RecentMessages::with_limits(3, 100);
        for id in 1..=5 {
            r.insert((C, MessageId(id)), UserId(1), id == 5);
            r.first_delivery((C, MessageId(id)), UserId(2));
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.marks(), 3);
        assert!(!r.contains((C, MessageId(2))));
        assert_eq!(r.sender_of((C, MessageId(5))), Some((UserId(1), true)));
        r.clear();
        assert_eq!((r.len(), r.marks()), (0, 0));
    }
}

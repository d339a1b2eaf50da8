//! What the committer decided in batches the writer has not stored yet.
//!
//! The committer prepares batch N+1 while the writer thread is still writing
//! batch N (and N-1...) to the store, so a store read alone would miss the
//! effects of those batches: a resend of a client id taken in batch N would
//! be stored twice, a second acknowledgement would make a second receipt
//! event, a read mark could move backwards. Each batch therefore keeps what
//! it decided here until the writer reports it done; every check looks here
//! first (newest batch first), then at the store.
//!
//! Bounded by the writer's queue: a batch leaves as soon as it is stored (or
//! refused, in which case the committer forgets everything anyway).

use std::collections::{HashMap, HashSet, VecDeque};

use chatgw_protocol::{ConversationId, GroupId, MessageId, UserId};

/// The decisions of one batch.
#[derive(Default)]
struct Decisions {
    /// The batch's number, as given to the writer.
    seq: u64,
    client_ids: HashMap<(UserId, String), (ConversationId, MessageId)>,
    delivered: HashSet<(ConversationId, MessageId, UserId)>,
    reads: HashMap<(ConversationId, UserId), MessageId>,
    /// Groups changed, which the membership cache must keep.
    touched: HashSet<GroupId>,
}

/// The decisions of every batch not yet stored, oldest first; the last one
/// is the batch being prepared.
#[derive(Default)]
pub(super) struct InFlight {
    batches: VecDeque<Decisions>,
}

impl InFlight {
    /// Start batch `seq`, dropping every batch the writer has finished
    /// (`done_through` and below).
    pub(super) fn begin(&mut self, seq: u64, done_through: u64) {
        while self.batches.front().is_some_and(|b| b.seq <= done_through) {
            self.batches.pop_front();
        }
        self.batches.push_back(Decisions { seq, ..Decisions::default() });
    }

    /// Forget everything: the writer refused a batch, so none of the later
    /// ones will be stored either.
    pub(super) fn clear(&mut self) {
        self.batches.clear();
    }

    fn current(&mut self) -> &mut Decisions {
        if self.batches.is_empty() {
            self.batches.push_back(Decisions::default());
        }
        self.batches.back_mut().expect("just made sure there is one")
    }

    pub(super) fn client_id(&self, from: UserId, client_id: &str) -> Option<(ConversationId, MessageId)> {
        let key = (from, client_id.to_owned());
        self.batches.iter().rev().find_map(|b| b.client_ids.get(&key).copied())
    }

    pub(super) fn take_client_id(&mut self, from: UserId, client_id: String, at: (ConversationId, MessageId)) {
        self.current().client_ids.insert((from, client_id), at);
    }

    pub(super) fn is_delivered(&self, c: ConversationId, id: MessageId, user: UserId) -> bool {
        self.batches.iter().any(|b| b.delivered.contains(&(c, id, user)))
    }

    pub(super) fn mark_delivered(&mut self, c: ConversationId, id: MessageId, user: UserId) {
        self.current().delivered.insert((c, id, user));
    }

    /// The newest read mark decided for `user` in `c`.
    pub(super) fn read_mark(&self, c: ConversationId, user: UserId) -> Option<MessageId> {
        self.batches.iter().rev().find_map(|b| b.reads.get(&(c, user)).copied())
    }

    pub(super) fn mark_read(&mut self, c: ConversationId, user: UserId, up_to: MessageId) {
        self.current().reads.insert((c, user), up_to);
    }

    pub(super) fn is_touched(&self, g: GroupId) -> bool {
        self.batches.iter().any(|b| b.touched.contains(&g))
    }

    pub(super) fn touch(&mut self, g: GroupId) {
        self.current().touched.insert(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ConversationId = ConversationId::Group(GroupId(7));

    #[test]
    fn decisions_are_seen_until_the_writer_is_done_with_their_batch() {
        let mut f = InFlight::default();
        f.begin(1, 0);
        f.take_client_id(UserId(1), "a".into(), (C, MessageId(10)));
        f.mark_delivered(C, MessageId(10), UserId(2));
        f.mark_read(C, UserId(2), MessageId(10));
        f.touch(GroupId(7));
        f.begin(2, 0);
        f.mark_read(C, UserId(2), MessageId(12));
        assert_eq!(f.client_id(UserId(1), "a"), Some((C, MessageId(10))));
        assert!(f.is_delivered(C, MessageId(10), UserId(2)));
        assert_eq!(f.read_mark(C, UserId(2)), Some(MessageId(12)), "the newest batch wins");
        assert!(f.is_touched(GroupId(7)));
        // Batch 1 stored: its decisions are the store's business now.
        f.begin(3, 1);
        assert_eq!(f.client_id(UserId(1), "a"), None);
        assert!(!f.is_delivered(C, MessageId(10), UserId(2)));
        assert!(!f.is_touched(GroupId(7)));
        assert_eq!(f.read_mark(C, UserId(2)), Some(MessageId(12)), "batch 2 is still in flight");
        f.clear();
        assert_eq!(f.read_mark(C, UserId(2)), None);
    }
}

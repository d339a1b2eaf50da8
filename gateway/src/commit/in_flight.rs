//! What the committer decided in batches the writer has not stored yet.
//!
//! The committer prepares batch N+1 while the writer thread is still writing
//! batch N (and N-1...) to the store, so a store read alone would miss the
//! effects of those batches: a resend of a client id taken in batch N would
//! be stored twice, a second acknowledgement would make a second receipt
//! event, a read mark could move backwards. Each batch therefore keeps what
//! it decided here until the writer reports it done; every check looks here
//! first (the newest decision wins), then at the store.
//!
//! Bounded by the writer's queue: a batch leaves as soon as it is stored (or
//! refused, in which case the committer forgets everything anyway).

use std::collections::{HashMap, VecDeque};

use chatgw_protocol::{ConversationId, GroupId, MessageId, UserId};

/// The message a client id was taken for in a batch not yet stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Taken {
    pub(super) conversation: ConversationId,
    pub(super) id: MessageId,
    /// [`super::batch::digest`] of the message's kind and body.
    pub(super) digest: u64,
}

/// One decision, named so it can be forgotten once its batch is stored.
enum Decided {
    ClientId(UserId, String),
    Delivered(ConversationId, MessageId, UserId),
    Read(ConversationId, UserId),
    Touched(GroupId),
}

/// The decisions of every batch not yet stored, each tagged with the batch
/// that made it: one lookup per check however many batches are queued.
#[derive(Default)]
pub(super) struct InFlight {
    /// The batch being prepared.
    seq: u64,
    /// Per sender and client id: the message taken, the digest of its kind
    /// and body (to tell a resend from a conflicting reuse), and the batch.
    client_ids: HashMap<UserId, HashMap<String, (Taken, u64)>>,
    delivered: HashMap<(ConversationId, MessageId, UserId), u64>,
    reads: HashMap<(ConversationId, UserId), (MessageId, u64)>,
    /// Groups changed, which the membership cache must keep.
    touched: HashMap<GroupId, u64>,
    /// What each batch decided, oldest first.
    batches: VecDeque<(u64, Vec<Decided>)>,
}

impl InFlight {
    /// Start batch `seq`, forgetting what every batch the writer has
    /// finished (`done_through` and below) decided, unless a later batch
    /// decided the same thing again.
    pub(super) fn begin(&mut self, seq: u64, done_through: u64) {
        while self.batches.front().is_some_and(|(s, _)| *s <= done_through) {
            if let Some((_, decided)) = self.batches.pop_front() {
                for d in decided {
                    self.forget(d, done_through);
                }
            }
        }
        self.seq = seq;
        self.batches.push_back((seq, Vec::new()));
    }

    fn forget(&mut self, d: Decided, done_through: u64) {
        match d {
            Decided::ClientId(from, client_id) => {
                if let Some(of_user) = self.client_ids.get_mut(&from) {
                    if of_user.get(&client_id).is_some_and(|e| e.1 <= done_through) {
                        of_user.remove(&client_id);
                    }
                    if of_user.is_empty() {
                        self.client_ids.remove(&from);
                    }
                }
            }
            Decided::Delivered(c, id, user) => {
                if self.delivered.get(&(c, id, user)).is_some_and(|s| *s <= done_through) {
                    self.delivered.remove(&(c, id, user));
                }
            }
            Decided::Read(c, user) => {
                if self.reads.get(&(c, user)).is_some_and(|e| e.1 <= done_through) {
                    self.reads.remove(&(c, user));
                }
            }
            Decided::Touched(g) => {
                if self.touched.get(&g).is_some_and(|s| *s <= done_through) {
                    self.touched.remove(&g);
                }
            }
        }
    }

    /// Forget everything: the writer refused a batch, so none of the later
    /// ones will be stored either.
    pub(super) fn clear(&mut self) {
        self.client_ids.clear();
        self.delivered.clear();
        self.reads.clear();
        self.touched.clear();
        self.batches.clear();
    }

    fn record(&mut self, d: Decided) {
        match self.batches.back_mut() {
            Some((_, decided)) => decided.push(d),
            None => self.batches.push_back((self.seq, vec![d])),
        }
    }

    pub(super) fn client_id(&self, from: UserId, client_id: &str) -> Option<Taken> {
        self.client_ids.get(&from)?.get(client_id).map(|&(taken, _)| taken)
    }

    pub(super) fn take_client_id(&mut self, from: UserId, client_id: String, taken: Taken) {
        self.client_ids.entry(from).or_default().insert(client_id.clone(), (taken, self.seq));
        self.record(Decided::ClientId(from, client_id));
    }

    pub(super) fn is_delivered(&self, c: ConversationId, id: MessageId, user: UserId) -> bool {
        self.delivered.contains_key(&(c, id, user))
    }

    pub(super) fn mark_delivered(&mut self, c: ConversationId, id: MessageId, user: UserId) {
        self.delivered.insert((c, id, user), self.seq);
        self.record(Decided::Delivered(c, id, user));
    }

    /// The newest read mark decided for `user` in `c`.
    pub(super) fn read_mark(&self, c: ConversationId, user: UserId) -> Option<MessageId> {
        self.reads.get(&(c, user)).map(|e| e.0)
    }

    pub(super) fn mark_read(&mut self, c: ConversationId, user: UserId, up_to: MessageId) {
        self.reads.insert((c, user), (up_to, self.seq));
        self.record(Decided::Read(c, user));
    }

    pub(super) fn is_touched(&self, g: GroupId) -> bool {
        self.touched.contains_key(&g)
    }

    pub(super) fn touch(&mut self, g: GroupId) {
        self.touched.insert(g, self.seq);
        self.record(Decided::Touched(g));
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
        let taken = Taken { conversation: C, id: MessageId(10), digest: 3 };
        f.take_client_id(UserId(1), "a".into(), taken);
        f.mark_delivered(C, MessageId(10), UserId(2));
        f.mark_read(C, UserId(2), MessageId(10));
        f.touch(GroupId(7));
        f.begin(2, 0);
        f.mark_read(C, UserId(2), MessageId(12));
        assert_eq!(f.client_id(UserId(1), "a"), Some(taken));
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

//! One order for every commit pipeline: ids, live dispatch, and what a
//! `sync` may read.
//!
//! With the embedded store an event's inbox position is its id, and a
//! connection drops a live event at or below the position it has. With
//! several pipelines committing at once that asks for two things:
//!
//! - live events must reach each core's mailbox in id order per inbox, so
//!   a pipeline may not post a batch's events while a batch with lower
//!   ids (of another pipeline) is still unposted;
//! - a `sync` must not read a batch with higher ids that was committed
//!   before one with lower ids: the device's cursor would jump over the
//!   lower one for good.
//!
//! So ids are handed out in ranges, one range per *ticket*: a batch
//! reserves a range for the requests it took (and more ranges, each with
//! its own ticket, if it needs more ids than it guessed), and every id of
//! ticket `t` is below every id of ticket `t + 1`. Dispatch posts tickets
//! strictly in order ([`Sequencer::wait_turn`], [`Sequencer::release`]);
//! the work of a batch (preparing it, encoding its records, committing,
//! encoding its frames) is done before its turn comes, so pipelines only
//! wait for each other to post. Readers cap inbox scans at the
//! [`Sequencer::horizon`]: the first id of the oldest ticket not yet
//! released, below which every batch is committed.
//!
//! Tickets are never skipped: a batch refused by the store, or whose
//! preparation failed, still takes its turn (its requesters are told).

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Condvar, Mutex, PoisonError,
    },
    time::Duration,
};

use chatgw_protocol::{MessageId, Snowflake};

/// The ids one ticket may hand out: `first`, then counting on from it
/// (without the clock, so the range stays below the next ticket's).
#[derive(Debug)]
pub(super) struct IdRange {
    pub(super) ticket: u64,
    next: Option<MessageId>,
    counter: Snowflake,
    last: MessageId,
}

impl IdRange {
    /// The next id of the range, `None` once it is used up.
    pub(super) fn next(&mut self) -> Option<MessageId> {
        if let Some(first) = self.next.take() {
            return Some(first);
        }
        if self.counter.last() >= self.last {
            return None;
        }
        // A clock reading of zero makes the generator count on from its
        // last id, carrying sequence overflow into the time bits exactly as
        // the shared generator did when it reserved the range.
        Some(self.counter.next_at(0))
    }

    pub(super) fn contains(&self, id: MessageId) -> bool {
        id <= self.last
    }
}

struct Ids {
    generator: Snowflake,
    node: u16,
    next_ticket: u64,
    /// First id of every ticket not yet released, by ticket.
    outstanding: BTreeMap<u64, MessageId>,
}

/// Shared by every pipeline of one gateway (see the module docs).
pub(crate) struct Sequencer {
    ids: Mutex<Ids>,
    /// The next ticket to post.
    turn: Mutex<u64>,
    turned: Condvar,
    /// See [`Sequencer::horizon`].
    horizon: AtomicU64,
}

/// How long a pipeline waits for its turn before it says so in the log
/// (and goes on waiting: skipping a turn would break the order).
const SLOW_TURN: Duration = Duration::from_secs(10);

impl Sequencer {
    /// Ids for `node`, above `high_water` (the largest id the store holds).
    pub(crate) fn new(node: u16, high_water: MessageId) -> Self {
        let generator = Snowflake::new(node).resume_after(high_water);
        let horizon = AtomicU64::new(generator.last().0.saturating_add(1));
        Sequencer {
            ids: Mutex::new(Ids { generator, node, next_ticket: 0, outstanding: BTreeMap::new() }),
            turn: Mutex::new(0),
            turned: Condvar::new(),
            horizon,
        }
    }

    /// A new ticket with `n` (at least one) ids, all above every id handed
    /// out before.
    pub(super) fn reserve(&self, n: usize) -> IdRange {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let first = ids.generator.next_id();
        for _ in 1..n.max(1) {
            ids.generator.next_at(0);
        }
        let last = ids.generator.last();
        let ticket = ids.next_ticket;
        ids.next_ticket += 1;
        ids.outstanding.insert(ticket, first);
        Self::update_horizon(&ids, &self.horizon);
        let counter = Snowflake::new(ids.node).resume_after(first);
        IdRange { ticket, next: Some(first), counter, last }
    }

    /// Hand out ids above `floor` from now on (after a store reopened).
    pub(super) fn resume_after(&self, floor: MessageId) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let generator = std::mem::replace(&mut ids.generator, Snowflake::new(0));
        ids.generator = generator.resume_after(floor);
    }

    /// Every inbox position below this is committed for good (positions
    /// are ids with the embedded store): a `sync` reads below it only.
    pub(crate) fn horizon(&self) -> MessageId {
        MessageId(self.horizon.load(Ordering::Acquire))
    }

    /// Block until every ticket before `ticket` has been released.
    pub(super) fn wait_turn(&self, ticket: u64) {
        let mut turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        while *turn < ticket {
            let (t, waited) = self.turned.wait_timeout(turn, SLOW_TURN).unwrap_or_else(PoisonError::into_inner);
            turn = t;
            if waited.timed_out() && *turn < ticket {
                tracing::warn!(ticket, turn = *turn, "a commit pipeline waits long for its turn to dispatch");
            }
        }
    }

    /// `ticket` is committed (or refused): its ids are final, so the
    /// horizon moves past them. Call in turn, before posting its events.
    pub(super) fn release(&self, ticket: u64) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.outstanding.remove(&ticket);
        Self::update_horizon(&ids, &self.horizon);
    }

    fn update_horizon(ids: &Ids, horizon: &AtomicU64) {
        let h = match ids.outstanding.first_key_value() {
            Some((_, first)) => first.0,
            None => ids.generator.last().0.saturating_add(1),
        };
        horizon.store(h, Ordering::Release);
    }

    /// `ticket`'s events are posted: the next ticket may post.
    pub(super) fn pass_turn(&self, ticket: u64) {
        let mut turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert_eq!(*turn, ticket, "tickets pass in order");
        *turn = ticket + 1;
        self.turned.notify_all();
    }
}

impl Sequencer {
    /// A sequencer continuing `generator` (tests building one batch by hand).
    pub(super) fn with_generator(mut generator: Snowflake) -> Self {
        // The node is in every id; one id is spent to learn it.
        let probe = generator.next_id();
        let node = u16::try_from((probe.0 >> 12) & u64::from(Snowflake::MAX_NODE)).unwrap_or(0);
        let s = Sequencer::new(node, probe);
        s.resume_after(generator.last());
        s
    }
}

/// The ids of one batch: the ranges it reserved, oldest first.
pub(super) struct BatchIds {
    sequencer: Arc<Sequencer>,
    ranges: Vec<IdRange>,
    last: MessageId,
}

/// Ids reserved with each ticket beyond the first: a batch that needs more
/// than it guessed (group receipts, group changes) takes another ticket.
const MORE: usize = 64;

impl BatchIds {
    pub(super) fn new(sequencer: Arc<Sequencer>) -> Self {
        BatchIds { sequencer, ranges: Vec::new(), last: MessageId(0) }
    }

    pub(super) fn sequencer(&self) -> &Arc<Sequencer> {
        &self.sequencer
    }

    /// Start a batch of `requests` requests: one ticket with ids for most
    /// batches (a send takes one id, a group change two).
    pub(super) fn begin(&mut self, requests: usize) {
        self.ranges.clear();
        self.ranges.push(self.sequencer.reserve(requests.saturating_mul(2).saturating_add(1)));
    }

    pub(super) fn next_id(&mut self) -> MessageId {
        loop {
            if let Some(id) = self.ranges.last_mut().and_then(IdRange::next) {
                self.last = id;
                return id;
            }
            self.ranges.push(self.sequencer.reserve(MORE));
        }
    }

    /// The largest id this batch may have used (the end of its last range).
    pub(super) fn last(&self) -> MessageId {
        self.ranges.last().map_or(self.last, |r| r.last.max(self.last))
    }

    /// The batch's tickets, for the writer; the next batch reserves anew.
    pub(super) fn take(&mut self) -> Vec<IdRange> {
        std::mem::take(&mut self.ranges)
    }
}

impl From<Snowflake> for BatchIds {
    fn from(generator: Snowflake) -> Self {
        BatchIds::new(Arc::new(Sequencer::with_generator(generator)))
    }
}

/// Where each ticket's outcomes end: outcomes `[previous end, end)` carry
/// events with ids of that ticket's range (outcomes without an event go
/// with the events around them). Every ticket is listed, in order.
pub(super) fn segments(events: impl Iterator<Item = Option<MessageId>>, ranges: &[IdRange]) -> Vec<(u64, usize)> {
    let mut out = Vec::with_capacity(ranges.len());
    let mut r = 0;
    let mut len = 0;
    for (i, event) in events.enumerate() {
        len = i + 1;
        if let Some(e) = event {
            while r + 1 < ranges.len() && !ranges[r].contains(e) {
                out.push((ranges[r].ticket, i));
                r += 1;
            }
        }
    }
    for range in &ranges[r..] {
        out.push((range.ticket, len));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_split_by_the_range_of_their_event() {
        let s = Arc::new(Sequencer::new(0, MessageId(0)));
        let mut ids = BatchIds::new(s.clone());
        ids.begin(0);
        let a = ids.next_id();
        let b = ids.next_id();
        let c = ids.next_id();
        let tickets: Vec<u64> = ids.ranges.iter().map(|r| r.ticket).collect();
        assert_eq!(tickets.len(), 2, "one id guessed for no request, then one more ticket");
        let events = [Some(a), None, Some(b), Some(c), None];
        assert_eq!(segments(events.into_iter(), &ids.ranges), vec![(tickets[0], 2), (tickets[1], 5)]);
        assert_eq!(segments([None].into_iter(), &ids.ranges), vec![(tickets[0], 1), (tickets[1], 1)]);
    }

    #[test]
    fn ranges_are_ordered_by_ticket_and_the_horizon_waits_for_the_oldest() {
        let s = Sequencer::new(3, MessageId(0));
        let mut a = s.reserve(3);
        let mut b = s.reserve(2);
        let a_ids: Vec<_> = std::iter::from_fn(|| a.next()).collect();
        let b_ids: Vec<_> = std::iter::from_fn(|| b.next()).collect();
        assert_eq!((a_ids.len(), b_ids.len()), (3, 2), "a range hands out exactly what was reserved");
        assert!(a_ids.windows(2).all(|w| w[0] < w[1]));
        assert!(a_ids.iter().all(|x| b_ids.iter().all(|y| x < y)), "every id of ticket 0 is below ticket 1's");
        assert_eq!(s.horizon(), a_ids[0], "nothing of ticket 0 is released");
        s.release(b.ticket);
        assert_eq!(s.horizon(), a_ids[0], "ticket 1 released first does not move it past ticket 0");
        s.release(a.ticket);
        assert!(s.horizon() > b_ids[1]);
        let c = s.reserve(1);
        assert!(s.horizon() > b_ids[1] && s.horizon() <= c.last);
    }

    #[test]
    fn ranges_carry_sequence_overflow_like_the_generator() {
        let s = Sequencer::new(1, MessageId(0));
        let mut r = s.reserve(10_000);
        let mut prev = MessageId(0);
        let mut n = 0;
        while let Some(id) = r.next() {
            assert!(id > prev);
            assert_eq!((id.0 >> 12) & 0x3ff, 1, "node bits kept");
            prev = id;
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert!(s.reserve(1).next().is_some_and(|id| id > prev));
    }

    #[test]
    fn turns_pass_in_ticket_order() {
        let s = Arc::new(Sequencer::new(0, MessageId(0)));
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<u64> = (0..4).map(|_| s.reserve(1).ticket).collect();
        let threads: Vec<_> = tickets
            .iter()
            .rev()
            .map(|&t| {
                let (s, order) = (s.clone(), order.clone());
                std::thread::spawn(move || {
                    s.wait_turn(t);
                    s.release(t);
                    order.lock().unwrap().push(t);
                    s.pass_turn(t);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), tickets);
    }
}

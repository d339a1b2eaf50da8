//! Which source positions may be committed.
//!
//! An event is *undecided* while a notification it contributes to is still
//! waiting for its grace period, being handed off, or waiting to be retried.
//! A position may be committed only when every event at or before it is
//! decided, so the commit of a partition is its *watermark*: the lowest
//! undecided offset, or one past the highest offset seen when nothing is
//! undecided. Commits follow Kafka's convention: the committed offset is
//! the next one to read.
//!
//! Why per event and not per batch: a message to a user whose grace period
//! runs for two seconds must not hold back the commit of a later receipt
//! forever, but it must hold back everything after it, because a source
//! restarted from a commit replays only what follows the commit. So after
//! a crash, what is repeated is exactly the window between the watermark
//! and the highest position read: the in-flight window.

use std::collections::{BTreeMap, HashMap};

/// Where an event sits in its source: a partition and an offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The partition (0 for a source without partitions).
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// Undecided events and commit points of every partition read.
#[derive(Debug, Default)]
pub struct Watermarks {
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Undecided offsets, each with the number of notifications it still
    /// waits for.
    undecided: BTreeMap<i64, u32>,
    /// One past the highest offset seen.
    next: i64,
    /// The last commit made (or the point reading began: nothing before it
    /// needs committing).
    committed: Option<i64>,
}

impl Partition {
    fn watermark(&self) -> i64 {
        self.undecided.keys().next().copied().unwrap_or(self.next)
    }
}

impl Watermarks {
    /// Record that the event at `pos` was read and is held by `holds`
    /// notifications (0: decided as soon as read).
    pub fn seen(&mut self, pos: Position, holds: u32) {
        let p = self.partitions.entry(pos.partition).or_insert_with(|| Partition {
            // Reading began here: the source's own commit is at or before it.
            committed: Some(pos.offset),
            next: pos.offset,
            ..Partition::default()
        });
        p.next = p.next.max(pos.offset + 1);
        if holds > 0 {
            *p.undecided.entry(pos.offset).or_default() += holds;
        }
    }

    /// One notification the event at `pos` waited for is decided.
    pub fn release(&mut self, pos: Position) {
        let Some(p) = self.partitions.get_mut(&pos.partition) else { return };
        if let Some(n) = p.undecided.get_mut(&pos.offset) {
            *n -= 1;
            if *n == 0 {
                p.undecided.remove(&pos.offset);
            }
        }
    }

    /// Partitions whose watermark moved past their last commit, with the
    /// offset to commit.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        let mut out: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .filter_map(|(&part, p)| {
                let w = p.watermark();
                (p.committed.is_none_or(|c| w > c)).then_some((part, w))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The source committed `offset` for `partition`.
    pub fn committed(&mut self, partition: i32, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Forget a partition (revoked, or the source was reset): its undecided
    /// events are not committed and will be read again by whoever reads it
    /// next.
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Events read but not committable yet, over all partitions: what a
    /// crash now would make the next reader repeat.
    pub fn in_flight(&self) -> u64 {
        self.partitions.values().map(|p| u64::try_from(p.next - p.watermark()).unwrap_or(0)).sum()
    }

    /// Events read but not yet committed, over all partitions.
    pub fn commit_lag(&self) -> u64 {
        self.partitions.values().map(|p| u64::try_from(p.next - p.committed.unwrap_or(p.next)).unwrap_or(0)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> Position {
        Position { partition: 0, offset }
    }

    #[test]
    fn decided_events_commit_past_themselves() {
        let mut w = Watermarks::default();
        w.seen(at(10), 0);
        w.seen(at(11), 0);
        assert_eq!(w.to_commit(), vec![(0, 12)]);
        w.committed(0, 12);
        assert_eq!(w.to_commit(), vec![]);
    }

    #[test]
    fn the_watermark_stops_at_the_lowest_undecided_event() {
        let mut w = Watermarks::default();
        w.seen(at(5), 0);
        w.seen(at(6), 2);
        w.seen(at(7), 1);
        w.seen(at(8), 0);
        assert_eq!(w.to_commit(), vec![(0, 6)]);
        w.release(at(7));
        assert_eq!(w.to_commit(), vec![(0, 6)], "a later decision does not move past an earlier hold");
        w.release(at(6));
        assert_eq!(w.to_commit(), vec![(0, 6)], "one of two holds left");
        assert_eq!(w.in_flight(), 3);
        w.release(at(6));
        assert_eq!(w.to_commit(), vec![(0, 9)]);
        assert_eq!(w.in_flight(), 0);
    }

    #[test]
    fn a_partition_starting_undecided_has_nothing_to_commit() {
        let mut w = Watermarks::default();
        w.seen(Position { partition: 3, offset: 40 }, 1);
        assert_eq!(w.to_commit(), vec![]);
        assert_eq!(w.commit_lag(), 1);
    }

    #[test]
    fn a_forgotten_partition_is_never_committed() {
        let mut w = Watermarks::default();
        w.seen(Position { partition: 1, offset: 0 }, 1);
        w.seen(Position { partition: 2, offset: 0 }, 0);
        w.forget(1);
        w.release(Position { partition: 1, offset: 0 });
        assert_eq!(w.to_commit(), vec![(2, 1)]);
    }
}

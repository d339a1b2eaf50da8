//! Which part of a run one process, and one thread in it, does.
//!
//! A run's items (connections for `connect`, pairs for `one-to-one` and
//! `reconnect-storm`, groups for `group`) are dealt round-robin over
//! *lanes*: `--procs` processes times `--threads` threads each, item `i`
//! going to lane `i % lanes`, and process `w` owning lanes
//! `w * threads .. (w + 1) * threads`. Everything derived from an item's
//! index (its user ids, its place on the ramp and the message schedule) is
//! global, so processes never collide on a user id, the open-loop
//! schedules of all processes add up to the one the command line asked for,
//! and a pair or a group, being one item, always lives in one thread of one
//! process: whatever is checked per pair or per group (lost, duplicated,
//! fan-out completion) needs nothing from anywhere else.

use crate::scenarios::schedule::owner_of;

/// This process's place in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    /// Which worker process this is (0 when there is only one).
    pub(crate) index: usize,
    /// Worker processes in the run.
    pub(crate) count: usize,
    /// Threads per process.
    pub(crate) threads: usize,
}

impl Share {
    /// Lanes in the whole run.
    pub(crate) fn lanes(&self) -> usize {
        self.count.max(1) * self.threads.max(1)
    }

    /// The global lane of this process's thread `t`.
    pub(crate) fn lane(&self, t: usize) -> usize {
        self.index * self.threads.max(1) + t
    }

    /// Whether item `i` belongs to this process's thread `t`.
    pub(crate) fn owns(&self, t: usize, i: u64) -> bool {
        owner_of(i, self.lanes()) == self.lane(t)
    }

    /// The index of item `i` among those of its lane (0, 1, 2, ...).
    pub(crate) fn local_index(&self, i: u64) -> usize {
        (i / self.lanes() as u64) as usize
    }

    /// How many of `total` items process `process` owns.
    pub(crate) fn items_of(&self, process: usize, total: u64) -> u64 {
        let lanes = self.lanes() as u64;
        let threads = self.threads.max(1) as u64;
        let first = process as u64 * threads;
        (first..first + threads).map(|lane| total / lanes + u64::from(lane < total % lanes)).sum()
    }

    /// How many of `total` items this process owns.
    pub(crate) fn items(&self, total: u64) -> u64 {
        self.items_of(self.index, total)
    }

    /// The most items any one process owns.
    pub(crate) fn max_items(&self, total: u64) -> u64 {
        (0..self.count.max(1)).map(|w| self.items_of(w, total)).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_has_exactly_one_owner() {
        for (count, threads, total) in [(1usize, 1usize, 7u64), (3, 1, 40_000), (2, 3, 1001), (4, 2, 3)] {
            let mut owners = vec![0u32; total as usize];
            let mut counted = 0;
            for index in 0..count {
                let s = Share { index, count, threads };
                counted += s.items(total);
                for t in 0..threads {
                    for i in 0..total {
                        if s.owns(t, i) {
                            owners[i as usize] += 1;
                        }
                    }
                }
            }
            assert!(owners.iter().all(|&n| n == 1), "{count} x {threads}");
            assert_eq!(counted, total);
        }
    }

    #[test]
    fn shares_are_balanced_and_local_indices_dense() {
        let s = Share { index: 1, count: 3, threads: 1 };
        assert_eq!(s.items(40_000), 13_333);
        assert_eq!(s.max_items(40_000), 13_334);
        assert_eq!(s.lanes(), 3);
        // Process 1 of 3 owns items 1, 4, 7, ...: local indices 0, 1, 2.
        assert!(s.owns(0, 4) && !s.owns(0, 5));
        assert_eq!((s.local_index(1), s.local_index(4), s.local_index(7)), (0, 1, 2));
        let two = Share { index: 0, count: 2, threads: 2 };
        assert_eq!(two.lane(1), 1);
        assert_eq!(Share { index: 1, ..two }.lane(0), 2);
    }
}

//! A lazy hashed timer wheel of connection deadlines, one slot per second.
//!
//! A core used to walk every connection once a second to find the few whose
//! handshake, ping, pong, idle, token or close-grace deadline had come: with
//! hundreds of thousands of idle connections, that is the whole table each
//! second. The wheel holds one entry per connection, at the second of its
//! next deadline, so a tick touches only the connections due.
//!
//! It is lazy: an entry names a connection (slot and generation), not which
//! deadline it stands for. A frame that pushes a deadline later moves
//! nothing; the entry fires at the old second, the engine finds nothing due
//! and arms the connection again at its new deadline. Only a deadline that
//! moves earlier (a close starting its grace, the upgrade answering) arms a
//! second entry; the connection's `armed_at` says which entry is current,
//! and the other is dropped when it fires. Entries for closed connections
//! are dropped the same way (their generation no longer matches).
//!
//! A deadline more than [`SPAN`] seconds away is armed at the last second
//! the wheel reaches and armed again from there, so each bucket only ever
//! holds entries of one second and an entry never fires early.
//!
//! Cost: 8 bytes per entry (slot and generation; a bucket's `Vec` may hold
//! up to twice that in spare capacity) plus 4 in the connection
//! (`armed_at`), and [`SPAN`] empty buckets per core.

/// Seconds the wheel covers; a power of two.
pub(crate) const SPAN: u32 = 256;

/// One armed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

pub(crate) struct TimerWheel {
    buckets: Vec<Vec<Entry>>,
    /// The next second not yet expired.
    next: u32,
    len: usize,
}

impl TimerWheel {
    pub(crate) fn new() -> Self {
        TimerWheel { buckets: (0..SPAN).map(|_| Vec::new()).collect(), next: 0, len: 0 }
    }

    /// Arm `entry` for second `at` (clamped to what the wheel can hold: no
    /// earlier than the next second it expires, no later than [`SPAN`]
    /// seconds after that). Returns the second it will fire.
    pub(crate) fn arm(&mut self, entry: Entry, at: u32) -> u32 {
        let at = self.fires_at(at);
        self.buckets[(at % SPAN) as usize].push(entry);
        self.len += 1;
        at
    }

    /// The second an entry armed for `at` would fire.
    pub(crate) fn fires_at(&self, at: u32) -> u32 {
        at.clamp(self.next, self.next.saturating_add(SPAN - 1))
    }

    /// Take every entry due up to and including second `now`, with the
    /// second each was armed for. Seconds skipped by a late tick are
    /// expired too.
    pub(crate) fn expire(&mut self, now: u32, mut fired: impl FnMut(Entry, u32)) {
        while self.next <= now {
            let second = self.next;
            let bucket = std::mem::take(&mut self.buckets[(second % SPAN) as usize]);
            self.len -= bucket.len();
            self.next += 1;
            for e in &bucket {
                fired(*e, second);
            }
            // Keep the bucket's allocation unless it is large and will
            // likely not be again.
            let mut bucket = bucket;
            bucket.clear();
            if bucket.capacity() <= 1024 {
                let slot = &mut self.buckets[(second % SPAN) as usize];
                if slot.is_empty() {
                    *slot = bucket;
                }
            }
            if self.next == u32::MAX {
                break;
            }
        }
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(slot: u32) -> Entry {
        Entry { slot, generation: 1 }
    }

    fn expire(w: &mut TimerWheel, now: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        w.expire(now, |e, at| out.push((e.slot, at)));
        out
    }

    #[test]
    fn entries_fire_at_their_second_and_not_before() {
        let mut w = TimerWheel::new();
        assert_eq!(w.arm(e(1), 3), 3);
        assert_eq!(w.arm(e(2), 5), 5);
        assert_eq!(w.len(), 2);
        assert_eq!(expire(&mut w, 2), vec![]);
        assert_eq!(expire(&mut w, 3), vec![(1, 3)]);
        assert_eq!(expire(&mut w, 4), vec![]);
        assert_eq!(expire(&mut w, 5), vec![(2, 5)]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn a_late_tick_expires_every_skipped_second() {
        let mut w = TimerWheel::new();
        w.arm(e(1), 2);
        w.arm(e(2), 7);
        w.arm(e(3), 9);
        assert_eq!(expire(&mut w, 8), vec![(1, 2), (2, 7)]);
        assert_eq!(expire(&mut w, 9), vec![(3, 9)]);
    }

    #[test]
    fn past_and_far_deadlines_are_clamped_never_early_or_lost() {
        let mut w = TimerWheel::new();
        expire(&mut w, 10);
        // Already past: fires at the next tick.
        assert_eq!(w.arm(e(1), 4), 11);
        // Beyond the wheel: fires at its last second, to be armed again.
        assert_eq!(w.arm(e(2), 10_000), 11 + SPAN - 1);
        assert_eq!(expire(&mut w, 11), vec![(1, 11)]);
        assert_eq!(expire(&mut w, 11 + SPAN - 2), vec![]);
        assert_eq!(expire(&mut w, 11 + SPAN - 1), vec![(2, 11 + SPAN - 1)]);
    }

    #[test]
    fn a_tick_touches_only_due_entries() {
        let mut w = TimerWheel::new();
        for slot in 0..10_000 {
            w.arm(e(slot), 100 + slot % 50);
        }
        let mut touched = 0;
        w.expire(100, |_, _| touched += 1);
        assert_eq!(touched, 200);
        assert_eq!(w.len(), 9_800);
    }
}

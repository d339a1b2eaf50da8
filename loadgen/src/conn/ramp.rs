//! Opening connections at a fixed rate.
//!
//! A gateway sees a thundering herd very differently from a steady arrival
//! rate (accept backlog, handshake CPU, store reads for `sync`), so
//! connections are opened on an open-loop schedule: connection `k` is
//! started `k / rate` seconds after the ramp begins, by whichever thread owns
//! it, whether or not earlier ones have come up. A thread that fell behind
//! opens everything overdue at once and the handshake latency shows it.

use crate::scenarios::schedule::Schedule;

/// The connections one thread opens, in order.
#[derive(Debug)]
pub(crate) struct Ramp {
    schedule: Schedule,
    start_ns: u64,
    next: u64,
    total: u64,
}

impl Ramp {
    /// `total` connections at `rate` per second from clock time `start_ns`.
    pub(crate) fn new(rate: u64, total: u64, start_ns: u64) -> Self {
        Ramp { schedule: Schedule::new(rate), start_ns, next: 0, total }
    }

    /// The next connection index due by `now_ns` that `owns` accepts, if
    /// any; indices owned by other threads are passed over.
    pub(crate) fn next_due(&mut self, now_ns: u64, owns: impl Fn(u64) -> bool) -> Option<u64> {
        while self.next < self.total && self.due_at(self.next) <= now_ns {
            let k = self.next;
            self.next += 1;
            if owns(k) {
                return Some(k);
            }
        }
        None
    }

    /// Every connection has been started.
    pub(crate) fn done(&self) -> bool {
        self.next >= self.total
    }

    /// When the next connection is due, if any is left.
    pub(crate) fn next_at(&self) -> Option<u64> {
        (!self.done()).then(|| self.due_at(self.next))
    }

    fn due_at(&self, k: u64) -> u64 {
        self.start_ns.saturating_add(self.schedule.offset_ns(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_what_is_due_and_only_its_own() {
        let mut r = Ramp::new(1000, 10, 5_000_000);
        assert_eq!(r.next_due(4_999_999, |_| true), None);
        assert_eq!(r.next_at(), Some(5_000_000));
        // At 7.5 ms, connections 0, 1, 2 are due; this thread owns the even ones.
        let mut got = Vec::new();
        while let Some(k) = r.next_due(7_500_000, |k| k % 2 == 0) {
            got.push(k);
        }
        assert_eq!(got, [0, 2]);
        assert_eq!(r.next_at(), Some(8_000_000));
        while r.next_due(u64::MAX, |_| true).is_some() {}
        assert!(r.done());
        assert_eq!(r.next_at(), None);
    }
}

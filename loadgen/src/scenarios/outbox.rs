//! An outbox: the messages a device has to send that the gateway has not
//! answered with `sent` yet, as the protocol's recommended client loop
//! keeps them (docs/PROTOCOL.md 1.7).
//!
//! A message enters when it is due and leaves when its `sent` arrives,
//! however many times it was written meanwhile: every write carries the
//! same client id, so a rewrite of a message the gateway had stored is
//! answered `duplicate: true` with the original id, never stored twice.
//! Writes are counted (first or again) because the scenarios report
//! resends apart, and the time of the last write is kept so that a write
//! lost with its connection, or unanswered for too long, is written again.
//! The reconnect storm rewrites a sender's whole outbox once it is synced;
//! the soak rewrites what its connection lost and what went unanswered for
//! a while. `P` is what a scenario keeps per message besides.

use std::collections::BTreeMap;

/// A message without its `sent`.
#[derive(Debug)]
pub(crate) struct Unanswered<P> {
    /// When the schedule meant it to be sent (ns).
    pub(crate) intended: u64,
    /// Times written (0: due while it could not be written).
    pub(crate) writes: u32,
    /// When it was last written on the current connection (None: not since
    /// the device came up again).
    pub(crate) written_at: Option<u64>,
    /// What the scenario keeps.
    pub(crate) more: P,
}

/// Which write of a message this was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    First,
    Again,
}

/// Message number -> its unanswered send, in order.
#[derive(Debug)]
pub(crate) struct Outbox<P>(BTreeMap<u64, Unanswered<P>>);

impl<P> Default for Outbox<P> {
    fn default() -> Self {
        Outbox(BTreeMap::new())
    }
}

impl<P> Outbox<P> {
    /// Message `n`, intended at `intended`, is due (not written yet).
    pub(crate) fn due(&mut self, n: u64, intended: u64, more: P) {
        self.0.insert(n, Unanswered { intended, writes: 0, written_at: None, more });
    }

    /// Message `n` was written at `now`; which write it was (None if it is
    /// not in the outbox).
    pub(crate) fn wrote(&mut self, n: u64, now: u64) -> Option<Write> {
        let p = self.0.get_mut(&n)?;
        p.writes += 1;
        p.written_at = Some(now);
        Some(if p.writes == 1 { Write::First } else { Write::Again })
    }

    /// Its `sent` came: message `n` leaves (None: it had left already, a
    /// second answer to a rewrite).
    pub(crate) fn answered(&mut self, n: u64) -> Option<Unanswered<P>> {
        self.0.remove(&n)
    }

    /// Message `n`, if unanswered.
    pub(crate) fn get(&self, n: u64) -> Option<&Unanswered<P>> {
        self.0.get(&n)
    }

    /// Message `n`, if unanswered, to change.
    pub(crate) fn get_mut(&mut self, n: u64) -> Option<&mut Unanswered<P>> {
        self.0.get_mut(&n)
    }

    /// Every unanswered message number, in order.
    pub(crate) fn numbers(&self) -> Vec<u64> {
        self.0.keys().copied().collect()
    }

    /// The messages to write at `now`: those not written on the current
    /// connection, and those unanswered for `resend_after_ns` or more.
    pub(crate) fn to_write(&self, now: u64, resend_after_ns: u64) -> Vec<u64> {
        let due = |p: &Unanswered<P>| p.written_at.is_none_or(|at| now.saturating_sub(at) >= resend_after_ns);
        self.0.iter().filter(|(_, p)| due(p)).map(|(&n, _)| n).collect()
    }

    /// The connection of the messages `mine` selects is gone: their writes
    /// went with it. Returns how many had been written on it.
    pub(crate) fn connection_lost(&mut self, mine: impl Fn(&P) -> bool) -> u64 {
        let lost = self.0.values_mut().filter(|p| mine(&p.more)).filter_map(|p| p.written_at.take());
        lost.count() as u64
    }

    /// Unanswered messages.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Nothing unanswered.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_until_the_answer() {
        let mut o = Outbox::default();
        o.due(7, 100, ());
        assert_eq!(o.wrote(7, 150), Some(Write::First));
        assert_eq!(o.wrote(7, 250), Some(Write::Again));
        assert_eq!(o.wrote(8, 250), None, "not due");
        let p = o.answered(7).unwrap();
        assert_eq!((p.intended, p.writes, p.written_at), (100, 2, Some(250)));
        assert!(o.answered(7).is_none(), "a second answer finds nothing");
        assert!(o.is_empty());
    }

    #[test]
    fn what_a_lost_connection_carried_and_what_went_unanswered_is_written_again() {
        let mut o = Outbox::default();
        for (n, device) in [(1, 0), (2, 1), (3, 0)] {
            o.due(n, 0, device);
        }
        assert_eq!(o.to_write(0, 1_000), [1, 2, 3], "never written");
        o.wrote(1, 10);
        o.wrote(2, 10);
        assert_eq!(o.to_write(500, 1_000), [3]);
        assert_eq!(o.to_write(1_010, 1_000), [1, 2, 3], "unanswered too long");
        assert_eq!(o.connection_lost(|&d| d == 0), 1, "3 was never written");
        assert_eq!(o.to_write(500, 1_000), [1, 3]);
        assert_eq!((o.numbers(), o.len()), (vec![1, 2, 3], 3));
    }
}

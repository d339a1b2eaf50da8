//! Reading an inbox by position when positions are claimed before their
//! events are written.
//!
//! The problem: writer A claims positions 1-3, writer B then claims 4-5 and
//! writes them first. A reader that returned 4 and 5 would page on from 5
//! and never read 1-3. And a writer that fails after its claim never writes
//! its block at all.
//!
//! The rule: a reader returns only the events of a gap-free run of
//! positions from where it starts. A missing position below a present one
//! is either still being written or a hole; the reader waits for it (ends
//! the page before it) until the missing position is old: until a row
//! above it, or the head row, was written more than [`HOLE_GRACE`] ago.
//! Positions are claimed in order, so the missing one was claimed before
//! that, and its writer has had longer than the grace to write it. Then
//! the reader closes it: it writes a hole marker at the position with `IF
//! NOT EXISTS`, the same condition every event row is written with. Paxos
//! decides each position once: either the event landed first (the marker
//! is refused, and the reader reads the event) or the marker did (the late
//! writer's conditional insert is refused and its commit fails, so no
//! commit ever reports an event that readers skipped). Holes are then
//! skipped like positions that hold nothing.
//!
//! So a position, once a reader passed it, never changes: what a reader
//! returns is final. The clock only decides when a hole is closed (how long
//! readers of that inbox wait), never what they see.

use std::ops::Range;

/// How long a claimed position may stay unwritten before readers close it
/// as a hole: well above the longest a commit's requests wait on a live
/// cluster (the driver's request timeout is 30 s), so only a writer that
/// failed or stalled loses its positions.
pub(super) const HOLE_GRACE_US: i64 = 60_000_000;

/// What a page row says about its position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// An event, written at this time (microseconds since the Unix epoch,
    /// the row's write time; `None` if the server did not say).
    Event(Option<i64>),
    /// A closed hole.
    Hole,
}

/// What to do after a page.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Every row was taken: read on from the new `next`.
    More,
    /// Positions in the range are missing below a row that is old: close
    /// them as holes, then read on.
    Close(Range<u64>),
    /// Positions from `next` are missing below a row that is recent: end
    /// the page here.
    Wait,
}

/// A page walked: how many leading rows to take, and the first position
/// not taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Walked {
    pub(super) take: usize,
    pub(super) next: u64,
    pub(super) then: Next,
}

fn old(found: Found, now_us: i64) -> bool {
    match found {
        Found::Hole => true,
        Found::Event(Some(at)) => now_us.saturating_sub(at) > HOLE_GRACE_US,
        Found::Event(None) => false,
    }
}

/// Walk `rows` (positions in increasing order, all at or above `next`)
/// from position `next`.
pub(super) fn walk(next: u64, rows: &[(u64, Found)], now_us: i64) -> Walked {
    let mut at = next;
    for (i, &(pos, found)) in rows.iter().enumerate() {
        if pos == at {
            at += 1;
            continue;
        }
        let then = if old(found, now_us) { Next::Close(at..pos) } else { Next::Wait };
        return Walked { take: i, next: at, then };
    }
    Walked { take: rows.len(), next: at, then: Next::More }
}

/// Positions missing at the end of the inbox, from `next` up to the head
/// `head` written at `head_at`: closed once the head is old (every claim is
/// then older than the grace), otherwise waited for.
pub(super) fn tail(next: u64, head: u64, head_at: Option<i64>, now_us: i64) -> Option<Range<u64>> {
    let stale = head_at.is_some_and(|at| now_us.saturating_sub(at) > HOLE_GRACE_US);
    (next <= head && stale).then(|| next..head + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000_000_000;
    const FRESH: Found = Found::Event(Some(NOW - 1_000));
    const OLD: Found = Found::Event(Some(NOW - HOLE_GRACE_US - 1));

    #[test]
    fn a_gap_free_run_is_taken_whole() {
        let w = walk(5, &[(5, FRESH), (6, Found::Hole), (7, FRESH)], NOW);
        assert_eq!(w, Walked { take: 3, next: 8, then: Next::More });
        assert_eq!(walk(5, &[], NOW), Walked { take: 0, next: 5, then: Next::More });
    }

    /// Writer B's block (4-5) landed before writer A's (1-3): the reader
    /// returns nothing of B's until A's is there, so it never pages past it.
    #[test]
    fn a_later_block_written_first_waits_for_the_earlier_one() {
        let w = walk(1, &[(4, FRESH), (5, FRESH)], NOW);
        assert_eq!(w, Walked { take: 0, next: 1, then: Next::Wait });
        let w = walk(1, &[(1, FRESH), (2, FRESH), (4, FRESH)], NOW);
        assert_eq!(w, Walked { take: 2, next: 3, then: Next::Wait }, "the run stops below the gap");
    }

    #[test]
    fn a_gap_below_an_old_row_or_a_hole_is_closed() {
        let w = walk(1, &[(1, FRESH), (4, OLD), (5, FRESH)], NOW);
        assert_eq!(w, Walked { take: 1, next: 2, then: Next::Close(2..4) });
        let w = walk(2, &[(3, Found::Hole)], NOW);
        assert_eq!(w, Walked { take: 0, next: 2, then: Next::Close(2..3) }, "a closed hole above is old");
        let w = walk(2, &[(3, Found::Event(None))], NOW);
        assert_eq!(w.then, Next::Wait, "no write time: never closed on its account");
    }

    #[test]
    fn the_tail_is_closed_only_once_the_head_is_old() {
        assert_eq!(tail(8, 10, Some(NOW - 5), NOW), None, "a recent claim: wait for it");
        assert_eq!(tail(8, 10, Some(NOW - HOLE_GRACE_US - 1), NOW), Some(8..11));
        assert_eq!(tail(11, 10, Some(0), NOW), None, "nothing missing");
        assert_eq!(tail(8, 10, None, NOW), None);
    }
}

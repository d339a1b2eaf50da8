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

use super::bucket::{bucket_start, pos_bucket};
use crate::StoreError;

/// Holes one inbox read closes at most (each is a lightweight transaction;
/// the next read closes the rest).
const HOLES_PER_READ: u64 = 1024;

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

/// Where a reader's rows come from: the inbox table (`reads`), or a map in
/// the tests.
pub(super) trait Pages {
    /// An event row, as the caller resolves it.
    type Row;

    /// Up to `want` rows of partition `bucket` at positions `from` and
    /// above, in position order.
    async fn page(&mut self, bucket: i32, from: u64, want: usize) -> Result<Vec<(u64, Found, Self::Row)>, StoreError>;

    /// Close each position of `range` as a hole unless an event took it
    /// first; whether every one became a hole.
    async fn close(&mut self, range: Range<u64>) -> Result<bool, StoreError>;
}

/// Up to `limit` events after position `after` of an inbox whose head is
/// `head` (claimed at `head_at`), by the rule of this module: a gap-free
/// run, holes skipped, old gaps closed (at most [`HOLES_PER_READ`] per
/// read), the page ended below a gap that is recent.
pub(super) async fn read<P: Pages>(
    pages: &mut P,
    head: u64,
    head_at: Option<i64>,
    after: u64,
    limit: usize,
    now_us: i64,
) -> Result<Vec<P::Row>, StoreError> {
    let mut out = Vec::new();
    let mut closed = 0;
    let mut next = after.saturating_add(1);
    // Where the next page is read from: `next`, or a later partition while
    // looking for what lies above a gap at the end of one.
    let mut from = next;
    while out.len() < limit && from <= head {
        let bucket = pos_bucket(from);
        let want = limit - out.len();
        let page = pages.page(bucket, from, want).await?;
        let read = page.len();
        let slots: Vec<(u64, Found)> = page.iter().map(|(pos, found, _)| (*pos, *found)).collect();
        let walked = walk(next, &slots, now_us);
        out.extend(page.into_iter().take(walked.take).filter(|r| r.1 != Found::Hole).map(|r| r.2));
        next = walked.next;
        match walked.then {
            Next::Close(range) => {
                // At most the budget left; the next read closes the rest.
                let range = range.start..range.end.min(range.start + (HOLES_PER_READ - closed));
                if range.is_empty() {
                    break;
                }
                closed += range.end - range.start;
                let end = range.end;
                if pages.close(range).await? {
                    next = end;
                }
                from = next;
            }
            Next::Wait => break,
            Next::More if read < want => {
                // The rest of this partition is empty: read on in the next.
                from = bucket_start(bucket.saturating_add(1)).max(next);
            }
            Next::More => from = next,
        }
    }
    if out.len() < limit && next <= head && from > head {
        // Nothing written above `next`: positions up to the head are still
        // being written, or holes once the last claim is old.
        if let Some(range) = tail(next, head, head_at, now_us) {
            pages.close(range.start..range.end.min(range.start + (HOLES_PER_READ - closed))).await?;
        }
    }
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::executor::block_on;

    use super::*;
    use crate::cassandra::bucket::POSITIONS_PER_BUCKET;

    /// An inbox table in memory: position -> (what, event id).
    #[derive(Default)]
    struct Table {
        rows: BTreeMap<u64, (Found, u64)>,
        reads: usize,
        closes: Vec<Range<u64>>,
        /// Events that land between a reader's page and its markers.
        landing: Vec<u64>,
    }

    impl Pages for Table {
        type Row = u64;

        async fn page(&mut self, bucket: i32, from: u64, want: usize) -> Result<Vec<(u64, Found, u64)>, StoreError> {
            self.reads += 1;
            let end = bucket_start(bucket) + POSITIONS_PER_BUCKET;
            Ok(self.rows.range(from..end).take(want).map(|(p, (f, id))| (*p, *f, *id)).collect())
        }

        async fn close(&mut self, range: Range<u64>) -> Result<bool, StoreError> {
            self.closes.push(range.clone());
            for pos in self.landing.drain(..) {
                self.rows.insert(pos, (FRESH, pos * 100));
            }
            let mut all = true;
            for pos in range {
                let taken = self.rows.contains_key(&pos);
                self.rows.entry(pos).or_insert((Found::Hole, 0));
                all &= !taken;
            }
            Ok(all)
        }
    }

    fn table(rows: &[(u64, Found)]) -> Table {
        Table { rows: rows.iter().map(|&(p, f)| (p, (f, p * 100))).collect(), ..Table::default() }
    }

    fn run(t: &mut Table, head: u64, after: u64, limit: usize) -> Vec<u64> {
        block_on(read(t, head, Some(NOW - 1), after, limit, NOW)).unwrap()
    }

    #[test]
    fn a_reader_pages_through_holes_and_partitions() {
        let mut rows: Vec<(u64, Found)> = (1..=10).map(|p| (p, FRESH)).collect();
        rows[3].1 = Found::Hole;
        let last = POSITIONS_PER_BUCKET + 2;
        rows.extend((POSITIONS_PER_BUCKET - 1..=last).map(|p| (p, FRESH)));
        let mut t = table(&rows);
        assert_eq!(run(&mut t, last, 0, 4), vec![100, 200, 300, 500], "the hole at 4 skipped, 4 events");
        assert_eq!(run(&mut t, last, 5, 100), (6..=10).map(|p| p * 100).collect::<Vec<_>>(), "a gap at 11: wait");
        for p in 11..POSITIONS_PER_BUCKET - 1 {
            t.rows.insert(p, (FRESH, p * 100));
        }
        let reads = t.reads;
        let across = run(&mut t, last, POSITIONS_PER_BUCKET - 3, 100);
        assert_eq!(t.reads - reads, 2, "one read per partition");
        let want: Vec<u64> = (POSITIONS_PER_BUCKET - 2..=last).map(|p| p * 100).collect();
        assert_eq!(across, want, "on into the next partition");
        assert!(run(&mut t, last, last, 10).is_empty(), "nothing after the head");
        assert!(run(&mut t, last, u64::MAX, 10).is_empty());
        assert!(t.closes.is_empty(), "nothing old, nothing closed");
    }

    /// Writer B claimed 4-5 after A claimed 1-3, and wrote first: a pager
    /// sees nothing until A's rows land, then all five in order.
    #[test]
    fn a_pager_never_passes_a_block_written_later() {
        let mut t = table(&[(4, FRESH), (5, FRESH)]);
        assert!(run(&mut t, 5, 0, 10).is_empty());
        t.rows.extend((1..=3).map(|p| (p, (FRESH, p * 100))));
        assert_eq!(run(&mut t, 5, 0, 10), vec![100, 200, 300, 400, 500]);
        assert!(t.closes.is_empty());
    }

    #[test]
    fn old_gaps_are_closed_and_skipped_and_an_event_that_won_is_read() {
        // 2-3 were claimed by a commit that failed; 4 was written long ago.
        let mut t = table(&[(1, FRESH), (4, OLD), (5, FRESH)]);
        assert_eq!(run(&mut t, 5, 0, 10), vec![100, 400, 500]);
        assert_eq!(t.closes, vec![2..4]);
        assert_eq!(t.rows[&2].0, Found::Hole);
        // An event that lands before the reader's marker wins its position.
        let mut racing = table(&[(1, FRESH), (4, OLD)]);
        racing.landing.push(3);
        assert_eq!(run(&mut racing, 4, 0, 10), vec![100, 300, 400], "2 closed, 3 read after its marker was refused");
        assert_eq!(racing.closes, vec![2..4]);
        assert_eq!(racing.rows[&2].0, Found::Hole);
        // A missing position below a recent row is not closed.
        let mut t = table(&[(1, FRESH), (3, FRESH), (4, OLD)]);
        assert_eq!(run(&mut t, 4, 0, 10), vec![100]);
        assert!(t.closes.is_empty());
    }

    #[test]
    fn the_tail_below_an_old_head_is_closed_and_a_recent_one_waited_for() {
        let mut t = table(&[(1, FRESH)]);
        assert_eq!(block_on(read(&mut t, 3, Some(NOW - 1), 0, 10, NOW)).unwrap(), vec![100]);
        assert!(t.closes.is_empty(), "a recent claim is being written");
        assert_eq!(block_on(read(&mut t, 3, Some(NOW - HOLE_GRACE_US - 1), 0, 10, NOW)).unwrap(), vec![100]);
        assert_eq!(t.closes, vec![2..4]);
    }

    #[test]
    fn a_long_run_of_holes_is_closed_a_budget_at_a_time() {
        let far = 2 * HOLES_PER_READ + 10;
        let mut t = table(&[(1, FRESH), (far, OLD)]);
        assert_eq!(run(&mut t, far, 0, 10), vec![100], "the first read closes one budget");
        assert_eq!(t.closes, vec![2..2 + HOLES_PER_READ]);
        assert_eq!(run(&mut t, far, 1, 10), Vec::<u64>::new());
        assert_eq!(run(&mut t, far, 1, 10), vec![far * 100], "the third reaches the event");
    }

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

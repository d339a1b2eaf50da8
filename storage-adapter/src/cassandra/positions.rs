//! Claiming inbox positions: one lightweight transaction per inbox owner
//! per commit, whatever the number of events.
//!
//! Why a compare-and-set on a head row: positions must be dense and
//! strictly increasing per inbox in commit order, across gateways that
//! share no lock. Cassandra has no transaction over several rows, but a
//! lightweight transaction on one row is linearizable: `UPDATE inbox_heads
//! SET head = h + n WHERE user_id = ? IF head = h` succeeds for exactly one
//! writer that read `h`, which then owns positions `h + 1 ..= h + n` (a
//! user's first claim is `INSERT ... IF NOT EXISTS`). A writer that loses
//! learns the current head from the answer and claims again above it; the
//! store remembers the last head it saw per user, so a gateway that writes
//! an inbox again usually wins at the first try.
//!
//! A claim only reserves. Rows are written after it (`plan::inbox_rows`),
//! so a block claimed later may be written earlier, and a commit that fails
//! after its claim never writes its block: `walk` is how readers stay in
//! order regardless and how such holes are closed.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use futures::{stream, StreamExt, TryStreamExt};
use scylla::value::CqlValue;

use super::{answer::Answer, plan::big, statements as cql, Cql, CqlError, CONCURRENCY};
use crate::{CommitStats, Committed, InboxPos, Write, WriteOutcome};

/// Claims of one inbox tried before the commit gives up (contention on one
/// inbox by this many writers at once is far beyond what group commit
/// produces).
const MAX_CLAIMS: u32 = 64;

/// Heads remembered before the memory is reset.
const REMEMBERED_HEADS: usize = 1 << 16;

/// The last head this store saw per user: the guess of its next claim.
#[derive(Default)]
pub(super) struct Heads(Mutex<HashMap<u64, u64>>);

impl Heads {
    fn guess(&self, user: u64) -> Option<u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(&user).copied()
    }

    fn saw(&self, user: u64, head: Option<u64>) {
        let mut heads = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if heads.len() >= REMEMBERED_HEADS {
            heads.clear();
        }
        match head {
            Some(h) => heads.insert(user, h),
            None => heads.remove(&user),
        };
    }
}

/// The statement that claims `n` positions of `user`'s inbox if its head is
/// `guess` (`None`: no head row yet), with its values.
pub(super) fn claim(user: u64, guess: Option<u64>, n: u64) -> (&'static str, Vec<CqlValue>) {
    match guess {
        None => (cql::FIRST_CLAIM, vec![big(user), big(n)]),
        Some(h) => (cql::CLAIM, vec![big(h + n), big(user), big(h)]),
    }
}

/// How a claim fared.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claimed {
    /// The positions from `first` on are this commit's.
    Won { first: u64 },
    /// Another writer moved the head: claim again from `head` (`None`: the
    /// row does not exist).
    Lost { head: Option<u64> },
}

/// What the answer to [`claim`] means.
pub(super) fn claimed(guess: Option<u64>, answer: &Answer) -> Claimed {
    if answer.applied {
        return Claimed::Won { first: guess.unwrap_or(0) + 1 };
    }
    Claimed::Lost { head: answer.big("head").map(|h| h.max(0) as u64) }
}

/// Claim `n` positions of `user`'s inbox: the first of them.
async fn claim_one(c: &Cql, heads: &Heads, user: u64, n: u64) -> Result<u64, CqlError> {
    let mut guess = heads.guess(user);
    for attempt in 0..MAX_CLAIMS {
        let (statement, values) = claim(user, guess, n);
        let answer = Answer::of(c.execute(statement, values).await?)?;
        match claimed(guess, &answer) {
            Claimed::Won { first } => {
                heads.saw(user, Some(first + n - 1));
                return Ok(first);
            }
            Claimed::Lost { head } => {
                heads.saw(user, head);
                guess = head;
                // Several writers on one inbox: spread their next tries.
                if attempt > 0 {
                    let jitter = (user.wrapping_mul(31) ^ u64::from(attempt)) % 4;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(10)) + jitter)).await;
                }
            }
        }
    }
    Err(CqlError::Raced("other writers kept winning the claim of inbox positions"))
}

/// Claim positions for every `(user, events)` at once: the first position
/// of each user's block.
pub(super) async fn claim_all(c: &Cql, heads: &Heads, counts: &[(u64, u64)]) -> Result<HashMap<u64, u64>, CqlError> {
    stream::iter(counts.iter().map(|&(user, n)| async move { Ok((user, claim_one(c, heads, user, n).await?)) }))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

/// Per write its outcome and, if applied, the position of its event in each
/// inbox it lists: each inbox's block, from the first position `first`
/// claimed for it, is handed out in batch order, the order `plan` listed
/// the events in (and `plan::inbox_rows` wrote them at).
pub(super) fn hand_out(
    writes: &[Write<'_>],
    outcomes: &[WriteOutcome],
    mut first: HashMap<u64, u64>,
    stats: CommitStats,
) -> Committed {
    let events = writes.iter().map(|w| w.inboxes().len()).sum();
    let mut out = Committed::with_capacity(writes.len(), events);
    for (w, outcome) in writes.iter().zip(outcomes) {
        if *outcome != WriteOutcome::Applied {
            out.push(*outcome, std::iter::empty());
            continue;
        }
        let positions = w.inboxes().iter().map(|user| {
            let next = first.entry(user.0).or_insert(0);
            let pos = *next;
            *next += 1;
            InboxPos(pos)
        });
        out.push(*outcome, positions);
    }
    out.stats = stats;
    out
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, Receipt, Snowflake, UserId};

    use super::*;

    #[test]
    fn positions_are_handed_out_per_inbox_in_batch_order_skipping_refused_writes() {
        let m = |id: u64| Message {
            id: MessageId(id),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(1),
            kind: MessageKind::Text,
            client_id: format!("c{id}"),
            ts: Snowflake::unix_ms(MessageId(id)),
            body: "\"b\"".into(),
            amended: None,
        };
        let (a, b, c) = (m(1), m(2), m(3));
        let r = Receipt::Delivered {
            event: MessageId(4),
            conversation: a.conversation,
            by: UserId(2),
            ids: vec![a.id],
            at: 1,
        };
        let both = [UserId(1), UserId(2)];
        let writes = [
            Write::Message { message: &a, inboxes: &both, membership: None },
            Write::Message { message: &b, inboxes: &both, membership: None },
            Write::Receipt { receipt: &r, inboxes: &[UserId(1)] },
            Write::Message { message: &c, inboxes: &[UserId(2), UserId(1)], membership: None },
        ];
        let dup = WriteOutcome::Duplicate { conversation: a.conversation, id: a.id };
        let outcomes = [WriteOutcome::Applied, dup, WriteOutcome::Applied, WriteOutcome::Applied];
        let done = hand_out(&writes, &outcomes, HashMap::from([(1, 10), (2, 20)]), CommitStats::default());
        assert_eq!(done.len(), 4);
        assert_eq!(done.positions(0), [InboxPos(10), InboxPos(20)]);
        assert_eq!((done.outcome(1), done.positions(1)), (Some(dup), &[][..]), "a refused write takes no position");
        assert_eq!(done.positions(2), [InboxPos(11)]);
        assert_eq!(done.positions(3), [InboxPos(21), InboxPos(12)], "in the order the write lists its inboxes");
    }

    #[test]
    fn a_first_claim_creates_the_head_and_a_later_one_moves_it_if_unchanged() {
        assert_eq!(claim(7, None, 3), (cql::FIRST_CLAIM, vec![big(7), big(3)]));
        assert_eq!(claim(7, Some(10), 3), (cql::CLAIM, vec![big(13), big(7), big(10)]), "new head, user, old head");
    }

    #[test]
    fn a_won_claim_owns_the_block_above_the_guess() {
        assert_eq!(claimed(None, &Answer::test(true, &[])), Claimed::Won { first: 1 });
        assert_eq!(claimed(Some(10), &Answer::test(true, &[])), Claimed::Won { first: 11 });
    }

    #[test]
    fn a_lost_claim_retries_from_the_head_it_was_answered() {
        let moved = Answer::test(false, &[("head", CqlValue::BigInt(12))]);
        assert_eq!(claimed(Some(10), &moved), Claimed::Lost { head: Some(12) });
        assert_eq!(claimed(None, &moved), Claimed::Lost { head: Some(12) }, "someone created the row first");
        assert_eq!(claimed(Some(10), &Answer::test(false, &[])), Claimed::Lost { head: None }, "no row: create it");
    }

    /// Two writers interleaving on one in-memory head, each with its own
    /// stale guess: the blocks they win never overlap and leave no gap.
    #[test]
    fn racing_claims_give_disjoint_dense_blocks() {
        let mut head: Option<u64> = None;
        let mut apply = |guess: Option<u64>, n: u64| -> Answer {
            if guess == head {
                head = Some(guess.unwrap_or(0) + n);
                Answer::test(true, &[])
            } else {
                let columns: Vec<(&str, CqlValue)> = head.map(|h| ("head", big(h))).into_iter().collect();
                Answer::test(false, &columns)
            }
        };
        let (mut a, mut b) = (None, None);
        let mut blocks = Vec::new();
        for round in 0..20u64 {
            for (guess, n) in [(&mut a, 1 + round % 3), (&mut b, 2)] {
                loop {
                    match claimed(*guess, &apply(*guess, n)) {
                        Claimed::Won { first } => {
                            blocks.push((first, first + n - 1));
                            *guess = Some(first + n - 1);
                            break;
                        }
                        Claimed::Lost { head } => *guess = head,
                    }
                }
            }
        }
        blocks.sort_unstable();
        assert_eq!(blocks[0].0, 1);
        assert!(blocks.windows(2).all(|w| w[1].0 == w[0].1 + 1), "dense and disjoint: {blocks:?}");
    }
}

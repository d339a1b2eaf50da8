//! The writer: stores prepared batches, then dispatches their results.
//!
//! It normally runs on its own thread, fed by the committer through a
//! queue: under load the committer prepares the next batch while the last
//! ones are written, and the batches that queue up meanwhile share one
//! store commit (one fsync).
//!
//! When the writer is idle, the batch is small and no other request waits
//! for the committer, that overlap buys nothing, and handing the batch over
//! costs waking the writer thread (and its going back to sleep) for every
//! commit; at low rates, where every hop finds its thread asleep, such
//! wake-ups are most of what a message costs. So [`Handoff`] lets the
//! committer write such a batch itself, under the same lock the writer
//! thread holds while it works. Order is kept: the committer only writes
//! when every job it queued before has been processed, so batches are
//! still written and dispatched in preparation order, by one of the two
//! threads at a time.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex, TryLockError,
    },
    time::Instant,
};

use chatgw_protocol::{server, ErrorCode, GroupId, MessageId};
use chatgw_router::{Endpoint, Fanout};
use chatgw_storage::{Committed, MessageStore, StoreError, Write};
use crossbeam_channel::{Receiver, Sender};

use super::{
    batch::{writes_of, Outcome},
    dispatch::{Dispatch, Replaced},
    order::Sequencer,
    peers::Peers,
    CommitContext,
};
use crate::events::CoreEvent;

/// Batches prepared but not yet written, at most. The writer takes all that
/// are queued into one store commit (one fsync).
pub(super) const WRITER_QUEUE: usize = 64;

/// Work for the writer, in preparation order.
pub(super) enum Job {
    /// A batch to write, then dispatch.
    Batch(Prepared),
    /// A batch whose preparation failed: tell every requester.
    Refused { seq: u64, origins: Vec<Waiting>, tickets: Vec<(u64, usize)> },
    /// The committer knows of the failure with this generation and has
    /// forgotten what it prepared on top of it: later batches are valid.
    FailureSeen(u64),
}

/// One prepared batch.
pub(super) struct Prepared {
    pub(super) seq: u64,
    pub(super) outcomes: Vec<Outcome>,
    pub(super) high_water: MessageId,
    pub(super) origins: Vec<Waiting>,
    pub(super) requests: usize,
    /// Its tickets, and where each one's outcomes end (`order`).
    pub(super) tickets: Vec<(u64, usize)>,
}

/// A refused commit, reported to the committer.
pub(super) struct Failure {
    /// Counts the writer's failures; echoed back in [`Job::FailureSeen`].
    pub(super) generation: u64,
    pub(super) error: StoreError,
    pub(super) requests: usize,
}

/// Stores prepared batches (several per commit when they queue up), then
/// dispatches their results. One per committer, behind a lock shared by
/// the writer thread and [`Handoff`].
pub(super) struct Writer<'a> {
    ctx: &'a CommitContext,
    store: &'a dyn MessageStore,
    /// Posts tickets in order across pipelines.
    sequencer: &'a Sequencer,
    /// Where an applied group change is announced to the other pipelines.
    peers: &'a Peers,
    failures: &'a Sender<Failure>,
    /// Groups whose write conflicted with another writer: the committer
    /// forgets their cached records.
    conflicts: &'a Sender<GroupId>,
    /// Messages the store refused as duplicates of another writer's, by
    /// the id this gateway had given them (see [`Replaced`]).
    replaced: Replaced,
    done_through: &'a AtomicU64,
    fanout: Fanout<CoreEvent>,
    /// Batches taken but not yet written: they go into the next commit.
    group: Vec<Prepared>,
    /// Failures so far, and the newest one the committer has seen. While
    /// they differ, batches are refused unwritten: they were prepared on
    /// top of a batch that is not in the store.
    generation: u64,
    seen: u64,
}

/// Jobs taken from the queue at once, at most.
const MERGE: usize = 64;

impl<'a> Writer<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        ctx: &'a CommitContext,
        store: &'a dyn MessageStore,
        sequencer: &'a Sequencer,
        peers: &'a Peers,
        failures: &'a Sender<Failure>,
        conflicts: &'a Sender<GroupId>,
        done_through: &'a AtomicU64,
    ) -> Self {
        let fanout = Fanout::new(ctx.mailboxes.cores());
        Writer {
            ctx,
            store,
            sequencer,
            peers,
            failures,
            conflicts,
            replaced: Replaced::default(),
            done_through,
            fanout,
            group: Vec::with_capacity(MERGE),
            generation: 0,
            seen: 0,
        }
    }

    /// Process `jobs` in order: batches go into one commit where they can,
    /// then everything decided is posted to the cores.
    pub(super) fn process(&mut self, jobs: impl IntoIterator<Item = Job>) {
        for job in jobs {
            match job {
                Job::Batch(b) if self.seen < self.generation => self.refuse(b.seq, &b.origins, &b.tickets),
                Job::Batch(b) => self.group.push(b),
                Job::Refused { seq, origins, tickets } => {
                    self.write();
                    self.refuse(seq, &origins, &tickets);
                }
                Job::FailureSeen(generation) => {
                    self.write();
                    self.seen = generation;
                }
            }
        }
        self.write();
        self.fanout.flush(&self.ctx.mailboxes);
    }

    /// Store every batch taken so far in one commit, then dispatch them in
    /// order.
    fn write(&mut self) {
        if self.group.is_empty() {
            return;
        }
        // Taken out for the call and put back, so its allocation is reused.
        let mut group = std::mem::take(&mut self.group);
        self.write_group(&mut group);
        self.group = group;
    }

    fn write_group(&mut self, group: &mut Vec<Prepared>) {
        let Some(last) = group.last() else { return };
        let (last_seq, high_water) = (last.seq, last.high_water);
        let mut writes: Vec<Write<'_>> = Vec::new();
        for b in group.iter() {
            writes_of(&b.outcomes, &mut writes);
        }
        let requests: usize = group.iter().map(|b| b.requests).sum();
        let result = if writes.is_empty() {
            Ok(Committed::default())
        } else {
            let started = Instant::now();
            let result = self.store.commit(&writes, high_water);
            self.ctx.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            self.ctx.metrics.commit_batch_size.observe(requests as f64);
            result.inspect(|done| {
                self.ctx.metrics.commit_bytes.inc_by(done.stats.bytes as u64);
                self.ctx.metrics.commit_records.inc_by(done.stats.records as u64);
            })
        };
        drop(writes);
        match result {
            Ok(done) => {
                self.ctx.events_wake.notify();
                let mut next_write = 0;
                for b in group.drain(..) {
                    // A batch that took no ids (only built by hand) has
                    // no ticket: its answers go out with the rest.
                    let untracked = [(None, b.outcomes.len())];
                    let tracked: Vec<_> = b.tickets.iter().map(|&(t, end)| (Some(t), end)).collect();
                    let segments = if b.tickets.is_empty() { &untracked[..] } else { &tracked[..] };
                    let mut start = 0;
                    for &(ticket, end) in segments {
                        let mut d = Dispatch {
                            ctx: self.ctx,
                            committed: &done,
                            next_write: &mut next_write,
                            fanout: &mut self.fanout,
                            conflicts: self.conflicts,
                            replaced: &mut self.replaced,
                            store: self.store,
                            peers: self.peers,
                        };
                        d.outcomes(&b.outcomes[start..end]);
                        start = end;
                        if let Some(ticket) = ticket {
                            self.post_in_turn(ticket);
                        }
                    }
                }
            }
            Err(error) => {
                for b in group.drain(..) {
                    self.refuse(b.seq, &b.origins, &b.tickets);
                }
                self.generation += 1;
                let _ = self.failures.send(Failure { generation: self.generation, error, requests });
            }
        }
        self.done_through.store(last_seq, Ordering::Release);
    }

    /// Post what the fanout holds when `ticket`'s turn comes: every lower
    /// ticket's events are posted by then, whichever pipeline had them.
    fn post_in_turn(&mut self, ticket: u64) {
        self.sequencer.wait_turn(ticket);
        self.sequencer.release(ticket);
        self.fanout.flush(&self.ctx.mailboxes);
        self.sequencer.pass_turn(ticket);
    }

    /// Tell every requester of a batch that it was not stored; its tickets
    /// take their turns all the same.
    fn refuse(&mut self, seq: u64, origins: &[Waiting], tickets: &[(u64, usize)]) {
        for (origin, reference) in origins {
            let mut p = Vec::new();
            server::error(
                &mut p,
                ErrorCode::Unavailable,
                "the store could not take the write; retry with the same id",
                reference.as_deref(),
            );
            self.fanout.push(usize::from(origin.core), CoreEvent::Reply { to: *origin, payload: p });
        }
        for &(ticket, _) in tickets {
            self.post_in_turn(ticket);
        }
        self.done_through.store(seq, Ordering::Release);
    }
}

/// The writer thread's body: takes every job that has queued up (up to
/// [`MERGE`]) and processes them together. Returns when the committer drops
/// its [`Handoff`], or if a panic while writing poisoned the lock (the
/// committer then finds the queue closed and stops).
pub(super) fn run(writer: &Mutex<Writer<'_>>, rx: Receiver<Job>, processed: &AtomicU64) {
    let mut jobs = Vec::with_capacity(MERGE);
    while let Ok(first) = rx.recv() {
        jobs.push(first);
        while jobs.len() < MERGE {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let taken = jobs.len() as u64;
        let Ok(mut writer) = writer.lock() else {
            tracing::error!("the writer's lock is poisoned; the writer thread stops");
            return;
        };
        writer.process(jobs.drain(..));
        processed.fetch_add(taken, Ordering::Release);
    }
}

/// The committer's end of the writer: queues jobs for the writer thread, or
/// processes one itself when the writer is idle (see the module docs).
pub(super) struct Handoff<'w, 'a> {
    queue: Sender<Job>,
    writer: &'w Mutex<Writer<'a>>,
    /// Jobs queued so far; the writer thread counts in `processed` those
    /// it has finished. Equal, the writer thread has nothing in hand.
    queued: u64,
    processed: &'w AtomicU64,
}

/// The writer thread is gone: nothing more can be written.
#[derive(Debug)]
pub(super) struct WriterGone;

impl<'w, 'a> Handoff<'w, 'a> {
    pub(super) fn new(queue: Sender<Job>, writer: &'w Mutex<Writer<'a>>, processed: &'w AtomicU64) -> Self {
        Handoff { queue, writer, queued: 0, processed }
    }

    /// Hand `job` to the writer, in order after every earlier job. With
    /// `write_here_if_idle`, and the writer thread idle with nothing queued,
    /// the calling thread processes it at once instead of waking the writer.
    pub(super) fn send(&mut self, job: Job, write_here_if_idle: bool) -> Result<(), WriterGone> {
        if write_here_if_idle && self.processed.load(Ordering::Acquire) == self.queued {
            match self.writer.try_lock() {
                Ok(mut writer) => {
                    if matches!(job, Job::Batch(_)) {
                        writer.ctx.metrics.batches_written_by_committer.inc();
                    }
                    writer.process([job]);
                    return Ok(());
                }
                // Still posting its last results, or gone: queue it.
                Err(TryLockError::WouldBlock) | Err(TryLockError::Poisoned(_)) => {}
            }
        }
        self.queue.send(job).map_err(|_| WriterGone)?;
        self.queued += 1;
        Ok(())
    }
}

/// A requester to tell if the batch fails, with the client id of a send.
pub(super) type Waiting = (Endpoint, Option<String>);

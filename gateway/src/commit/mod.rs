//! The group committer: two threads that own every write.
//!
//! Cores hand requests to the committer thread through a channel and go
//! back to their sockets. It takes everything queued (up to `commit_batch`),
//! assigns Snowflake ids in arrival order and resolves idempotency,
//! membership and receipt checks, then passes the prepared batch to the
//! writer thread and starts on the next. The writer takes every batch that
//! has queued up, writes them with one store commit (one fsync), and only
//! then answers: `sent` acks to the origin connections and live events to
//! every device of every user concerned, posted to each core's mailbox as
//! one batch per core.
//!
//! Why two threads: a commit spends most of its time inserting into the
//! store's memtables and waiting for the disk. On one thread, preparation
//! waited for all of that and requests queued behind it; split, the two
//! overlap, and the writer's queue is what merges batches into one fsync
//! under load. The committer's checks must then see batches the store does
//! not hold yet: `in_flight` keeps their decisions until the writer is done.
//!
//! Why one of each: ids handed out by the committer increase in preparation
//! order, the writer commits and dispatches in that same order, so events
//! reach each core's mailbox in id order and a device that has seen event N
//! has seen every earlier event of its inbox that was delivered live.
//! `sync` relies on this: a cursor is a complete description of what a
//! device has. The committer owns the group membership cache, so a
//! membership change is visible to the very next send without any locking.
//!
//! When the store refuses a commit, the batches prepared on top of it are
//! void too: the writer refuses them unwritten (`unavailable`) until the
//! committer has heard of the failure and forgotten its caches.
//!
//! Files: `batch` builds one batch (direct messages and receipts), `groups`
//! the group operations and group fan-out, `in_flight` the decisions of
//! batches not yet stored, `outage` what happens while the store refuses
//! writes, this file runs both threads and dispatches the results.

mod batch;
mod groups;
mod in_flight;
mod outage;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chatgw_protocol::{server, ErrorCode, MessageId, Snowflake, UserId};
use chatgw_router::{Endpoint, Fanout};
use chatgw_storage::{MessageStore, StoreError, Write};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use self::{
    batch::{writes_of, Batch, Outcome},
    outage::Outage,
};
use crate::{
    events::{CommitRequest, CoreEvent},
    server::Shared,
};

/// The committer thread's body. Returns when it receives `Stop` (after the
/// writer has committed everything before it, or refused it with
/// `unavailable` while the store refuses writes) or when every sender is
/// gone.
pub(crate) fn run(shared: Arc<Shared>, store: Arc<dyn MessageStore>, rx: Receiver<CommitRequest>) {
    let high_water = match store.high_water() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the id high-water mark; ids restart from the clock");
            MessageId(0)
        }
    };
    let ids = Snowflake::new(shared.config.node_id).resume_after(high_water);
    let mut batch = Batch::new(store.as_ref(), ids, shared.config.max_group_members);
    let mut requests = Vec::with_capacity(shared.config.commit_batch);
    // Writing (the store commit and its fsync) and dispatch (encoding
    // frames, looking up devices, posting to cores) run on their own thread,
    // so the next batch is prepared while the last ones are being written.
    // One writer, fed in preparation order, keeps ids in commit order and
    // events in id order on every core.
    let (to_writer, writer_rx) = crossbeam_channel::bounded::<Job>(WRITER_QUEUE);
    let (failure_tx, failures) = crossbeam_channel::unbounded::<Failure>();
    let done_through = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writer = std::thread::Builder::new()
            .name("chatgw-write".into())
            .spawn_scoped(scope, || Writer::new(&shared, store.as_ref(), &failure_tx, &done_through).run(writer_rx));
        if let Err(e) = writer {
            tracing::error!(error = %e, "cannot start the writer thread");
            return;
        }
        let mut seq = 0u64;
        let mut stop = false;
        let mut outage: Option<Outage> = None;
        while !stop {
            // A refused batch: everything prepared since is void, and the
            // writer discards it until it hears that this thread knows.
            if !learn_failures(&failures, None, &mut batch, &mut outage, &shared, &to_writer) {
                return;
            }
            if let Some(o) = outage.as_mut() {
                if o.try_recover(store.as_ref(), &shared.metrics) {
                    // Batches prepared during the outage are all through the
                    // writer now; their refusals still count as the outage's.
                    wait_for_writer(&done_through, seq);
                    if !learn_failures(&failures, None, &mut batch, &mut outage, &shared, &to_writer) {
                        return;
                    }
                    outage = None;
                    batch.forget_all_cached();
                    resume_ids(&mut batch, store.as_ref());
                }
            }
            // Idle, a refusal is noticed at once (so the outage and its
            // probes start then), not only with the next request.
            let first = match &outage {
                None => crossbeam_channel::select! {
                    recv(rx) -> r => r.map_err(|_| RecvTimeoutError::Disconnected),
                    recv(failures) -> f => {
                        if !learn_failures(&failures, f.ok(), &mut batch, &mut outage, &shared, &to_writer) {
                            return;
                        }
                        continue;
                    }
                },
                Some(o) => rx.recv_deadline(o.next_probe()),
            };
            let first = match first {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            requests.push(first);
            while requests.len() < shared.config.commit_batch {
                match rx.try_recv() {
                    Ok(r) => requests.push(r),
                    Err(_) => break,
                }
            }
            stop = requests.iter().any(|r| matches!(r, CommitRequest::Stop));
            seq += 1;
            batch.begin(seq, done_through.load(Ordering::Acquire));
            let n = requests.len();
            let origins: Vec<_> = requests.iter().filter_map(origin_of).collect();
            let job = match prepare(&mut batch, &mut requests) {
                Ok(()) => Job::Batch(Prepared {
                    seq,
                    outcomes: batch.take_outcomes(),
                    high_water: batch.last_id(),
                    origins,
                    requests: n,
                }),
                Err(e) => {
                    // A store read failed: nothing of this batch is written.
                    // Earlier batches still with the writer will be, so wait
                    // for them before forgetting what they decided.
                    wait_for_writer(&done_through, seq - 1);
                    batch.forget_all_cached();
                    if let Some(started) = Outage::on_failed_commit(outage.as_ref(), &e, n, &shared.metrics) {
                        outage = Some(started);
                    }
                    Job::Refused { seq, origins }
                }
            };
            if to_writer.send(job).is_err() {
                break;
            }
        }
        // Dropping the sender lets the writer finish what is queued and exit.
        drop(to_writer);
    });
    tracing::info!("committer stopped");
}

/// The writer refused batches (`first`, then whatever else is reported):
/// for each, forget every cache (the batches prepared on top of it are
/// void), count it, start the outage if this is the first, and tell the
/// writer that later batches are valid again. `false` when the writer is
/// gone.
fn learn_failures(
    failures: &Receiver<Failure>,
    first: Option<Failure>,
    batch: &mut Batch<'_>,
    outage: &mut Option<Outage>,
    shared: &Shared,
    to_writer: &Sender<Job>,
) -> bool {
    for failure in first.into_iter().chain(failures.try_iter()) {
        batch.forget_all_cached();
        let started = Outage::on_failed_commit(outage.as_ref(), &failure.error, failure.requests, &shared.metrics);
        if started.is_some() {
            *outage = started;
        }
        if to_writer.send(Job::FailureSeen(failure.generation)).is_err() {
            return false;
        }
    }
    true
}

/// Block until the writer has finished batch `seq` (a short wait: it only
/// has the queue to work through, refusing or writing). Gives up after
/// [`WRITER_WAIT`] so a writer that died cannot hang the committer; its
/// queue is then closed and the committer stops at its next send.
fn wait_for_writer(done_through: &AtomicU64, seq: u64) {
    let deadline = Instant::now() + WRITER_WAIT;
    while done_through.load(Ordering::Acquire) < seq {
        if Instant::now() >= deadline {
            tracing::error!(seq, "the writer did not finish its queue in time; continuing");
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Longest wait for the writer to drain its queue after an outage.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// After the store was reopened: ids continue above everything it holds,
/// so they never go backwards even if the failed batch reached the disk.
fn resume_ids(batch: &mut Batch<'_>, store: &dyn MessageStore) {
    match store.high_water() {
        Ok(h) => batch.resume_after(h),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the id high-water mark after recovery; ids continue from memory")
        }
    }
}

/// Batches prepared but not yet written, at most. The writer takes all that
/// are queued into one store commit (one fsync).
const WRITER_QUEUE: usize = 64;

/// Work for the writer, in preparation order.
enum Job {
    /// A batch to write, then dispatch.
    Batch(Prepared),
    /// A batch whose preparation failed: tell every requester.
    Refused { seq: u64, origins: Vec<Waiting> },
    /// The committer knows of the failure with this generation and has
    /// forgotten what it prepared on top of it: later batches are valid.
    FailureSeen(u64),
}

/// One prepared batch.
struct Prepared {
    seq: u64,
    outcomes: Vec<Outcome>,
    high_water: MessageId,
    origins: Vec<Waiting>,
    requests: usize,
}

/// A refused commit, reported to the committer.
struct Failure {
    /// Counts the writer's failures; echoed back in [`Job::FailureSeen`].
    generation: u64,
    error: StoreError,
    requests: usize,
}

/// The writer thread: stores prepared batches (several per commit when they
/// queue up), then dispatches their results.
struct Writer<'a> {
    shared: &'a Shared,
    store: &'a dyn MessageStore,
    failures: &'a Sender<Failure>,
    done_through: &'a AtomicU64,
    fanout: Fanout<CoreEvent>,
    /// Failures so far, and the newest one the committer has seen. While
    /// they differ, batches are refused unwritten: they were prepared on
    /// top of a batch that is not in the store.
    generation: u64,
    seen: u64,
}

/// Jobs taken from the queue at once, at most.
const MERGE: usize = 64;

impl<'a> Writer<'a> {
    fn new(
        shared: &'a Shared,
        store: &'a dyn MessageStore,
        failures: &'a Sender<Failure>,
        done_through: &'a AtomicU64,
    ) -> Self {
        let fanout = Fanout::new(shared.mailboxes.cores());
        Writer { shared, store, failures, done_through, fanout, generation: 0, seen: 0 }
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut jobs = Vec::with_capacity(MERGE);
        let mut group: Vec<Prepared> = Vec::with_capacity(MERGE);
        while let Ok(first) = rx.recv() {
            jobs.push(first);
            while jobs.len() < MERGE {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            for job in jobs.drain(..) {
                match job {
                    Job::Batch(b) if self.seen < self.generation => self.refuse(b.seq, &b.origins),
                    Job::Batch(b) => group.push(b),
                    Job::Refused { seq, origins } => {
                        self.write(&mut group);
                        self.refuse(seq, &origins);
                    }
                    Job::FailureSeen(generation) => {
                        self.write(&mut group);
                        self.seen = generation;
                    }
                }
            }
            self.write(&mut group);
            self.fanout.flush(&self.shared.mailboxes);
        }
    }

    /// Store every batch of `group` in one commit, then dispatch them in order.
    fn write(&mut self, group: &mut Vec<Prepared>) {
        let Some(last) = group.last() else { return };
        let (last_seq, high_water) = (last.seq, last.high_water);
        let mut writes: Vec<Write<'_>> = Vec::new();
        for b in group.iter() {
            writes_of(&b.outcomes, &mut writes);
        }
        let requests: usize = group.iter().map(|b| b.requests).sum();
        let result = if writes.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            let result = self.store.commit(&writes, high_water);
            self.shared.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            self.shared.metrics.commit_batch_size.observe(requests as f64);
            result.map(|stats| {
                self.shared.metrics.commit_bytes.inc_by(stats.bytes as u64);
            })
        };
        drop(writes);
        match result {
            Ok(()) => {
                for b in group.drain(..) {
                    dispatch(self.shared, &b.outcomes, &mut self.fanout);
                }
            }
            Err(error) => {
                for b in group.drain(..) {
                    self.refuse(b.seq, &b.origins);
                }
                self.generation += 1;
                let _ = self.failures.send(Failure { generation: self.generation, error, requests });
            }
        }
        self.done_through.store(last_seq, Ordering::Release);
    }

    /// Tell every requester of a batch that it was not stored.
    fn refuse(&mut self, seq: u64, origins: &[Waiting]) {
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
        self.done_through.store(seq, Ordering::Release);
    }
}

/// A requester to tell if the batch fails, with the client id of a send.
type Waiting = (Endpoint, Option<String>);

fn origin_of(r: &CommitRequest) -> Option<Waiting> {
    match r {
        CommitRequest::Send { origin, client_id, .. } => Some((*origin, Some(client_id.clone()))),
        CommitRequest::Group { origin, op: crate::events::GroupOp::Create { request_id, .. }, .. } => {
            Some((*origin, Some(request_id.clone())))
        }
        CommitRequest::Delivered { origin, .. }
        | CommitRequest::Read { origin, .. }
        | CommitRequest::Group { origin, .. } => Some((*origin, None)),
        CommitRequest::Stop => None,
    }
}

/// Take every request into the batch: ids, checks, outcomes.
fn prepare(batch: &mut Batch<'_>, requests: &mut Vec<CommitRequest>) -> Result<(), StoreError> {
    for r in requests.drain(..) {
        batch.add(r)?;
    }
    batch.finish();
    Ok(())
}

/// After the commit: acks to origins, live events to devices.
fn dispatch(shared: &Shared, outcomes: &[Outcome], fanout: &mut Fanout<CoreEvent>) {
    let reply = |fanout: &mut Fanout<CoreEvent>, to: Endpoint, payload: Vec<u8>| {
        fanout.push(usize::from(to.core), CoreEvent::Reply { to, payload });
    };
    let deliver = |fanout: &mut Fanout<CoreEvent>,
                   users: &[UserId],
                   skip: Option<Endpoint>,
                   event: MessageId,
                   payload: Vec<u8>| {
        let payload: Arc<[u8]> = payload.into();
        for user in users {
            shared.directory.for_each(user.0, |ep| {
                if Some(ep) != skip {
                    fanout.push(usize::from(ep.core), CoreEvent::Deliver { to: ep, event, payload: payload.clone() });
                }
            });
        }
    };
    for o in outcomes {
        match o {
            Outcome::Stored { origin, client_id, message, inboxes } => {
                shared.metrics.messages_stored.inc();
                if let Some(origin) = origin {
                    let mut ack = Vec::with_capacity(96);
                    server::sent(&mut ack, client_id, message.id, message.ts, false);
                    reply(fanout, *origin, ack);
                }
                let mut frame = Vec::with_capacity(128 + message.body.len());
                server::message(&mut frame, message);
                deliver(fanout, inboxes, *origin, message.id, frame);
            }
            Outcome::Duplicate { origin, client_id, id } => {
                shared.metrics.messages_deduplicated.inc();
                let mut ack = Vec::with_capacity(96);
                server::sent(&mut ack, client_id, *id, Snowflake::unix_ms(*id), true);
                reply(fanout, *origin, ack);
            }
            Outcome::Receipt { origin, receipt, inboxes } => {
                shared.metrics.receipts_stored.inc();
                // Encoded per inbox: a direct conversation is named by the other user.
                for user in inboxes {
                    let mut frame = Vec::with_capacity(128);
                    server::receipt(&mut frame, receipt, *user);
                    deliver(fanout, std::slice::from_ref(user), *origin, receipt.event(), frame);
                }
            }
            Outcome::GroupReply { origin, group, reference } => {
                let mut p = Vec::with_capacity(64 + 48 * group.members.len());
                server::group(&mut p, group, reference.as_deref());
                reply(fanout, *origin, p);
            }
            Outcome::Refused { origin, code, why, reference } => {
                shared.metrics.protocol_errors.inc();
                let mut p = Vec::new();
                server::error(&mut p, *code, why, reference.as_deref());
                reply(fanout, *origin, p);
            }
            Outcome::GroupWrite { .. } => {}
        }
    }
}

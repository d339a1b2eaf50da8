//! The group committer: commit pipelines of two threads each, which own
//! every write.
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
//! When nothing waits, there is nothing to overlap: the committer then
//! writes the batch itself rather than wake the writer (see `writer`).
//!
//! Why one of each per pipeline: the writer commits and dispatches in
//! preparation order, so a pipeline's events reach each core's mailbox in
//! increasing position order, and a connection drops a live event at or
//! below the position it has. With the embedded store there are several
//! pipelines (`--commit-pipelines`, `start`), each taking its share of the
//! conversations (`route`); ids come in ranges that every pipeline posts
//! in one order, and a sync reads below the horizon of what is committed
//! for good (`order`); a change to what other pipelines cache is told to
//! them (`peers`). With a shared store (several gateways) there is one
//! pipeline: positions are the store's, in its commit order, and ids from
//! different generators interleave (docs/STORAGE.md). The committer owns
//! its pipeline's group membership cache, so a membership change is
//! visible to the very next send without any locking; another gateway's
//! change is caught by the version compare-and-set (`groups`).
//!
//! What the store decides per write (`Committed`): a message whose
//! idempotency key another gateway bound first is not stored, and its
//! sender is answered `sent` with the original id and no live event (the
//! gateway that stored it delivers it); a group write on a stale record is
//! refused whole and answered `unavailable`.
//!
//! When the store refuses a commit, the batches prepared on top of it are
//! void too: the writer refuses them unwritten (`unavailable`) until the
//! committer has heard of the failure and forgotten its caches.
//!
//! Files: `start` starts the pipelines, `route` picks one per request,
//! `order` orders ids and dispatch across them, `peers` tells them of each
//! other's changes; `batch` builds one batch (direct messages and receipts),
//! `client_ids` tells a resend from a reused client id, `groups`
//! the group operations and group fan-out, `in_flight` the decisions of
//! batches not yet stored, `outage` what happens while the store refuses
//! writes, `writer` writes batches, `dispatch` answers and delivers what
//! each write came to, this file runs the committer.

mod amend;
mod batch;
#[doc(hidden)]
pub mod bench_support;
mod blocks;
mod client_ids;
#[cfg(test)]
mod counting_store;
mod direct_from;
mod dispatch;
mod group_admin;
mod groups;
mod hide;
mod in_flight;
mod lookups;
mod order;
mod outage;
mod peers;
#[cfg(test)]
mod read_and_lookup_tests;
mod recent;
mod route;
#[cfg(test)]
mod shared_store_tests;
mod start;
#[cfg(test)]
mod test_store;
mod writer;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chatgw_protocol::GroupId;
use chatgw_router::{Directory, Mailboxes};
use chatgw_storage::{MessageStore, StoreError};
use crossbeam_channel::{Receiver, RecvTimeoutError};

pub(crate) use self::amend::AmendWindows;
use self::{
    batch::Batch,
    order::BatchIds,
    outage::Outage,
    peers::Changed,
    writer::{Failure, Handoff, Job, Prepared, Waiting, Writer, WRITER_QUEUE},
};
pub(crate) use self::{
    order::Sequencer,
    peers::Peers,
    route::CommitQueues,
    start::{pipelines_for, start, Started, DEFAULT_MAX as DEFAULT_PIPELINES_MAX},
};
use crate::{
    events::{CommitRequest, CoreBatch},
    metrics::Metrics,
};

/// What the committer and its writer use besides the store, built by the
/// server: the directory to find each user's devices, the mailboxes to
/// post results to the cores, the counters, and their settings.
pub(crate) struct CommitContext {
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Snowflake node id.
    pub(crate) node_id: u16,
    pub(crate) max_group_members: usize,
    /// How long after sending a message may be deleted for everyone, and edited.
    pub(crate) amend_windows: AmendWindows,
    /// Largest group commit, in requests.
    pub(crate) commit_batch: usize,
    /// How long a small batch waits for more requests (`gather`).
    pub(crate) commit_window: Duration,
    /// Groups whose membership another node changed: drained before each
    /// batch, and the cached members of each forgotten, so the next send to
    /// the group reads the record again.
    pub(crate) stale_groups: Receiver<GroupId>,
    /// In a fleet: where committed events go to reach other nodes.
    pub(crate) remote: Option<crate::fleet::RemoteOut>,
    /// Rung after each commit for the Kafka publisher (`publisher`).
    pub(crate) events_wake: crate::publisher::Wake,
}

/// One commit pipeline's own parts (see `order`, `peers`, `route`).
pub(crate) struct Pipeline {
    /// Its number, and how many there are.
    pub(crate) index: usize,
    pub(crate) count: usize,
    pub(crate) sequencer: Arc<Sequencer>,
    pub(crate) peers: Peers,
}

/// The committer thread's body. Returns when it receives `Stop` (after the
/// writer has committed everything before it, or refused it with
/// `unavailable` while the store refuses writes) or when every sender is
/// gone.
pub(crate) fn run(ctx: CommitContext, pipeline: Pipeline, store: Arc<dyn MessageStore>, rx: Receiver<CommitRequest>) {
    let Pipeline { index, count, sequencer, peers } = pipeline;
    let batches =
        ctx.metrics.commit_pipeline_batches.get_or_create(&vec![("pipeline".into(), index.to_string())]).clone();
    let mut batch = Batch::new(store.as_ref(), BatchIds::new(sequencer.clone()), ctx.max_group_members);
    batch.windows = ctx.amend_windows;
    batch.pipeline = (index, count);
    let mut requests = Vec::with_capacity(ctx.commit_batch);
    // Writing (the store commit and its fsync) and dispatch (encoding
    // frames, looking up devices, posting to cores) run on their own thread,
    // so the next batch is prepared while the last ones are being written;
    // this thread takes a small batch itself when that thread is idle. One
    // writer (behind one lock), fed in preparation order, keeps this
    // pipeline's batches in order; `order` keeps every pipeline's events
    // in id order on every core.
    let (failure_tx, failures) = crossbeam_channel::unbounded::<Failure>();
    let (conflict_tx, conflicts) = crossbeam_channel::unbounded::<GroupId>();
    let done_through = AtomicU64::new(0);
    let writer =
        Mutex::new(Writer::new(&ctx, store.as_ref(), &sequencer, &peers, &failure_tx, &conflict_tx, &done_through));
    let processed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (queue, writer_rx) = crossbeam_channel::bounded::<Job>(WRITER_QUEUE);
        let writer_thread = std::thread::Builder::new()
            .name("chatgw-write".into())
            .spawn_scoped(scope, || writer::run(&writer, writer_rx, &processed));
        if let Err(e) = writer_thread {
            tracing::error!(error = %e, "cannot start the writer thread");
            return;
        }
        let mut to_writer = Handoff::new(queue, &writer, &processed);
        let mut seq = 0u64;
        let mut stop = false;
        let mut outage: Option<Outage> = None;
        while !stop {
            // A refused batch: everything prepared since is void, and the
            // writer discards it until it hears that this thread knows.
            if !learn_failures(&failures, None, &mut batch, &mut outage, &ctx, &mut to_writer) {
                return;
            }
            if let Some(o) = outage.as_mut() {
                if o.try_recover(store.as_ref(), &ctx.metrics) {
                    // Batches prepared during the outage are all through the
                    // writer now; their refusals still count as the outage's.
                    wait_for_writer(&done_through, seq);
                    if !learn_failures(&failures, None, &mut batch, &mut outage, &ctx, &mut to_writer) {
                        return;
                    }
                    outage = None;
                    batch.forget_all_cached();
                    resume_ids(&mut batch, store.as_ref(), ctx.node_id);
                }
            }
            // Idle, a refusal is noticed at once (so the outage and its
            // probes start then), not only with the next request.
            let first = match &outage {
                None => crossbeam_channel::select! {
                    recv(rx) -> r => r.map_err(|_| RecvTimeoutError::Disconnected),
                    recv(failures) -> f => {
                        if !learn_failures(&failures, f.ok(), &mut batch, &mut outage, &ctx, &mut to_writer) {
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
            let arrived = Instant::now();
            requests.push(first);
            drain(&rx, &mut requests, ctx.commit_batch);
            stop = requests.iter().any(|r| matches!(r, CommitRequest::Stop));
            if !stop && outage.is_none() && requests.len() < GATHER_BELOW && !ctx.commit_window.is_zero() {
                gather(&rx, &mut requests, arrived + ctx.commit_window, ctx.commit_batch);
                stop = requests.iter().any(|r| matches!(r, CommitRequest::Stop));
            }
            seq += 1;
            // Groups another gateway changed (a refused write told this
            // one, or the fleet did): read them again.
            for g in conflicts.try_iter() {
                batch.forget_group(g);
            }
            // One pipeline takes each; it tells the others.
            for g in ctx.stale_groups.try_iter() {
                batch.forget_group(g);
                peers.tell(Changed::Group(g));
            }
            // What the other pipelines changed: read again (`peers`).
            for change in peers.heard() {
                match change {
                    Changed::Group(g) => batch.forget_group(g),
                    Changed::User(u) => batch.forget_user(u),
                }
            }
            let n = requests.len();
            batch.begin(seq, done_through.load(Ordering::Acquire));
            batch.reserve_ids(n);
            batches.inc();
            let origins: Vec<_> = requests.iter().filter_map(origin_of).collect();
            let prepared = prepare(&mut batch, &mut requests);
            for u in batch.changed_users.drain(..) {
                peers.tell(Changed::User(u));
            }
            report_cache_sizes(&mut batch, &ctx);
            let tickets = batch.take_tickets();
            let job = match prepared {
                Ok(()) => Job::Batch(Prepared {
                    seq,
                    high_water: batch.last_id(),
                    outcomes: batch.take_outcomes(),
                    origins,
                    requests: n,
                    tickets,
                }),
                Err(e) => {
                    // A store read failed: nothing of this batch is written.
                    // Earlier batches still with the writer will be, so wait
                    // for them before forgetting what they decided.
                    wait_for_writer(&done_through, seq - 1);
                    batch.forget_all_cached();
                    if let Some(started) = Outage::on_failed_commit(outage.as_ref(), &e, n, &ctx.metrics) {
                        outage = Some(started);
                    }
                    Job::Refused { seq, origins, tickets }
                }
            };
            // Written here when the batch is small and no request waits:
            // there is nothing to overlap its write with.
            if to_writer.send(job, n <= WRITE_HERE_MAX && rx.is_empty()).is_err() {
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
    ctx: &CommitContext,
    to_writer: &mut Handoff<'_, '_>,
) -> bool {
    for failure in first.into_iter().chain(failures.try_iter()) {
        batch.forget_all_cached();
        let started = Outage::on_failed_commit(outage.as_ref(), &failure.error, failure.requests, &ctx.metrics);
        if started.is_some() {
            *outage = started;
        }
        if to_writer.send(Job::FailureSeen(failure.generation), true).is_err() {
            return false;
        }
    }
    true
}

/// Publish the sizes of the committer's caches and its read-scan work.
fn report_cache_sizes(batch: &mut Batch<'_>, ctx: &CommitContext) {
    let (messages, marks) = batch.recent_sizes();
    ctx.metrics.recent_messages.set(i64::try_from(messages).unwrap_or(i64::MAX));
    ctx.metrics.recent_delivery_marks.set(i64::try_from(marks).unwrap_or(i64::MAX));
    ctx.metrics.group_read_rows_scanned.inc_by(std::mem::take(&mut batch.read_rows_scanned));
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

/// Largest batch (in requests) the committer writes itself when the writer
/// is idle. Larger batches come with load, and their writes are long
/// enough that preparing the next meanwhile pays.
const WRITE_HERE_MAX: usize = 4;

/// A batch this small waits out the commit window for company; a larger
/// one shows the load already fills batches. (Waiting only while the
/// writer is idle saved a third as much CPU at 2,000 msg/s on the
/// reference box: requests queued behind the writer's fsync still came
/// one or two to a batch.)
const GATHER_BELOW: usize = 16;

/// Take what is queued, up to `max` requests in all.
fn drain(rx: &Receiver<CommitRequest>, requests: &mut Vec<CommitRequest>, max: usize) {
    while requests.len() < max {
        match rx.try_recv() {
            Ok(r) => requests.push(r),
            Err(_) => break,
        }
    }
}

/// Wait until `until`, then take what came meanwhile.
///
/// Why: at a low rate each request arrives alone, and committing it at
/// once costs an fsync, a wake-up of this thread and one of each core per
/// message. Sleeping (rather than waiting on the channel) means the
/// requests arriving meanwhile wake nobody; they share one commit and one
/// fsync. Measured on the reference box at 2,000 msg/s: see
/// docs/ARCHITECTURE.md, "Commit window".
fn gather(rx: &Receiver<CommitRequest>, requests: &mut Vec<CommitRequest>, until: Instant, max: usize) {
    let now = Instant::now();
    if until > now {
        std::thread::sleep(until - now);
    }
    drain(rx, requests, max);
}

/// Longest wait for the writer to drain its queue after an outage.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// After the store was reopened: ids continue above everything it holds,
/// so they never go backwards even if the failed batch reached the disk.
fn resume_ids(batch: &mut Batch<'_>, store: &dyn MessageStore, node: u16) {
    match store.high_water(node) {
        Ok(h) => batch.resume_after(h),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the id high-water mark after recovery; ids continue from memory")
        }
    }
}

fn origin_of(r: &CommitRequest) -> Option<Waiting> {
    match r {
        CommitRequest::Send { origin, client_id, .. } => Some((*origin, Some(client_id.clone()))),
        CommitRequest::Group { origin, op: crate::events::GroupOp::Create { request_id, .. }, .. } => {
            Some((*origin, Some(request_id.clone())))
        }
        CommitRequest::Delivered { origin, .. }
        | CommitRequest::Read { origin, .. }
        | CommitRequest::Group { origin, .. }
        | CommitRequest::Block { origin, .. }
        | CommitRequest::DirectFrom { origin, .. }
        | CommitRequest::Amend { origin, .. } => Some((*origin, None)),
        CommitRequest::KeysChanged { .. } | CommitRequest::Stop => None,
    }
}

/// Take every request into the batch: the store's answers for all of them
/// first (one call per kind), then ids, checks, outcomes.
fn prepare(batch: &mut Batch<'_>, requests: &mut Vec<CommitRequest>) -> Result<(), StoreError> {
    let looked_up = batch.look_up(requests);
    if let Err(e) = looked_up {
        requests.clear();
        return Err(e);
    }
    for r in requests.drain(..) {
        batch.add(r)?;
    }
    batch.finish();
    Ok(())
}

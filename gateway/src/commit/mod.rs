//! The group committer: the one thread that writes.
//!
//! Cores hand it requests through a channel and go back to their sockets.
//! It takes everything queued (up to `commit_batch`), assigns Snowflake ids
//! in arrival order, resolves idempotency, membership and receipt checks,
//! writes the whole batch with one fsync, and only then answers: `sent`
//! acks to the origin connections and live events to every device of every
//! user concerned, posted to each core's mailbox as one batch per core.
//!
//! Why one thread: ids handed out here increase in commit order, and events
//! reach each core's mailbox in that same order, so a device that has seen
//! event N has seen every earlier event of its inbox that was delivered live.
//! `sync` relies on this: a cursor is a complete description of what a
//! device has. The same thread owns the group membership cache, so a
//! membership change is visible to the very next send without any locking.
//!
//! Files: `batch` builds one batch (direct messages and receipts), `groups`
//! the group operations and group fan-out, `outage` what happens while the
//! store refuses writes, this file runs the loop and dispatches the results.

mod batch;
mod groups;
mod outage;

use std::{sync::Arc, time::Instant};

use chatgw_protocol::{server, ErrorCode, MessageId, Snowflake, UserId};
use chatgw_router::{Endpoint, Fanout};
use chatgw_storage::{MessageStore, StoreError, Write};
use crossbeam_channel::{Receiver, RecvTimeoutError};

use self::{
    batch::{Batch, Outcome},
    outage::Outage,
};
use crate::{
    events::{CommitRequest, CoreEvent},
    server::Shared,
};

/// The committer thread's body. Returns when it receives `Stop` (after
/// committing everything before it) or when every sender is gone.
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
    // Dispatch (encoding frames, looking up devices, posting to cores) runs
    // on its own thread so the next batch is prepared and written while the
    // last one is being delivered. One dispatcher, fed in commit order,
    // keeps events in id order on every core.
    let (to_dispatcher, dispatch_rx) = crossbeam_channel::bounded::<Dispatch>(DISPATCH_QUEUE);
    std::thread::scope(|scope| {
        let dispatcher = std::thread::Builder::new()
            .name("chatgw-dispatch".into())
            .spawn_scoped(scope, || dispatcher(&shared, dispatch_rx));
        if let Err(e) = dispatcher {
            tracing::error!(error = %e, "cannot start the dispatcher thread");
            return;
        }
        let mut stop = false;
        let mut outage: Option<Outage> = None;
        while !stop {
            if let Some(o) = outage.as_mut() {
                if o.try_recover(store.as_ref(), &shared.metrics) {
                    outage = None;
                    batch.forget_all_cached();
                    resume_ids(&mut batch, store.as_ref());
                }
            }
            let first = match &outage {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
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
            let n = requests.len();
            let started = Instant::now();
            let result = prepare_and_commit(&mut batch, &mut requests, &shared);
            shared.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            shared.metrics.commit_batch_size.observe(n as f64);
            let job = match result {
                Ok(()) => Dispatch::Committed(batch.take_outcomes()),
                Err((e, origins)) => {
                    batch.forget_cached_changes();
                    if let Some(started) = Outage::on_failed_commit(outage.as_ref(), &e, n, &shared.metrics) {
                        outage = Some(started);
                    }
                    Dispatch::Failed(origins)
                }
            };
            batch.clear();
            if to_dispatcher.send(job).is_err() {
                break;
            }
        }
        // Dropping the sender lets the dispatcher finish what is queued and exit.
        drop(to_dispatcher);
    });
    tracing::info!("committer stopped");
}

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

/// Batches committed but not yet dispatched, at most.
const DISPATCH_QUEUE: usize = 4;

/// Work for the dispatcher, in commit order.
enum Dispatch {
    /// A durable batch: acks and live events.
    Committed(Vec<Outcome>),
    /// A failed batch: tell every requester.
    Failed(Vec<Waiting>),
}

fn dispatcher(shared: &Shared, rx: Receiver<Dispatch>) {
    let mut fanout = Fanout::new(shared.mailboxes.cores());
    while let Ok(job) = rx.recv() {
        match job {
            Dispatch::Committed(outcomes) => dispatch(shared, &outcomes, &mut fanout),
            Dispatch::Failed(origins) => {
                for (origin, reference) in origins {
                    let mut p = Vec::new();
                    server::error(
                        &mut p,
                        ErrorCode::Unavailable,
                        "the store could not take the write; retry with the same id",
                        reference.as_deref(),
                    );
                    fanout.push(usize::from(origin.core), CoreEvent::Reply { to: origin, payload: p });
                }
            }
        }
        fanout.flush(&shared.mailboxes);
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

fn prepare_and_commit(
    batch: &mut Batch<'_>,
    requests: &mut Vec<CommitRequest>,
    shared: &Shared,
) -> Result<(), (StoreError, Vec<Waiting>)> {
    let origins: Vec<_> = requests.iter().filter_map(origin_of).collect();
    for r in requests.drain(..) {
        if let Err(e) = batch.add(r) {
            return Err((e, origins));
        }
    }
    batch.finish();
    let writes: Vec<Write<'_>> = batch.writes();
    if writes.is_empty() {
        return Ok(());
    }
    let stats = batch.store().commit(&writes, batch.last_id()).map_err(|e| (e, origins))?;
    shared.metrics.commit_bytes.inc_by(stats.bytes as u64);
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

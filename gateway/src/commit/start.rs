//! Starting the commit pipelines: how many, their shared parts, their
//! threads.
//!
//! Why several: one committer thread preparing every write and one writer
//! committing and dispatching every batch were a point every core's
//! messages passed through. Pipelines prepare, encode and dispatch in
//! parallel; what stays serial is the store's own commit (the engine's
//! journal lock) and the order in which batches post their events
//! (`order`). docs/ARCHITECTURE.md, "Commit pipelines", has the picture.
//!
//! Why one with a shared store (PostgreSQL, Cassandra): those stores
//! assign inbox positions themselves, in their commit order, and a node's
//! events must reach its cores in that order; one pipeline per node keeps
//! it so, and a fleet spreads the load over its nodes instead.

use std::{sync::Arc, thread::JoinHandle};

use chatgw_storage::MessageStore;
use crossbeam_channel::Sender;

use super::{route::CommitQueues, run, CommitContext, Peers, Pipeline, Sequencer};
use crate::events::CommitRequest;

/// Most pipelines `--commit-pipelines` defaults to.
pub(crate) const DEFAULT_MAX: usize = 8;

/// The pipelines asked for, as the store allows: one where the store
/// assigns inbox positions itself.
pub(crate) fn pipelines_for(asked: usize, store: &dyn MessageStore) -> usize {
    if store.dense_positions() {
        1
    } else {
        asked.max(1)
    }
}

/// Running pipelines.
pub(crate) struct Started {
    /// Where the cores queue requests.
    pub(crate) queues: CommitQueues,
    pub(crate) threads: Vec<JoinHandle<()>>,
    /// Where readers cap inbox scans, with more than one pipeline
    /// (`order`); `None` with one, whose commits follow its ids.
    pub(crate) horizon: Option<Arc<Sequencer>>,
}

/// Start `k` pipelines (see [`pipelines_for`]), each with a queue of
/// `depth` requests. `ctx.remote` goes to the first (a fleet has one).
pub(crate) fn start(
    mut ctx: CommitContext,
    store: Arc<dyn MessageStore>,
    k: usize,
    depth: usize,
) -> std::io::Result<Started> {
    let k = k.max(1);
    let high_water = match store.high_water(ctx.node_id) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the id high-water mark; ids restart from the clock");
            chatgw_protocol::MessageId(0)
        }
    };
    let sequencer = Arc::new(Sequencer::new(ctx.node_id, high_water));
    let mut queues: Vec<Sender<CommitRequest>> = Vec::with_capacity(k);
    let mut threads = Vec::with_capacity(k);
    for (index, peers) in Peers::linked(k).into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::bounded(depth);
        queues.push(tx);
        let pipeline = Pipeline { index, count: k, sequencer: sequencer.clone(), peers };
        let c = CommitContext {
            directory: ctx.directory.clone(),
            mailboxes: ctx.mailboxes.clone(),
            metrics: ctx.metrics.clone(),
            node_id: ctx.node_id,
            max_group_members: ctx.max_group_members,
            amend_windows: ctx.amend_windows,
            commit_batch: ctx.commit_batch,
            commit_window: ctx.commit_window,
            stale_groups: ctx.stale_groups.clone(),
            remote: ctx.remote.take(),
            events_wake: ctx.events_wake.clone(),
        };
        let store = store.clone();
        let name = if k == 1 { "chatgw-commit".to_string() } else { format!("chatgw-commit-{index}") };
        threads.push(std::thread::Builder::new().name(name).spawn(move || run(c, pipeline, store, rx))?);
    }
    if k > 1 {
        tracing::info!(pipelines = k, "commit pipelines started");
    }
    Ok(Started { queues: CommitQueues::new(queues), threads, horizon: (k > 1).then_some(sequencer) })
}

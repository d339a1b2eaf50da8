//! The workers of a run as the conducting thread sees them, whether they
//! are threads of this process or worker processes.
//!
//! A scenario's conductor (its main thread) only ever waits for the workers
//! to finish their setup, gives the go, aborts, reads progress counters and
//! collects results; [`Fleet`] is exactly that. [`Local`] is this process's
//! threads; [`Procs`] is worker processes started with
//! `--procs`, each of which runs a `Local` and relays it
//! ([`relay`]). So every scenario gets `--procs` by writing
//! its conductor once against `Fleet`.

use std::{sync::Arc, time::Duration};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    procs::{parent::Procs, relay},
    report::shared::{Coord, Live, Snapshot},
    scenarios::{
        ctx::{Role, RunCtx},
        run::Workers,
    },
};

/// The workers of a run, each returning an `R` per thread.
pub(crate) trait Fleet<R> {
    /// Every worker has finished its setup (its connections are up or failed).
    fn ready(&self) -> bool;
    /// Some worker has returned (normally only at the end; early means it failed).
    fn any_finished(&self) -> bool;
    /// Every worker has returned.
    fn all_finished(&self) -> bool;
    /// Start the measured phase at clock time `at_ns`.
    fn go(&self, at_ns: u64);
    /// Stop now.
    fn abort(&self);
    /// The progress counters, summed over the workers.
    fn snapshot(&self) -> Snapshot;
    /// Wait for every worker and collect one result per thread.
    fn join(self: Box<Self>) -> anyhow::Result<Vec<R>>;
    /// The processes doing the work, this one included: whose CPU time is
    /// the load generator's.
    fn pids(&self) -> Vec<u32>;
}

/// This process's worker threads.
pub(crate) struct Local<R> {
    workers: Workers<R>,
    coord: Arc<Coord>,
    live: Arc<Live>,
    threads: usize,
}

impl<R: Send + 'static> Local<R> {
    /// Start `ctx.share.threads` threads running `work(thread index)`.
    pub(crate) fn spawn(
        ctx: &RunCtx,
        work: impl Fn(usize) -> anyhow::Result<R> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let threads = ctx.share.threads;
        Ok(Local {
            workers: Workers::spawn(threads, work)?,
            coord: Arc::clone(&ctx.coord),
            live: Arc::clone(&ctx.live),
            threads,
        })
    }
}

impl<R: Send + 'static> Fleet<R> for Local<R> {
    fn ready(&self) -> bool {
        self.coord.ready_count() == self.threads
    }
    fn any_finished(&self) -> bool {
        self.workers.any_finished()
    }
    fn all_finished(&self) -> bool {
        self.workers.all_finished()
    }
    fn go(&self, at_ns: u64) {
        self.coord.set_go(at_ns);
    }
    fn abort(&self) {
        self.coord.abort();
    }
    fn snapshot(&self) -> Snapshot {
        self.live.snapshot()
    }
    fn join(self: Box<Self>) -> anyhow::Result<Vec<R>> {
        self.workers.join()
    }
    fn pids(&self) -> Vec<u32> {
        vec![std::process::id()]
    }
}

/// What [`start`] left the caller to do.
pub(crate) enum Started<R> {
    /// Conduct these workers and report.
    Conduct(Box<dyn Fleet<R>>),
    /// This was a worker process and its results are written: exit.
    WorkerDone,
}

/// Start the run's workers as this process's role says: threads here
/// (single process), worker processes (parent), or threads here relayed to
/// the parent (worker; returns once they are done). `timeout` is the run's
/// safety net, which a worker applies to itself too in case its parent
/// vanishes.
pub(crate) fn start<R>(
    ctx: &RunCtx,
    timeout: Duration,
    work: impl Fn(usize) -> anyhow::Result<R> + Send + Sync + 'static,
) -> anyhow::Result<Started<R>>
where
    R: Serialize + DeserializeOwned + Send + 'static,
{
    match ctx.role {
        Role::Single => Ok(Started::Conduct(Box::new(Local::spawn(ctx, work)?))),
        Role::Parent => Ok(Started::Conduct(Box::new(Procs::<R>::spawn(ctx)?))),
        Role::Worker => {
            let local = Local::spawn(ctx, work)?;
            relay::run(local, ctx, timeout)?;
            Ok(Started::WorkerDone)
        }
    }
}

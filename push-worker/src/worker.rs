//! The worker loop: read events from a source, let the planner decide, hand
//! due windows off, commit the watermark.
//!
//! One thread does all of it, in that order, so nothing is being handed
//! off while the source reports a rebalance, and no commit is made for a
//! partition after it was revoked: a revocation is read by `poll` and
//! applied before the next commit.

use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use crate::{
    dispatch::Handoff,
    handoff::{Liveness, NotificationSender, PushTargets},
    metrics::PushMetrics,
    planner::Planner,
    record::{self, DecodeError},
    watermark::Position,
};

/// What a source hands the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceItem {
    /// One event record.
    Record {
        /// Where it sits in the source.
        pos: Position,
        /// The record (JSON, schema v1).
        payload: Vec<u8>,
    },
    /// This reader no longer owns the partition: drop what was read from it
    /// without committing.
    Revoked(i32),
}

/// A stream of event records that can be resumed from committed positions
/// (a Kafka consumer group, the store's outbox).
pub trait EventSource {
    /// Why reading or committing failed.
    type Error: fmt::Display;

    /// Append what arrived within `timeout` to `out`.
    fn poll(&mut self, timeout: Duration, out: &mut Vec<SourceItem>) -> Result<(), Self::Error>;

    /// Commit, per partition, the offset of the next event to read.
    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), Self::Error>;

    /// Stop (`true`) or go on (`false`) handing out records; `poll` is still
    /// called while paused, so the source keeps its place in its group.
    fn set_paused(&mut self, paused: bool) -> Result<(), Self::Error>;
}

/// Where time comes from: the system's clock, or a test's.
pub trait Clock {
    /// Unix time, milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Tunables of the loop.
#[derive(Clone, Copy, Debug)]
pub struct WorkerConfig {
    /// How long a window waits for more messages (and its user to read).
    pub grace: Duration,
    /// Least time between two commits.
    pub commit_interval: Duration,
    /// Longest wait for records when nothing falls due sooner.
    pub max_poll_wait: Duration,
    /// Pending windows at which the worker stops reading until some are
    /// settled (a store of targets that is down, a provider that fails):
    /// memory stays bounded, and the events wait in the source.
    pub max_pending: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            grace: Duration::from_secs(2),
            commit_interval: Duration::from_millis(500),
            max_poll_wait: Duration::from_millis(200),
            max_pending: 100_000,
        }
    }
}

/// The push worker over one source.
pub struct Worker<S, L, T, N, C> {
    source: S,
    planner: Planner,
    liveness: L,
    targets: T,
    sender: N,
    clock: C,
    metrics: std::sync::Arc<PushMetrics>,
    config: WorkerConfig,
    last_commit_ms: u64,
    items: Vec<SourceItem>,
    paused: bool,
}

impl<S, L, T, N, C> Worker<S, L, T, N, C>
where
    S: EventSource,
    L: Liveness,
    T: PushTargets,
    N: NotificationSender<T::Target>,
    C: Clock,
{
    /// A worker reading `source`.
    #[allow(clippy::too_many_arguments)] // Each is a distinct collaborator.
    pub fn new(
        source: S,
        liveness: L,
        targets: T,
        sender: N,
        clock: C,
        metrics: std::sync::Arc<PushMetrics>,
        config: WorkerConfig,
    ) -> Self {
        let grace_ms = u64::try_from(config.grace.as_millis()).unwrap_or(u64::MAX);
        Worker {
            source,
            planner: Planner::new(grace_ms),
            liveness,
            targets,
            sender,
            last_commit_ms: clock.now_ms(),
            clock,
            metrics,
            config,
            items: Vec::new(),
            paused: false,
        }
    }

    /// Read once (waiting at most until the next window falls due), decide,
    /// hand off what is due, and commit if the interval has passed.
    pub fn step(&mut self) -> Result<(), S::Error> {
        let now = self.clock.now_ms();
        let until_due = self.planner.next_due_ms().map_or(self.config.max_poll_wait, |due| {
            Duration::from_millis(due.saturating_sub(now)).min(self.config.max_poll_wait)
        });
        let full = self.planner.pending() >= self.config.max_pending;
        if full != self.paused {
            self.source.set_paused(full)?;
            self.paused = full;
            tracing::info!(
                paused = full,
                pending = self.planner.pending(),
                "reading paused while too many notifications are pending"
            );
        }
        let mut items = std::mem::take(&mut self.items);
        let polled = self.source.poll(until_due, &mut items);
        let now = self.clock.now_ms();
        for item in items.drain(..) {
            self.read(item, now);
        }
        self.items = items;
        polled?;
        Handoff { liveness: &self.liveness, targets: &self.targets, sender: &self.sender, metrics: &self.metrics }
            .run(&mut self.planner, self.clock.now_ms());
        let now = self.clock.now_ms();
        if now.saturating_sub(self.last_commit_ms) >= self.config.commit_interval.as_millis() as u64 {
            self.commit()?;
        }
        self.metrics.pending.set(i64::try_from(self.planner.pending()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Commit every partition's watermark now.
    pub fn commit(&mut self) -> Result<(), S::Error> {
        self.last_commit_ms = self.clock.now_ms();
        let offsets = self.planner.to_commit();
        if !offsets.is_empty() {
            if let Err(e) = self.source.commit(&offsets) {
                self.metrics.commit_errors.inc();
                return Err(e);
            }
            for &(partition, offset) in &offsets {
                self.planner.committed(partition, offset);
            }
        }
        self.metrics.commit_lag.set(i64::try_from(self.planner.commit_lag()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Step until `stop` is set, then commit what is decided. Source errors
    /// are logged and the loop goes on (the source reconnects by itself).
    pub fn run(&mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.step() {
                tracing::warn!(error = %e, "event source");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Err(e) = self.commit() {
            tracing::warn!(error = %e, "final commit failed; the next reader repeats the uncommitted events");
        }
    }

    /// The planner (for tests and status).
    pub fn planner(&self) -> &Planner {
        &self.planner
    }

    /// The source (for tests).
    pub fn source(&self) -> &S {
        &self.source
    }

    fn read(&mut self, item: SourceItem, now_ms: u64) {
        match item {
            SourceItem::Revoked(partition) => self.planner.revoke(partition),
            SourceItem::Record { pos, payload } => {
                self.metrics.events_seen.inc();
                match record::decode(&payload) {
                    Ok(event) => {
                        let effect = self.planner.on_event(pos, event, now_ms);
                        self.metrics.messages_collapsed.inc_by(u64::from(effect.collapsed));
                        self.metrics.cancelled_by_read.inc_by(u64::from(effect.cancelled));
                    }
                    Err(e) => {
                        let reason = match e {
                            DecodeError::UnknownVersion(_) => "unknown_version",
                            DecodeError::Malformed(_) => "malformed",
                        };
                        self.metrics.rejected(reason);
                        tracing::error!(partition = pos.partition, offset = pos.offset, error = %e, "event record skipped");
                        self.planner.on_skipped(pos);
                    }
                }
            }
        }
    }
}

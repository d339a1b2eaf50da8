//! The skeleton every scenario runs, written once so that the scenarios
//! differ only in what they open, send and report.
//!
//! A worker thread ([`Worker`]) opens its connections on a ramp and waits
//! for the go ([`Worker::set_up`]); a messaging scenario then sends on its
//! open-loop schedule and drains ([`Worker::load`]), its traffic plugged in
//! through [`Load`], and closes. The main thread ([`Conductor`]) starts the
//! workers, watches the setup and judges it, gives the go, follows the
//! load's phases with the progress display, enforces the `--timeout`
//! deadline, and merges what the workers return.

use std::{
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    cli::{CommonArgs, LoadArgs},
    conn::{
        connection::{ConnStats, Handler},
        driver::{Driver, DriverConfig},
        ramp::Ramp,
        token::Minter,
    },
    procs::{
        fleet::{self, Fleet, Started},
        share::Share,
    },
    report::{
        cpu::{CpuFigures, CpuProbe, CpuSample},
        progress::Progress,
        shared::{ns, Clock, Coord, Live, Snapshot},
        stats::{merge_all, Merge, Reasons, Summary},
        summary::Table,
    },
    scenarios::{ctx::RunCtx, run::watch_until, schedule::Schedule},
};

/// Time allowed for close handshakes at the end.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Longest a worker sleeps in its poller before looking at the phase flags.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(50);
/// Delay between the go and the first message, so every worker sees it.
pub(crate) const GO_DELAY_NS: u64 = 100_000_000;

/// A duration in nanoseconds (saturating).
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The `--timeout` safety net: as given, or the planned length plus a
/// minute. The plan: `conns` connections opened at `conn_rate` per second,
/// `handshakes` handshake timeouts, `rest` (hold, or load and drain), the
/// close.
pub(crate) fn safety_timeout(c: &CommonArgs, conns: u64, conn_rate: u64, handshakes: u32, rest: Duration) -> Duration {
    c.timeout.map(|t| t.0).unwrap_or(
        Duration::from_secs_f64(conns as f64 / conn_rate as f64)
            + c.handshake_timeout.0 * handshakes
            + rest
            + CLOSE_GRACE
            + Duration::from_secs(60),
    )
}

/// When a messaging scenario's workers open and send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadPlan {
    /// Connections opened per second during setup.
    pub(crate) conn_rate: u64,
    /// Messages per second, in total.
    pub(crate) rate: u64,
    /// How long to send.
    pub(crate) duration_ns: u64,
    /// How long to wait for stragglers after that.
    pub(crate) drain_ns: u64,
}

impl LoadPlan {
    /// `rate` messages/s for `duration`, and the shared `load` settings.
    pub(crate) fn new(rate: u64, duration: Duration, load: &LoadArgs) -> Self {
        LoadPlan { conn_rate: load.conn_rate, rate, duration_ns: nanos(duration), drain_ns: nanos(load.drain.0) }
    }
}

/// A thread's traffic as [`Worker::load`] drives it.
pub(crate) trait Load: Handler {
    /// What the thread hands back at the end.
    type Stats;

    /// Nothing is outstanding any more: the drain can end early.
    fn settled(&self) -> bool;

    /// The measured phase starts: the first message is due at `go_ns`.
    fn start(&mut self, _go_ns: u64) {}

    /// At the top of each turn of the sending loop: do whatever else is
    /// due by `now_ns`; returns when the loop must wake for what is still
    /// to come.
    fn tick(&mut self, _driver: &mut Driver, _now_ns: u64) -> Option<u64> {
        None
    }

    /// After each poll of the sending loop and of the drain.
    fn after_poll(&mut self, _driver: &mut Driver) {}

    /// Count what never arrived and hand over the figures; once, at the end.
    fn finish(self) -> Self::Stats;
}

/// What a worker thread needs from the run (cloned into each thread).
#[derive(Clone)]
pub(crate) struct Worker {
    config: DriverConfig,
    minter: Minter,
    pub(crate) clock: Clock,
    pub(crate) live: Arc<Live>,
    coord: Arc<Coord>,
    /// This process's share of the items.
    pub(crate) share: Share,
    /// When the connection ramp starts, on `clock`.
    pub(crate) start_ns: u64,
    /// Marks this run's client ids.
    pub(crate) tag: String,
}

impl Worker {
    /// The run's settings, for its worker threads.
    pub(crate) fn new(ctx: &RunCtx, c: &CommonArgs) -> Self {
        Worker {
            config: DriverConfig {
                targets: ctx.targets.clone(),
                sources: ctx.sources.clone(),
                handshake_timeout: c.handshake_timeout.0,
            },
            minter: Minter::new(&c.secret),
            clock: ctx.clock,
            live: Arc::clone(&ctx.live),
            coord: Arc::clone(&ctx.coord),
            share: ctx.share,
            start_ns: ctx.start_ns,
            tag: ctx.tag.clone(),
        }
    }

    /// Thread `t`'s driver; `seed` (one per scenario) and the thread's
    /// lane seed its masks.
    pub(crate) fn driver(&self, t: usize, seed: u64) -> io::Result<Driver> {
        let seed = seed ^ self.share.lane(t) as u64;
        Driver::new(self.config.clone(), self.minter.clone(), self.clock, Arc::clone(&self.live), seed)
    }

    /// Thread `t`'s whole part in a messaging run: `work` (its setup and
    /// load) with `traffic`, then close every connection and hand over the
    /// figures.
    pub(crate) fn run<L: Load>(
        &self,
        t: usize,
        seed: u64,
        mut traffic: L,
        work: impl FnOnce(&mut Driver, &mut L) -> anyhow::Result<()>,
    ) -> anyhow::Result<(ConnStats, L::Stats)> {
        let mut driver = self.driver(t, seed)?;
        work(&mut driver, &mut traffic)?;
        driver.close_all(CLOSE_GRACE, &mut traffic);
        Ok((driver.stats, traffic.finish()))
    }

    /// A worker's setup: open the connections of `ramp` that `owns`
    /// accepts (`open` each, by its ramp index), tell the main thread once
    /// `ready` holds (it is told whether every connection has come up or
    /// failed, and may do more setup of its own), and wait for the go.
    /// Returns the go time, or `None` if the run was aborted.
    pub(crate) fn set_up<H: Handler>(
        &self,
        driver: &mut Driver,
        handler: &mut H,
        mut ramp: Ramp,
        owns: impl Fn(u64) -> bool,
        mut open: impl FnMut(&mut Driver, &mut H, u64),
        mut ready: impl FnMut(&mut Driver, &mut H, bool) -> bool,
    ) -> anyhow::Result<Option<u64>> {
        let mut marked = false;
        loop {
            if self.coord.aborted() {
                return Ok(None);
            }
            if marked {
                if let Some(go) = self.coord.go() {
                    return Ok(Some(go));
                }
            }
            let now = self.clock.now_ns();
            while let Some(k) = ramp.next_due(now, &owns) {
                open(driver, handler, k);
            }
            let resolved = ramp.done() && driver.unresolved() == 0;
            if ready(driver, handler, resolved) && !marked {
                marked = true;
                self.coord.mark_ready();
            }
            let wait = ramp.next_at().map_or(IDLE_POLL, |at| ns(at.saturating_sub(now)).min(IDLE_POLL));
            driver.poll(wait, handler)?;
        }
    }

    /// A worker's measured phase from the go at `go`: message `n` of the
    /// schedule is handed to `due(driver, traffic, n, intended ns, now ns)`
    /// when due (the scenario sends it if this thread owns it); then the
    /// drain, until the traffic is settled or the drain is over.
    pub(crate) fn load<L: Load>(
        &self,
        driver: &mut Driver,
        traffic: &mut L,
        go: u64,
        plan: &LoadPlan,
        mut due: impl FnMut(&mut Driver, &mut L, u64, u64, u64),
    ) -> anyhow::Result<()> {
        traffic.start(go);
        let schedule = Schedule::new(plan.rate);
        let total = schedule.count_before(plan.duration_ns);
        let mut n = 0u64;
        while n < total {
            if self.coord.aborted() {
                return Ok(());
            }
            let now = self.clock.now_ns();
            let wake = traffic.tick(driver, now);
            while n < total && go + schedule.offset_ns(n) <= now {
                due(driver, traffic, n, go + schedule.offset_ns(n), now);
                n += 1;
            }
            let next = if n < total { go + schedule.offset_ns(n) } else { now };
            let next = wake.map_or(next, |w| next.min(w));
            driver.poll(ns(next.saturating_sub(self.clock.now_ns())).min(IDLE_POLL), traffic)?;
            traffic.after_poll(driver);
        }
        let end = go + plan.duration_ns + plan.drain_ns;
        loop {
            let now = self.clock.now_ns();
            if self.coord.aborted() || traffic.settled() || now >= end {
                return Ok(());
            }
            driver.poll(ns(end - now).min(IDLE_POLL), traffic)?;
            traffic.after_poll(driver);
        }
    }
}

/// What [`Conductor::load`] saw of the load.
pub(crate) struct Loaded {
    /// The first message's intended time, on the run's clock.
    pub(crate) go_ns: u64,
    /// CPU counters as the phases began and as they ended (before the drain).
    pub(crate) cpu: (CpuSample, CpuSample),
}

impl Loaded {
    /// What the load phases cost, `messages` having been sent in them.
    pub(crate) fn cpu(&self, messages: u64) -> CpuFigures {
        CpuFigures::between(&self.cpu.0, &self.cpu.1, messages)
    }
}

/// The main thread's side of a run: the workers, the progress display and
/// the `--timeout` deadline.
pub(crate) struct Conductor<R> {
    fleet: Box<dyn Fleet<R>>,
    progress: Progress,
    started: Instant,
    deadline: Instant,
}

/// How the setup of a messaging run went.
pub(crate) struct Setup {
    /// From the start to every worker ready (or the setup's end).
    pub(crate) secs: f64,
    /// The counters at the end of the setup.
    pub(crate) snap: Snapshot,
    /// Not everything came up: nothing is sent.
    pub(crate) aborted: bool,
}

impl<R> Conductor<R> {
    /// Start the workers (see [`fleet::start`]) and the progress display
    /// for `conns` connections (`messages`: with message rates). `None`
    /// when this is a worker process, whose part is then done.
    pub(crate) fn start(
        ctx: &RunCtx,
        c: &CommonArgs,
        timeout: Duration,
        (messages, conns): (bool, u64),
        work: impl Fn(usize) -> anyhow::Result<R> + Send + Sync + 'static,
    ) -> anyhow::Result<Option<Self>>
    where
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let started = Instant::now();
        let fleet = match fleet::start(ctx, timeout, work)? {
            Started::WorkerDone => return Ok(None),
            Started::Conduct(f) => f,
        };
        let progress = Progress::new(c.report.quiet, messages, conns);
        Ok(Some(Conductor { fleet, progress, started, deadline: started + timeout }))
    }

    fn watch(&mut self, phase: &str, until: Instant, timed: bool, done: impl Fn(&dyn Fleet<R>) -> bool) -> bool {
        let fleet = &*self.fleet;
        watch_until(&mut self.progress, fleet, phase, until, timed, || done(fleet))
    }

    /// Show `phase` until every worker has finished its setup (true), or
    /// one has returned or the deadline passed (false).
    pub(crate) fn wait_ready(&mut self, phase: &str) -> bool {
        self.watch(phase, self.deadline, false, |f| f.ready() || f.any_finished())
    }

    /// Show `phase`, planned to last until `until`, until then (or the
    /// deadline, or a worker returning).
    pub(crate) fn hold(&mut self, phase: &str, until: Instant) {
        self.watch(phase, self.deadline.min(until), true, |f| f.any_finished());
    }

    /// The setup of a messaging run: wait for it, and judge it. It failed
    /// if not every worker got ready, one returned, or `problem` finds one
    /// in the counters (its words are shown); then the workers are aborted.
    pub(crate) fn set_up(&mut self, problem: impl FnOnce(&Snapshot) -> Option<String>) -> Setup {
        let all_ready = self.wait_ready("setup");
        let secs = self.started.elapsed().as_secs_f64();
        let snap = self.fleet.snapshot();
        let problem = problem(&snap);
        let aborted = !all_ready || problem.is_some() || self.fleet.any_finished();
        if aborted {
            if let Some(p) = problem {
                self.progress.note(&p);
            }
            self.fleet.abort();
        }
        Setup { secs, snap, aborted }
    }

    /// Give the go and follow the load: each of `phases` is a name and its
    /// end, in ns after the first message; then the drain. Returns the go
    /// time (on `clock`) and the CPU counters at the start and the end of
    /// the phases (`gateway`: the gateway processes to read too).
    pub(crate) fn load(&mut self, clock: &Clock, phases: &[(&str, u64)], gateway: &[u32]) -> Loaded {
        let go = clock.now_ns() + GO_DELAY_NS;
        self.fleet.go(go);
        let now = Instant::now();
        let probe = CpuProbe::new(gateway, self.fleet.pids());
        let first = phases.first().map_or("load", |p| p.0);
        self.hold(first, now + ns(GO_DELAY_NS));
        let before = probe.sample();
        for &(phase, end_ns) in phases {
            self.hold(phase, now + ns(GO_DELAY_NS + end_ns));
        }
        let after = probe.sample();
        self.watch("drain", self.deadline, false, |f| f.all_finished());
        Loaded { go_ns: go, cpu: (before, after) }
    }

    /// Whether the `--timeout` deadline has passed.
    pub(crate) fn timed_out(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Tell every worker to stop now.
    pub(crate) fn abort(&self) {
        self.fleet.abort();
    }

    /// Give the go for clock time `at_ns`.
    pub(crate) fn go(&self, at_ns: u64) {
        self.fleet.go(at_ns);
    }

    /// Wait (a while) for the workers to close everything, and end the
    /// progress display.
    pub(crate) fn close(&mut self) {
        self.watch("close", Instant::now() + 2 * CLOSE_GRACE, false, |f| f.all_finished());
        self.progress.finish();
    }

    /// The end of a messaging run: stop the workers if the deadline has
    /// passed, then [`close`](Self::close). Returns whether it had.
    pub(crate) fn wind_down(&mut self) -> bool {
        let timed_out = self.timed_out();
        if timed_out {
            self.fleet.abort();
        }
        self.close();
        timed_out
    }

    /// Wait for every worker and merge what they returned.
    pub(crate) fn join(self) -> anyhow::Result<R>
    where
        R: Merge,
    {
        Ok(merge_all(self.fleet.join()?))
    }
}

/// The connection figures the one-to-one and group reports start with.
#[derive(Serialize)]
pub(crate) struct ConnFigures<'a> {
    pub(crate) timed_out: bool,
    pub(crate) setup_aborted: bool,
    pub(crate) connections: u64,
    pub(crate) established: u64,
    pub(crate) failed: u64,
    pub(crate) failed_reasons: &'a Reasons,
    pub(crate) dropped: u64,
    pub(crate) dropped_reasons: &'a Reasons,
    pub(crate) setup_secs: f64,
    pub(crate) handshake_ms: Summary,
    pub(crate) sync_replayed_frames: u64,
}

impl<'a> ConnFigures<'a> {
    /// The figures of `connections` planned connections.
    pub(crate) fn new(s: &'a ConnStats, connections: u64, setup: &Setup, timed_out: bool) -> Self {
        ConnFigures {
            timed_out,
            setup_aborted: setup.aborted,
            connections,
            established: s.established,
            failed: s.failed.total(),
            failed_reasons: &s.failed,
            dropped: s.dropped.total(),
            dropped_reasons: &s.dropped,
            setup_secs: setup.secs,
            handshake_ms: s.handshake.summary(),
            sync_replayed_frames: s.replayed,
        }
    }

    /// The summary's rows before the scenario's own setup rows: the
    /// timeout, the connections.
    pub(crate) fn print_head(&self, t: &mut Table) {
        t.timed_out(self.timed_out);
        t.connections((self.established, self.connections), self.setup_secs, &self.handshake_ms, self.failed_reasons);
    }

    /// The summary's rows after them: frames replayed, the setup verdict
    /// (`aborted` says what did not happen), connections dropped.
    pub(crate) fn print_tail(&self, t: &mut Table, aborted: &str) {
        if self.sync_replayed_frames > 0 {
            t.row("frames replayed by sync", format!("{} (earlier runs; ignored)", self.sync_replayed_frames));
        }
        if self.setup_aborted {
            t.row("SETUP ABORTED", aborted);
        }
        t.row("dropped", self.dropped);
        t.reasons(self.dropped_reasons);
    }
}

//! Worker threads and the reporting thread's waiting.
//!
//! Each worker owns a [`Driver`](crate::conn::driver::Driver) and its share of
//! the connections; the main thread only watches: it shows progress, moves
//! the run from phase to phase through its [`Fleet`], and enforces the
//! `--timeout` safety net, so that every run ends by itself even if the
//! gateway stops answering.

use std::{
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{procs::fleet::Fleet, report::progress::Progress};

/// How often the main thread wakes to check on the workers.
const WATCH_STEP: Duration = Duration::from_millis(20);

/// Worker threads returning an `R` each.
pub(crate) struct Workers<R> {
    handles: Vec<JoinHandle<anyhow::Result<R>>>,
}

impl<R: Send + 'static> Workers<R> {
    /// Start `n` threads running `f(thread index)`.
    pub(crate) fn spawn(
        n: usize,
        f: impl Fn(usize) -> anyhow::Result<R> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let f = Arc::new(f);
        let handles = (0..n)
            .map(|t| {
                let f = Arc::clone(&f);
                std::thread::Builder::new()
                    .name(format!("loadgen-{t}"))
                    .spawn(move || f(t))
                    .context("spawning a worker thread")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Workers { handles })
    }

    /// Whether any worker has returned (normally only at the end; early
    /// means it failed).
    pub(crate) fn any_finished(&self) -> bool {
        self.handles.iter().any(JoinHandle::is_finished)
    }

    /// Whether every worker has returned.
    pub(crate) fn all_finished(&self) -> bool {
        self.handles.iter().all(JoinHandle::is_finished)
    }

    /// Wait for every worker and collect the results.
    pub(crate) fn join(self) -> anyhow::Result<Vec<R>> {
        self.handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("a worker thread panicked")),
            })
            .collect()
    }
}

/// Show progress until `done()` holds (true) or `deadline` passes (false).
/// `timed`: the phase is planned to last until `deadline` (a hold, the
/// load), so the display can show how far it is.
pub(crate) fn watch_until<R>(
    progress: &mut Progress,
    fleet: &dyn Fleet<R>,
    phase: &str,
    deadline: Instant,
    timed: bool,
    mut done: impl FnMut() -> bool,
) -> bool {
    let len = timed.then(|| deadline.saturating_duration_since(Instant::now()));
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        progress.tick(phase, len, || fleet.snapshot());
        std::thread::sleep(WATCH_STEP.min(deadline.saturating_duration_since(Instant::now())));
    }
}

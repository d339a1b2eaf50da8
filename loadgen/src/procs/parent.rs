//! The parent's side of `--procs`: start the worker processes, follow
//! their progress, give them the go, collect their results.
//!
//! Each worker is this same binary with the same arguments plus the hidden
//! worker flags (see [`RunCtx::worker_flags`]), so it runs exactly the
//! scenario the parent was asked for, on its share. A thread per worker
//! reads its stdout lines ([`WorkerLine`]) into shared state; orders go to
//! its stdin. A worker's stderr is the parent's, so its error messages
//! reach the user as they are.

use std::{
    io::{BufReader, Write as _},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use serde::de::DeserializeOwned;

use crate::{
    procs::{
        fleet::Fleet,
        relay::{Order, WorkerLine},
    },
    report::shared::Snapshot,
    scenarios::ctx::RunCtx,
};

/// What the parent knows of one worker.
struct WorkerState<R> {
    ready: bool,
    live: Snapshot,
    result: Option<Vec<R>>,
    /// Its stdout closed: it has exited or is about to.
    done: bool,
    /// A line that was not a [`WorkerLine`] (the first one).
    garbage: Option<String>,
}

/// Worker processes.
pub(crate) struct Procs<R> {
    children: Vec<Child>,
    stdins: Mutex<Vec<Option<ChildStdin>>>,
    states: Arc<Mutex<Vec<WorkerState<R>>>>,
}

impl<R: DeserializeOwned + Send + 'static> Procs<R> {
    /// Start `ctx.share.count` workers.
    pub(crate) fn spawn(ctx: &RunCtx) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start its workers")?;
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        let count = ctx.share.count;
        let states = Arc::new(Mutex::new(
            (0..count)
                .map(|_| WorkerState {
                    ready: false,
                    live: Snapshot::default(),
                    result: None,
                    done: false,
                    garbage: None,
                })
                .collect::<Vec<_>>(),
        ));
        let mut children = Vec::with_capacity(count);
        let mut stdins = Vec::with_capacity(count);
        for i in 0..count {
            let mut child = Command::new(&exe)
                .args(&args)
                .args(ctx.worker_flags(i))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting worker process {i}"))?;
            stdins.push(child.stdin.take());
            let stdout = child.stdout.take().context("worker stdout")?;
            let states = Arc::clone(&states);
            std::thread::Builder::new()
                .name(format!("loadgen-w{i}"))
                .spawn(move || follow(i, BufReader::new(stdout), &states))
                .context("spawning a reader thread")?;
            children.push(child);
        }
        Ok(Procs { children, stdins: Mutex::new(stdins), states })
    }

    fn order(&self, order: &Order) {
        let line = order.line();
        if let Ok(mut stdins) = self.stdins.lock() {
            for stdin in stdins.iter_mut().flatten() {
                // A worker that is gone shows up as finished; nothing to do here.
                let _ = stdin.write_all(line.as_bytes()).and_then(|()| stdin.flush());
            }
        }
    }

    fn all(&self, f: impl Fn(&WorkerState<R>) -> bool) -> bool {
        self.states.lock().map(|s| s.iter().all(f)).unwrap_or(true)
    }
}

/// Read worker `i`'s lines until its stdout closes.
fn follow<R: DeserializeOwned>(i: usize, out: impl std::io::BufRead, states: &Mutex<Vec<WorkerState<R>>>) {
    for line in out.lines() {
        let Ok(line) = line else { break };
        let parsed = serde_json::from_str::<WorkerLine<R>>(&line);
        let Ok(mut states) = states.lock() else { return };
        let Some(st) = states.get_mut(i) else { return };
        match parsed {
            Ok(WorkerLine::Ready) => st.ready = true,
            Ok(WorkerLine::Live(s)) => st.live = s,
            Ok(WorkerLine::Result(r)) => st.result = Some(r),
            Err(e) => {
                if st.garbage.is_none() {
                    st.garbage = Some(format!("{e}: {}", line.chars().take(200).collect::<String>()));
                }
            }
        }
    }
    if let Ok(mut states) = states.lock() {
        if let Some(st) = states.get_mut(i) {
            st.done = true;
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Fleet<R> for Procs<R> {
    fn ready(&self) -> bool {
        self.all(|s| s.ready)
    }
    fn any_finished(&self) -> bool {
        !self.all(|s| !s.done)
    }
    fn all_finished(&self) -> bool {
        self.all(|s| s.done)
    }
    fn go(&self, at_ns: u64) {
        self.order(&Order::Go(at_ns));
    }
    fn abort(&self) {
        self.order(&Order::Abort);
    }
    fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot::default();
        if let Ok(mut states) = self.states.lock() {
            for st in states.iter_mut() {
                total.add(&st.live);
                // Each worker's window p99 is shown once.
                st.live.p99_ms = None;
            }
        }
        total
    }
    fn pids(&self) -> Vec<u32> {
        std::iter::once(std::process::id()).chain(self.children.iter().map(Child::id)).collect()
    }
    fn join(mut self: Box<Self>) -> anyhow::Result<Vec<R>> {
        let mut statuses = Vec::with_capacity(self.children.len());
        for (i, child) in self.children.iter_mut().enumerate() {
            statuses.push(child.wait().with_context(|| format!("waiting for worker process {i}"))?);
        }
        drop(self.stdins.lock().map(|mut s| s.clear()));
        let mut states = self.states.lock().map_err(|_| anyhow::anyhow!("worker state poisoned"))?;
        let mut all = Vec::new();
        for (i, (st, status)) in states.iter_mut().zip(statuses).enumerate() {
            match st.result.take() {
                Some(r) => all.extend(r),
                None => {
                    let why = st.garbage.as_deref().map(|g| format!("; unreadable output: {g}")).unwrap_or_default();
                    anyhow::bail!("worker process {i} ended without a result ({status}){why}");
                }
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn following_a_worker() {
        let states = Mutex::new(vec![WorkerState::<u32> {
            ready: false,
            live: Snapshot::default(),
            result: None,
            done: false,
            garbage: None,
        }]);
        let out = "\"ready\"\n{\"live\":{\"up\":5,\"failed\":0,\"dropped\":0,\"sent\":1,\"acked\":1,\"delivered\":0,\"receipts\":0,\"errors\":0,\"setup_errors\":0,\"killed\":0,\"reconnected\":0,\"p99_ms\":null}}\nnoise\n{\"result\":[4]}\n";
        follow(0, out.as_bytes(), &states);
        let st = &states.lock().unwrap()[0];
        assert!(st.ready && st.done);
        assert_eq!(st.live.up, 5);
        assert_eq!(st.result.as_deref(), Some(&[4u32][..]));
        assert!(st.garbage.as_deref().is_some_and(|g| g.contains("noise")));
    }
}

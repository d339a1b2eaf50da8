//! A worker process's side of `--procs`: run this process's share in its
//! threads and tell the parent about it on stdout, one JSON line at a time.
//!
//! The lines are [`WorkerLine`]s: `ready` once every thread's connections
//! are up (or failed), the progress counters once a second, and at the end
//! the threads' results (counters and HdrHistograms, the histograms as
//! base64 of the V2 serialisation). The parent writes `go <ns>` or `abort`
//! lines to the worker's stdin; end of input (the parent is gone) aborts
//! too, so a worker never outlives its run. Human-readable messages go to
//! stderr, which the worker shares with the parent.

use std::{
    io::BufRead as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::{
    procs::fleet::{Fleet as _, Local},
    report::shared::{Coord, Snapshot},
    scenarios::ctx::RunCtx,
};

/// How often the progress counters go to the parent.
const LIVE_EVERY: Duration = Duration::from_secs(1);
/// How often the worker's main thread looks at its threads.
const WATCH_STEP: Duration = Duration::from_millis(20);
/// A worker's own safety net beyond the parent's: the parent aborts first.
const EXTRA_TIMEOUT: Duration = Duration::from_secs(30);

/// One line from a worker to its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WorkerLine<R> {
    /// Every thread finished its setup.
    Ready,
    /// Progress counters.
    Live(Snapshot),
    /// The threads' results; the last line.
    Result(Vec<R>),
}

/// One line from the parent to a worker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Start the measured phase at this clock time.
    Go(u64),
    /// Stop now.
    Abort,
}

impl Order {
    /// The line for this order.
    pub(crate) fn line(&self) -> String {
        match self {
            Order::Go(at) => format!("go {at}\n"),
            Order::Abort => "abort\n".to_owned(),
        }
    }

    /// Parse a line; unknown lines are `None`.
    pub(crate) fn parse(line: &str) -> Option<Order> {
        let line = line.trim();
        if line == "abort" {
            return Some(Order::Abort);
        }
        line.strip_prefix("go ")?.trim().parse().ok().map(Order::Go)
    }
}

/// Run `local` to the end, relaying it to the parent.
pub(crate) fn run<R: Serialize + Send + 'static>(
    local: Local<R>,
    ctx: &RunCtx,
    timeout: Duration,
) -> anyhow::Result<()> {
    listen_for_orders(Arc::clone(&ctx.coord));
    let deadline = Instant::now() + timeout + EXTRA_TIMEOUT;
    let mut out = std::io::stdout().lock();
    let mut ready_sent = false;
    let mut last_live = Instant::now();
    loop {
        if !ready_sent && (local.ready() || local.any_finished()) {
            // Fresh counters first: the parent judges the setup by them.
            write_line::<R>(&mut out, &WorkerLine::Live(local.snapshot()))?;
            write_line::<R>(&mut out, &WorkerLine::Ready)?;
            ready_sent = true;
            last_live = Instant::now();
        }
        if last_live.elapsed() >= LIVE_EVERY {
            last_live = Instant::now();
            write_line::<R>(&mut out, &WorkerLine::Live(local.snapshot()))?;
        }
        if local.all_finished() {
            break;
        }
        if local.any_finished() && ctx.coord.go().is_none() {
            // A thread failed during setup: stop the others so the parent
            // hears of it (this process ends without a result).
            local.abort();
        }
        if Instant::now() >= deadline {
            local.abort();
        }
        std::thread::sleep(WATCH_STEP);
    }
    let results = Box::new(local).join()?;
    write_line(&mut out, &WorkerLine::Result(results))
}

fn write_line<R: Serialize>(out: &mut impl std::io::Write, line: &WorkerLine<R>) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(line).context("encoding a line for the parent")?;
    text.push('\n');
    out.write_all(text.as_bytes()).context("writing to the parent")?;
    out.flush().context("writing to the parent")
}

/// Apply the parent's orders from stdin; abort at end of input.
fn listen_for_orders(coord: Arc<Coord>) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match Order::parse(&line) {
                Some(Order::Go(at)) => coord.set_go(at),
                Some(Order::Abort) => coord.abort(),
                None => {}
            }
        }
        coord.abort();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_round_trip() {
        for o in [Order::Go(123_456_789), Order::Abort] {
            assert_eq!(Order::parse(&o.line()), Some(o));
        }
        assert_eq!(Order::parse("go x"), None);
        assert_eq!(Order::parse("hello"), None);
    }

    #[test]
    fn lines_round_trip() {
        let mut buf = Vec::new();
        write_line::<u32>(&mut buf, &WorkerLine::Ready).unwrap();
        write_line::<u32>(&mut buf, &WorkerLine::Live(Snapshot { up: 3, p99_ms: Some(1.5), ..Snapshot::default() }))
            .unwrap();
        write_line(&mut buf, &WorkerLine::Result(vec![7u32, 8])).unwrap();
        let lines: Vec<WorkerLine<u32>> =
            buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
        assert!(matches!(lines[0], WorkerLine::Ready));
        assert!(matches!(&lines[1], WorkerLine::Live(s) if s.up == 3 && s.p99_ms == Some(1.5)));
        assert!(matches!(&lines[2], WorkerLine::Result(r) if r == &[7, 8]));
    }
}

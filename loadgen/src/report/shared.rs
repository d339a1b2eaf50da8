//! State shared by the worker threads and the thread that reports.
//!
//! Every loadgen thread runs its own event loop over its own connections;
//! they share only a clock, a few atomic counters for the progress line, a
//! small histogram window for "current p99", and the phase flags with
//! which the main thread starts the measurement and ends the run. Nothing
//! on the hot path takes a lock except the window, once per sample, and it
//! is uncontended with the default single thread.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::report::stats::Latency;

/// Nanoseconds since an epoch on the machine's monotonic clock
/// (`CLOCK_MONOTONIC`, the clock `Instant` reads on Linux). The clock is
/// system-wide, so worker processes given the parent's epoch
/// (`--clock-epoch`) share one time line: a timestamp taken by a sender in
/// one process can be compared with one taken by a recipient in another,
/// and a start time passed on the command line means the same instant in
/// every process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: u64,
}

/// The monotonic clock, in nanoseconds since boot.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill in;
    // CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn start() -> Self {
        Clock { epoch: monotonic_ns() }
    }

    /// A clock whose zero is `epoch` on the monotonic clock (another
    /// process's [`Clock::epoch`]).
    pub(crate) fn at(epoch: u64) -> Self {
        Clock { epoch }
    }

    /// The zero of this clock on the monotonic clock.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn now_ns(&self) -> u64 {
        monotonic_ns().saturating_sub(self.epoch)
    }
}

/// Turn a nanosecond span into a `Duration`.
pub(crate) fn ns(span: u64) -> Duration {
    Duration::from_nanos(span)
}

/// Counters for the progress line.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Connections up (synced) now.
    pub(crate) up: AtomicU64,
    /// Connections that never came up.
    pub(crate) failed: AtomicU64,
    /// Connections that were up and then closed or reset.
    pub(crate) dropped: AtomicU64,
    /// `send` frames written.
    pub(crate) sent: AtomicU64,
    /// `sent` acks received.
    pub(crate) acked: AtomicU64,
    /// Messages delivered to recipients (first delivery only).
    pub(crate) delivered: AtomicU64,
    /// Delivery receipts received by senders.
    pub(crate) receipts: AtomicU64,
    /// `error` frames received.
    pub(crate) errors: AtomicU64,
    /// Setup steps after the connections that failed (a group not created).
    pub(crate) setup_errors: AtomicU64,
    /// Connections closed on purpose mid-run (reconnect storm).
    pub(crate) killed: AtomicU64,
    /// Reconnections that reached `synced` again.
    pub(crate) reconnected: AtomicU64,
    /// Latencies since the last progress line (handshakes or deliveries).
    pub(crate) window: Mutex<Latency>,
}

impl Live {
    /// Add one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Take one off a counter (a connection that was up no longer is).
    pub(crate) fn unbump(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// Record a latency into the progress window.
    pub(crate) fn sample_ns(&self, ns: u64) {
        if let Ok(mut w) = self.window.lock() {
            w.record_ns(ns);
        }
    }

    /// The p99 of the window in milliseconds, and start a new window.
    pub(crate) fn take_window_p99(&self) -> Option<f64> {
        let mut w = self.window.lock().ok()?;
        let p99 = (w.count() > 0).then(|| w.quantile_ms(0.99));
        w.reset();
        p99
    }

    /// Read a counter.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The counters now, and the window's p99 (starting a new window).
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            up: Live::get(&self.up),
            failed: Live::get(&self.failed),
            dropped: Live::get(&self.dropped),
            sent: Live::get(&self.sent),
            acked: Live::get(&self.acked),
            delivered: Live::get(&self.delivered),
            receipts: Live::get(&self.receipts),
            errors: Live::get(&self.errors),
            setup_errors: Live::get(&self.setup_errors),
            killed: Live::get(&self.killed),
            reconnected: Live::get(&self.reconnected),
            p99_ms: self.take_window_p99(),
        }
    }
}

/// The progress counters at one moment, as plain numbers: what a worker
/// process reports to its parent once a second, and what the progress
/// display shows.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) up: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    pub(crate) receipts: u64,
    pub(crate) errors: u64,
    pub(crate) setup_errors: u64,
    pub(crate) killed: u64,
    pub(crate) reconnected: u64,
    /// p99 of the latencies recorded since the previous snapshot.
    pub(crate) p99_ms: Option<f64>,
}

impl Snapshot {
    /// Add another process's counters; the p99 shown is the highest of the
    /// processes' (their windows are not merged).
    pub(crate) fn add(&mut self, o: &Snapshot) {
        self.up += o.up;
        self.failed += o.failed;
        self.dropped += o.dropped;
        self.sent += o.sent;
        self.acked += o.acked;
        self.delivered += o.delivered;
        self.receipts += o.receipts;
        self.errors += o.errors;
        self.setup_errors += o.setup_errors;
        self.killed += o.killed;
        self.reconnected += o.reconnected;
        self.p99_ms = match (self.p99_ms, o.p99_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Phases of a run, driven by the main thread.
#[derive(Debug, Default)]
pub(crate) struct Coord {
    /// Workers whose connections have all come up or failed.
    pub(crate) ready: AtomicUsize,
    /// Clock time at which the measured phase starts; 0 until the main
    /// thread gives the go.
    pub(crate) go_ns: AtomicU64,
    /// Stop now: close everything and return (timeout, or a failed setup).
    pub(crate) abort: AtomicBool,
}

impl Coord {
    /// The go time, once given.
    pub(crate) fn go(&self) -> Option<u64> {
        match self.go_ns.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// Give the go for clock time `at_ns` (made non-zero).
    pub(crate) fn set_go(&self, at_ns: u64) {
        self.go_ns.store(at_ns.max(1), Ordering::Release);
    }

    /// Whether the run must stop.
    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
    }

    /// Tell every worker to stop.
    pub(crate) fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }

    /// A worker finished its setup.
    pub(crate) fn mark_ready(&self) {
        self.ready.fetch_add(1, Ordering::AcqRel);
    }

    /// Workers that finished their setup.
    pub(crate) fn ready_count(&self) -> usize {
        self.ready.load(Ordering::Acquire)
    }
}

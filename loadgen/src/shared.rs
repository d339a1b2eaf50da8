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
    time::{Duration, Instant},
};

use crate::stats::Latency;

/// Nanoseconds since one `Instant` shared by every thread. All connections
/// live in this process, so a timestamp taken by a sender can be compared
/// with one taken by the recipient's thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn start() -> Self {
        Clock { epoch: Instant::now() }
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
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
    /// Latencies since the last progress line (handshakes or deliveries).
    pub(crate) window: Mutex<Latency>,
}

impl Live {
    /// Add one to a counter.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
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

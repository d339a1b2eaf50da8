//! The once-a-second progress line on stderr.
//!
//! A long ramp or soak that prints nothing until the end cannot be told
//! apart from a hung one, and a latency spike in the middle of a run is
//! invisible in whole-run percentiles. So the reporting thread prints, every
//! second, the connections up, the message rates over that second and the
//! p99 of the latencies recorded in it (handshakes while connecting,
//! deliveries while sending). stdout keeps only the final summary.

use std::time::{Duration, Instant};

use crate::shared::Live;

#[derive(Clone, Copy, Default)]
struct Counts {
    sent: u64,
    acked: u64,
    delivered: u64,
    receipts: u64,
}

impl Counts {
    fn read(live: &Live) -> Self {
        Counts {
            sent: Live::get(&live.sent),
            acked: Live::get(&live.acked),
            delivered: Live::get(&live.delivered),
            receipts: Live::get(&live.receipts),
        }
    }
}

/// Prints the progress line at most once a second.
pub(crate) struct Progress {
    quiet: bool,
    messages: bool,
    started: Instant,
    last: Instant,
    prev: Counts,
}

impl Progress {
    /// `messages`: also show message rates (one-to-one).
    pub(crate) fn new(quiet: bool, messages: bool) -> Self {
        let now = Instant::now();
        Progress { quiet, messages, started: now, last: now, prev: Counts::default() }
    }

    /// Print a line if a second has passed since the last one.
    pub(crate) fn tick(&mut self, live: &Live, phase: &str) {
        let since = self.last.elapsed();
        if since < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let now = Counts::read(live);
        let p99 = live.take_window_p99();
        if self.quiet {
            self.prev = now;
            return;
        }
        let per_sec = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / since.as_secs_f64();
        let mut line = format!(
            "[{:>5.1}s] {phase:<8} up {:>6}  failed {:>4}  dropped {:>4}",
            self.started.elapsed().as_secs_f64(),
            Live::get(&live.up),
            Live::get(&live.failed),
            Live::get(&live.dropped),
        );
        if self.messages {
            line.push_str(&format!(
                " | sent {:>7.0}/s  acked {:>7.0}/s  delivered {:>7.0}/s  receipts {:>7.0}/s  errors {}",
                per_sec(now.sent, self.prev.sent),
                per_sec(now.acked, self.prev.acked),
                per_sec(now.delivered, self.prev.delivered),
                per_sec(now.receipts, self.prev.receipts),
                Live::get(&live.errors),
            ));
        }
        match p99 {
            Some(ms) => line.push_str(&format!(" | p99 {ms:.2} ms")),
            None => line.push_str(" | p99 -"),
        }
        eprintln!("{line}");
        self.prev = now;
    }
}

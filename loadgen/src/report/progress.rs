//! Progress on stderr while a run goes: connections up, message rates over
//! the last second, the p99 of the latencies recorded in it.
//!
//! A long ramp or soak that prints nothing until the end cannot be told
//! apart from a hung one, and a latency spike in the middle of a run is
//! invisible in whole-run percentiles. On a terminal this is a set of
//! indicatif bars that redraw in place (connections up out of the target,
//! the current phase with its elapsed and planned time, the rates); when
//! stderr is not a terminal (a log file, CI) the bars are off and a plain
//! line per second is printed instead, which reads well in a log. `--quiet`
//! turns both off. stdout keeps only the final summary.

use std::{
    fmt::Write as _,
    io::IsTerminal as _,
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::shared::Snapshot;

/// How often the figures (not the bars) are recomputed.
const EVERY: Duration = Duration::from_secs(1);

/// How progress is shown.
enum Mode {
    Off,
    Lines,
    Bars(Bars),
}

struct Bars {
    multi: MultiProgress,
    conns: ProgressBar,
    phase: ProgressBar,
    rates: ProgressBar,
}

/// The progress display of one run.
pub(crate) struct Progress {
    mode: Mode,
    messages: bool,
    started: Instant,
    last: Instant,
    prev: Snapshot,
    phase: String,
    phase_started: Instant,
    phase_len: Option<Duration>,
}

impl Progress {
    /// `messages`: also show message rates; `conns`: connections planned.
    pub(crate) fn new(quiet: bool, messages: bool, conns: u64) -> Self {
        let mode = if quiet {
            Mode::Off
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(Bars::new(conns))
        } else {
            Mode::Lines
        };
        let now = Instant::now();
        Progress {
            mode,
            messages,
            started: now,
            last: now,
            prev: Snapshot::default(),
            phase: String::new(),
            phase_started: now,
            phase_len: None,
        }
    }

    /// Called often (every few ms): moves the bars, and once a second
    /// takes a `snapshot` (which starts a new p99 window) and shows it.
    pub(crate) fn tick(&mut self, phase: &str, phase_len: Option<Duration>, snapshot: impl FnOnce() -> Snapshot) {
        if self.phase != phase {
            self.phase = phase.to_owned();
            self.phase_started = Instant::now();
            self.phase_len = phase_len;
            if let Mode::Bars(b) = &self.mode {
                b.begin_phase(phase, phase_len);
            }
        }
        if let Mode::Bars(b) = &self.mode {
            let elapsed = self.phase_started.elapsed();
            if let Some(len) = self.phase_len {
                b.phase.set_position(elapsed.min(len).as_millis() as u64);
            }
        }
        let since = self.last.elapsed();
        if since < EVERY {
            return;
        }
        self.last = Instant::now();
        let now = snapshot();
        match &self.mode {
            Mode::Off => {}
            Mode::Lines => eprintln!("{}", self.line(&now, since)),
            Mode::Bars(b) => {
                b.conns.set_position(now.up);
                b.conns.set_message(self.conn_text(&now));
                b.phase.set_message(self.phase_text());
                b.rates.set_message(self.rate_text(&now, since));
            }
        }
        self.prev = now;
    }

    /// Print a message on stderr without tearing the bars.
    pub(crate) fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(b) => {
                let _ = b.multi.println(msg);
            }
            Mode::Off | Mode::Lines => eprintln!("{msg}"),
        }
    }

    /// Take the bars off the screen (before the summary is printed).
    pub(crate) fn finish(&mut self) {
        if let Mode::Bars(b) = &self.mode {
            for bar in [&b.conns, &b.phase, &b.rates] {
                bar.finish_and_clear();
            }
            let _ = b.multi.clear();
        }
        self.mode = Mode::Off;
    }

    fn line(&self, now: &Snapshot, since: Duration) -> String {
        format!(
            "[{:>5.1}s] {:<8} {} | {}",
            self.started.elapsed().as_secs_f64(),
            self.phase,
            self.conn_text(now),
            self.rate_text(now, since)
        )
    }

    fn conn_text(&self, s: &Snapshot) -> String {
        let mut t = format!("up {:>6}  failed {:>4}  dropped {:>4}", s.up, s.failed, s.dropped);
        if s.killed > 0 || s.reconnected > 0 {
            let _ = write!(t, "  killed {}  reconnected {}", s.killed, s.reconnected);
        }
        if s.setup_errors > 0 {
            let _ = write!(t, "  setup errors {}", s.setup_errors);
        }
        t
    }

    fn phase_text(&self) -> String {
        let elapsed = self.phase_started.elapsed().as_secs_f64();
        match self.phase_len {
            Some(len) => format!("{elapsed:.1}s / {:.1}s", len.as_secs_f64()),
            None => format!("{elapsed:.1}s"),
        }
    }

    fn rate_text(&self, now: &Snapshot, since: Duration) -> String {
        let per_sec = |a: u64, b: u64| a.saturating_sub(b) as f64 / since.as_secs_f64().max(1e-9);
        let mut t = String::new();
        if self.messages {
            let p = &self.prev;
            let _ = write!(
                t,
                "sent {:>7.0}/s  acked {:>7.0}/s  delivered {:>7.0}/s  receipts {:>7.0}/s  errors {} | ",
                per_sec(now.sent, p.sent),
                per_sec(now.acked, p.acked),
                per_sec(now.delivered, p.delivered),
                per_sec(now.receipts, p.receipts),
                now.errors,
            );
        }
        match now.p99_ms {
            Some(ms) => {
                let _ = write!(t, "p99 {ms:.2} ms");
            }
            None => t.push_str("p99 -"),
        }
        t
    }
}

impl Bars {
    fn new(conns: u64) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let conns_bar = multi.add(ProgressBar::new(conns.max(1)));
        conns_bar.set_style(style("{prefix:>7} [{bar:32.cyan/blue}] {pos:>6}/{len:<6} {msg}"));
        conns_bar.set_prefix("conns");
        let phase = multi.add(ProgressBar::new_spinner());
        let rates = multi.add(ProgressBar::new_spinner());
        rates.set_style(style("{prefix:>7} {msg}"));
        rates.set_prefix("now");
        Bars { multi, conns: conns_bar, phase, rates }
    }

    fn begin_phase(&self, name: &str, len: Option<Duration>) {
        self.phase.reset();
        match len {
            Some(len) => {
                self.phase.disable_steady_tick();
                self.phase.set_length(len.as_millis().max(1) as u64);
                self.phase.set_style(style("{prefix:>7} [{bar:32.green/white}] {msg}"));
            }
            None => {
                self.phase.set_style(style("{prefix:>7} {spinner} {msg}"));
                self.phase.enable_steady_tick(Duration::from_millis(100));
            }
        }
        self.phase.set_position(0);
        self.phase.set_prefix(name.to_owned());
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants; fall back to the default style if one is wrong.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_line_shows_rates_and_p99() {
        let mut p = Progress::new(true, true, 10);
        p.phase = "load".into();
        p.prev = Snapshot { sent: 100, ..Snapshot::default() };
        let now = Snapshot { up: 10, sent: 300, killed: 2, p99_ms: Some(1.25), ..Snapshot::default() };
        let line = p.line(&now, Duration::from_secs(2));
        assert!(line.contains("load"), "{line}");
        assert!(line.contains("up     10"), "{line}");
        assert!(line.contains("killed 2"), "{line}");
        assert!(line.contains("sent     100/s"), "{line}");
        assert!(line.contains("p99 1.25 ms"), "{line}");
    }
}

//! The summary printed at the end, and the `--json` file.
//!
//! The table is for people: aligned label/value rows and one line per
//! latency with the usual percentiles in milliseconds. The JSON carries the
//! same figures plus the settings, for scripts that compare runs.

use std::{fmt::Write as _, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use crate::report::stats::{Reasons, Summary};

/// A summary being built, printed to stdout at the end.
#[derive(Default)]
pub(crate) struct Table {
    out: String,
}

impl Table {
    /// A section heading.
    pub(crate) fn section(&mut self, title: &str) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        let _ = writeln!(self.out, "== {title} ==");
    }

    /// One `label: value` row.
    pub(crate) fn row(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "  {label:<28} {value}");
    }

    /// The row saying the `--timeout` safety stopped the run, if it did.
    pub(crate) fn timed_out(&mut self, timed_out: bool) {
        if timed_out {
            self.row("TIMED OUT", "the --timeout safety stopped the run");
        }
    }

    /// How many of the `planned` connections came up, how fast, and why
    /// any did not.
    pub(crate) fn connections(&mut self, (up, planned): (u64, u64), secs: f64, handshake: &Summary, failed: &Reasons) {
        let p99 = handshake.p99_ms;
        self.row("connections", format!("{up} / {planned} up in {secs:.2}s, handshake p99 {p99:.2} ms"));
        if failed.total() > 0 {
            self.row("failed to connect", failed.total());
            self.reasons(failed);
        }
    }

    /// What went wrong with messages (one-to-one and group): acks flagged
    /// duplicate, sends refused and foreign frames when there are any, and
    /// the errors by code.
    pub(crate) fn message_errors(&mut self, duplicate_acks: u64, errors: &Reasons, refused_sends: u64, foreign: u64) {
        if duplicate_acks > 0 {
            self.row("acks flagged duplicate", duplicate_acks);
        }
        self.row("errors", errors.total());
        self.reasons(errors);
        if refused_sends > 0 {
            self.row("sends refused", refused_sends);
        }
        if foreign > 0 {
            self.row("foreign frames (ignored)", foreign);
        }
    }

    /// Counted reasons, indented under the previous row; nothing if none.
    pub(crate) fn reasons(&mut self, reasons: &Reasons) {
        for (reason, n) in reasons.by_count() {
            let _ = writeln!(self.out, "      {n:>8}  {reason}");
        }
    }

    /// The header of a latency block.
    pub(crate) fn latency_header(&mut self) {
        let _ = writeln!(
            self.out,
            "  {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (ms)",
            "latency", "count", "p50", "p90", "p99", "p99.9", "max"
        );
    }

    /// One latency line.
    pub(crate) fn latency(&mut self, label: &str, s: &Summary) {
        let _ = writeln!(
            self.out,
            "  {label:<28} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
        );
    }

    /// Print to stdout.
    pub(crate) fn print(&self) {
        print!("{}", self.out);
    }

    /// What would be printed.
    #[cfg(test)]
    pub(crate) fn text(&self) -> &str {
        &self.out
    }
}

/// Bytes as MiB with two decimals.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Write `value` as pretty JSON to `path`.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding the JSON report")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_align() {
        let mut t = Table::default();
        t.section("x");
        t.row("established", 5);
        t.latency_header();
        t.latency("handshake", &Summary::default());
        assert!(t.out.starts_with("== x ==\n  established"));
        assert_eq!(mib(3 * 1024 * 1024 / 2), "1.50 MiB");
    }
}

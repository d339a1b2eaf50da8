//! The report's targets table: at a few chosen offered rates, chatgw's
//! figures over the baseline's, the four that say what a message costs and
//! how long it waits.
//!
//! Why: the per-run tables further down hold every figure of every run; a
//! reader who wants to know how far chatgw is from the in-memory baseline,
//! and whether a change moved it, needs the ratios at the same rates in one
//! place. The table states nothing it does not compute: each cell is a
//! ratio of two measured figures (both shown), and the last column counts
//! where chatgw's figure is the lower of the two. For all four figures lower
//! is better, and the baseline keeps nothing (no durability), so a ratio
//! above 1 is the price of what chatgw does more, not by itself a fault.

use std::{collections::BTreeMap, fmt::Write as _};

use serde_json::Value;

use super::{clean, num};

/// The rates the table shows by default (`bench-report write --target-rates`).
pub(crate) const DEFAULT_RATES: [u64; 5] = [2000, 5000, 10000, 20000, 40000];

/// One figure of the table: its heading and short name, the JSON field,
/// the digits shown, and whether chatgw's value comes from the run with its
/// store on tmpfs rather than on the disk.
struct Figure {
    heading: &'static str,
    short: &'static str,
    key: &'static str,
    digits: usize,
    tmpfs: bool,
}

const FIGURES: [Figure; 4] = [
    Figure { heading: "server CPU µs/msg", short: "CPU", key: "cpu.gateway_us_per_msg", digits: 1, tmpfs: false },
    Figure {
        heading: "p99 send -> deliver, disk (ms)",
        short: "p99 disk",
        key: "delivery_ms.p99_ms",
        digits: 2,
        tmpfs: false,
    },
    Figure {
        heading: "p99 send -> deliver, tmpfs (ms)",
        short: "p99 tmpfs",
        key: "delivery_ms.p99_ms",
        digits: 2,
        tmpfs: true,
    },
    Figure { heading: "box switches/msg", short: "switches", key: "cpu.box_ctxt_per_msg", digits: 2, tmpfs: false },
];

/// The runs the table reads, each by offered rate.
pub(crate) struct Runs<'a> {
    /// chatgw with its store on the disk (the rate sweep).
    pub(crate) chatgw: &'a BTreeMap<u64, Value>,
    /// chatgw with its store on tmpfs.
    pub(crate) tmpfs: &'a BTreeMap<u64, Value>,
    pub(crate) baseline: &'a BTreeMap<u64, Value>,
}

/// A cell: "ratio (chatgw / baseline)", and the ratio when both exist.
fn cell(a: Option<f64>, b: Option<f64>, digits: usize) -> (String, Option<f64>) {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => (format!("{:.2}x ({a:.digits$} / {b:.digits$})", a / b), Some(a / b)),
        (Some(a), Some(b)) => (format!("n/a ({a:.digits$} / {b:.digits$})"), None),
        _ => ("not run".to_owned(), None),
    }
}

/// Whether a run was clean, for the table's "clean" cell.
fn clean_word(rate: u64, run: Option<&Value>) -> &'static str {
    match run {
        None => "not run",
        Some(v) if clean(rate, v) => "yes",
        Some(_) => "no",
    }
}

/// Write the table for `rates`; nothing if neither system ran any of them.
pub(crate) fn write_targets(md: &mut String, runs: &Runs<'_>, rates: &[u64]) {
    if !rates.iter().any(|r| runs.chatgw.contains_key(r) || runs.baseline.contains_key(r)) {
        return;
    }
    let _ = writeln!(md, "### Targets: chatgw / baseline at chosen rates\n");
    let _ = writeln!(
        md,
        "Each cell is chatgw's figure divided by the baseline's at the same offered rate in this session, with both figures in parentheses (chatgw / baseline). Lower is better for all four, so a ratio under 1.00x is chatgw's figure being the lower one. *Server CPU* is user + kernel CPU per message of the server process and *box switches* the whole box's context switches per message, both over the load phase (see \"Where the CPU goes\"); *p99* is send -> deliver from the rows below, chatgw's store on the disk (the rate sweep) or on tmpfs (`TMPFS_RATES`; \"not run\" where the session did not run that rate there). A run that was not clean (last column but one) fell behind, so its CPU and switch figures understate the cost and its p99 is the backlog's.\n"
    );
    let headings: Vec<&str> = FIGURES.iter().map(|f| f.heading).collect();
    let _ = writeln!(
        md,
        "| offered msg/s | {} | clean: chatgw disk / tmpfs / baseline | chatgw lower on |\n|---|{}---|---|",
        headings.join(" | "),
        "---|".repeat(headings.len())
    );
    for &rate in rates {
        let base = runs.baseline.get(&rate);
        let mut cells = Vec::new();
        let mut lower = Vec::new();
        let mut measured = 0;
        for f in &FIGURES {
            let ours = if f.tmpfs { runs.tmpfs.get(&rate) } else { runs.chatgw.get(&rate) };
            let (text, r) = cell(ours.and_then(|v| num(v, f.key)), base.and_then(|v| num(v, f.key)), f.digits);
            if let Some(r) = r {
                measured += 1;
                if r < 1.0 {
                    lower.push(f.short);
                }
            }
            cells.push(text);
        }
        let verdict = match measured {
            0 => "n/a".to_owned(),
            n if lower.is_empty() => format!("0 of {n}"),
            n => format!("{} of {n}: {}", lower.len(), lower.join(", ")),
        };
        let cleanliness = format!(
            "{} / {} / {}",
            clean_word(rate, runs.chatgw.get(&rate)),
            clean_word(rate, runs.tmpfs.get(&rate)),
            clean_word(rate, base)
        );
        let _ = writeln!(md, "| {rate} | {} | {cleanliness} | {verdict} |", cells.join(" | "));
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_runs::run;

    #[test]
    fn cells_are_ratios_of_the_runs_and_the_count_is_computed() {
        let chatgw = BTreeMap::from([(5000, run(5000, 90.0, 4.0, 3.0)), (10000, run(10000, 60.0, 8.0, 2.0))]);
        let tmpfs = BTreeMap::from([(5000, run(5000, 80.0, 1.0, 2.5))]);
        let baseline = BTreeMap::from([(5000, run(5000, 45.0, 2.0, 4.0)), (10000, run(10000, 30.0, 1.0, 4.0))]);
        let mut md = String::new();
        write_targets(&mut md, &Runs { chatgw: &chatgw, tmpfs: &tmpfs, baseline: &baseline }, &[2000, 5000, 10000]);
        let row = |rate: &str| md.lines().find(|l| l.starts_with(&format!("| {rate} |"))).unwrap().to_owned();
        assert_eq!(
            row("5000"),
            "| 5000 | 2.00x (90.0 / 45.0) | 2.00x (4.00 / 2.00) | 0.50x (1.00 / 2.00) | 0.75x (3.00 / 4.00) \
             | yes / yes / yes | 2 of 4: p99 tmpfs, switches |"
        );
        assert_eq!(
            row("10000"),
            "| 10000 | 2.00x (60.0 / 30.0) | 8.00x (8.00 / 1.00) | not run | 0.50x (2.00 / 4.00) \
             | yes / not run / yes | 1 of 3: switches |"
        );
        assert_eq!(row("2000"), "| 2000 | not run | not run | not run | not run | not run / not run / not run | n/a |");
    }

    #[test]
    fn a_run_that_fell_behind_is_marked_not_clean() {
        let mut slow = run(40000, 20.0, 2500.0, 1.0);
        slow["achieved_delivery_rate"] = json!(30000);
        let chatgw = BTreeMap::from([(40000, slow)]);
        let baseline = BTreeMap::from([(40000, run(40000, 25.0, 70.0, 1.0))]);
        let empty = BTreeMap::new();
        let mut md = String::new();
        write_targets(&mut md, &Runs { chatgw: &chatgw, tmpfs: &empty, baseline: &baseline }, &[40000]);
        assert!(md.contains("| no / not run / yes | 1 of 3: CPU |"), "{md}");
    }

    #[test]
    fn no_table_when_no_chosen_rate_ran() {
        let chatgw = BTreeMap::from([(7000, run(7000, 1.0, 1.0, 1.0))]);
        let empty = BTreeMap::new();
        let mut md = String::new();
        write_targets(&mut md, &Runs { chatgw: &chatgw, tmpfs: &empty, baseline: &empty }, &[2000]);
        assert!(md.is_empty(), "{md}");
    }
}

//! The report's section on the disk: what the data directory's disk allowed
//! a durable acknowledgement while the session ran, and chatgw with its
//! store on tmpfs next to chatgw on the disk and the baseline.
//!
//! Why: chatgw answers `sent` and delivers only after an fdatasync, so its
//! latency percentiles include every stall of the disk, and the baseline's
//! (in memory) include none. `loadgen disk` probes, taken by
//! `scripts/bench.sh` at the start of the session and again after the rate
//! sweep, give the floor the disk put under a durable server's p99 during
//! each probe (the disk's stalls come and go, so two probes also show how
//! much it varied). Right after the second probe the script runs chatgw at
//! half its saturation twice, store on the disk then on tmpfs (fdatasync
//! returns at once; not durable across a power cut): the gap between those
//! two runs is mostly the disk's, the gap between chatgw on tmpfs and the
//! baseline is what the gateway's own work (durability's CPU included)
//! adds. Single runs a minute apart, so an indication, not a measurement
//! of the disk's share.
//!
//! The script also runs chatgw on tmpfs at each rate of `TMPFS_RATES`; one
//! table puts every tmpfs run (the half-saturation one included) next to
//! chatgw on the disk and the baseline at the same rate, with the ratios.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use serde_json::Value;

use super::{clean, fmt, num, one_to_one_runs, ratio, read_json};

/// The probes `scripts/bench.sh` takes: (file stem, when).
const PROBES: [(&str, &str); 2] = [
    ("disk-start", "start of the session"),
    ("disk-half", "after the rate sweep, right before the runs on disk and tmpfs below"),
];

/// The run of chatgw whose store is on tmpfs.
pub(crate) const TMPFS: &str = "chatgw-tmpfs";

/// The run of chatgw on the disk right before it.
const DISK: &str = "chatgw-disk";

/// Write the section; nothing when the session has neither probes nor a
/// tmpfs run.
pub(crate) fn write_disk(
    md: &mut String,
    dir: &Path,
    disk_runs: &BTreeMap<u64, Value>,
    baseline: &BTreeMap<u64, Value>,
) {
    let probes: Vec<(&str, Value)> =
        PROBES.iter().filter_map(|(stem, when)| Some((*when, read_json(&dir.join(format!("{stem}.json")))?))).collect();
    let tmpfs = one_to_one_runs(dir, TMPFS);
    if probes.is_empty() && tmpfs.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n### What the disk allows\n");
    if let Some((_, first)) = probes.first() {
        let bytes = fmt(num(first, "config.bytes"), 0);
        let target = fmt(num(first, "target_ms"), 1);
        let _ = writeln!(
            md,
            "`loadgen disk` appends {bytes} bytes to a scratch file in the results directory's filesystem and fdatasyncs it, back to back, like a busy journal. A write that arrives while the disk is stalled in a flush waits for the rest of the stall, whatever the server does. *Time stalled* is the share of the probe in which a sync still had more than {target} ms to run; the *p99 floor* is the latency that 1% of writes arriving at random moments could not beat for that reason alone. For a server acknowledging after fdatasync on this disk it is a lower bound on p99 if the disk stalled the same way during the server's run and a stall holds up every file, not only the one synced (as on the reference VM; see `loadgen/README.md`). The disk's behaviour changes within minutes, so the two probes bound nothing about runs far from them.\n"
        );
        let _ = writeln!(
            md,
            "| probe | syncs/s | fdatasync p50 (ms) | p99 (ms) | max (ms) | syncs over {target} ms | time stalled | p99 floor (ms) | p99.9 floor (ms) |\n|---|---|---|---|---|---|---|---|---|"
        );
        for (when, v) in &probes {
            let _ = writeln!(
                md,
                "| {when} | {} | {} | {} | {} | {} | {}% | {} | {} |",
                fmt(num(v, "syncs_per_sec"), 0),
                fmt(num(v, "sync_ms.p50_ms"), 3),
                fmt(num(v, "sync_ms.p99_ms"), 3),
                fmt(num(v, "sync_ms.max_ms"), 1),
                fmt(num(v, "stalls"), 0),
                fmt(num(v, "stalled_pct"), 2),
                fmt(num(v, "floor_p99_ms"), 2),
                fmt(num(v, "floor_p999_ms"), 2),
            );
        }
        let worst = probes.iter().filter_map(|(_, v)| num(v, "floor_p99_ms")).reduce(f64::max);
        match worst {
            Some(f) if f >= 5.0 => {
                let _ = writeln!(
                    md,
                    "\nWith a p99 floor of {f:.1} ms in a probe, no server that acknowledges after an fdatasync on this disk could have kept p99 under 5 ms while the disk behaved as it did then."
                );
            }
            Some(_) => {
                let _ = writeln!(
                    md,
                    "\nIn these probes the disk left room for a p99 under 5 ms; it may stall more or less during the runs themselves, which no probe can watch without adding to the load."
                );
            }
            None => {}
        }
        let _ = writeln!(md);
    }
    let fresh = one_to_one_runs(dir, DISK);
    write_tmpfs_rates(md, &tmpfs, &fresh, disk_runs, baseline);
    for (rate, t) in &tmpfs {
        // The back-to-back comparison: only where the script ran chatgw on
        // the disk right after the second probe (half of its saturation).
        let Some(on_disk) = fresh.get(rate) else { continue };
        let runs = [Some(on_disk), Some(t), baseline.get(rate)];
        let _ = writeln!(
            md,
            "At {rate} msg/s offered (half of chatgw's saturation), back to back after the second probe: chatgw with its store on the disk, the same build with its store on tmpfs, and the baseline (in memory, from the rate sweep). One run each:\n"
        );
        let _ = writeln!(md, "| | chatgw (disk) | chatgw (tmpfs) | baseline (memory) |\n|---|---|---|---|");
        for (label, key, digits) in [
            ("p50 send -> deliver (ms)", "delivery_ms.p50_ms", 2),
            ("p99 send -> deliver (ms)", "delivery_ms.p99_ms", 2),
            ("p99.9 send -> deliver (ms)", "delivery_ms.p999_ms", 2),
            ("lost / duplicated", "", 0),
            ("server µs/msg (user + kernel)", "cpu.gateway_us_per_msg", 1),
            ("box busy %", "cpu.box_busy_pct", 0),
            ("box switches/msg", "cpu.box_ctxt_per_msg", 2),
            ("server switches/msg", "cpu.gateway_ctxt_per_msg", 2),
        ] {
            let cells: Vec<String> = runs
                .iter()
                .map(|r| match (r, key) {
                    (None, _) => "not run".to_owned(),
                    (Some(v), "") => format!("{} / {}", fmt(num(v, "lost"), 0), fmt(num(v, "duplicated"), 0)),
                    (Some(v), key) => fmt(num(v, key), digits),
                })
                .collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
        let _ = writeln!(md);
    }
}

/// Every run of chatgw on tmpfs next to chatgw on the disk and the baseline
/// at the same offered rate, with the ratios to the baseline.
fn write_tmpfs_rates(
    md: &mut String,
    tmpfs: &BTreeMap<u64, Value>,
    fresh: &BTreeMap<u64, Value>,
    disk_runs: &BTreeMap<u64, Value>,
    baseline: &BTreeMap<u64, Value>,
) {
    if tmpfs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "chatgw with its store on tmpfs (`--data` on a tmpfs mount: fdatasync returns at once, nothing waits for a disk, nothing survives a power cut) at each rate of `TMPFS_RATES` and at half of its saturation (marked), next to chatgw with its store on the disk (the run of the rate sweep at that rate) and the baseline (in memory) at the same rate, one run each in this session. The gap between chatgw on tmpfs and the baseline is what the gateway's own work adds (durability's CPU included, the disk's waiting not); the gap between chatgw on the disk and on tmpfs is mostly the disk's.\n"
    );
    let _ = writeln!(
        md,
        "| offered msg/s | p99 chatgw disk (ms) | p99 chatgw tmpfs (ms) | p99 baseline (ms) | p99 tmpfs / baseline | p99 disk / baseline | server µs/msg tmpfs / baseline | box switches/msg tmpfs / baseline | tmpfs lost / dup | tmpfs clean |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for (rate, t) in tmpfs {
        let on_disk = disk_runs.get(rate).or_else(|| fresh.get(rate));
        let base = baseline.get(rate);
        let p99 = |v: Option<&Value>| v.and_then(|v| num(v, "delivery_ms.p99_ms"));
        let of = |key: &str| (num(t, key), base.and_then(|v| num(v, key)));
        let (us_t, us_b) = of("cpu.gateway_us_per_msg");
        let (sw_t, sw_b) = of("cpu.box_ctxt_per_msg");
        let mark = if fresh.contains_key(rate) { " (half of saturation)" } else { "" };
        let _ = writeln!(
            md,
            "| {rate}{mark} | {} | {} | {} | {} | {} | {} ({} / {}) | {} ({} / {}) | {} / {} | {} |",
            fmt(p99(on_disk), 2),
            fmt(p99(Some(t)), 2),
            fmt(p99(base), 2),
            ratio(p99(Some(t)), p99(base)),
            ratio(p99(on_disk), p99(base)),
            ratio(us_t, us_b),
            fmt(us_t, 1),
            fmt(us_b, 1),
            ratio(sw_t, sw_b),
            fmt(sw_t, 2),
            fmt(sw_b, 2),
            fmt(num(t, "lost"), 0),
            fmt(num(t, "duplicated"), 0),
            if clean(*rate, t) { "yes" } else { "no" },
        );
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runs::run;

    #[test]
    fn each_tmpfs_run_sits_next_to_the_disk_and_the_baseline_at_its_rate() {
        let tmpfs = BTreeMap::from([(2500, run(2500, 50.0, 3.0, 6.0)), (5000, run(5000, 40.0, 4.0, 5.0))]);
        let fresh = BTreeMap::from([(2500, run(2500, 60.0, 9.0, 7.0))]);
        let disk = BTreeMap::from([(5000, run(5000, 45.0, 8.0, 6.0))]);
        let baseline = BTreeMap::from([(2500, run(2500, 25.0, 1.5, 3.0)), (5000, run(5000, 20.0, 2.0, 4.0))]);
        let mut md = String::new();
        write_tmpfs_rates(&mut md, &tmpfs, &fresh, &disk, &baseline);
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 2500") || l.starts_with("| 5000")).collect();
        assert_eq!(
            rows,
            [
                // No sweep run at 2500: the disk column falls back to the
                // run after the probe, and the row says it is the half.
                "| 2500 (half of saturation) | 9.00 | 3.00 | 1.50 | 2.00x | 6.00x | 2.00x (50.0 / 25.0) \
                 | 2.00x (6.00 / 3.00) | 0 / 0 | yes |",
                "| 5000 | 8.00 | 4.00 | 2.00 | 2.00x | 4.00x | 2.00x (40.0 / 20.0) | 1.25x (5.00 / 4.00) | 0 / 0 | yes |",
            ]
        );
        let mut none = String::new();
        write_tmpfs_rates(&mut none, &BTreeMap::new(), &fresh, &disk, &baseline);
        assert!(none.is_empty());
    }
}

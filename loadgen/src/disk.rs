//! `loadgen disk`: how long this disk makes a durable write wait.
//!
//! Why: the gateway acknowledges a message only after the fdatasync of its
//! commit returns, so no acknowledgement comes sooner than the disk's
//! flush, and a write that arrives while the disk is stalled in a flush
//! waits for the rest of that stall however little the gateway itself
//! does. Virtual disks stall like that for tens to hundreds of
//! milliseconds, every few seconds, and a stall holds up every file on the
//! disk at once. Before reading a latency percentile of a durable run, an
//! operator needs to know what the disk alone allows.
//!
//! How: append `--bytes` to a scratch file and fdatasync it, back to back,
//! for `--duration` (the pattern of a busy group-commit journal), and time
//! every sync. Besides the sync percentiles, the report gives the floor the
//! disk puts under acknowledgement latency: for writes arriving at random
//! moments, the share that land while a sync still has more than
//! `--target` to run, which is Σ max(0, d − target) over the wall time,
//! and the latency that 1% and 0.1% of writes cannot beat for that reason
//! alone. Those are lower bounds (such a write also needs a sync of its
//! own afterwards) under one assumption: that a stall holds up every file,
//! which is what two probes side by side show on a shared virtual disk.
//! They describe the disk at the time of the run; stalls on shared storage
//! come and go, so a probe just before a latency run says more than one an
//! hour earlier.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;

use crate::{
    check::Figures,
    cli::DiskArgs,
    outputs::Outputs,
    report::Table,
    stats::{Latency, Summary},
};

/// What `--check` and `--hist` can name.
pub(crate) static FIGURES: Figures = Figures {
    latencies: &[("sync", "sync_ms")],
    main: "sync",
    numbers: &[
        ("syncs", "/syncs"),
        ("stalls", "/stalls"),
        ("stalled_pct", "/stalled_pct"),
        ("floor_p99_ms", "/floor_p99_ms"),
        ("floor_p999_ms", "/floor_p999_ms"),
    ],
};

/// The scratch file is cut back to empty when it reaches this size, so a
/// long probe does not fill the disk.
const ROLL_BYTES: u64 = 64 * 1024 * 1024;

/// The `--json` report.
#[derive(Serialize)]
struct DiskReport<'a> {
    scenario: &'static str,
    config: &'a DiskArgs,
    /// Wall time of the probe, seconds.
    secs: f64,
    syncs: u64,
    syncs_per_sec: f64,
    /// Times the scratch file was cut back to empty.
    rolls: u64,
    sync_ms: Summary,
    target_ms: f64,
    /// Syncs that took longer than the target.
    stalls: u64,
    /// Share of the wall time in which a sync still had more than the
    /// target to run, in percent.
    stalled_pct: f64,
    /// Latency that 1% (0.1%) of writes arriving at random moments cannot
    /// beat, because the disk is still flushing when they arrive.
    floor_p99_ms: f64,
    floor_p999_ms: f64,
}

/// Run the probe. `Ok(false)` when a `--check` fails.
pub(crate) fn run(args: DiskArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        args.bytes > 0 && args.bytes as u64 <= ROLL_BYTES,
        "--bytes must be between 1 and {ROLL_BYTES} (the scratch file's size limit)"
    );
    anyhow::ensure!(!args.duration.0.is_zero(), "--duration must be more than 0");
    let outputs = Outputs::parse_parts(args.json.clone(), args.check.as_deref(), &args.hist, &FIGURES)?;
    let path = scratch_path(&args.dir);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating the scratch file {}", path.display()))?;
    let probed = probe(&file, &args);
    drop(file);
    let removed = std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()));
    let probed = probed?;
    removed?;

    let target_us = args.target.0.as_micros() as u64;
    let wall_us = probed.wall.as_micros().max(1) as u64;
    let report = DiskReport {
        scenario: "disk",
        config: &args,
        secs: probed.wall.as_secs_f64(),
        syncs: probed.micros.len() as u64,
        syncs_per_sec: probed.micros.len() as f64 / probed.wall.as_secs_f64().max(1e-9),
        rolls: probed.rolls,
        sync_ms: probed.latency.summary(),
        target_ms: target_us as f64 / 1000.0,
        stalls: probed.micros.iter().filter(|&&d| d > target_us).count() as u64,
        stalled_pct: 100.0 * excess(&probed.micros, target_us) as f64 / wall_us as f64,
        floor_p99_ms: floor_us(&probed.micros, wall_us, 0.01) as f64 / 1000.0,
        floor_p999_ms: floor_us(&probed.micros, wall_us, 0.001) as f64 / 1000.0,
    };
    print_summary(&report, &path);
    outputs.finish(&report, &[("sync", &probed.latency)], true)
}

/// A file name in `dir` no other probe uses at the same time.
fn scratch_path(dir: &Path) -> PathBuf {
    dir.join(format!(".loadgen-disk-probe.{}", std::process::id()))
}

/// What the sync loop saw.
struct Probed {
    wall: Duration,
    /// Every sync's time, microseconds, in order.
    micros: Vec<u64>,
    latency: Latency,
    rolls: u64,
}

/// Append and sync until the duration is over.
fn probe(file: &File, args: &DiskArgs) -> anyhow::Result<Probed> {
    let block = vec![0x5a_u8; args.bytes];
    let mut p = Probed { wall: Duration::ZERO, micros: Vec::new(), latency: Latency::new(), rolls: 0 };
    let mut window = Latency::new();
    let mut offset = 0u64;
    let started = Instant::now();
    let mut next_line = started + Duration::from_secs(1);
    while started.elapsed() < args.duration.0 {
        if offset + block.len() as u64 > ROLL_BYTES {
            file.set_len(0).context("cutting the scratch file back")?;
            offset = 0;
            p.rolls += 1;
        }
        file.write_all_at(&block, offset).context("writing the scratch file")?;
        offset += block.len() as u64;
        let t = Instant::now();
        file.sync_data().context("fdatasync of the scratch file")?;
        let ns = t.elapsed().as_nanos() as u64;
        p.micros.push(ns / 1000);
        p.latency.record_ns(ns);
        window.record_ns(ns);
        if !args.quiet && Instant::now() >= next_line {
            let s = window.summary();
            eprintln!(
                "disk: {:>5.1}s  {} syncs in the last second, p99 {:.2} ms, longest {:.1} ms",
                started.elapsed().as_secs_f64(),
                s.count,
                s.p99_ms,
                s.max_ms
            );
            let _ = std::io::stderr().flush();
            window.reset();
            next_line += Duration::from_secs(1);
        }
    }
    p.wall = started.elapsed();
    Ok(p)
}

/// Σ max(0, d − x): the time in which a sync still had more than `x` to run.
fn excess(micros: &[u64], x: u64) -> u64 {
    micros.iter().map(|&d| d.saturating_sub(x)).sum()
}

/// The smallest latency `x` (µs) such that at most `share` of the wall time
/// has a sync with more than `x` still to run: writes arriving at random
/// moments miss `x` at least that often because of the disk alone.
fn floor_us(micros: &[u64], wall_us: u64, share: f64) -> u64 {
    let allowed = (share * wall_us as f64) as u64;
    let (mut lo, mut hi) = (0u64, micros.iter().copied().max().unwrap_or(0));
    // `excess` falls as `x` rises; find the first `x` within the allowance.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if excess(micros, mid) <= allowed {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn print_summary(r: &DiskReport<'_>, path: &Path) {
    let mut t = Table::default();
    t.section("disk");
    t.row("scratch file", path.display());
    t.row("probe", format!("{:.1}s, {} bytes appended before each fdatasync", r.secs, r.config.bytes));
    t.row("syncs", format!("{} ({:.0}/s)", r.syncs, r.syncs_per_sec));
    t.latency_header();
    t.latency("fdatasync", &r.sync_ms);
    t.section(&format!("what the disk allows a durable acknowledgement (target {} ms)", r.target_ms));
    t.row("syncs over the target", r.stalls);
    t.row("time with a sync still over", format!("{:.2}% of the probe", r.stalled_pct));
    t.row("p99 floor", format!("{:.2} ms", r.floor_p99_ms));
    t.row("p99.9 floor", format!("{:.2} ms", r.floor_p999_ms));
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excess_counts_only_the_part_over_the_target() {
        assert_eq!(excess(&[100, 5_000, 25_000], 5_000), 20_000);
        assert_eq!(excess(&[100, 200], 5_000), 0);
    }

    #[test]
    fn floor_is_the_latency_one_percent_of_the_time_cannot_beat() {
        // One second of 100 µs syncs and one 100 ms stall: 10% of the wall
        // time is inside the stall. 1% of arrivals land in its last 10 ms
        // or more before its end, so they wait at least 90 ms.
        let mut micros = vec![100u64; 9_000];
        micros.push(100_000);
        let wall = 1_000_000;
        assert_eq!(floor_us(&micros, wall, 0.01), 90_000);
        assert_eq!(floor_us(&micros, wall, 0.001), 99_000);
        // Without the stall the disk is still busy 90% of the time with
        // 100 µs syncs, so the floor is just under one of them.
        assert_eq!(floor_us(&vec![100u64; 9_000], wall, 0.01), 99);
        assert_eq!(floor_us(&[], wall, 0.01), 0);
    }
}

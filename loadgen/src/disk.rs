//! `loadgen disk`: how long this disk makes a durable write wait.
//!
//! Why: the gateway acknowledges a message only after the fdatasync of its
//! commit returns, so no acknowledgement comes sooner than the disk's
//! flush, and a write that arrives while the disk is stalled in a flush
//! waits for the rest of that stall however little the gateway itself
//! does. Shared virtual disks stall like that at times, for tens to
//! hundreds of milliseconds every few seconds, and on the reference VM a
//! stall holds up every file of the disk at once. Before reading a latency
//! percentile of a durable run, an operator needs to know what the disk
//! allowed.
//!
//! How: append `--bytes` to a scratch file and fdatasync it, back to back,
//! for `--duration` (the pattern of a busy group-commit journal), and time
//! every sync. Besides the sync percentiles, the report gives the floor the
//! disk put under acknowledgement latency during the probe: for writes
//! arriving at random moments, the share that land while a sync still has
//! more than `--target` to run, which is Σ max(0, d − target) over the wall
//! time, and the latency that 1% and 0.1% of writes cannot beat for that
//! reason alone. For a server that acknowledges after fdatasync on the
//! same disk, those are lower bounds on its tail (such a write also needs
//! a sync of its own afterwards) as long as: stalls hold up every file, not
//! only the one synced; they do not come from the probe's own load (a disk
//! throttled for its sync rate stalls less under a server that syncs less
//! often); writes arrive independently of the stalls, with latency counted
//! from the intended send time as `one-to-one` does; and the disk behaves
//! during the server's run as it did during the probe. That last one is the
//! weakest: stalls on shared storage come and go within minutes, so a probe
//! right before a latency run says more than one an hour earlier.
//!
//! The scratch file is unlinked as soon as it is open, so nothing is left
//! behind however the probe ends. It is cut back to empty every 64 MiB; the
//! sync right after a cut (the filesystem may discard the freed blocks in
//! it) is left out of the figures.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::{
    cli::DiskArgs,
    report::check::Figures,
    report::outputs::Outputs,
    report::stats::{Latency, Summary},
    report::summary::Table,
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
    let outputs = Outputs::parse(&args.report, &FIGURES)?;
    let path = scratch_path(&args.dir);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating the scratch file {}", path.display()))?;
    // Unlinked at once: the open file still takes writes and syncs, and
    // nothing is left in the directory however the probe ends.
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    let probed = probe(&file, &args)?;
    drop(file);

    let target_us = args.target.0.as_micros() as u64;
    let wall_us = probed.wall.as_micros().max(1) as u64;
    let h = probed.latency.histogram();
    let report = DiskReport {
        scenario: "disk",
        config: &args,
        secs: probed.wall.as_secs_f64(),
        syncs: probed.latency.count(),
        syncs_per_sec: probed.latency.count() as f64 / probed.wall.as_secs_f64().max(1e-9),
        rolls: probed.rolls,
        sync_ms: probed.latency.summary(),
        target_ms: target_us as f64 / 1000.0,
        stalls: h.count_between(target_us + 1, u64::MAX),
        stalled_pct: 100.0 * excess(h, target_us) as f64 / wall_us as f64,
        floor_p99_ms: floor_us(h, wall_us, 0.01) as f64 / 1000.0,
        floor_p999_ms: floor_us(h, wall_us, 0.001) as f64 / 1000.0,
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
    /// Every sync's time but those right after a cut (microseconds).
    latency: Latency,
    rolls: u64,
}

/// Append and sync until the duration is over (at least one sync).
fn probe(file: &File, args: &DiskArgs) -> anyhow::Result<Probed> {
    let block = vec![0x5a_u8; args.bytes];
    let mut p = Probed { wall: Duration::ZERO, latency: Latency::new(), rolls: 0 };
    let mut window = Latency::new();
    let mut offset = 0u64;
    let started = Instant::now();
    let mut next_line = started + Duration::from_secs(1);
    loop {
        // Cutting the file back frees its blocks, which the filesystem may
        // discard in the next sync: that sync measures the probe's own
        // doing, not the disk's, and is left out. Its time still counts as
        // wall time without a stall, which can only lower the floor.
        let after_cut = offset + block.len() as u64 > ROLL_BYTES;
        if after_cut {
            file.set_len(0).context("cutting the scratch file back")?;
            offset = 0;
            p.rolls += 1;
        }
        file.write_all_at(&block, offset).context("writing the scratch file")?;
        offset += block.len() as u64;
        let t = Instant::now();
        file.sync_data().context("fdatasync of the scratch file")?;
        let ns = t.elapsed().as_nanos() as u64;
        if !after_cut {
            p.latency.record_ns(ns);
            window.record_ns(ns);
        }
        let now = Instant::now();
        if !args.report.quiet && now >= next_line {
            let s = window.summary();
            eprintln!(
                "disk: {:>5.1}s  {} syncs since the last line, p99 {:.2} ms, longest {:.1} ms",
                started.elapsed().as_secs_f64(),
                s.count,
                s.p99_ms,
                s.max_ms
            );
            let _ = std::io::stderr().flush();
            window.reset();
            next_line = now + Duration::from_secs(1);
        }
        if now.duration_since(started) >= args.duration.0 && p.latency.count() > 0 {
            break;
        }
    }
    p.wall = started.elapsed();
    Ok(p)
}

/// Σ max(0, d − x) over the syncs, in µs: the time in which a sync still
/// had more than `x` to run. Each sync counts at the low end of its
/// histogram bucket (within 0.1%), so this never overstates.
fn excess(h: &Histogram<u64>, x: u64) -> u64 {
    h.iter_recorded().map(|v| h.lowest_equivalent(v.value_iterated_to()).saturating_sub(x) * v.count_at_value()).sum()
}

/// The smallest latency `x` (µs) such that at most `share` of the wall time
/// has a sync with more than `x` still to run: writes arriving at random
/// moments miss `x` at least that often because of the disk alone.
fn floor_us(h: &Histogram<u64>, wall_us: u64, share: f64) -> u64 {
    let allowed = (share * wall_us as f64) as u64;
    let (mut lo, mut hi) = (0u64, if h.is_empty() { 0 } else { h.max() });
    // `excess` falls as `x` rises; find the first `x` within the allowance.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if excess(h, mid) <= allowed {
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
    t.row("scratch file", format!("{} (unlinked)", path.display()));
    t.row("probe", format!("{:.1}s, {} bytes appended before each fdatasync", r.secs, r.config.bytes));
    t.row("syncs", format!("{} ({:.0}/s; {} after a cut left out)", r.syncs, r.syncs_per_sec, r.rolls));
    t.latency_header();
    t.latency("fdatasync", &r.sync_ms);
    t.section(&format!("what the disk allowed a durable acknowledgement (target {} ms)", r.target_ms));
    t.row("syncs over the target", r.stalls);
    t.row("time with a sync still over", format!("{:.2}% of the probe", r.stalled_pct));
    t.row("p99 floor", format!("{:.2} ms", r.floor_p99_ms));
    t.row("p99.9 floor", format!("{:.2} ms", r.floor_p999_ms));
    t.print();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(micros: &[u64]) -> Latency {
        let mut l = Latency::new();
        for &us in micros {
            l.record_ns(us * 1000);
        }
        l
    }

    #[test]
    fn excess_counts_only_the_part_over_the_target() {
        // 25 ms counts as the low end of its bucket, within 0.1% of it.
        let e = excess(hist(&[100, 5_000, 25_000]).histogram(), 5_000);
        assert!((19_975..=20_000).contains(&e), "{e}");
        assert_eq!(excess(hist(&[100, 200]).histogram(), 5_000), 0);
    }

    #[test]
    fn floor_is_the_latency_one_percent_of_the_time_cannot_beat() {
        // One second of 100 µs syncs and one 100 ms stall: 10% of the wall
        // time is inside the stall. 1% of arrivals land in its first 10 ms
        // (90 ms or more before its end), 0.1% in its first 1 ms.
        let mut micros = vec![100u64; 9_000];
        micros.push(100_000);
        let wall = 1_000_000;
        let l = hist(&micros);
        let near = |got: u64, want: u64| got.abs_diff(want) <= want / 500;
        let (p99, p999) = (floor_us(l.histogram(), wall, 0.01), floor_us(l.histogram(), wall, 0.001));
        assert!(near(p99, 90_000), "{p99}");
        assert!(near(p999, 99_000), "{p999}");
        // Without the stall the disk is still busy 90% of the time with
        // 100 µs syncs, so the floor is just under one of them.
        assert_eq!(floor_us(hist(&[100u64; 9_000]).histogram(), wall, 0.01), 99);
        assert_eq!(floor_us(Latency::new().histogram(), wall, 0.01), 0);
    }
}

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
//!
//! Why a folder of its own and still a `loadgen` subcommand: it opens no
//! connection and shares nothing with the WebSocket side (`conn`,
//! `scenarios`, `procs`), but it reports the way every scenario does
//! (`--json`, `--hist`, `--check`, the printed table, all from `report`),
//! and `scripts/bench.sh` runs it between scenarios with the same binary.
//! The sync loop (the only I/O, [`sync_loop`]) and the floor arithmetic
//! (no I/O, unit-tested, [`floor`]) are apart.

mod floor;
mod sync_loop;

use std::{fs::OpenOptions, path::Path};

use anyhow::Context as _;
use serde::Serialize;

use self::{
    floor::{excess, floor_us},
    sync_loop::{probe, scratch_path},
};

use crate::{
    cli::DiskArgs,
    report::{check::Figures, outputs::Outputs, stats::Summary, summary::Table},
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

//! The probe itself: append a block to a scratch file and fdatasync it,
//! back to back, timing every sync; the one I/O part of `loadgen disk`.

use std::{
    fs::File,
    io::Write as _,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::ROLL_BYTES;
use crate::{cli::DiskArgs, report::stats::Latency};

/// A file name in `dir` no other probe uses at the same time.
pub(super) fn scratch_path(dir: &Path) -> PathBuf {
    dir.join(format!(".loadgen-disk-probe.{}", std::process::id()))
}

/// What the sync loop saw.
pub(super) struct Probed {
    pub(super) wall: Duration,
    /// Every sync's time but those right after a cut (microseconds).
    pub(super) latency: Latency,
    pub(super) rolls: u64,
}

/// Append and sync until the duration is over (at least one sync).
pub(super) fn probe(file: &File, args: &DiskArgs) -> anyhow::Result<Probed> {
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

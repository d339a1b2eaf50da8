//! Bringing the engine back after a failed write, without a restart.
//!
//! Two steps, cheapest first. `probe_disk` writes and fsyncs a small file
//! next to the data: while the disk is still full or read-only it fails
//! without touching the engine, so reads keep being served by the old
//! (poisoned, but readable) engine during the whole outage. Only once the
//! disk takes a write does `reopen` swap engines: drop the old one, open the
//! directory again (fjall replays its journal up to the last complete batch
//! and truncates a torn tail) and push one durable write through the new
//! journal before declaring success.

use std::{
    io::Write as _,
    path::Path,
    sync::{PoisonError, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use super::{tables::Tables, EmbeddedOptions};
use crate::StoreError;

/// Name of the probe file inside the store directory (removed after each probe).
pub(super) const PROBE_FILE: &str = "write-probe";
/// Bytes written by one probe: a few pages, so a disk with only a sliver of
/// space left still counts as full.
const PROBE_BYTES: usize = 16 * 1024;

/// Write, fsync and remove a small file in `dir`.
pub(super) fn probe_disk(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(PROBE_FILE);
    let written = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_data()
    })();
    // Remove it even after a failed write, so a probe never holds space.
    let removed = std::fs::remove_file(&path);
    written.map_err(|e| StoreError::backend("probe write", e))?;
    removed.map_err(|e| StoreError::backend("probe write", e))
}

/// Replace the engine in `engine` with one freshly opened from `path`, and
/// prove it takes a durable write. Waits for running reads and commits to
/// finish (they hold the read lock). If opening fails the store stays
/// closed (`None`) until the next attempt.
pub(super) fn reopen(
    engine: &RwLock<Option<Tables>>,
    path: &Path,
    options: &EmbeddedOptions,
) -> Result<(), StoreError> {
    let mut slot = engine.write().unwrap_or_else(PoisonError::into_inner);
    // The old engine must be gone before the new one opens: it holds the
    // directory's lock file.
    drop(slot.take());
    let fresh = slot.insert(Tables::open(path, options)?);
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    fresh.probe(now_ms)
}

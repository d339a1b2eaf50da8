//! The commit path without the network: direct messages submitted by
//! producer threads (as cores would) into the real commit pipelines on a
//! real embedded store, acks and events drained from the cores' mailboxes.
//! Messages per second with one pipeline and with two, on tmpfs
//! (`/dev/shm`: preparation, encoding and dispatch dominate) and on disk
//! (fsync in every commit). docs/ARCHITECTURE.md, "Commit pipelines",
//! records the figures.

use std::{path::Path, sync::Arc, time::Duration};

use chatgw_gateway::commit_bench::{run, Load};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Messages per run.
const MESSAGES: usize = 20_000;

fn on(c: &mut Criterion, medium: &str, parent: &Path) {
    let mut g = c.benchmark_group(format!("commit_path_{medium}"));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for pipelines in [1usize, 2] {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let store: Arc<dyn MessageStore> =
            Arc::new(EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap());
        // Batches of 256: the whole run is queued at once, and with the
        // default 2048 it would be a handful of batches per pipeline.
        let load = Load { pipelines, producers: 2, conversations: 10_000, messages: MESSAGES, commit_batch: 256 };
        g.bench_with_input(BenchmarkId::new("pipelines", pipelines), &load, |b, load| {
            b.iter_custom(|iters| (0..iters).map(|_| run(store.clone(), *load)).sum())
        });
    }
    g.finish();
}

fn commit_path(c: &mut Criterion) {
    on(c, "tmpfs", Path::new("/dev/shm"));
    // The system temporary directory is on disk here; TMPDIR moves it.
    on(c, "disk", &std::env::temp_dir());
}

criterion_group!(benches, commit_path);
criterion_main!(benches);

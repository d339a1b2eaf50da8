//! CPU per durable message of the embedded store's commit: batches of 1,
//! 16 and 128 direct messages (see `workload`), each one fjall batch with
//! `fdatasync`, into a store on tmpfs (`/dev/shm`, where the sync costs
//! next to nothing, so the figure is the store's own CPU) and into one on
//! disk (the sync included). Read the time per element: per message.
//!
//! Wall time is noisy on a shared machine; `examples/commit_loop.rs` runs
//! the same loop for an instruction count under callgrind.

#[path = "support/workload.rs"]
mod workload;

use chatgw_storage::{EmbeddedOptions, EmbeddedStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn commit_batches(c: &mut Criterion, name: &str, dir: tempfile::TempDir) {
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let mut work = workload::Workload::new();
    // A store that already holds conversations: every pair has written.
    for _ in 0..40 {
        workload::commit(&store, &work.batch(128));
    }
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    for n in [1usize, 16, 128] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("messages_per_commit", n), &n, |b, &n| {
            b.iter_batched(|| work.batch(n), |batch| workload::commit(&store, &batch), criterion::BatchSize::LargeInput)
        });
    }
    g.finish();
}

fn on_tmpfs(c: &mut Criterion) {
    let dir = tempfile::Builder::new().prefix("embedded-commit").tempdir_in("/dev/shm").unwrap();
    commit_batches(c, "embedded_commit_tmpfs", dir);
}

fn on_disk(c: &mut Criterion) {
    let dir = tempfile::Builder::new().prefix("embedded-commit").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    commit_batches(c, "embedded_commit_disk", dir);
}

criterion_group!(benches, on_tmpfs, on_disk);
criterion_main!(benches);

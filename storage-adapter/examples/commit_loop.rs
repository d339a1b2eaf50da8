//! The commit benchmark's loop (`benches/embedded_commit.rs`) as a plain
//! program, for instruction counts under callgrind, which are stable where
//! wall time is not:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*Tables::commit*' \
//!     target/release/examples/commit_loop 16 4000
//! ```
//!
//! Arguments: messages per commit, messages measured. A warm-up of 5120
//! messages runs first so that every pair already has a conversation; the
//! store lives on `/dev/shm` (or `COMMIT_LOOP_DIR`). Prints the records
//! and bytes written per measured message.

#[path = "../benches/support/workload.rs"]
mod workload;

use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let per_commit = args.next().unwrap_or(16).max(1);
    let measured = args.next().unwrap_or(4_000);
    let parent = std::env::var("COMMIT_LOOP_DIR").unwrap_or_else(|_| "/dev/shm".into());
    let dir = tempfile::Builder::new().prefix("commit-loop").tempdir_in(parent).unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let mut work = workload::Workload::new();
    for _ in 0..40 {
        workload::commit(&store, &work.batch(128));
    }
    let (mut records, mut bytes, mut done) = (0, 0, 0);
    while done < measured {
        let batch = work.batch(per_commit.min(measured - done));
        let (r, b) = workload::commit(&store, &batch);
        records += r;
        bytes += b;
        done += batch.len();
    }
    println!(
        "{done} messages in commits of {per_commit}: {:.2} records and {:.1} bytes per message",
        records as f64 / done as f64,
        bytes as f64 / done as f64
    );
}

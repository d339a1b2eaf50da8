//! The store's background threads run at the configured niceness, and the
//! thread that opened the store keeps its own. One test in its own binary:
//! no other store opens while it looks at the process's threads.

use std::{fs, path::Path};

use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

/// Field 19 (nice) of a `stat` file; the name in parentheses may hold spaces.
fn nice_in(stat_path: &Path) -> Option<i32> {
    let stat = fs::read_to_string(stat_path).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(16)?.parse().ok()
}

/// Niceness of every thread named `fjall:worker`.
fn worker_nices() -> Vec<i32> {
    fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == "fjall:worker"))
        .filter_map(|t| nice_in(&t.path().join("stat")))
        .collect()
}

/// The workers' niceness once `done` holds for it, or after 5 s: a thread
/// takes its name only once it runs, and leaves `/proc` only a moment after
/// it has told the engine it is done.
fn worker_nices_once(done: impl Fn(&[i32]) -> bool) -> Vec<i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let nices = worker_nices();
        if done(&nices) || std::time::Instant::now() >= deadline {
            return nices;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn own_nice() -> Option<i32> {
    nice_in(Path::new("/proc/thread-self/stat"))
}

#[test]
fn workers_get_the_configured_niceness_and_the_opener_keeps_its_own() {
    let mine = own_nice();
    assert!(mine.is_some());
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let nices = worker_nices();
    assert!(!nices.is_empty(), "an open store has fjall workers");
    assert!(nices.iter().all(|&n| n == 19), "every worker at nice 19: {nices:?}");
    assert_eq!(own_nice(), mine, "the opening thread keeps its priority");
    drop(store);
    let left = worker_nices_once(|n| n.is_empty());
    assert!(left.is_empty(), "the closed store's workers are gone: {left:?}");

    let off = EmbeddedOptions { background_nice: 0, ..EmbeddedOptions::default() };
    let _store = EmbeddedStore::open(dir.path(), &off).unwrap();
    let nices = worker_nices_once(|n| !n.is_empty());
    assert!(!nices.is_empty() && nices.iter().all(|&n| Some(n) == mine), "0 leaves the workers alone: {nices:?}");
}

//! Replays the checked-in fuzz corpus `fuzz/corpus/link_frames` through
//! the harness the cargo-fuzz target calls, so every seed and every input
//! that once crashed runs in `cargo test` on stable, without a fuzzer.

use std::path::PathBuf;

#[test]
fn link_frames_corpus_passes_the_harness() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/link_frames");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "corpus has only {} files", paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if std::panic::catch_unwind(|| chatgw_cluster::fuzzing::link_frames(&bytes)).is_err() {
            panic!("corpus file {} fails the harness", path.display());
        }
    }
}

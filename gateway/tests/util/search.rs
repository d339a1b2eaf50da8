//! Looking for a marker everywhere a server keeps or sends bytes: in its
//! plain form and in every base64 form it would take inside a longer
//! base64 text (standard and URL-safe alphabets, at each of the three byte
//! offsets it can start at), so an encoder on the way cannot hide it.

use std::path::{Path, PathBuf};

use base64::Engine;

/// The byte strings that betray `marker`: itself and the base64 texts that
/// any base64 encoding of a text containing it contains.
pub fn forms(marker: &str) -> Vec<Vec<u8>> {
    let mut out = vec![marker.as_bytes().to_vec()];
    for engine in [&base64::engine::general_purpose::STANDARD_NO_PAD, &base64::engine::general_purpose::URL_SAFE_NO_PAD]
    {
        for offset in 0..3 {
            // Encode behind `offset` filler bytes, then keep only the
            // characters made of marker bits alone.
            let mut input = vec![0u8; offset];
            input.extend_from_slice(marker.as_bytes());
            let text = engine.encode(&input);
            let first = (offset * 8).div_ceil(6);
            let last = (input.len() * 8) / 6;
            if first < last {
                out.push(text.as_bytes()[first..last].to_vec());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `haystack` holds `marker` in any of its [`forms`].
pub fn contains_marker(haystack: &[u8], marker: &str) -> bool {
    forms(marker).iter().any(|f| memchr::memmem::find(haystack, f).is_some())
}

/// Every regular file under `dir`, recursively, that holds `marker` in any
/// form.
pub fn files_with_marker(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() && std::fs::read(&path).is_ok_and(|bytes| contains_marker(&bytes, marker)) => {
                    hits.push(path)
                }
                _ => {}
            }
        }
    }
    hits
}

/// The number of regular files under `dir`, so a search can show it read
/// something.
pub fn file_count(dir: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().filter_map(Result::ok) {
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(entry.path()),
                Ok(t) if t.is_file() => n += 1,
                _ => {}
            }
        }
    }
    n
}

//! Fetching a sealed file from a download URL, checking and opening it.
//!
//! The ciphertext streams through the SHA-256 and the decryptor into a
//! temporary file beside the destination; nothing holds more than one
//! chunk. A dropped connection resumes with `Range: bytes=<received>-`,
//! so a 100 MB file interrupted at 90 MB fetches the last 10 MB again,
//! not the whole. The temporary file becomes the destination only when
//! the byte count, the digest and the last chunk all check out; otherwise
//! it is removed.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Read},
    path::{Path, PathBuf},
    thread,
};

use sha2::{Digest, Sha256};

use crate::{
    retry::{status_is_transient, Retry},
    seal::{OpenErrorOrIo, OpeningWriter, SealingReader},
    MediaReference, TransferError,
};

/// Download `reference`'s object from `url`, check it and write the
/// plaintext to `dest` (replaced if it exists).
pub fn fetch_to(
    agent: &ureq::Agent,
    retry: Retry,
    url: &str,
    reference: &MediaReference,
    dest: &Path,
) -> Result<(), TransferError> {
    let key = reference.file_key()?;
    let expected_digest = reference.digest()?;
    let partial = partial_path(dest);
    let file = File::create(&partial)?;
    let mut state = Received {
        opener: OpeningWriter::new(BufWriter::new(file), &key),
        hasher: Sha256::new(),
        received: 0,
        expected: reference.encrypted_size,
    };
    let outcome = state.fetch(agent, retry, url).and_then(|()| {
        if <[u8; 32]>::from(state.hasher.finalize()) != expected_digest {
            return Err(TransferError::DigestMismatch);
        }
        let file = state.opener.finish().map_err(opening)?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    });
    match outcome {
        Ok(()) => Ok(fs::rename(&partial, dest)?),
        Err(e) => {
            let _ = fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// A name in `dir` for a received file called `name` that does not
/// overwrite anything there: `name`, then `stem (1).ext`, `stem (2).ext`...
pub fn unused_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    (1u32..).map(|n| dir.join(format!("{stem} ({n}){ext}"))).find(|p| !p.exists()).unwrap_or(first)
}

/// A file in `dir` that already holds `reference`'s plaintext (one
/// [`unused_path`] would have chosen for it earlier), if any.
///
/// Sealing a file with the reference's key and nonce gives exactly the
/// uploaded ciphertext, so a candidate of the right size is sealed again
/// and its SHA-256 compared with the reference's: a match proves the same
/// bytes without downloading them. Lets a device that replays its history
/// skip files it already has.
pub fn already_saved(dir: &Path, reference: &MediaReference) -> Option<PathBuf> {
    let key = reference.file_key().ok()?;
    let want = reference.digest().ok()?;
    let name = reference.file_name();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    let candidates = std::iter::once(dir.join(&name)).chain((1u32..).map(|n| dir.join(format!("{stem} ({n}){ext}"))));
    candidates.take_while(|p| p.exists()).find(|p| {
        let same = || -> io::Result<bool> {
            let file = File::open(p)?;
            if file.metadata()?.len() != reference.size {
                return Ok(false);
            }
            let mut hasher = Sha256::new();
            io::copy(&mut SealingReader::new(file, reference.size, &key), &mut hasher)?;
            Ok(<[u8; 32]>::from(hasher.finalize()) == want)
        };
        same().unwrap_or(false)
    })
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    dest.with_file_name(name)
}

fn opening(e: OpenErrorOrIo) -> TransferError {
    match e {
        OpenErrorOrIo::Open(e) => TransferError::Open(e),
        OpenErrorOrIo::Io(e) => TransferError::Io(e),
    }
}

/// The download so far.
struct Received {
    opener: OpeningWriter<BufWriter<File>>,
    hasher: Sha256,
    received: u64,
    expected: u64,
}

impl Received {
    /// `GET` until `expected` bytes arrived, resuming after each break.
    fn fetch(&mut self, agent: &ureq::Agent, retry: Retry, url: &str) -> Result<(), TransferError> {
        let mut failures = 0;
        loop {
            let before = self.received;
            let failure = match self.one_request(agent, url) {
                Ok(()) if self.received == self.expected => return Ok(()),
                Ok(()) => format!("connection ended after {} of {} bytes", self.received, self.expected),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Transient(why)) => why,
            };
            if self.received > before {
                failures = 0;
            }
            failures += 1;
            if failures >= retry.attempts.max(1) {
                return Err(TransferError::Unreachable { attempts: failures, last: failure });
            }
            thread::sleep(retry.backoff(failures));
        }
    }

    /// One `GET` from `received` on; `Ok` when the body ended.
    fn one_request(&mut self, agent: &ureq::Agent, url: &str) -> Result<(), Attempt> {
        let mut request = agent.get(url);
        if self.received > 0 {
            request = request.header("Range", format!("bytes={}-", self.received));
        }
        let mut response = request.call().map_err(|e| Attempt::Transient(e.to_string()))?;
        let status = response.status().as_u16();
        // A store that ignores the range answers 200 with the whole object:
        // skip what already arrived.
        let mut skip = match status {
            200 => self.received,
            206 if self.received > 0 => 0,
            _ => {
                let body = response.body_mut().read_to_string().unwrap_or_default();
                return Err(if status_is_transient(status) {
                    Attempt::Transient(format!("HTTP {status}"))
                } else {
                    Attempt::Fatal(TransferError::Http { status, body: body.chars().take(200).collect() })
                });
            }
        };
        let mut body = response.body_mut().as_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Attempt::Transient(e.to_string())),
            };
            let dropped = (skip.min(n as u64)) as usize;
            skip -= dropped as u64;
            let fresh = &buf[dropped..n];
            if self.received + fresh.len() as u64 > self.expected {
                return Err(Attempt::Fatal(TransferError::SizeMismatch {
                    got: self.received + fresh.len() as u64,
                    expected: self.expected,
                }));
            }
            self.hasher.update(fresh);
            self.opener.update(fresh).map_err(|e| Attempt::Fatal(opening(e)))?;
            self.received += fresh.len() as u64;
        }
    }
}

/// How one request ended, if not with the whole body.
enum Attempt {
    /// Worth another request.
    Transient(String),
    /// Not.
    Fatal(TransferError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_files_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(unused_path(dir.path(), "a.png"), dir.path().join("a.png"));
        fs::write(dir.path().join("a.png"), b"x").unwrap();
        assert_eq!(unused_path(dir.path(), "a.png"), dir.path().join("a (1).png"));
        fs::write(dir.path().join("a (1).png"), b"x").unwrap();
        assert_eq!(unused_path(dir.path(), "a.png"), dir.path().join("a (2).png"));
        fs::write(dir.path().join("README"), b"x").unwrap();
        assert_eq!(unused_path(dir.path(), "README"), dir.path().join("README (1)"));
    }

    #[test]
    fn a_file_saved_before_is_recognised_by_its_ciphertext_digest() {
        use std::io::Read as _;

        use crate::{seal::FileKey, MediaDetails};

        let dir = tempfile::tempdir().unwrap();
        let plain: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        let key = FileKey::random();
        let mut sealed = Vec::new();
        SealingReader::new(io::Cursor::new(&plain), plain.len() as u64, &key).read_to_end(&mut sealed).unwrap();
        let details = MediaDetails { name: "a.bin".into(), ..Default::default() };
        let reference =
            MediaReference::new("m".into(), &details, plain.len() as u64, Sha256::digest(&sealed).into(), &key)
                .unwrap();
        assert_eq!(already_saved(dir.path(), &reference), None);
        let mut other = plain.clone();
        other[7] ^= 1;
        fs::write(dir.path().join("a.bin"), &other).unwrap();
        assert_eq!(already_saved(dir.path(), &reference), None, "same name and size, other bytes");
        fs::write(dir.path().join("a (1).bin"), &plain).unwrap();
        assert_eq!(already_saved(dir.path(), &reference), Some(dir.path().join("a (1).bin")));
    }
}

//! Sending a sealed file through an upload slot's part URLs.
//!
//! Parts go one after the other, each a `PUT` of exactly its length
//! (object stores want a `Content-Length`, not a chunked body), sealed
//! on the fly from the plaintext file. A part whose connection drops or
//! whose answer is a 5xx is sent again from its first byte, re-sealed
//! from the file; parts already stored are not touched, so a dropped
//! connection costs at most one part.
//!
//! The SHA-256 of the ciphertext is taken as the bytes go out, each byte
//! once: a part sent again re-reads bytes already counted, and those are
//! skipped (the ciphertext is deterministic, so they are the same bytes).

use std::{
    io::{self, Read, Seek, SeekFrom},
    thread,
};

use sha2::{Digest, Sha256};

use crate::{
    retry::{status_is_transient, Retry},
    seal::SealingReader,
    TransferError,
};

/// What the parts' `PUT`s answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedParts {
    /// The `ETag` of each part, part 1 first, as the store sent it.
    pub tags: Vec<String>,
    /// SHA-256 of the whole ciphertext.
    pub sha256: [u8; 32],
}

/// Number of parts of `size` bytes in parts of `part_size` (at least one).
pub fn part_count(size: u64, part_size: u64) -> u64 {
    if part_size == 0 {
        return 1;
    }
    size.div_ceil(part_size).max(1)
}

/// `PUT` every part of `sealed` to its URL; `progress` is told the
/// ciphertext bytes stored so far after each part.
pub fn put_parts<R: Read + Seek>(
    agent: &ureq::Agent,
    retry: Retry,
    sealed: &mut SealingReader<R>,
    part_size: u64,
    part_urls: &[String],
    mut progress: impl FnMut(u64),
) -> Result<UploadedParts, TransferError> {
    let total = sealed.sealed_len();
    let parts = part_count(total, part_size);
    if part_urls.len() as u64 != parts {
        return Err(TransferError::SlotMismatch(format!(
            "{} bytes in parts of {part_size} need {parts} URLs, the slot has {}",
            total,
            part_urls.len()
        )));
    }
    let mut hash = HashOnce { hasher: Sha256::new(), upto: 0 };
    let mut tags = Vec::with_capacity(part_urls.len());
    for (index, url) in part_urls.iter().enumerate() {
        let start = index as u64 * part_size;
        let len = if parts == 1 { total } else { (total - start).min(part_size) };
        tags.push(put_part(agent, retry, sealed, &mut hash, url, index, start, len)?);
        progress(start + len);
    }
    debug_assert_eq!(hash.upto, total, "every ciphertext byte was hashed once");
    Ok(UploadedParts { tags, sha256: hash.hasher.finalize().into() })
}

/// One part, tried until it is stored or [`Retry::attempts`] ran out.
#[allow(clippy::too_many_arguments)]
fn put_part<R: Read + Seek>(
    agent: &ureq::Agent,
    retry: Retry,
    sealed: &mut SealingReader<R>,
    hash: &mut HashOnce,
    url: &str,
    index: usize,
    start: u64,
    len: u64,
) -> Result<String, TransferError> {
    let mut failures = 0;
    loop {
        sealed.seek(SeekFrom::Start(start))?;
        let mut body = PartBody { inner: (&mut *sealed).take(len), at: start, hash, local_error: None };
        let sent = agent
            .put(url)
            .header("Content-Length", len.to_string())
            .header("Content-Type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut body));
        if let Some(e) = body.local_error.take() {
            return Err(TransferError::Io(e));
        }
        let failure = match sent {
            Ok(mut response) if response.status().is_success() => {
                let tag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                // Drain what is left so the connection can be reused.
                let _ = response.body_mut().read_to_vec();
                return tag.ok_or(TransferError::NoEtag(index + 1));
            }
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                if !status_is_transient(status) {
                    return Err(TransferError::Http { status, body: body.chars().take(200).collect() });
                }
                format!("HTTP {status}")
            }
            Err(e) => e.to_string(),
        };
        failures += 1;
        if failures >= retry.attempts.max(1) {
            return Err(TransferError::Unreachable { attempts: failures, last: failure });
        }
        thread::sleep(retry.backoff(failures));
    }
}

/// A SHA-256 fed each offset of a stream once, in order.
struct HashOnce {
    hasher: Sha256,
    /// Bytes before this offset are in `hasher`.
    upto: u64,
}

impl HashOnce {
    /// `bytes` were read at offset `at`; hash the ones not seen yet.
    fn saw(&mut self, at: u64, bytes: &[u8]) {
        let end = at + bytes.len() as u64;
        if at <= self.upto && end > self.upto {
            // `upto - at` < bytes.len() because end > upto.
            self.hasher.update(&bytes[(self.upto - at) as usize..]);
            self.upto = end;
        }
    }
}

/// A part's body: ciphertext from the file, hashed as it goes out. A
/// failure to read the file is kept apart from network failures, which
/// are worth a retry where a vanished file is not.
struct PartBody<'a, R> {
    inner: R,
    at: u64,
    hash: &'a mut HashOnce,
    local_error: Option<io::Error>,
}

impl<R: Read> Read for PartBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hash.saw(self.at, &buf[..n]);
                self.at += n as u64;
                Ok(n)
            }
            Err(e) => {
                let kind = e.kind();
                self.local_error = Some(e);
                Err(io::Error::new(kind, "reading the file to upload failed"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_file() {
        assert_eq!(part_count(0, 8), 1);
        assert_eq!(part_count(8, 8), 1);
        assert_eq!(part_count(9, 8), 2);
        assert_eq!(part_count(9, 0), 1);
    }

    #[test]
    fn bytes_read_again_are_hashed_once() {
        let data: Vec<u8> = (0..=255).collect();
        let mut h = HashOnce { hasher: Sha256::new(), upto: 0 };
        h.saw(0, &data[..100]);
        h.saw(50, &data[50..120]);
        h.saw(0, &data[..10]);
        h.saw(120, &data[120..]);
        assert_eq!(h.upto, 256);
        assert_eq!(<[u8; 32]>::from(h.hasher.finalize()), <[u8; 32]>::from(Sha256::digest(&data)));
    }
}

//! The file cipher: AES-256-GCM in the STREAM construction.
//!
//! A file is cut into chunks of [`CHUNK`] plaintext bytes; chunk `i` is
//! sealed with the nonce `prefix (7 bytes) || i (u32, big endian) ||
//! last (1 byte)`, so each chunk carries its own 16-byte tag, its
//! position and whether it ends the file (`aead::stream::StreamBE32`).
//! Changing a byte, swapping two chunks, or cutting the file at any point
//! (even between chunks) makes decryption fail, and neither side ever
//! holds more than one chunk.
//!
//! There are always `len / CHUNK + 1` chunks: the last one holds the
//! remaining `len % CHUNK` bytes, possibly none. A sealed segment of a full
//! [`SEGMENT`] bytes is therefore never the last, and the sealed length is
//! a function of the plain length alone ([`sealed_len`]), which the
//! upload announces before a byte is encrypted.
//!
//! Encryption is deterministic for a given key, so [`SealingReader`] can
//! produce the ciphertext from any offset: a part whose upload broke is
//! sealed again from its first byte, without a temporary file.
//!
//! Every file gets a fresh random key; the key and nonce prefix travel in
//! the media reference inside the message (`reference.rs`), never to the
//! server.

use std::io::{self, Read, Seek, SeekFrom, Write};

use aes_gcm::{
    aead::{
        rand_core::RngCore,
        stream::{NewStream, StreamBE32, StreamPrimitive},
        KeyInit, OsRng,
    },
    Aes256Gcm,
};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
/// Authentication tag appended to every chunk.
pub const TAG: usize = 16;
/// A sealed full chunk.
pub const SEGMENT: usize = CHUNK + TAG;
/// Bytes of the random nonce prefix (12-byte GCM nonce less the 4-byte
/// counter and the 1-byte last flag).
pub const NONCE_PREFIX: usize = 7;
/// The name of this format in a media reference's `cipher` field.
pub const CIPHER: &str = "aes-256-gcm-stream-64k";

/// A file's key and nonce prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey {
    /// AES-256 key.
    pub key: [u8; 32],
    /// STREAM nonce prefix.
    pub nonce_prefix: [u8; NONCE_PREFIX],
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

impl FileKey {
    /// A fresh key and nonce prefix from the operating system's CSPRNG.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        let mut nonce_prefix = [0u8; NONCE_PREFIX];
        OsRng.fill_bytes(&mut key);
        OsRng.fill_bytes(&mut nonce_prefix);
        FileKey { key, nonce_prefix }
    }

    fn stream(&self) -> StreamBE32<Aes256Gcm> {
        let aead = Aes256Gcm::new(&self.key.into());
        StreamBE32::from_aead(aead, &self.nonce_prefix.into())
    }
}

/// Sealed size of a file of `plain_len` bytes.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len + TAG as u64 * (plain_len / CHUNK as u64 + 1)
}

/// Why a sealed file does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// A chunk's tag does not match: wrong key, a changed byte, chunks out
    /// of order, or a file cut inside a chunk (what is left of the cut
    /// chunk is not a last chunk).
    #[error("chunk {0} does not authenticate (wrong key, altered, reordered or cut short)")]
    Chunk(u32),
    /// The file ends between two chunks, or goes on after its last chunk.
    #[error("sealed file is truncated or has trailing bytes")]
    Length,
}

/// Reads the ciphertext of a plaintext source, from any offset.
///
/// Holds one sealed segment; [`Seek`] to an offset re-seals from the
/// chunk that holds it.
pub struct SealingReader<R> {
    source: R,
    stream: StreamBE32<Aes256Gcm>,
    plain_len: u64,
    /// Offset in the ciphertext of the next byte `read` returns.
    pos: u64,
    /// The sealed segment `segment_index`, if one is loaded.
    segment: Vec<u8>,
    segment_index: Option<u64>,
}

impl<R: Read + Seek> SealingReader<R> {
    /// Seal the first `plain_len` bytes of `source` with `key`.
    pub fn new(source: R, plain_len: u64, key: &FileKey) -> Self {
        SealingReader {
            source,
            stream: key.stream(),
            plain_len,
            pos: 0,
            segment: Vec::with_capacity(SEGMENT),
            segment_index: None,
        }
    }

    /// Total ciphertext bytes.
    pub fn sealed_len(&self) -> u64 {
        sealed_len(self.plain_len)
    }

    fn load_segment(&mut self, index: u64) -> io::Result<()> {
        let last_index = self.plain_len / CHUNK as u64;
        let start = index * CHUNK as u64;
        let len = (self.plain_len - start).min(CHUNK as u64) as usize;
        let position = u32::try_from(index)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large for the STREAM counter"))?;
        self.segment_index = None;
        self.segment.clear();
        self.segment.resize(len, 0);
        self.source.seek(SeekFrom::Start(start))?;
        self.source.read_exact(&mut self.segment)?;
        self.stream
            .encrypt_in_place(position, index == last_index, b"", &mut self.segment)
            .map_err(|_| io::Error::other("chunk encryption failed"))?;
        self.segment_index = Some(index);
        Ok(())
    }
}

impl<R: Read + Seek> Read for SealingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.sealed_len() || out.is_empty() {
            return Ok(0);
        }
        let index = self.pos / SEGMENT as u64;
        if self.segment_index != Some(index) {
            self.load_segment(index)?;
        }
        let within = (self.pos % SEGMENT as u64) as usize;
        let available = &self.segment[within..];
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for SealingReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.sealed_len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Takes ciphertext in any slices, writes plaintext to `sink` chunk by
/// chunk; [`OpeningWriter::finish`] checks that the file ended with its
/// last chunk.
///
/// Plaintext of a chunk reaches `sink` only after that chunk
/// authenticated, but a file cut short has written its earlier chunks:
/// write to a temporary file and keep it only when `finish` succeeds.
pub struct OpeningWriter<W> {
    sink: W,
    stream: StreamBE32<Aes256Gcm>,
    buffer: Vec<u8>,
    next_position: u32,
    done: bool,
}

impl<W: Write> OpeningWriter<W> {
    /// Open a file sealed with `key` into `sink`.
    pub fn new(sink: W, key: &FileKey) -> Self {
        OpeningWriter { sink, stream: key.stream(), buffer: Vec::with_capacity(SEGMENT), next_position: 0, done: false }
    }

    /// Feed ciphertext.
    pub fn update(&mut self, mut sealed: &[u8]) -> Result<(), OpenErrorOrIo> {
        while !sealed.is_empty() {
            if self.done {
                return Err(OpenError::Length.into());
            }
            let take = (SEGMENT - self.buffer.len()).min(sealed.len());
            self.buffer.extend_from_slice(&sealed[..take]);
            sealed = &sealed[take..];
            if self.buffer.len() == SEGMENT {
                self.open_buffered(false)?;
            }
        }
        Ok(())
    }

    /// End of the ciphertext: open the last chunk and return the sink.
    pub fn finish(mut self) -> Result<W, OpenErrorOrIo> {
        if self.done {
            return Err(OpenError::Length.into());
        }
        if self.buffer.len() < TAG {
            return Err(OpenError::Length.into());
        }
        self.open_buffered(true)?;
        self.sink.flush()?;
        Ok(self.sink)
    }

    fn open_buffered(&mut self, last: bool) -> Result<(), OpenErrorOrIo> {
        let position = self.next_position;
        self.stream.decrypt_in_place(position, last, b"", &mut self.buffer).map_err(|_| OpenError::Chunk(position))?;
        self.sink.write_all(&self.buffer)?;
        self.buffer.clear();
        self.done = last;
        self.next_position = position.checked_add(1).ok_or(OpenError::Length)?;
        Ok(())
    }
}

/// Opening failed on the ciphertext or on the sink.
#[derive(Debug, thiserror::Error)]
pub enum OpenErrorOrIo {
    /// The ciphertext is wrong.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Writing the plaintext failed.
    #[error("writing the decrypted file: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn seal(plain: &[u8], key: &FileKey) -> Vec<u8> {
        let mut out = Vec::new();
        SealingReader::new(Cursor::new(plain), plain.len() as u64, key).read_to_end(&mut out).unwrap();
        out
    }

    fn open(sealed: &[u8], key: &FileKey) -> Result<Vec<u8>, OpenError> {
        let mut w = OpeningWriter::new(Vec::new(), key);
        // Odd slice sizes, so chunk boundaries fall inside updates.
        for piece in sealed.chunks(7_777) {
            w.update(piece).map_err(only_open)?;
        }
        w.finish().map_err(only_open)
    }

    fn only_open(e: OpenErrorOrIo) -> OpenError {
        match e {
            OpenErrorOrIo::Open(e) => e,
            OpenErrorOrIo::Io(e) => panic!("a Vec does not fail: {e}"),
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn files_of_every_shape_round_trip() {
        let key = FileKey::random();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 12_345] {
            let plain = pattern(len);
            let sealed = seal(&plain, &key);
            assert_eq!(sealed.len() as u64, sealed_len(len as u64), "len {len}");
            if len > 0 {
                assert_ne!(&sealed[..len.min(64)], &plain[..len.min(64)], "len {len} is not plaintext");
            }
            assert_eq!(open(&sealed, &key).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let key = FileKey::random();
        let sealed = seal(&pattern(2 * CHUNK + 100), &key);
        for at in [0, SEGMENT - 1, SEGMENT + 5, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[at] ^= 1;
            assert!(matches!(open(&bad, &key), Err(OpenError::Chunk(_))), "byte {at}");
        }
    }

    #[test]
    fn a_truncated_file_is_refused_even_at_a_chunk_boundary() {
        let key = FileKey::random();
        let sealed = seal(&pattern(2 * CHUNK + 100), &key);
        assert_eq!(open(&sealed[..SEGMENT], &key), Err(OpenError::Length));
        assert_eq!(open(&sealed[..2 * SEGMENT], &key), Err(OpenError::Length));
        assert_eq!(open(&sealed[..SEGMENT + 500], &key), Err(OpenError::Chunk(1)));
        assert_eq!(open(&sealed[..sealed.len() - 1], &key), Err(OpenError::Chunk(2)));
        assert_eq!(open(&[], &key), Err(OpenError::Length));
        // A file that ends exactly on a chunk still has its (empty) last chunk.
        let whole = seal(&pattern(CHUNK), &key);
        assert_eq!(open(&whole[..SEGMENT], &key), Err(OpenError::Length));
    }

    #[test]
    fn reordered_chunks_and_trailing_bytes_are_refused() {
        let key = FileKey::random();
        let sealed = seal(&pattern(3 * CHUNK + 10), &key);
        let mut swapped = sealed.clone();
        swapped[..SEGMENT].copy_from_slice(&sealed[SEGMENT..2 * SEGMENT]);
        swapped[SEGMENT..2 * SEGMENT].copy_from_slice(&sealed[..SEGMENT]);
        assert_eq!(open(&swapped, &key), Err(OpenError::Chunk(0)));
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&longer, &key).is_err());
    }

    #[test]
    fn another_key_or_nonce_does_not_open() {
        let key = FileKey::random();
        let sealed = seal(&pattern(1000), &key);
        assert_eq!(open(&sealed, &FileKey::random()), Err(OpenError::Chunk(0)));
        let other_nonce = FileKey { nonce_prefix: [9; NONCE_PREFIX], ..key.clone() };
        assert_eq!(open(&sealed, &other_nonce), Err(OpenError::Chunk(0)));
        assert_eq!(open(&seal(&[], &key), &FileKey::random()), Err(OpenError::Chunk(0)));
    }

    #[test]
    fn sealing_from_any_offset_gives_the_same_bytes() {
        let key = FileKey::random();
        let plain = pattern(2 * CHUNK + 999);
        let sealed = seal(&plain, &key);
        let mut r = SealingReader::new(Cursor::new(&plain), plain.len() as u64, &key);
        for start in [SEGMENT as u64 + 3, 5, sealed.len() as u64 - 1, 0] {
            r.seek(SeekFrom::Start(start)).unwrap();
            let mut tail = Vec::new();
            r.read_to_end(&mut tail).unwrap();
            assert_eq!(tail, &sealed[start as usize..], "from {start}");
        }
    }

    #[test]
    fn fresh_keys_differ() {
        assert_ne!(FileKey::random(), FileKey::random());
    }
}

/// The test vectors of docs/MEDIA.md, "The cipher" (also checked there
/// against another AES-GCM implementation).
#[cfg(test)]
mod vectors {
    use std::io::Cursor;

    use sha2::{Digest, Sha256};

    use super::*;

    fn documented_key() -> FileKey {
        FileKey { key: std::array::from_fn(|i| i as u8), nonce_prefix: std::array::from_fn(|i| 0xa0 + i as u8) }
    }

    fn seal(plain: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::new();
        SealingReader::new(Cursor::new(plain), plain.len() as u64, &documented_key()).read_to_end(&mut sealed).unwrap();
        sealed
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn one_chunk() {
        assert_eq!(hex(&seal(b"hello, media\n")), "1f042572d72ac0ad6601b14ec5410178fa90753aafe962d062a139486f");
    }

    #[test]
    fn two_chunks() {
        let plain: Vec<u8> = (0..CHUNK + 5).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&plain);
        assert_eq!(sealed.len(), 65_573);
        assert_eq!(hex(&Sha256::digest(&sealed)), "3742bc4aca4790b3109e4596a33cb3ccb8d9d315043b7d9a9bdbb55350836055");
    }
}

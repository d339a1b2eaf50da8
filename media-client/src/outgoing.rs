//! A file on its way out: opened, given a fresh key, uploaded, described.

use std::{fs::File, io, path::Path};

use crate::{
    seal::{FileKey, SealingReader},
    upload::{put_parts, UploadedParts},
    MediaDetails, MediaReference, ReferenceError, Retry, TransferError,
};

/// A plaintext file and the key it is sealed with.
pub struct OutgoingFile {
    sealed: SealingReader<File>,
    key: FileKey,
    size: u64,
}

impl std::fmt::Debug for OutgoingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFile").field("size", &self.size).finish_non_exhaustive()
    }
}

impl OutgoingFile {
    /// Open `path` and draw its key. The file's length now is what is
    /// sent; it must not shrink before the upload ends.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(Self::from_file(file, size, FileKey::random()))
    }

    /// Seal the first `size` bytes of `file` with `key`.
    pub fn from_file(file: File, size: u64, key: FileKey) -> Self {
        OutgoingFile { sealed: SealingReader::new(file, size, &key), key, size }
    }

    /// Plaintext bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes that will be uploaded (what `upload_media` announces).
    pub fn encrypted_size(&self) -> u64 {
        self.sealed.sealed_len()
    }

    /// Upload the ciphertext through a slot's part URLs.
    pub fn upload(
        &mut self,
        agent: &ureq::Agent,
        retry: Retry,
        part_size: u64,
        part_urls: &[String],
        progress: impl FnMut(u64),
    ) -> Result<UploadedParts, TransferError> {
        put_parts(agent, retry, &mut self.sealed, part_size, part_urls, progress)
    }

    /// The reference to send once the upload of `media` completed with
    /// ciphertext digest `sha256`.
    pub fn reference(
        &self,
        media: String,
        details: &MediaDetails,
        sha256: [u8; 32],
    ) -> Result<MediaReference, ReferenceError> {
        MediaReference::new(media, details, self.size, sha256, &self.key)
    }
}

//! Media by signed URL (docs/MEDIA.md).
//!
//! Media never travel through the WebSocket: a client encrypts a file,
//! asks the gateway for an upload slot, and sends the bytes straight to
//! object storage through pre-signed URLs; a member of the conversation
//! asks for a pre-signed download URL. The gateway only signs: it never
//! has to hold a file in memory, and with S3 the bytes never pass through
//! it at all.
//!
//! [`MediaBackend`] is the seam: the embedded blob store (files under the
//! gateway's data directory, served by the gateway's own HTTP endpoints)
//! and S3 implement it, and the gateway's frames speak only to the trait.
//!
//! A media id names its conversation ([`MediaKey`]), so whether someone
//! may download it is a membership check on that conversation, with no
//! table of uploads to keep: an object uploaded for one conversation can
//! never be fetched through another's name.

#![warn(missing_docs)]

pub mod embedded;
mod key;
mod random;
mod s3;
#[cfg(feature = "testing")]
pub mod testing;

pub use key::{MediaConversation, MediaKey, MediaKeyError};
pub use random::random_bytes;
pub use s3::{S3Backend, S3Config, S3ConfigError, S3Credentials, S3_MIN_PART_SIZE};

use std::time::{Duration, SystemTime};

/// Where a slot's bytes go: one pre-signed `PUT` per part, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSlot {
    /// The object being uploaded.
    pub key: MediaKey,
    /// Size in bytes of every part but the last (the last holds the rest).
    pub part_size: u64,
    /// One pre-signed URL per part, part 1 first. A single-part upload has
    /// one URL.
    pub part_urls: Vec<String>,
    /// Backend state the completion needs (an S3 multipart upload id; empty
    /// for a single-part upload). Opaque to clients, carried in the frame.
    pub upload_id: String,
    /// When the URLs stop working.
    pub expires_at: SystemTime,
}

/// A pre-signed download URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadUrl {
    /// `GET` this (range requests allowed).
    pub url: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}

/// Why a backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No such object (or its upload was never completed).
    #[error("no such media object")]
    NotFound,
    /// The uploaded parts do not add up to the announced object (missing
    /// part, wrong size, wrong part tag).
    #[error("upload incomplete: {0}")]
    Incomplete(String),
    /// The backend refused or could not be reached.
    #[error("media backend: {0}")]
    Backend(String),
    /// Local I/O failed (embedded backend).
    #[error("media I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// An object store reached through signed URLs.
///
/// Every method is blocking and may take a network round trip (S3): the
/// gateway calls them off its event loops.
pub trait MediaBackend: Send + Sync {
    /// Prepare an upload of exactly `size` bytes of `content_type` to
    /// `key`, in parts of `part_size` bytes (one part when `size <=
    /// part_size`); the URLs expire after `ttl`.
    fn start_upload(
        &self,
        key: &MediaKey,
        size: u64,
        content_type: &str,
        part_size: u64,
        ttl: Duration,
    ) -> Result<UploadSlot, MediaError>;

    /// Finish an upload: check every part arrived (`part_tags[i]` is the
    /// `ETag` the `PUT` of part `i + 1` answered) and that the object has
    /// exactly `size` bytes, then make it downloadable.
    fn complete_upload(
        &self,
        key: &MediaKey,
        upload_id: &str,
        size: u64,
        part_tags: &[String],
    ) -> Result<(), MediaError>;

    /// A `GET` URL for a completed object, valid for `ttl`.
    fn download_url(&self, key: &MediaKey, ttl: Duration) -> Result<DownloadUrl, MediaError>;

    /// Delete an object (and any unfinished upload of it). Deleting a
    /// missing object is not an error.
    fn delete(&self, key: &MediaKey) -> Result<(), MediaError>;

    /// Delete every object (and unfinished upload) created before
    /// `cutoff`; returns how many were deleted. Retention calls this.
    fn delete_created_before(&self, cutoff: SystemTime) -> Result<u64, MediaError>;
}

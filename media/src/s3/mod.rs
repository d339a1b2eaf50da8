//! The S3 backend: objects in an S3 (or S3-compatible) bucket, reached by
//! clients through pre-signed URLs, so a file's bytes go between client
//! and bucket and never through the gateway.
//!
//! The gateway only signs URLs and makes a few small calls of its own:
//! CreateMultipartUpload when a slot needs several parts, then at
//! completion ListParts (every named part stored with its tag, the sizes
//! adding up; otherwise the upload stays open for the missing part),
//! CompleteMultipartUpload and a HeadObject that checks the stored size
//! against the announced one (an object of the wrong size is deleted). Uploads up to the part size are one `PUT`; larger ones are
//! S3 multipart uploads, one pre-signed `UploadPart` URL per part. Every
//! upload URL signs the part's `Content-Length`, so S3 refuses a body of
//! another size.
//!
//! Retention lists the bucket (ListObjectsV2, ListMultipartUploads) and
//! deletes what is older than the cutoff, objects 1000 to a DeleteObjects
//! request; only keys that are media ids are
//! touched, so a bucket may hold other things. docs/MEDIA.md ("S3") has
//! the URL format, credentials, bucket permissions and CORS.

mod api;
mod client;
mod config;
mod parts;
mod sigv4;
mod utc;
mod xml;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{S3Config, S3ConfigError};
pub use sigv4::S3Credentials;

use crate::{DownloadUrl, MediaBackend, MediaError, MediaKey, UploadSlot};

/// S3's smallest part, except the last.
pub const S3_MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest part, and largest single `PUT`.
const MAX_PART_SIZE: u64 = 5 << 30;
/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// SigV4's longest pre-signed URL validity (7 days).
const MAX_URL_TTL_SECS: u64 = 7 * 24 * 3600;

/// Media objects in an S3 bucket.
pub struct S3Backend {
    client: client::Client,
}

impl S3Backend {
    /// A backend for `config`, signing with `credentials`.
    pub fn new(config: &S3Config, credentials: S3Credentials) -> Result<S3Backend, S3ConfigError> {
        Ok(S3Backend { client: client::Client::new(config, credentials)? })
    }

    /// A backend for `s3://bucket?region=...&endpoint=...`, with the
    /// credentials of the standard `AWS_*` environment variables.
    pub fn from_url(url: &str) -> Result<S3Backend, S3ConfigError> {
        S3Backend::new(&S3Config::parse(url)?, S3Credentials::from_env()?)
    }

    /// The part size a slot gets: at least what was asked, S3's minimum
    /// and what keeps `size` within 10 000 parts.
    fn effective_part_size(size: u64, requested: u64) -> u64 {
        requested.max(S3_MIN_PART_SIZE).max(size.div_ceil(MAX_PARTS)).min(MAX_PART_SIZE)
    }

    /// Delete `key` after a failed size check and say why.
    fn refuse_size(&self, key: &str, stored: u64, announced: u64) -> MediaError {
        if let Err(e) = self.client.delete_object(key) {
            tracing::warn!(key, error = %e, "could not delete an object of the wrong size");
        }
        MediaError::Incomplete(format!("the object has {stored} bytes, {announced} were announced"))
    }
}

/// Now, in the whole seconds SigV4 signs: a URL's validity starts at its
/// `X-Amz-Date`, so `expires_at` is exact.
fn signing_time() -> SystemTime {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

fn url_ttl(ttl: Duration) -> u64 {
    ttl.as_secs().clamp(1, MAX_URL_TTL_SECS)
}

fn content_length(length: u64) -> Vec<(String, String)> {
    vec![("content-length".to_owned(), length.to_string())]
}

impl MediaBackend for S3Backend {
    fn start_upload(
        &self,
        key: &MediaKey,
        size: u64,
        content_type: &str,
        part_size: u64,
        ttl: Duration,
    ) -> Result<UploadSlot, MediaError> {
        if size > MAX_OBJECT_SIZE {
            return Err(MediaError::Backend(format!("{size} bytes is over S3's 5 TiB object limit")));
        }
        let name = key.to_string();
        let part_size = S3Backend::effective_part_size(size, part_size);
        let now = signing_time();
        let secs = url_ttl(ttl);
        let expires_at = now + Duration::from_secs(secs);
        if size <= part_size {
            let url = self.client.presign("PUT", &name, Vec::new(), content_length(size), now, secs);
            return Ok(UploadSlot {
                key: key.clone(),
                part_size,
                part_urls: vec![url],
                upload_id: String::new(),
                expires_at,
            });
        }
        let upload_id = self.client.create_multipart(&name, content_type)?;
        let parts = size.div_ceil(part_size);
        let part_urls = (1..=parts)
            .map(|number| {
                let length = if number == parts { size - (parts - 1) * part_size } else { part_size };
                let query =
                    vec![("partNumber".to_owned(), number.to_string()), ("uploadId".to_owned(), upload_id.clone())];
                self.client.presign("PUT", &name, query, content_length(length), now, secs)
            })
            .collect();
        Ok(UploadSlot { key: key.clone(), part_size, part_urls, upload_id, expires_at })
    }

    fn complete_upload(
        &self,
        key: &MediaKey,
        upload_id: &str,
        size: u64,
        part_tags: &[String],
    ) -> Result<(), MediaError> {
        let name = key.to_string();
        if upload_id.is_empty() {
            let Some(head) = self.client.head(&name)? else {
                return Err(MediaError::Incomplete("part 1 was not uploaded".to_owned()));
            };
            if part_tags.len() != 1 {
                return Err(MediaError::Incomplete(format!("one part was uploaded, {} tags given", part_tags.len())));
            }
            if xml::quoted(&part_tags[0]) != head.etag {
                return Err(MediaError::Incomplete("part 1's tag does not match the stored part".to_owned()));
            }
            if head.size != size {
                return Err(self.refuse_size(&name, head.size, size));
            }
            return Ok(());
        }
        let stored = match self.client.list_parts(&name, upload_id) {
            Ok(stored) => stored,
            // No such upload: completed already (a retry whose first answer
            // was lost), aborted, or never begun.
            Err(MediaError::NotFound) => {
                let head = self.client.head(&name)?.ok_or(MediaError::NotFound)?;
                if head.size != size {
                    return Err(MediaError::Incomplete(format!(
                        "the object has {} bytes, {size} were announced",
                        head.size
                    )));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        parts::check(&stored, part_tags, size)?;
        self.client.complete_multipart(&name, upload_id, part_tags)?;
        let head = self.client.head(&name)?.ok_or(MediaError::NotFound)?;
        if head.size != size {
            return Err(self.refuse_size(&name, head.size, size));
        }
        Ok(())
    }

    fn download_url(&self, key: &MediaKey, ttl: Duration) -> Result<DownloadUrl, MediaError> {
        let name = key.to_string();
        if self.client.head(&name)?.is_none() {
            return Err(MediaError::NotFound);
        }
        let now = signing_time();
        let secs = url_ttl(ttl);
        let url = self.client.presign("GET", &name, Vec::new(), Vec::new(), now, secs);
        Ok(DownloadUrl { url, expires_at: now + Duration::from_secs(secs) })
    }

    fn delete(&self, key: &MediaKey) -> Result<(), MediaError> {
        let name = key.to_string();
        self.client.delete_object(&name)?;
        let mut markers = None;
        loop {
            let page = self.client.list_uploads(&name, markers.as_ref())?;
            for upload in page.items.iter().filter(|u| u.key == name) {
                self.client.abort_multipart(&upload.key, &upload.upload_id)?;
            }
            match page.next {
                Some(next) if Some(&next) != markers.as_ref() => markers = Some(next),
                _ => return Ok(()),
            }
        }
    }

    fn delete_created_before(&self, cutoff: SystemTime) -> Result<u64, MediaError> {
        let is_media = |key: &str| MediaKey::parse(key).is_ok();
        let mut deleted = 0;
        let mut continuation: Option<String> = None;
        loop {
            let page = self.client.list_objects(continuation.as_deref())?;
            let expired: Vec<String> =
                page.items.into_iter().filter(|o| o.created < cutoff && is_media(&o.key)).map(|o| o.key).collect();
            deleted += self.client.delete_objects(&expired)?;
            match page.next {
                Some((token, _)) if Some(&token) != continuation.as_ref() => continuation = Some(token),
                _ => break,
            }
        }
        let mut markers = None;
        loop {
            let page = self.client.list_uploads("", markers.as_ref())?;
            for upload in page.items.iter().filter(|u| u.created < cutoff && is_media(&u.key)) {
                self.client.abort_multipart(&upload.key, &upload.upload_id)?;
                deleted += 1;
            }
            match page.next {
                Some(next) if Some(&next) != markers.as_ref() => markers = Some(next),
                _ => break,
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_respect_s3_limits() {
        const MIB: u64 = 1 << 20;
        assert_eq!(S3Backend::effective_part_size(100, MIB), S3_MIN_PART_SIZE);
        assert_eq!(S3Backend::effective_part_size(100 * MIB, 8 * MIB), 8 * MIB);
        // 10 000 parts of the asked size would not hold 100 GiB.
        let size = 100 << 30;
        let part = S3Backend::effective_part_size(size, 8 * MIB);
        assert!(size.div_ceil(part) <= MAX_PARTS && part > 8 * MIB);
        assert_eq!(S3Backend::effective_part_size(MAX_OBJECT_SIZE, u64::MAX), MAX_PART_SIZE);
        assert_eq!(url_ttl(Duration::ZERO), 1);
        assert_eq!(url_ttl(Duration::from_secs(30 * 24 * 3600)), MAX_URL_TTL_SECS);
    }
}

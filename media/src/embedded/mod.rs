//! The embedded backend: media objects as files under the gateway's data
//! directory, uploaded and downloaded through the gateway's own media
//! listener with URLs it signs itself.
//!
//! - `sign`: the URLs and their checks (HMAC-SHA256 over method, object,
//!   part, exact size and expiry), so the listener needs no state to tell
//!   an allowed request;
//! - `store`: the files, an upload's parts kept apart until completion and
//!   then published by one rename;
//! - `http`: one request of the listener, streamed with a fixed buffer
//!   whatever the size;
//! - `refusal`: what a refused request is answered.
//!
//! For a small deployment this is all the object storage it needs; a larger
//! one points `--media` at S3 and the bytes never touch the gateway.

mod http;
mod refusal;
mod sign;
mod store;

use std::{
    io,
    path::Path,
    time::{Duration, SystemTime},
};

pub use http::Served;
pub use refusal::Refusal;
pub use sign::{Allowed, Method, UrlSigner};
pub use store::BUFFER;
use store::{unix, Meta, Store};

use crate::{random::random_bytes, DownloadUrl, MediaBackend, MediaError, MediaKey, UploadSlot};

/// Media files under a root directory, served by signed URLs.
#[derive(Debug)]
pub struct EmbeddedBackend {
    store: Store,
    signer: UrlSigner,
}

impl EmbeddedBackend {
    /// Keep objects under `root` (created if missing) and sign URLs that
    /// start with `base_url` with `secret`.
    pub fn open(root: &Path, secret: &[u8], base_url: &str) -> io::Result<Self> {
        Ok(EmbeddedBackend { store: Store::open(root)?, signer: UrlSigner::new(secret, base_url) })
    }
}

fn expiry(ttl: Duration) -> (SystemTime, u64) {
    let at = SystemTime::now() + ttl;
    (at, unix(at))
}

impl MediaBackend for EmbeddedBackend {
    fn start_upload(
        &self,
        key: &MediaKey,
        size: u64,
        content_type: &str,
        part_size: u64,
        ttl: Duration,
    ) -> Result<UploadSlot, MediaError> {
        let upload = crate::random::hex(&random_bytes::<16>()?);
        let meta = Meta {
            upload: upload.clone(),
            size,
            part_size: part_size.max(1),
            content_type: content_type.replace(['\r', '\n'], " "),
            created: unix(SystemTime::now()),
            tags: Vec::new(),
        };
        self.store.create_upload(key, &meta)?;
        let (expires_at, expires) = expiry(ttl);
        let part_urls = (1..=meta.parts()).map(|n| self.signer.part_url(key, n, meta.part_len(n), expires)).collect();
        Ok(UploadSlot { key: key.clone(), part_size: meta.part_size, part_urls, upload_id: upload, expires_at })
    }

    fn complete_upload(
        &self,
        key: &MediaKey,
        upload_id: &str,
        size: u64,
        part_tags: &[String],
    ) -> Result<(), MediaError> {
        self.store.complete(key, upload_id, size, part_tags)
    }

    fn download_url(&self, key: &MediaKey, ttl: Duration) -> Result<DownloadUrl, MediaError> {
        let meta = Store::meta(&self.store.object_dir(key))?;
        let (expires_at, expires) = expiry(ttl);
        Ok(DownloadUrl { url: self.signer.object_url(key, meta.size, expires), expires_at })
    }

    fn delete(&self, key: &MediaKey) -> Result<(), MediaError> {
        Ok(self.store.delete(key)?)
    }

    fn delete_created_before(&self, cutoff: SystemTime) -> Result<u64, MediaError> {
        Ok(self.store.delete_created_before(unix(cutoff))?)
    }
}

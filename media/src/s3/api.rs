//! The S3 operations the backend needs, one method each, with S3's
//! documented refusals mapped to [`MediaError`].

use base64::Engine;
use md5::{Digest, Md5};
use reqwest::Method;

use super::{
    client::{Client, S3Failure},
    parts::StoredPart,
    xml::{self, Page},
};
use crate::MediaError;

/// What HeadObject tells about a stored object.
pub(crate) struct Head {
    pub(crate) size: u64,
    /// Quoted, as S3 sends it.
    pub(crate) etag: String,
}

fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn unreadable(what: &str) -> MediaError {
    MediaError::Backend(format!("S3 answered {what} that does not parse"))
}

impl Client {
    /// CreateMultipartUpload; returns the upload id.
    pub(crate) fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, MediaError> {
        let headers = vec![("content-type".to_owned(), content_type.to_owned())];
        let answer = self.call(Method::POST, key, query(&[("uploads", "")]), headers, Vec::new())??;
        xml::upload_id(&answer.body).ok_or_else(|| unreadable("a CreateMultipartUpload"))
    }

    /// ListParts of an upload, every page; an unknown upload id is
    /// [`MediaError::NotFound`].
    pub(crate) fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<StoredPart>, MediaError> {
        let mut parts = Vec::new();
        let mut marker: Option<u32> = None;
        loop {
            let mut pairs = query(&[("uploadId", upload_id)]);
            if let Some(marker) = marker {
                pairs.push(("part-number-marker".to_owned(), marker.to_string()));
            }
            let answer = match self.call(Method::GET, key, pairs, Vec::new(), Vec::new())? {
                Ok(answer) => answer,
                Err(failure) if failure.code == "NoSuchUpload" => return Err(MediaError::NotFound),
                Err(failure) => return Err(failure.into()),
            };
            let (page, next) = xml::part_page(&answer.body).ok_or_else(|| unreadable("a ListParts"))?;
            parts.extend(page);
            match next {
                Some(next) if Some(next) != marker => marker = Some(next),
                _ => return Ok(parts),
            }
        }
    }

    /// CompleteMultipartUpload with `tags[i]` for part `i + 1`.
    ///
    /// A missing or mismatched part (`InvalidPart`), parts out of order or
    /// a non-last part under 5 MiB (`EntityTooSmall`) is
    /// [`MediaError::Incomplete`]; an unknown upload id is
    /// [`MediaError::NotFound`].
    pub(crate) fn complete_multipart(&self, key: &str, upload_id: &str, tags: &[String]) -> Result<(), MediaError> {
        let body = xml::complete_body(tags).into_bytes();
        let headers = vec![("content-type".to_owned(), "application/xml".to_owned())];
        let failure = match self.call(Method::POST, key, query(&[("uploadId", upload_id)]), headers, body)? {
            // S3 may answer 200 and still report an error in the body.
            Ok(answer) => match xml::error(&answer.body) {
                None => return Ok(()),
                Some((code, message)) => S3Failure { status: 200, code, message },
            },
            Err(failure) => failure,
        };
        Err(match failure.code.as_str() {
            "InvalidPart" | "InvalidPartOrder" | "EntityTooSmall" | "MalformedXML" => {
                MediaError::Incomplete(format!("{}: {}", failure.code, failure.message))
            }
            "NoSuchUpload" => MediaError::NotFound,
            _ => failure.into(),
        })
    }

    /// AbortMultipartUpload; an upload already gone is not an error.
    pub(crate) fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), MediaError> {
        match self.call(Method::DELETE, key, query(&[("uploadId", upload_id)]), Vec::new(), Vec::new())? {
            Err(failure) if failure.status != 404 => Err(failure.into()),
            _ => Ok(()),
        }
    }

    /// HeadObject; `None` when there is no such object.
    pub(crate) fn head(&self, key: &str) -> Result<Option<Head>, MediaError> {
        let answer = match self.call(Method::HEAD, key, Vec::new(), Vec::new(), Vec::new())? {
            Ok(answer) => answer,
            Err(failure) if failure.status == 404 => return Ok(None),
            Err(failure) => return Err(failure.into()),
        };
        let header = |name: &str| answer.headers.get(name).and_then(|v| v.to_str().ok());
        let size = header("content-length").and_then(|v| v.parse().ok()).ok_or_else(|| unreadable("a HeadObject"))?;
        Ok(Some(Head { size, etag: xml::quoted(header("etag").unwrap_or_default()) }))
    }

    /// DeleteObject; deleting a missing object is not an error (S3 says
    /// 204 either way).
    pub(crate) fn delete_object(&self, key: &str) -> Result<(), MediaError> {
        match self.call(Method::DELETE, key, Vec::new(), Vec::new(), Vec::new())? {
            Err(failure) if failure.status != 404 => Err(failure.into()),
            _ => Ok(()),
        }
    }

    /// DeleteObjects of up to 1000 `keys`; returns how many were deleted
    /// (a key S3 could not delete is logged and left for the next run).
    pub(crate) fn delete_objects(&self, keys: &[String]) -> Result<u64, MediaError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let body = xml::delete_body(keys).into_bytes();
        // S3 requires a body checksum on DeleteObjects; Content-MD5 is the
        // one every S3-compatible server accepts.
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let headers = vec![("content-md5".to_owned(), md5), ("content-type".to_owned(), "application/xml".to_owned())];
        let answer = self.call(Method::POST, "", query(&[("delete", "")]), headers, body)??;
        let failures = xml::delete_failures(&answer.body).ok_or_else(|| unreadable("a DeleteObjects"))?;
        for (key, code) in &failures {
            tracing::warn!(key, code, "S3 did not delete a media object");
        }
        Ok((keys.len() - failures.len().min(keys.len())) as u64)
    }

    /// One page of ListObjectsV2 (1000 keys at most), after `continuation`.
    pub(crate) fn list_objects(&self, continuation: Option<&str>) -> Result<Page, MediaError> {
        let mut pairs = query(&[("list-type", "2")]);
        if let Some(token) = continuation {
            pairs.push(("continuation-token".to_owned(), token.to_owned()));
        }
        let answer = self.call(Method::GET, "", pairs, Vec::new(), Vec::new())??;
        xml::object_page(&answer.body).ok_or_else(|| unreadable("a ListObjectsV2"))
    }

    /// One page of ListMultipartUploads under `prefix`, after `markers`
    /// (`key-marker`, `upload-id-marker`).
    pub(crate) fn list_uploads(&self, prefix: &str, markers: Option<&(String, String)>) -> Result<Page, MediaError> {
        let mut pairs = query(&[("uploads", "")]);
        if !prefix.is_empty() {
            pairs.push(("prefix".to_owned(), prefix.to_owned()));
        }
        if let Some((key, upload_id)) = markers {
            pairs.push(("key-marker".to_owned(), key.clone()));
            if !upload_id.is_empty() {
                pairs.push(("upload-id-marker".to_owned(), upload_id.clone()));
            }
        }
        let answer = self.call(Method::GET, "", pairs, Vec::new(), Vec::new())??;
        xml::upload_page(&answer.body).ok_or_else(|| unreadable("a ListMultipartUploads"))
    }
}

//! The media reference: what a message body says about an attached file.
//!
//! The gateway stores ciphertext it cannot read; everything needed to
//! fetch, check and open the file (its id, digest, key and nonce prefix)
//! travels in the message body, which end-to-end encryption also covers
//! when it is used. docs/MEDIA.md, section "Media reference", is the
//! format's definition; this is its encoder and checker.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::{Deserialize, Serialize};

use crate::seal::{sealed_len, FileKey, CIPHER, NONCE_PREFIX};

/// Largest inline thumbnail, in bytes before base64, so a reference stays
/// well inside a message body (64 KiB).
pub const MAX_THUMBNAIL: usize = 16 * 1024;
/// Longest file name kept, in bytes.
pub const MAX_NAME: usize = 255;

/// What a message body carries for one encrypted file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaReference {
    /// The media id the gateway gave the upload.
    pub media: String,
    /// The file's name on the sender's side (no directories).
    pub name: String,
    /// MIME type of the plaintext.
    pub content_type: String,
    /// Plaintext bytes.
    pub size: u64,
    /// Ciphertext bytes, what is stored and downloaded.
    pub encrypted_size: u64,
    /// SHA-256 of the ciphertext, lowercase hex.
    pub sha256: String,
    /// The cipher, [`CIPHER`].
    pub cipher: String,
    /// AES-256 key, base64 (standard alphabet, padded).
    pub key: String,
    /// STREAM nonce prefix, base64 (7 bytes).
    pub nonce: String,
    /// Image or video width in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image or video height in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Audio or video duration in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Small preview image, shown before the file is downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<Thumbnail>,
}

/// An inline preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: String,
    /// The image, base64 (standard alphabet, padded), at most
    /// [`MAX_THUMBNAIL`] bytes decoded.
    pub data: String,
}

/// What the sender knows about a file beyond its bytes (the library does
/// not decode images or video).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaDetails {
    /// MIME type of the file.
    pub content_type: String,
    /// Name to show and save under.
    pub name: String,
    /// Width in pixels (images, video).
    pub width: Option<u32>,
    /// Height in pixels (images, video).
    pub height: Option<u32>,
    /// Duration in milliseconds (audio, video).
    pub duration_ms: Option<u64>,
    /// Preview image: MIME type and bytes, at most [`MAX_THUMBNAIL`].
    pub thumbnail: Option<(String, Vec<u8>)>,
}

/// A body that is not a usable media reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a media reference: {0}")]
pub struct ReferenceError(pub String);

impl MediaReference {
    /// The reference for a file uploaded as `media`.
    pub(crate) fn new(
        media: String,
        details: &MediaDetails,
        size: u64,
        sha256: [u8; 32],
        key: &FileKey,
    ) -> Result<Self, ReferenceError> {
        let thumbnail = match &details.thumbnail {
            Some((_, data)) if data.len() > MAX_THUMBNAIL => {
                return Err(ReferenceError(format!("thumbnail over {MAX_THUMBNAIL} bytes")))
            }
            Some((content_type, data)) => {
                Some(Thumbnail { content_type: content_type.clone(), data: STANDARD.encode(data) })
            }
            None => None,
        };
        Ok(MediaReference {
            media,
            name: safe_name(&details.name),
            content_type: details.content_type.clone(),
            size,
            encrypted_size: sealed_len(size),
            sha256: hex(&sha256),
            cipher: CIPHER.to_owned(),
            key: STANDARD.encode(key.key),
            nonce: STANDARD.encode(key.nonce_prefix),
            width: details.width,
            height: details.height,
            duration_ms: details.duration_ms,
            thumbnail,
        })
    }

    /// The JSON text that goes in the message body.
    pub fn to_body(&self) -> String {
        // Serializing a struct of strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a message body; checks the fields a download relies on.
    pub fn from_body(body: &str) -> Result<Self, ReferenceError> {
        let r: MediaReference = serde_json::from_str(body).map_err(|e| ReferenceError(e.to_string()))?;
        if r.cipher != CIPHER {
            return Err(ReferenceError(format!("unknown cipher {:?}", r.cipher)));
        }
        if r.encrypted_size != sealed_len(r.size) {
            return Err(ReferenceError("encrypted_size does not match size".into()));
        }
        r.file_key()?;
        r.digest()?;
        Ok(r)
    }

    /// The decoded key and nonce prefix.
    pub fn file_key(&self) -> Result<FileKey, ReferenceError> {
        let key = STANDARD.decode(&self.key).map_err(|_| ReferenceError("key is not base64".into()))?;
        let nonce = STANDARD.decode(&self.nonce).map_err(|_| ReferenceError("nonce is not base64".into()))?;
        Ok(FileKey {
            key: key.try_into().map_err(|_| ReferenceError("key is not 32 bytes".into()))?,
            nonce_prefix: nonce.try_into().map_err(|_| ReferenceError(format!("nonce is not {NONCE_PREFIX} bytes")))?,
        })
    }

    /// The decoded ciphertext digest.
    pub fn digest(&self) -> Result<[u8; 32], ReferenceError> {
        let bad = || ReferenceError("sha256 is not 64 hex digits".into());
        if self.sha256.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = self.sha256.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(out)
    }

    /// The name to save under: [`MediaReference::name`] without directories
    /// or leading dots, or `media` if nothing is left.
    pub fn file_name(&self) -> String {
        safe_name(&self.name)
    }
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last path component of `name`, without control characters or
/// leading dots, cut to [`MAX_NAME`] bytes; `media` if nothing is left.
/// A name from another user never reaches the file system unchecked.
fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = last.chars().filter(|c| !c.is_control()).collect();
    let mut clean = clean.trim_start_matches('.').trim().to_owned();
    while clean.len() > MAX_NAME {
        clean.pop();
    }
    if clean.is_empty() {
        "media".to_owned()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MediaReference {
        let details = MediaDetails {
            content_type: "image/png".into(),
            name: "cat.png".into(),
            width: Some(640),
            height: Some(480),
            duration_ms: None,
            thumbnail: Some(("image/jpeg".into(), vec![0xff, 0xd8, 0xff])),
        };
        MediaReference::new("g7.AAAAAAAAAAAAAAAAAAAAAA".into(), &details, 100, [0xab; 32], &FileKey::random()).unwrap()
    }

    #[test]
    fn a_reference_round_trips_through_a_body() {
        let r = sample();
        let body = r.to_body();
        assert!(body.contains(r#""width":640"#), "{body}");
        assert!(!body.contains("duration_ms"), "absent fields are left out: {body}");
        assert_eq!(MediaReference::from_body(&body).unwrap(), r);
        assert_eq!(r.digest().unwrap(), [0xab; 32]);
        assert_eq!(r.encrypted_size, 116);
    }

    #[test]
    fn broken_references_are_refused() {
        let r = sample();
        for broken in [
            MediaReference { cipher: "rot13".into(), ..r.clone() },
            MediaReference { encrypted_size: 100, ..r.clone() },
            MediaReference { key: "AAAA".into(), ..r.clone() },
            MediaReference { nonce: "!!".into(), ..r.clone() },
            MediaReference { sha256: "zz".repeat(32), ..r.clone() },
        ] {
            assert!(MediaReference::from_body(&broken.to_body()).is_err(), "{broken:?}");
        }
        assert!(MediaReference::from_body("hello").is_err());
    }

    #[test]
    fn names_from_others_cannot_leave_the_media_folder() {
        for (given, kept) in
            [("../../etc/passwd", "passwd"), ("..", "media"), ("C:\\x\\.bashrc", "bashrc"), ("a\nb.txt", "ab.txt")]
        {
            let r = MediaReference { name: given.into(), ..sample() };
            assert_eq!(r.file_name(), kept);
        }
    }

    #[test]
    fn oversized_thumbnails_are_refused() {
        let details =
            MediaDetails { thumbnail: Some(("image/jpeg".into(), vec![0; MAX_THUMBNAIL + 1])), ..Default::default() };
        assert!(MediaReference::new("m".into(), &details, 0, [0; 32], &FileKey::random()).is_err());
    }
}

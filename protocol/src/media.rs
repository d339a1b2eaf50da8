//! Media by signed URL (docs/MEDIA.md): the client frames `upload_media`,
//! `complete_media` and `download_media`, their answers `upload_slot`,
//! `media_completed` and `download_url`, and [`MediaKind`].
//!
//! The frames carry only references: a media id (`<conversation>.<random>`,
//! whose grammar the gateway's media crate owns, so here it is only bounded
//! and kept to URL-safe characters), an opaque upload id, part tags and
//! URLs. The bytes go to the URLs over HTTP, never through the WebSocket.

use std::{borrow::Cow, fmt, io::Write as _};

use serde::Deserialize;

use crate::{
    frames::{bad, client_id_field, conversation_field, required, str_field, RawFrame},
    server_decode::DecodeError,
    ClientFrame, ProtocolError, ServerFrame,
};

/// Longest media id, in bytes (`d<20 digits>-<20 digits>.<22>` is 65).
pub const MAX_MEDIA_ID_BYTES: usize = 80;
/// Longest upload id, in bytes (S3 upload ids are a few hundred).
pub const MAX_UPLOAD_ID_BYTES: usize = 1024;
/// Longest `content_type`, in bytes.
pub const MAX_CONTENT_TYPE_BYTES: usize = 127;
/// Most parts of one upload; the gateway raises the part size of a large
/// file so it never needs more.
pub const MAX_MEDIA_PARTS: usize = 1000;
/// Longest part tag (`ETag`), in bytes.
pub const MAX_PART_TAG_BYTES: usize = 128;
/// Largest `size` a frame may announce (2^53, exact in every JSON reader);
/// the gateway's per-kind limits are far below.
pub const MAX_MEDIA_SIZE: u64 = 1 << 53;

/// What a media object is, for its size limit (the gateway's, per kind)
/// and for the receiving client's rendering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A video.
    Video,
    /// A sound recording or voice note.
    Audio,
    /// Any other file.
    Document,
}

impl MediaKind {
    /// Every kind.
    pub const ALL: [MediaKind; 4] = [MediaKind::Image, MediaKind::Video, MediaKind::Audio, MediaKind::Document];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }

    /// The kind of a wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        MediaKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `s` may be a media id on the wire: 1 to [`MAX_MEDIA_ID_BYTES`]
/// of `A-Z a-z 0-9 . _ -` (the gateway then parses it in full).
pub fn valid_media_id(s: &str) -> bool {
    (1..=MAX_MEDIA_ID_BYTES).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn visible(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

fn text<'a>(raw: Option<&'a serde_json::value::RawValue>, field: &str) -> Result<Cow<'a, str>, ProtocolError> {
    str_field(required(raw, field)?, field)
}

fn media_field(raw: &RawFrame<'_>) -> Result<String, ProtocolError> {
    let media = text(raw.media, "media")?;
    if !valid_media_id(&media) {
        return Err(bad("media", "must be a media id (1 to 80 bytes of A-Z a-z 0-9 . _ -)"));
    }
    Ok(media.into_owned())
}

fn with_ref(request_id: &str) -> impl Fn(ProtocolError) -> ProtocolError + '_ {
    move |mut e| {
        e.reference = Some(request_id.to_owned());
        e
    }
}

/// Parse `upload_media`.
pub(crate) fn parse_upload<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let request_id = client_id_field(raw)?;
    let r = with_ref(request_id);
    let conversation = conversation_field(raw, "to", raw.to).map_err(&r)?;
    let kind = text(raw.kind, "kind").map_err(&r)?;
    let kind =
        MediaKind::from_name(&kind).ok_or_else(|| r(bad("kind", "must be one of image, video, audio, document")))?;
    let size = match serde_json::from_str::<u64>(required(raw.size, "size").map_err(&r)?.get()) {
        Ok(n) if (1..=MAX_MEDIA_SIZE).contains(&n) => n,
        _ => return Err(r(bad("size", "must be an integer from 1 to 2^53"))),
    };
    let content_type = text(raw.content_type, "content_type").map_err(&r)?;
    if content_type.is_empty()
        || content_type.len() > MAX_CONTENT_TYPE_BYTES
        || !content_type.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        || !content_type.contains('/')
    {
        return Err(r(bad("content_type", "must be a MIME type: 1 to 127 bytes of printable ASCII with a `/`")));
    }
    Ok(ClientFrame::UploadMedia { request_id, conversation, kind, size, content_type: content_type.into_owned() })
}

/// Parse `complete_media`.
pub(crate) fn parse_complete<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let request_id = client_id_field(raw)?;
    let r = with_ref(request_id);
    let media = media_field(raw).map_err(&r)?;
    let upload = text(raw.upload, "upload").map_err(&r)?;
    if upload.len() > MAX_UPLOAD_ID_BYTES || !visible(&upload) {
        return Err(r(bad("upload", "must be the upload id of the upload_slot (at most 1024 bytes)")));
    }
    let tags: Vec<String> = serde_json::from_str(required(raw.tags, "tags").map_err(&r)?.get())
        .map_err(|_| r(bad("tags", "must be an array of strings")))?;
    if tags.is_empty() || tags.len() > MAX_MEDIA_PARTS {
        return Err(r(bad("tags", "must hold 1 to 1000 part tags")));
    }
    if tags.iter().any(|t| t.is_empty() || t.len() > MAX_PART_TAG_BYTES || !visible(t)) {
        return Err(r(bad("tags", "each tag is the ETag a part's PUT answered (1 to 128 bytes)")));
    }
    Ok(ClientFrame::CompleteMedia { request_id, media, upload: upload.into_owned(), tags })
}

/// Parse `download_media`.
pub(crate) fn parse_download<'a>(raw: &RawFrame<'a>) -> Result<ClientFrame<'a>, ProtocolError> {
    let request_id = client_id_field(raw)?;
    let media = media_field(raw).map_err(with_ref(request_id))?;
    Ok(ClientFrame::DownloadMedia { request_id, media })
}

/// Client frame writers.
pub(crate) mod client_frames {
    use std::fmt::Write as _;

    use super::MediaKind;
    use crate::{
        client::{push_conversation, push_json_str},
        ConversationRef,
    };

    /// `{"type":"upload_media",...}`: ask for an upload slot of `size` bytes.
    pub fn upload_media(
        out: &mut String,
        request_id: &str,
        to: ConversationRef,
        kind: MediaKind,
        size: u64,
        content_type: &str,
    ) {
        out.push_str(r#"{"type":"upload_media","id":"#);
        push_json_str(out, request_id);
        push_conversation(out, to, "to");
        let _ = write!(out, r#","kind":"{kind}","size":{size},"content_type":"#);
        push_json_str(out, content_type);
        out.push('}');
    }

    /// `{"type":"complete_media",...}`: every part is uploaded; `tags` are
    /// the `ETag`s the part `PUT`s answered, part 1 first.
    pub fn complete_media<T: AsRef<str>>(out: &mut String, request_id: &str, media: &str, upload: &str, tags: &[T]) {
        out.push_str(r#"{"type":"complete_media","id":"#);
        push_json_str(out, request_id);
        out.push_str(r#","media":"#);
        push_json_str(out, media);
        out.push_str(r#","upload":"#);
        push_json_str(out, upload);
        out.push_str(r#","tags":["#);
        for (i, t) in tags.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, t.as_ref());
        }
        out.push_str("]}");
    }

    /// `{"type":"download_media",...}`: ask for a download URL.
    pub fn download_media(out: &mut String, request_id: &str, media: &str) {
        out.push_str(r#"{"type":"download_media","id":"#);
        push_json_str(out, request_id);
        out.push_str(r#","media":"#);
        push_json_str(out, media);
        out.push('}');
    }
}

fn json(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `{"type":"upload_slot",...}`: the answer to `upload_media`. `expires` is
/// Unix milliseconds.
pub fn encode_upload_slot<S: AsRef<str>>(
    out: &mut Vec<u8>,
    request_id: &str,
    media: &str,
    part_size: u64,
    parts: &[S],
    upload: &str,
    expires: u64,
) {
    out.extend_from_slice(br#"{"type":"upload_slot","id":"#);
    json(out, request_id);
    out.extend_from_slice(br#","media":"#);
    json(out, media);
    let _ = write!(out, r#","part_size":{part_size},"parts":["#);
    for (i, url) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json(out, url.as_ref());
    }
    out.extend_from_slice(br#"],"upload":"#);
    json(out, upload);
    let _ = write!(out, r#","expires":{expires}}}"#);
}

/// `{"type":"media_completed",...}`: the answer to `complete_media`.
pub fn encode_media_completed(out: &mut Vec<u8>, request_id: &str, media: &str) {
    out.extend_from_slice(br#"{"type":"media_completed","id":"#);
    json(out, request_id);
    out.extend_from_slice(br#","media":"#);
    json(out, media);
    out.push(b'}');
}

/// `{"type":"download_url",...}`: the answer to `download_media`.
/// `expires` is Unix milliseconds.
pub fn encode_download_url(out: &mut Vec<u8>, request_id: &str, media: &str, url: &str, expires: u64) {
    out.extend_from_slice(br#"{"type":"download_url","id":"#);
    json(out, request_id);
    out.extend_from_slice(br#","media":"#);
    json(out, media);
    out.extend_from_slice(br#","url":"#);
    json(out, url);
    let _ = write!(out, r#","expires":{expires}}}"#);
}

/// An `upload_slot` as a client reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSlotFrame {
    /// The request id of the `upload_media`.
    pub request_id: String,
    /// The media id to put in the message body and in `complete_media`.
    pub media: String,
    /// Size of every part but the last.
    pub part_size: u64,
    /// One `PUT` URL per part, part 1 first.
    pub parts: Vec<String>,
    /// The upload id to give back in `complete_media`.
    pub upload: String,
    /// When the URLs stop working, Unix milliseconds.
    pub expires: u64,
}

#[derive(Deserialize)]
struct RawAnswer {
    id: Option<String>,
    media: Option<String>,
    part_size: Option<u64>,
    parts: Option<Vec<String>>,
    upload: Option<String>,
    url: Option<String>,
    expires: Option<u64>,
}

/// Decode `upload_slot`, `media_completed` or `download_url`.
pub(crate) fn decode(ty: &str, text: &str) -> Result<ServerFrame, DecodeError> {
    let raw: RawAnswer = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let frame: &'static str = match ty {
        "upload_slot" => "upload_slot",
        "media_completed" => "media_completed",
        _ => "download_url",
    };
    let missing = |field: &'static str| DecodeError::Field { frame, field, why: "missing" };
    let request_id = raw.id.ok_or(missing("id"))?;
    let media = raw.media.ok_or(missing("media"))?;
    Ok(match frame {
        "upload_slot" => ServerFrame::UploadSlot(UploadSlotFrame {
            request_id,
            media,
            part_size: raw.part_size.ok_or(missing("part_size"))?,
            parts: raw.parts.ok_or(missing("parts"))?,
            upload: raw.upload.ok_or(missing("upload"))?,
            expires: raw.expires.ok_or(missing("expires"))?,
        }),
        "media_completed" => ServerFrame::MediaCompleted { request_id, media },
        _ => ServerFrame::DownloadUrl {
            request_id,
            media,
            url: raw.url.ok_or(missing("url"))?,
            expires: raw.expires.ok_or(missing("expires"))?,
        },
    })
}

//! Message kind and MIME type from a file name's extension.
//!
//! A small table of the common formats, not a MIME database: anything
//! else is a `document` of `application/octet-stream`. Content is never
//! sniffed; the receiver decides how to show a file, the type is a hint.

use std::path::Path;

use chatgw_protocol::MediaKind;

const TABLE: &[(&str, MediaKind, &str)] = &[
    ("jpg", MediaKind::Image, "image/jpeg"),
    ("jpeg", MediaKind::Image, "image/jpeg"),
    ("png", MediaKind::Image, "image/png"),
    ("gif", MediaKind::Image, "image/gif"),
    ("webp", MediaKind::Image, "image/webp"),
    ("heic", MediaKind::Image, "image/heic"),
    ("mp4", MediaKind::Video, "video/mp4"),
    ("mov", MediaKind::Video, "video/quicktime"),
    ("webm", MediaKind::Video, "video/webm"),
    ("mkv", MediaKind::Video, "video/x-matroska"),
    ("mp3", MediaKind::Audio, "audio/mpeg"),
    ("m4a", MediaKind::Audio, "audio/mp4"),
    ("ogg", MediaKind::Audio, "audio/ogg"),
    ("opus", MediaKind::Audio, "audio/opus"),
    ("wav", MediaKind::Audio, "audio/wav"),
    ("flac", MediaKind::Audio, "audio/flac"),
    ("pdf", MediaKind::Document, "application/pdf"),
    ("txt", MediaKind::Document, "text/plain"),
    ("md", MediaKind::Document, "text/markdown"),
    ("csv", MediaKind::Document, "text/csv"),
    ("json", MediaKind::Document, "application/json"),
    ("zip", MediaKind::Document, "application/zip"),
    ("docx", MediaKind::Document, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("xlsx", MediaKind::Document, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
];

/// The kind and MIME type for `path`, by extension (case-insensitive).
pub fn guess(path: &Path) -> (MediaKind, &'static str) {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    TABLE
        .iter()
        .find(|(e, _, _)| *e == ext)
        .map(|&(_, kind, mime)| (kind, mime))
        .unwrap_or((MediaKind::Document, "application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_pick_kind_and_type() {
        assert_eq!(guess(Path::new("a/Cat.JPG")), (MediaKind::Image, "image/jpeg"));
        assert_eq!(guess(Path::new("clip.mp4")), (MediaKind::Video, "video/mp4"));
        assert_eq!(guess(Path::new("note.opus")), (MediaKind::Audio, "audio/opus"));
        assert_eq!(guess(Path::new("report.pdf")), (MediaKind::Document, "application/pdf"));
        assert_eq!(guess(Path::new("Makefile")), (MediaKind::Document, "application/octet-stream"));
    }
}

//! Media frames: what each parses to, what each refuses and with which
//! message, and that the answers round-trip through the decoder.

use chatgw_protocol::{
    client, server, ClientFrame, ConversationRef, ErrorCode, GroupId, MediaKind, ServerFrame, UploadSlotFrame, UserId,
};

fn refusal(text: &str) -> (ErrorCode, String, Option<String>) {
    let e = ClientFrame::parse(text).unwrap_err();
    (e.code, e.message, e.reference)
}

#[test]
fn client_frames_parse_and_round_trip() {
    let frames = [
        ClientFrame::UploadMedia {
            request_id: "u1",
            conversation: ConversationRef::Peer(UserId(2)),
            kind: MediaKind::Image,
            size: 1234,
            content_type: "image/jpeg".into(),
        },
        ClientFrame::UploadMedia {
            request_id: "u2",
            conversation: ConversationRef::Group(GroupId(9)),
            kind: MediaKind::Video,
            size: 1 << 40,
            content_type: "application/octet-stream; x=\"y\"".into(),
        },
        ClientFrame::CompleteMedia {
            request_id: "c1",
            media: "d1-2.AAAAAAAAAAAAAAAAAAAAAA".into(),
            upload: "0f3a".into(),
            tags: vec!["\"abc\"".into(), "def".into()],
        },
        ClientFrame::DownloadMedia { request_id: "d1", media: "g9.AAAAAAAAAAAAAAAAAAAAAA".into() },
    ];
    for frame in frames {
        let text = frame.to_json();
        assert_eq!(ClientFrame::parse(&text).unwrap(), frame, "{text}");
    }
    let mut out = String::new();
    client::upload_media(&mut out, "u1", ConversationRef::Peer(UserId(2)), MediaKind::Audio, 10, "audio/ogg");
    assert_eq!(
        out,
        r#"{"type":"upload_media","id":"u1","to":"2","kind":"audio","size":10,"content_type":"audio/ogg"}"#
    );
}

#[test]
fn bad_media_frames_are_refused_with_their_field_and_request_id() {
    let upload = |fields: &str| format!(r#"{{"type":"upload_media","id":"u","to":"2",{fields}}}"#);
    for (text, message) in [
        (
            upload(r#""kind":"gif","size":1,"content_type":"a/b""#),
            "field `kind`: must be one of image, video, audio, document",
        ),
        (upload(r#""kind":"image","size":0,"content_type":"a/b""#), "field `size`: must be an integer from 1 to 2^53"),
        (
            upload(r#""kind":"image","size":"5","content_type":"a/b""#),
            "field `size`: must be an integer from 1 to 2^53",
        ),
        (upload(r#""kind":"image","content_type":"a/b""#), "field `size`: missing"),
        (
            upload(r#""kind":"image","size":5,"content_type":"jpeg""#),
            "field `content_type`: must be a MIME type: 1 to 127 bytes of printable ASCII with a `/`",
        ),
        (
            upload(r#""kind":"image","size":5,"content_type":"a/b\r\nX: y""#),
            "field `content_type`: must be a MIME type: 1 to 127 bytes of printable ASCII with a `/`",
        ),
        (
            r#"{"type":"complete_media","id":"u","media":"../x","upload":"1","tags":["a"]}"#.into(),
            "field `media`: must be a media id (1 to 80 bytes of A-Z a-z 0-9 . _ -)",
        ),
        (
            r#"{"type":"complete_media","id":"u","media":"g1.x","upload":"1","tags":[]}"#.into(),
            "field `tags`: must hold 1 to 1000 part tags",
        ),
        (
            r#"{"type":"complete_media","id":"u","media":"g1.x","upload":"1","tags":[1]}"#.into(),
            "field `tags`: must be an array of strings",
        ),
        (r#"{"type":"download_media","id":"u"}"#.into(), "field `media`: missing"),
    ] {
        assert_eq!(refusal(&text), (ErrorCode::BadField, message.to_owned(), Some("u".to_owned())), "{text}");
    }
    let (code, message, _) = refusal(r#"{"type":"download_media","media":"g1.x"}"#);
    assert_eq!((code, message.as_str()), (ErrorCode::BadField, "field `id`: missing"));
}

#[test]
fn answers_round_trip() {
    let slot = UploadSlotFrame {
        request_id: "u1".into(),
        media: "d1-2.AAAAAAAAAAAAAAAAAAAAAA".into(),
        part_size: 8 << 20,
        parts: vec!["http://m/a?x=1&y=2".into(), "http://m/b".into()],
        upload: "up".into(),
        expires: 1_800_000_000_000,
    };
    let mut out = Vec::new();
    server::upload_slot(
        &mut out,
        &slot.request_id,
        &slot.media,
        slot.part_size,
        &slot.parts,
        &slot.upload,
        slot.expires,
    );
    assert_eq!(ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap(), ServerFrame::UploadSlot(slot));
    let mut out = Vec::new();
    server::media_completed(&mut out, "c", "g9.x");
    assert_eq!(out, br#"{"type":"media_completed","id":"c","media":"g9.x"}"#);
    assert_eq!(
        ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap(),
        ServerFrame::MediaCompleted { request_id: "c".into(), media: "g9.x".into() }
    );
    let mut out = Vec::new();
    server::download_url(&mut out, "d", "g9.x", "http://m/g9.x?sig=1", 5);
    assert_eq!(
        ServerFrame::parse(std::str::from_utf8(&out).unwrap()).unwrap(),
        ServerFrame::DownloadUrl {
            request_id: "d".into(),
            media: "g9.x".into(),
            url: "http://m/g9.x?sig=1".into(),
            expires: 5
        }
    );
    assert!(ServerFrame::parse(r#"{"type":"download_url","id":"d","media":"m"}"#).is_err());
}

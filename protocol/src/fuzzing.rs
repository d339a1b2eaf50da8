//! Fuzzing harness of [`ClientFrame::parse`], shared by the cargo-fuzz target
//! `client_frame` (in `fuzz/`) and the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the checked-in corpus is exercised by every
//! `cargo test` and a crash found by the fuzzer becomes a test by adding its
//! input to the corpus.
//!
//! Not doing anything wrong on hostile input is more than not panicking, so
//! the harness checks what the rest of the server relies on:
//! - a refused frame carries one of the three parse error codes, and the
//!   `error` frame built from it is valid JSON that says the same thing;
//! - an accepted frame is inside every documented limit;
//! - an accepted frame, written back by the client encoder
//!   ([`ClientFrame::encode`]), parses to the same frame (nothing the parser
//!   keeps depends on how the client spelled it);
//! - the body and client id of an accepted `send` splice into the server's
//!   `sent` and `message` frames as valid JSON (the body is forwarded raw).

use serde_json::Value;

use crate::{
    server, ClientFrame, ConversationId, ConversationRef, DeviceName, ErrorCode, GroupChange, MessageId, MessageKind,
    UserId, MAX_ACK_IDS, MAX_BODY_BYTES, MAX_CLIENT_ID_BYTES, MAX_GROUP_DESCRIPTION_BYTES, MAX_GROUP_NAME_BYTES,
    MAX_LISTED_MEMBERS, MAX_PAGE,
};

/// Feed one input to the parser and check every invariant; panics (which
/// the fuzzer reports) when one does not hold. Inputs that are not UTF-8
/// are skipped: the gateway refuses such text frames before parsing (1007).
pub fn client_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientFrame::parse(text) {
        Ok(frame) => check_accepted(text, &frame),
        Err(e) => {
            assert!(
                matches!(e.code, ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::BadField),
                "parse error with a non-parse code: {e:?}"
            );
            let mut out = Vec::new();
            server::error(&mut out, e.code, &e.message, e.reference.as_deref());
            let v: Value = serde_json::from_slice(&out).expect("error frame is valid JSON");
            assert_eq!(v["code"], e.code.as_str());
            assert_eq!(v["message"], e.message.as_str());
            if let Some(r) = &e.reference {
                assert_eq!(v["ref"], r.as_str());
            }
        }
    }
}

fn check_accepted(text: &str, frame: &ClientFrame<'_>) {
    check_limits(frame);
    let again = frame.to_json();
    let reparsed = ClientFrame::parse(&again)
        .unwrap_or_else(|e| panic!("re-encoded frame refused: {e}\n  input:   {text}\n  encoded: {again}"));
    assert_eq!(&reparsed, frame, "re-encoded frame differs\n  input:   {text}\n  encoded: {again}");
    if let ClientFrame::Send(s) = frame {
        let mut out = Vec::new();
        server::sent(&mut out, s.client_id, MessageId(7), 1, false);
        let v: Value = serde_json::from_slice(&out).expect("sent frame is valid JSON");
        assert_eq!(v["id"], s.client_id);
        let m = server::Message {
            id: MessageId(7),
            conversation: match s.to {
                ConversationRef::Peer(p) => ConversationId::direct(UserId(1), p),
                ConversationRef::Group(g) => ConversationId::Group(g),
            },
            from: UserId(1),
            kind: s.kind,
            client_id: s.client_id.to_owned(),
            ts: 1,
            body: s.body.to_owned(),
            amended: None,
        };
        out.clear();
        server::message(&mut out, &m);
        let v: Value = serde_json::from_slice(&out).expect("message frame with a forwarded body is valid JSON");
        let body: Value = serde_json::from_str(s.body).expect("body is JSON");
        assert_eq!(v["body"], body);
    }
}

fn check_limits(frame: &ClientFrame<'_>) {
    let page = 1..=MAX_PAGE;
    match frame {
        ClientFrame::Send(s) => {
            assert!((1..=MAX_CLIENT_ID_BYTES).contains(&s.client_id.len()), "client id length");
            assert!(s.body.len() <= MAX_BODY_BYTES, "body over the limit");
            assert!(serde_json::from_str::<String>(s.body).is_ok(), "body is not a JSON string: {}", s.body);
            assert_ne!(s.kind, MessageKind::System, "clients cannot send system messages");
            let decoded: String = serde_json::from_str(s.body).unwrap_or_default();
            match s.kind {
                MessageKind::Encrypted => {
                    let summary = crate::check_envelope(&decoded).expect("an accepted encrypted body is an envelope");
                    assert_eq!(s.envelope_device, Some(summary.device));
                    assert!(summary.entries <= crate::MAX_ENVELOPE_ENTRIES && (summary.entries > 0 || summary.group));
                }
                _ => assert_eq!(s.envelope_device, None),
            }
        }
        ClientFrame::Delivered { ids, .. } => assert!((1..=MAX_ACK_IDS).contains(&ids.len())),
        ClientFrame::Sync { limit, .. } | ClientFrame::History { limit, .. } => assert!(page.contains(limit)),
        ClientFrame::CreateGroup { request_id, name, members } => {
            assert!((1..=MAX_CLIENT_ID_BYTES).contains(&request_id.len()));
            assert!(!name.trim().is_empty() && name.len() <= MAX_GROUP_NAME_BYTES);
            assert!(members.len() <= MAX_LISTED_MEMBERS);
        }
        ClientFrame::ChangeGroup { change, .. } => match change {
            GroupChange::Add(m) | GroupChange::Remove(m) | GroupChange::Promote(m) | GroupChange::Demote(m) => {
                assert!((1..=MAX_LISTED_MEMBERS).contains(&m.len()))
            }
            GroupChange::Rename(name) => assert!(!name.trim().is_empty() && name.len() <= MAX_GROUP_NAME_BYTES),
            GroupChange::Describe(text) => assert!(text.len() <= MAX_GROUP_DESCRIPTION_BYTES),
            GroupChange::AdminsOnly(_) | GroupChange::AdminsCanDelete(_) => {}
            GroupChange::Leave => {}
        },
        ClientFrame::Edit { body, .. } => {
            assert!(body.len() <= MAX_BODY_BYTES, "body over the limit");
            assert!(serde_json::from_str::<String>(body).is_ok(), "body is not a JSON string: {body}");
        }
        ClientFrame::Read { .. }
        | ClientFrame::Delete { .. }
        | ClientFrame::GroupInfo { .. }
        | ClientFrame::MessageInfo { .. }
        | ClientFrame::Block { .. }
        | ClientFrame::Unblock { .. }
        | ClientFrame::Blocks
        | ClientFrame::Devices
        | ClientFrame::SubscribePresence { .. }
        | ClientFrame::UnsubscribePresence { .. }
        | ClientFrame::SetPresence { .. }
        | ClientFrame::SetDirectFrom { .. }
        | ClientFrame::DirectFrom
        | ClientFrame::Typing { .. } => {}
        ClientFrame::RegisterPush { token, .. } => assert!(crate::valid_push_token(token), "push token {token:?}"),
        ClientFrame::UnregisterPush | ClientFrame::KeyCount | ClientFrame::FetchKeys { .. } => {}
        ClientFrame::UploadMedia { request_id, size, content_type, .. } => {
            assert!((1..=MAX_CLIENT_ID_BYTES).contains(&request_id.len()));
            assert!((1..=crate::MAX_MEDIA_SIZE).contains(size));
            assert!((1..=crate::MAX_CONTENT_TYPE_BYTES).contains(&content_type.len()));
        }
        ClientFrame::CompleteMedia { media, tags, .. } => {
            assert!(crate::valid_media_id(media));
            assert!((1..=crate::MAX_MEDIA_PARTS).contains(&tags.len()));
        }
        ClientFrame::DownloadMedia { media, .. } => assert!(crate::valid_media_id(media)),
        ClientFrame::UploadKeys { keys, one_time_keys } => {
            assert!(one_time_keys.len() <= crate::MAX_KEYS_PER_UPLOAD);
            assert!(one_time_keys.iter().chain([&keys.fallback_key]).all(|k| crate::valid_key_id(&k.id)));
        }
        ClientFrame::Auth { token } => assert!((1..=crate::MAX_TOKEN_BYTES).contains(&token.len())),
        ClientFrame::LogoutDevice { device } => assert_eq!(DeviceName::new(device.as_str()), Some(*device)),
        ClientFrame::Conversations { limit, .. } => {
            assert!((1..=crate::MAX_CONVERSATIONS_PAGE).contains(limit), "conversations limit {limit}")
        }
    }
}

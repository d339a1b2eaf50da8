//! `upload_media`, `complete_media` and `download_media`, answered by the
//! reader threads: each checks membership in the store (a group's record)
//! and then asks the backend, which for S3 may be a network round trip;
//! neither belongs on an event loop.
//!
//! Membership is checked against the conversation the media id names, so
//! forwarding an id to someone outside the conversation gives them
//! nothing, and a member removed from a group loses its media with it.

use std::time::{SystemTime, UNIX_EPOCH};

use chatgw_media::{random_bytes, MediaConversation, MediaError, MediaKey};
use chatgw_protocol::{server, ConversationId, ErrorCode, MediaKind, UserId, MAX_MEDIA_PARTS};
use chatgw_storage::{MessageStore, StoreError};

use super::Media;

/// What a media frame asks.
#[derive(Debug)]
pub(crate) enum MediaOp {
    Upload { request_id: String, conversation: ConversationId, kind: MediaKind, size: u64, content_type: String },
    Complete { request_id: String, media: String, upload: String, tags: Vec<String> },
    Download { request_id: String, media: String },
}

impl MediaOp {
    fn request_id(&self) -> &str {
        match self {
            MediaOp::Upload { request_id, .. }
            | MediaOp::Complete { request_id, .. }
            | MediaOp::Download { request_id, .. } => request_id,
        }
    }
}

/// A refusal: the code, the message and the metric's reason.
type Refusal = (ErrorCode, String, &'static str);

fn refusal(code: ErrorCode, message: impl Into<String>, reason: &'static str) -> Refusal {
    (code, message.into(), reason)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The answer frame to `op` from `user`.
pub(crate) fn answer(media: Option<&Media>, store: &dyn MessageStore, user: UserId, op: MediaOp) -> Vec<u8> {
    let mut p = Vec::with_capacity(256);
    let request_id = op.request_id().to_owned();
    let result = match media {
        None => Err(refusal(ErrorCode::NotAllowed, "media are off on this gateway", "off")),
        Some(media) => serve(media, store, user, op, &mut p),
    };
    if let Err((code, message, reason)) = result {
        if let Some(m) = media {
            m.metrics.refused(reason);
        }
        p.clear();
        server::error(&mut p, code, &message, Some(&request_id));
    }
    p
}

fn member(store: &dyn MessageStore, user: UserId, conversation: MediaConversation) -> Result<bool, StoreError> {
    Ok(match conversation {
        MediaConversation::Direct(lo, hi) => user == lo || user == hi,
        MediaConversation::Group(g) => store.group(g)?.is_some_and(|grp| grp.is_member(user)),
    })
}

fn backend_failed(e: &MediaError) -> Refusal {
    tracing::warn!(error = %e, "media backend request failed");
    refusal(ErrorCode::Unavailable, "the media store could not be reached; retry", "backend")
}

fn store_failed(e: &StoreError) -> Refusal {
    tracing::warn!(error = %e, "membership check of a media request failed");
    refusal(ErrorCode::Unavailable, "the store could not be read; retry", "store")
}

fn not_member() -> Refusal {
    refusal(ErrorCode::NotAllowed, "not a member of this conversation", "not_member")
}

fn parse_key(media: &str) -> Result<MediaKey, Refusal> {
    MediaKey::parse(media).map_err(|e| refusal(ErrorCode::BadField, format!("field `media`: {e}"), "bad_field"))
}

fn serve(media: &Media, store: &dyn MessageStore, user: UserId, op: MediaOp, p: &mut Vec<u8>) -> Result<(), Refusal> {
    let settings = &media.settings;
    match op {
        MediaOp::Upload { request_id, conversation, kind, size, content_type } => {
            let limit = settings.max_size.of(kind);
            if size > limit {
                let message = format!("field `size`: {} is at most {limit} bytes", noun(kind));
                return Err(refusal(ErrorCode::BadField, message, "too_large"));
            }
            let conversation = match conversation {
                ConversationId::Direct { lo, hi } => MediaConversation::Direct(lo, hi),
                ConversationId::Group(g) => MediaConversation::Group(g),
            };
            if !member(store, user, conversation).map_err(|e| store_failed(&e))? {
                return Err(not_member());
            }
            let day = unix_ms(SystemTime::now()) / 86_400_000;
            if let Err(used) = media.quota.take(user, size, settings.quota, day) {
                let message = format!(
                    "the daily media quota of {} bytes would be exceeded: {used} bytes used today (UTC)",
                    settings.quota
                );
                return Err(refusal(ErrorCode::RateLimited, message, "quota"));
            }
            let part_size = settings.part_size.max(size.div_ceil(MAX_MEDIA_PARTS as u64));
            let started = random_bytes::<16>().map_err(MediaError::from).and_then(|random| {
                let key = MediaKey::new(conversation, random);
                let slot = media.backend.start_upload(&key, size, &content_type, part_size, settings.url_ttl)?;
                Ok((key, slot))
            });
            let (key, slot) = started.map_err(|e| {
                media.quota.give_back(user, size, day);
                backend_failed(&e)
            })?;
            media.metrics.uploads_started.inc();
            let upload = format!("{size}.{}", slot.upload_id);
            let expires = unix_ms(slot.expires_at);
            server::upload_slot(p, &request_id, &key.to_string(), slot.part_size, &slot.part_urls, &upload, expires);
        }
        MediaOp::Complete { request_id, media: id, upload, tags } => {
            let key = parse_key(&id)?;
            if !member(store, user, key.conversation()).map_err(|e| store_failed(&e))? {
                return Err(not_member());
            }
            let no_upload = || refusal(ErrorCode::NotAllowed, "no such upload in progress", "no_upload");
            let (size, upload_id) = upload.split_once('.').ok_or_else(no_upload)?;
            let size: u64 = size.parse().map_err(|_| no_upload())?;
            match media.backend.complete_upload(&key, upload_id, size, &tags) {
                Ok(()) => {}
                Err(MediaError::NotFound) => return Err(no_upload()),
                Err(MediaError::Incomplete(why)) => {
                    let message = format!("field `tags`: upload incomplete: {why}");
                    return Err(refusal(ErrorCode::BadField, message, "incomplete"));
                }
                Err(e) => return Err(backend_failed(&e)),
            }
            media.metrics.uploads_completed.inc();
            server::media_completed(p, &request_id, &id);
        }
        MediaOp::Download { request_id, media: id } => {
            let key = parse_key(&id)?;
            if !member(store, user, key.conversation()).map_err(|e| store_failed(&e))? {
                return Err(not_member());
            }
            let url = match media.backend.download_url(&key, settings.url_ttl) {
                Ok(url) => url,
                Err(MediaError::NotFound) => {
                    return Err(refusal(ErrorCode::NotAllowed, "no such media object", "no_object"))
                }
                Err(e) => return Err(backend_failed(&e)),
            };
            media.metrics.download_urls.inc();
            server::download_url(p, &request_id, &id, &url.url, unix_ms(url.expires_at));
        }
    }
    Ok(())
}

/// How a refusal names an object of `kind`.
fn noun(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "an image",
        MediaKind::Video => "a video",
        MediaKind::Audio => "an audio recording",
        MediaKind::Document => "a document",
    }
}

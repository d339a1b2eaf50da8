//! A transfer as a connected device does it: the WebSocket frames that
//! get an upload slot, complete the upload and get a download URL
//! (docs/MEDIA.md), around the HTTP transfers of [`crate::upload`] and
//! [`crate::download`].
//!
//! The connection keeps delivering other events while a file moves;
//! those are handed back in `set_aside`, in order, for the caller to
//! handle as if they had just arrived.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use chatgw_client::{Client, ClientError, ConversationRef, Event, MessageKind};
use chatgw_protocol::MediaKind;

use crate::{
    download::{already_saved, fetch_to, unused_path},
    MediaDetails, MediaReference, OutgoingFile, ReferenceError, Retry, TransferError,
};

/// Why sending or receiving a file through the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaTransferError {
    /// The WebSocket failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The gateway refused the request (not a member, too large, no such
    /// media, media not configured...).
    #[error("gateway refused: {code}: {message}")]
    Refused {
        /// The error frame's code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The gateway did not answer in time.
    #[error("no answer to {0} in time")]
    NoAnswer(&'static str),
    /// The HTTP transfer, or the file, failed.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The reference could not be made (thumbnail too large).
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

impl From<std::io::Error> for MediaTransferError {
    fn from(e: std::io::Error) -> Self {
        MediaTransferError::Transfer(TransferError::Io(e))
    }
}

/// Sends and receives files for one device.
#[derive(Debug)]
pub struct MediaTransfers {
    agent: ureq::Agent,
    retry: Retry,
    answer_timeout: Duration,
    next_request: u64,
}

impl Default for MediaTransfers {
    fn default() -> Self {
        Self::new(Retry::default())
    }
}

impl MediaTransfers {
    /// Transfers retried as `retry` says; HTTP connections that stall for
    /// 30 s fail (and are retried), gateway answers are awaited 10 s.
    pub fn new(retry: Retry) -> Self {
        MediaTransfers {
            agent: crate::agent(Duration::from_secs(30)),
            retry,
            answer_timeout: Duration::from_secs(10),
            next_request: 0,
        }
    }

    fn request_id(&mut self) -> String {
        self.next_request += 1;
        format!("media-{}-{}", std::process::id(), self.next_request)
    }

    /// Encrypt and upload the file at `path` for the conversation `to`,
    /// complete the upload, and return the reference to send as the body
    /// of a message of [`message_kind`]`(kind)`.
    pub fn upload(
        &mut self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        to: ConversationRef,
        path: &Path,
        kind: MediaKind,
        details: &MediaDetails,
    ) -> Result<MediaReference, MediaTransferError> {
        let mut file = OutgoingFile::open(path)?;
        let request = self.request_id();
        client.upload_media(&request, to, kind, file.encrypted_size(), &details.content_type)?;
        let slot = self.answer(client, set_aside, &request, "upload_media", |ev| match ev {
            Event::UploadSlot(slot) if slot.request_id == request => Some(slot.clone()),
            _ => None,
        })?;
        let parts = file.upload(&self.agent, self.retry, slot.part_size, &slot.parts, |_| {})?;
        let request = self.request_id();
        client.complete_media(&request, &slot.media, &slot.upload, &parts.tags)?;
        self.answer(client, set_aside, &request, "complete_media", |ev| match ev {
            Event::MediaCompleted { request_id, .. } if *request_id == request => Some(()),
            _ => None,
        })?;
        Ok(file.reference(slot.media, details, parts.sha256)?)
    }

    /// Download the file `reference` names into `dir` (created if
    /// missing), under its name or a free variant of it; returns the path.
    /// A file already there with the same bytes
    /// ([`already_saved`](crate::download::already_saved)) is not fetched
    /// again: its path is returned.
    pub fn download(
        &mut self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        reference: &MediaReference,
        dir: &Path,
    ) -> Result<PathBuf, MediaTransferError> {
        if let Some(saved) = already_saved(dir, reference) {
            return Ok(saved);
        }
        let url = self.download_url(client, set_aside, &reference.media)?;
        std::fs::create_dir_all(dir)?;
        let dest = unused_path(dir, &reference.file_name());
        fetch_to(&self.agent, self.retry, &url, reference, &dest)?;
        Ok(dest)
    }

    /// Ask the gateway for a download URL of `media`.
    pub fn download_url(
        &mut self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        media: &str,
    ) -> Result<String, MediaTransferError> {
        let request = self.request_id();
        client.download_media(&request, media)?;
        self.answer(client, set_aside, &request, "download_media", |ev| match ev {
            Event::DownloadUrl { request_id, url, .. } if *request_id == request => Some(url.clone()),
            _ => None,
        })
    }

    /// Wait for the answer `pick` recognises, or the error frame that
    /// refers to `request`; everything else goes to `set_aside`.
    fn answer<T>(
        &self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        request: &str,
        what: &'static str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, MediaTransferError> {
        let deadline = Instant::now() + self.answer_timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = client.next_event(left)? else {
                return Err(MediaTransferError::NoAnswer(what));
            };
            if let Some(answer) = pick(&event) {
                return Ok(answer);
            }
            match event {
                Event::Error { code, message, reference } if reference.as_deref() == Some(request) => {
                    return Err(MediaTransferError::Refused { code, message })
                }
                Event::Closed { .. } => {
                    set_aside.push(event);
                    return Err(MediaTransferError::NoAnswer(what));
                }
                other => set_aside.push(other),
            }
        }
    }
}

/// The message kind that carries a file of `kind`.
pub fn message_kind(kind: MediaKind) -> MessageKind {
    match kind {
        MediaKind::Image => MessageKind::Image,
        MediaKind::Video => MessageKind::Video,
        MediaKind::Audio => MessageKind::Audio,
        MediaKind::Document => MessageKind::Document,
    }
}

/// The reference in a message, if it is a media message whose body is one.
pub fn reference_in(kind: MessageKind, body: &str) -> Option<MediaReference> {
    matches!(kind, MessageKind::Image | MessageKind::Video | MessageKind::Audio | MessageKind::Document)
        .then(|| MediaReference::from_body(body).ok())
        .flatten()
}

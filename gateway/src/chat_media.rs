//! Files in `chatgw chat`: `/send PATH` encrypts and uploads a file and
//! sends its reference; a received media message is downloaded, checked
//! and decrypted into the media folder.
//!
//! Kept apart from the chat loop, which only hands it command lines and
//! messages.

use std::path::{Path, PathBuf};

use chatgw_client::{Client, ConversationRef, Event, MessageEvent, UserId};
use chatgw_media_client::{
    gateway::{message_kind, reference_in, MediaTransfers},
    guess, MediaDetails,
};

/// The chat's media state: the transfers and where received files go.
pub(crate) struct ChatMedia {
    transfers: MediaTransfers,
    dir: PathBuf,
}

impl ChatMedia {
    pub(crate) fn new(dir: PathBuf) -> Self {
        ChatMedia { transfers: MediaTransfers::default(), dir }
    }

    /// The file a `/send PATH` line names, if the line is one.
    pub(crate) fn send_command(line: &str) -> Option<&str> {
        line.trim().strip_prefix("/send ").map(str::trim).filter(|p| !p.is_empty())
    }

    /// Upload `path` and send it to `peer` as a message with client id
    /// `client_id`; events that arrive meanwhile go to `set_aside`.
    pub(crate) fn send(
        &mut self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        peer: UserId,
        client_id: &str,
        path: &Path,
    ) -> anyhow::Result<()> {
        let (kind, content_type) = guess(path);
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let details = MediaDetails { content_type: content_type.to_owned(), name, ..MediaDetails::default() };
        let reference = self.transfers.upload(client, set_aside, ConversationRef::Peer(peer), path, kind, &details)?;
        client.send_message(peer, client_id, message_kind(kind), &reference.to_body())?;
        println!(
            "  ⇡ {} ({kind}, {} bytes, {} encrypted) uploaded as {}",
            path.display(),
            reference.size,
            reference.encrypted_size,
            reference.media
        );
        Ok(())
    }

    /// If `m` carries a file, download it and return the line to print
    /// instead of the body; `None` for any other message.
    pub(crate) fn receive(
        &mut self,
        client: &mut Client,
        set_aside: &mut Vec<Event>,
        m: &MessageEvent,
    ) -> Option<String> {
        let reference = reference_in(m.kind, &m.body)?;
        let line = match self.transfers.download(client, set_aside, &reference, &self.dir) {
            Ok(path) => format!(
                "{}: [{}] {} ({}, {} bytes) saved to {}",
                m.from,
                m.kind.as_str(),
                reference.file_name(),
                reference.content_type,
                reference.size,
                path.display()
            ),
            Err(e) => {
                format!("{}: [{}] {} could not be downloaded: {e}", m.from, m.kind.as_str(), reference.file_name())
            }
        };
        Some(line)
    }
}

//! What `chatgw chat` itself remembers between runs, sealed under the same
//! passphrase as the device state (a second [`StateFile`] beside it): the
//! sync cursor, so a restart does not replay what was shown (Olm opens a
//! message once), and each peer's key fingerprint as first seen, so
//! `/verify` can say whether the peer's keys changed since. Kept apart
//! from the library's state: these are the application's, not the
//! protocol's.

use std::{collections::BTreeMap, path::Path};

use chatgw_client::{MessageId, UserId};
use chatgw_e2ee::{KdfParams, StateFile};
use serde::{Deserialize, Serialize};

/// The remembered values.
#[derive(Default, Serialize, Deserialize)]
struct Remembered {
    cursor: MessageId,
    first_fingerprints: BTreeMap<u64, String>,
}

/// The chat's record, open.
pub(crate) struct ChatRecord {
    file: StateFile,
    remembered: Remembered,
}

impl ChatRecord {
    /// Open the record at `path` (created empty if missing).
    pub(crate) fn open(path: &Path, passphrase: &str) -> anyhow::Result<ChatRecord> {
        if path.exists() {
            let (file, bytes) = StateFile::open(path, passphrase)?;
            let remembered = serde_json::from_slice(&bytes)?;
            Ok(ChatRecord { file, remembered })
        } else {
            let file = StateFile::create(path, passphrase, KdfParams::default())?;
            let record = ChatRecord { file, remembered: Remembered::default() };
            record.save()?;
            Ok(record)
        }
    }

    fn save(&self) -> anyhow::Result<()> {
        Ok(self.file.write(&serde_json::to_vec(&self.remembered)?)?)
    }

    /// The cursor to sync from.
    pub(crate) fn cursor(&self) -> MessageId {
        self.remembered.cursor
    }

    /// Remember `cursor` (written only when it moved).
    pub(crate) fn set_cursor(&mut self, cursor: MessageId) -> anyhow::Result<()> {
        if cursor.0 > self.remembered.cursor.0 {
            self.remembered.cursor = cursor;
            self.save()?;
        }
        Ok(())
    }

    /// `peer`'s key fingerprint as first seen; `now` is remembered as the
    /// first if there was none.
    pub(crate) fn first_fingerprint(&mut self, peer: UserId, now: &str) -> anyhow::Result<String> {
        if let Some(first) = self.remembered.first_fingerprints.get(&peer.0) {
            return Ok(first.clone());
        }
        self.remembered.first_fingerprints.insert(peer.0, now.to_owned());
        self.save()?;
        Ok(now.to_owned())
    }
}

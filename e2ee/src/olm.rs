//! Olm sessions, one or more per pair of devices.
//!
//! A session is opened either from a verified bundle (outbound: the first
//! messages are pre-key messages that let the other side open its end) or
//! from an incoming pre-key message (inbound). Both sides may open one at
//! the same time, so a device pair can hold a few sessions: sending uses
//! the newest, receiving tries the one a pre-key message names, or each in
//! turn for a normal message. Older sessions beyond [`SESSIONS_PER_DEVICE`]
//! are dropped.
//!
//! A pre-key message always names its session: once opened, the session is
//! kept, so a replayed pre-key message finds it and fails as a used
//! message key instead of opening a second session.

use std::collections::HashMap;

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};
use vodozemac::olm::{
    Account, DecryptionError as OlmDecryptError, OlmMessage, Session, SessionConfig, SessionCreationError,
    SessionPickle,
};
use vodozemac::Curve25519PublicKey;

use crate::envelope::{OlmEntry, OLM_NORMAL, OLM_PRE_KEY};

/// Sessions kept per device pair.
pub(crate) const SESSIONS_PER_DEVICE: usize = 5;

/// How an Olm decryption failed, before it is named for the caller.
#[derive(Debug)]
pub(crate) enum OlmFailure {
    /// Not decodable, or a bad MAC: altered or forged.
    Tampered(String),
    /// The message key was used before.
    Used,
    /// No session opens it.
    NoSession,
    /// The pre-key message's identity key is not the device's.
    IdentityMismatch,
}

/// Sessions by (user, device).
#[derive(Default)]
pub(crate) struct OlmSessions {
    by_device: HashMap<(u64, String), Vec<Session>>,
}

/// The sessions as stored in the state file.
#[derive(Serialize, Deserialize)]
pub(crate) struct OlmState {
    sessions: Vec<(u64, String, Vec<SessionPickle>)>,
}

impl OlmSessions {
    pub(crate) fn has(&self, user: u64, device: &str) -> bool {
        self.by_device.get(&(user, device.to_owned())).is_some_and(|s| !s.is_empty())
    }

    pub(crate) fn forget(&mut self, user: u64, device: &str) {
        self.by_device.remove(&(user, device.to_owned()));
    }

    fn add(&mut self, user: u64, device: &str, session: Session) {
        let list = self.by_device.entry((user, device.to_owned())).or_default();
        list.insert(0, session);
        list.truncate(SESSIONS_PER_DEVICE);
    }

    /// Open an outbound session from a verified bundle's keys.
    pub(crate) fn open(
        &mut self,
        account: &Account,
        user: u64,
        device: &str,
        identity_key: Curve25519PublicKey,
        session_key: Curve25519PublicKey,
    ) -> Result<(), SessionCreationError> {
        let session = account.create_outbound_session(SessionConfig::version_1(), identity_key, session_key)?;
        self.add(user, device, session);
        Ok(())
    }

    /// Encrypt `plaintext` for `user`'s `device` with the newest session.
    pub(crate) fn encrypt(&mut self, user: u64, device: &str, plaintext: &[u8]) -> Option<Result<OlmEntry, String>> {
        let session = self.by_device.get_mut(&(user, device.to_owned()))?.first_mut()?;
        Some(session.encrypt(plaintext).map_err(|e| e.to_string()).map(|message| {
            let (t, bytes) = message.to_parts();
            OlmEntry {
                u: user.to_string(),
                d: device.to_owned(),
                // Olm has two message types, 0 and 1.
                t: if t == 0 { OLM_PRE_KEY } else { OLM_NORMAL },
                c: STANDARD_NO_PAD.encode(bytes),
            }
        }))
    }

    /// Decrypt `entry`, sent by `user`'s `device` whose published identity
    /// key is `identity_key`.
    pub(crate) fn decrypt(
        &mut self,
        account: &mut Account,
        user: u64,
        device: &str,
        identity_key: Curve25519PublicKey,
        entry: &OlmEntry,
    ) -> Result<Vec<u8>, OlmFailure> {
        let bytes = STANDARD_NO_PAD.decode(&entry.c).map_err(|e| OlmFailure::Tampered(format!("base64: {e}")))?;
        let message = OlmMessage::from_parts(usize::from(entry.t), &bytes)
            .map_err(|e| OlmFailure::Tampered(format!("olm message: {e}")))?;
        let key = (user, device.to_owned());
        match &message {
            OlmMessage::PreKey(pre_key) => {
                let id = pre_key.session_id();
                if let Some(session) =
                    self.by_device.get_mut(&key).and_then(|l| l.iter_mut().find(|s| s.session_id() == id))
                {
                    return session.decrypt(&message).map_err(failure);
                }
                if pre_key.identity_key() != identity_key {
                    return Err(OlmFailure::IdentityMismatch);
                }
                match account.create_inbound_session(SessionConfig::version_1(), identity_key, pre_key) {
                    Ok(created) => {
                        self.add(user, device, created.session);
                        Ok(created.plaintext)
                    }
                    Err(SessionCreationError::Decryption(e)) => Err(failure(e)),
                    Err(SessionCreationError::MissingOneTimeKey(_)) => Err(OlmFailure::NoSession),
                    Err(e) => Err(OlmFailure::Tampered(e.to_string())),
                }
            }
            OlmMessage::Normal(_) => {
                let sessions = self.by_device.get_mut(&key).ok_or(OlmFailure::NoSession)?;
                let mut worst = OlmFailure::NoSession;
                for session in sessions.iter_mut() {
                    match session.decrypt(&message) {
                        Ok(plaintext) => return Ok(plaintext),
                        Err(e) => {
                            let f = failure(e);
                            // A used key in one session says more than a
                            // MAC failure in another.
                            if matches!(f, OlmFailure::Used) || matches!(worst, OlmFailure::NoSession) {
                                worst = f;
                            }
                        }
                    }
                }
                Err(worst)
            }
        }
    }

    pub(crate) fn to_state(&self) -> OlmState {
        let mut sessions: Vec<_> = self
            .by_device
            .iter()
            .map(|((u, d), list)| (*u, d.clone(), list.iter().map(Session::pickle).collect()))
            .collect();
        sessions.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        OlmState { sessions }
    }

    pub(crate) fn from_state(state: OlmState) -> Self {
        let by_device = state
            .sessions
            .into_iter()
            .map(|(u, d, list)| ((u, d), list.into_iter().map(Session::from_pickle).collect()))
            .collect();
        OlmSessions { by_device }
    }
}

fn failure(e: OlmDecryptError) -> OlmFailure {
    match e {
        OlmDecryptError::MissingMessageKey(_) => OlmFailure::Used,
        other => OlmFailure::Tampered(other.to_string()),
    }
}

//! What can go wrong with one message, one send, or the state file.
//!
//! Decryption errors are per message: none of them breaks a session, so a
//! client shows the message as undecryptable and goes on.

use chatgw_protocol::{MessageId, UserId};

use crate::{bundle::BundleError, envelope::EnvelopeError};

/// Why one received message could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The message is not of kind `encrypted`.
    #[error("not an encrypted message")]
    NotEncrypted,
    /// The body is not an envelope.
    #[error("bad envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// This device sent it; the sender keeps its own copy (a device cannot
    /// encrypt to itself).
    #[error("sent by this device")]
    SentByThisDevice,
    /// The envelope has no ciphertext for this device.
    #[error("the message has no ciphertext for this device")]
    NotForThisDevice,
    /// The sending device's keys are not known: fetch its user's keys and
    /// try again.
    #[error("user {user} device {device} is not known: fetch its keys")]
    UnknownDevice {
        /// User.
        user: UserId,
        /// Device.
        device: String,
    },
    /// A pre-key message claims an identity key other than the one the
    /// sending device published.
    #[error("user {user} device {device} used an identity key it did not publish")]
    IdentityMismatch {
        /// User.
        user: UserId,
        /// Device.
        device: String,
    },
    /// The ciphertext was altered, or was not made by the claimed sender
    /// (bad MAC, signature or encoding).
    #[error("tampered ciphertext: {0}")]
    Tampered(String),
    /// The ciphertext was opened before under another message id: a replay.
    #[error("replayed ciphertext: its message key was used before")]
    Replayed {
        /// The message it was first opened in, when this device remembers.
        first: Option<MessageId>,
    },
    /// The same message delivered a second time (sync after a live
    /// delivery): Olm message keys are used once, so it was opened the
    /// first time only.
    #[error("message {0} was already decrypted")]
    AlreadyDecrypted(MessageId),
    /// An Olm message for a session this device does not have.
    #[error("no Olm session with user {user} device {device} opens this message")]
    NoSession {
        /// User.
        user: UserId,
        /// Device.
        device: String,
    },
    /// A group message of a Megolm session this device was never given.
    #[error("unknown group session {0}")]
    UnknownGroupSession(String),
    /// A group message older than the point at which the session was shared
    /// with this device.
    #[error("group message index {0} is before this device's copy of the session")]
    GroupIndexUnknown(u32),
    /// The payload names another conversation or another sender than the
    /// message that carried it.
    #[error("the ciphertext belongs to another conversation or sender")]
    WrongConversation,
    /// The plaintext is not a payload this library reads.
    #[error("the decrypted payload is not understood")]
    BadPayload,
}

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    /// No Olm session with these devices yet: fetch their keys first.
    #[error("no Olm session with {0:?}")]
    MissingSessions(Vec<(UserId, String)>),
    /// The group's members are not known yet: ask for `group_info`.
    #[error("the members of group {0} are not known")]
    MembersUnknown(u64),
    /// `system` and `encrypted` are not kinds a payload carries.
    #[error("kind `{0}` cannot be sent encrypted")]
    Kind(&'static str),
    /// The recipient has no device with keys.
    #[error("user {0} has no device with keys")]
    NoDevices(UserId),
    /// The message does not fit one body.
    #[error("the encrypted message is {0} bytes, over the 65536-byte body limit")]
    TooLarge(usize),
    /// Olm refused to encrypt (a non-contributory key).
    #[error("olm: {0}")]
    Olm(String),
}

/// Why fetched keys were not taken.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A bundle's signatures do not verify.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Olm could not open a session with the bundle's keys.
    #[error("cannot open a session with user {user} device {device}: {reason}")]
    Session {
        /// User.
        user: UserId,
        /// Device.
        device: String,
        /// Olm's reason.
        reason: String,
    },
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("state file: {0}")]
    Io(#[from] std::io::Error),
    /// The passphrase does not open this file.
    #[error("wrong passphrase for the state file")]
    WrongPassphrase,
    /// The file is not a state file, or was damaged.
    #[error("state file corrupted: {0}")]
    Corrupted(&'static str),
    /// The key derivation refused its parameters.
    #[error("key derivation: {0}")]
    Kdf(String),
}

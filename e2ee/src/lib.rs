//! End-to-end encryption for chatgw clients.
//!
//! The gateway relays and stores messages; with this crate it cannot read
//! them. It is the client side of docs/E2EE.md, built on the audited
//! [`vodozemac`] crate (Olm and Megolm, as in Matrix) so that no
//! cryptography is home-made here: this crate decides which keys go where,
//! what is signed and checked, and what is refused.
//!
//! - [`DeviceAccount`]: a device's Olm account and its signed `upload_keys`
//!   content;
//! - [`verify_bundle`]: a fetched bundle is used only after its signatures
//!   verify;
//! - [`DeviceCrypto`]: the whole state of one device without I/O: Olm
//!   sessions per device pair for direct messages and key shares, Megolm
//!   sessions per group with rotation, replay memory, and trust on first
//!   use of contacts' keys ([`TrustEvent`], [`safety_number`]);
//! - [`StateFile`]: that state encrypted at rest under a passphrase
//!   (argon2id and XChaCha20-Poly1305), written atomically;
//! - [`SecureClient`]: [`DeviceCrypto`] driven over one
//!   [`chatgw_client::Client`] connection.
//!
//! The wire format of envelopes is [`Envelope`] (docs/PROTOCOL.md); the
//! plaintexts inside are [`Payload`]s (docs/E2EE.md, "Client payloads").
//!
//! Not here: verifying safety numbers for the user (the application shows
//! [`safety_number`]), key backup, and cross-signing of a user's devices.

#![warn(missing_docs, unreachable_pub)]

mod account;
mod bundle;
mod crypto;
#[cfg(test)]
mod crypto_tests;
mod envelope;
mod error;
mod group;
mod olm;
mod payload;
mod safety;
mod secure;
mod seen;
mod state_file;
mod trust;

pub use account::{DeviceAccount, KeyUpload, ONE_TIME_KEY_LOW, ONE_TIME_KEY_TARGET};
pub use bundle::{verify_bundle, BundleError, VerifiedBundle};
pub use crypto::{Decrypted, DeviceCrypto, GroupSend, Opened};
pub use envelope::{
    Envelope, EnvelopeError, GroupCiphertext, OlmEntry, ENVELOPE_VERSION, MAX_BODY_LITERAL, MAX_ENTRIES, OLM_NORMAL,
    OLM_PRE_KEY,
};
pub use error::{DecryptError, EncryptError, KeysError, StateError};
pub use group::RotationPolicy;
pub use payload::{Conversation, Payload, Sender};
pub use safety::{fingerprint, safety_number};
pub use secure::{SecureClient, SecureConfig, SecureError, SecureEvent};
pub use state_file::{KdfParams, StateFile};
pub use trust::{Contacts, KnownDevice, TrustEvent};

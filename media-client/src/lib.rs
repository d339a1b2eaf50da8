//! The client side of chatgw media (docs/MEDIA.md).
//!
//! A file is encrypted on the device with a fresh key before a byte of it
//! leaves ([`seal`]), uploaded in parts through the signed URLs of an
//! upload slot ([`upload`]), and announced in a message whose body is a
//! [`MediaReference`]: the media id, the ciphertext's SHA-256, and the key.
//! A receiver asks for a download URL, fetches the ciphertext (resuming
//! with `Range` after a dropped connection), checks the digest and
//! decrypts ([`download`]). The gateway and the object store only ever
//! hold ciphertext.
//!
//! [`gateway::MediaTransfers`] does a whole transfer for a connected
//! [`chatgw_client::Client`]: the frames that get a slot, complete the
//! upload and get a download URL, around the HTTP.
//!
//! Not here: the frames themselves (`chatgw-client`), image decoding
//! (the caller passes width, height, duration and thumbnail), end-to-end
//! encryption of the body.

#![warn(missing_docs)]

pub mod download;
mod error;
pub mod gateway;
mod guess;
mod outgoing;
mod reference;
mod retry;
pub mod seal;
pub mod upload;

pub use chatgw_protocol::MediaKind;
pub use error::TransferError;
pub use guess::guess;
pub use outgoing::OutgoingFile;
pub use reference::{MediaDetails, MediaReference, ReferenceError, Thumbnail, MAX_NAME, MAX_THUMBNAIL};
pub use retry::{agent, Retry};

//! Why an upload or a download failed.

use std::io;

use crate::{seal::OpenError, ReferenceError};

/// Why moving a file to or from object storage failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Reading the file to send or writing the received one failed.
    #[error("local file: {0}")]
    Io(#[from] io::Error),
    /// The storage answered with an HTTP status that retrying cannot fix
    /// (a refused or expired URL: 403, 404, ...).
    #[error("storage answered HTTP {status}: {body}")]
    Http {
        /// The status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The storage could not be reached, or kept dropping the connection,
    /// through every retry.
    #[error("storage unreachable after {attempts} attempts: {last}")]
    Unreachable {
        /// Attempts made without progress.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The upload slot does not fit the file (wrong number of part URLs).
    #[error("upload slot does not fit the file: {0}")]
    SlotMismatch(String),
    /// A part's `PUT` was answered without an `ETag`.
    #[error("part {0} was stored but answered without an ETag")]
    NoEtag(usize),
    /// The downloaded ciphertext is not the one the reference names.
    #[error("downloaded file does not match the reference's sha256")]
    DigestMismatch,
    /// The storage sent more or fewer bytes than the reference announces.
    #[error("downloaded {got} bytes, the reference announces {expected}")]
    SizeMismatch {
        /// Bytes received.
        got: u64,
        /// `encrypted_size` of the reference.
        expected: u64,
    },
    /// The ciphertext does not decrypt with the reference's key.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The message body is not a usable media reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
}

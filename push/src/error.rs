//! Errors of building a [`crate::Pusher`] from configuration.

use std::path::PathBuf;

/// Why a push configuration or spec string was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A spec string is malformed or names an unknown provider or key.
    #[error("push spec `{spec}`: {problem}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key, secret or CA file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was read but its content is not usable.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with its content.
        problem: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("HTTP client: {0}")]
    Client(String),
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })
}

pub(crate) fn invalid(path: &std::path::Path, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_owned(), problem: problem.into() }
}

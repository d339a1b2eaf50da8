//! Store errors. Engine errors are carried as sources, never as engine types
//! in the API, so callers do not depend on which engine is behind the trait.

use std::fmt;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O error, full disk, engine poisoned by an
    /// earlier write failure).
    #[error("storage engine failed during {op}: {source}")]
    Backend {
        /// What the store was doing.
        op: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Bytes on disk that this version cannot decode.
    #[error("corrupt record in {table}: {what}")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// What was wrong.
        what: &'static str,
    },
    /// An earlier commit failed and the store refuses writes until
    /// [`MessageStore::recover`](crate::MessageStore::recover) succeeds.
    #[error("the store takes no writes until it recovers from an earlier failure ({cause})")]
    Unwritable {
        /// Why the commit that started the outage failed.
        cause: WriteFailure,
    },
    /// The engine is closed while it is being reopened (a reopen failed and
    /// will be tried again).
    #[error("the store is closed while it is being reopened")]
    Closed,
    /// A remote database holds no chatgw schema yet.
    #[error("the database has no chatgw schema: create it with `chatgw store init --store URL`")]
    SchemaMissing,
    /// A remote database holds a schema of another version than this
    /// release reads and writes.
    #[error(
        "the database holds chatgw schema version {found}, this release needs {expected}: \
         migrate it with `chatgw store init --store URL` from a release that knows both"
    )]
    SchemaVersion {
        /// The version recorded in the database.
        found: i32,
        /// The version this release needs.
        expected: i32,
    },
    /// This backend does not offer the feature asked for.
    #[error("the {backend} store does not support {what}")]
    Unsupported {
        /// Which backend.
        backend: &'static str,
        /// The feature.
        what: &'static str,
    },
}

impl StoreError {
    pub(crate) fn backend(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend { op, source: Box::new(e) }
    }

    /// What kind of trouble this is, in the terms an operator acts on.
    pub fn failure(&self) -> WriteFailure {
        match self {
            StoreError::Unwritable { cause } => *cause,
            StoreError::Corrupt { .. } => WriteFailure::Corrupt,
            StoreError::Closed
            | StoreError::SchemaMissing
            | StoreError::SchemaVersion { .. }
            | StoreError::Unsupported { .. } => WriteFailure::Engine,
            StoreError::Backend { source, .. } => {
                let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
                while let Some(e) = next {
                    if let Some(io) = e.downcast_ref::<std::io::Error>() {
                        return WriteFailure::of_io(io);
                    }
                    if let Some(pg) = e.downcast_ref::<postgres::Error>() {
                        return crate::postgres::failure_of(pg);
                    }
                    if let Some(cql) = e.downcast_ref::<crate::cassandra::CqlError>() {
                        return cql.failure();
                    }
                    next = e.source();
                }
                WriteFailure::Engine
            }
        }
    }
}

/// Why the store could not be used, in the terms an operator acts on:
/// finer than [`WriteFailure`] for a store behind a network, where "the
/// server is down", "the connection broke" and "the server refused this
/// statement" call for different fixes. A metric label and a `/healthz`
/// word ([`ErrorCause::as_str`]); a server refusal carries its SQLSTATE class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCause {
    /// No connection could be made (refused, no route, the server is
    /// starting up or shutting down, reconnecting is backing off).
    Unreachable,
    /// A connection in use was closed by the server or the network (a
    /// restart, `pg_terminate_backend`, a reset).
    ConnectionLost,
    /// Connecting or a statement took too long.
    Timeout,
    /// The database lacks the tables or the schema version this release
    /// needs (`chatgw store init`).
    Schema,
    /// The server refused a statement with an SQL error of this SQLSTATE
    /// class (the first two characters of the code, e.g. `53`).
    Server {
        /// The SQLSTATE class, two ASCII characters.
        class: [u8; 2],
    },
    /// A local failure, as a failed write reports it (the embedded store;
    /// a full disk or read-only database of a remote one).
    Write(WriteFailure),
}

impl ErrorCause {
    /// A stable snake_case name: `unreachable`, `connection_lost`,
    /// `timeout`, `schema`, `server`, or the [`WriteFailure`] name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCause::Unreachable => "unreachable",
            ErrorCause::ConnectionLost => "connection_lost",
            ErrorCause::Timeout => "timeout",
            ErrorCause::Schema => "schema",
            ErrorCause::Server { .. } => "server",
            ErrorCause::Write(w) => w.as_str(),
        }
    }

    /// The SQLSTATE class of a server refusal (`"53"`), else `None`.
    pub fn sqlstate_class(&self) -> Option<&str> {
        match self {
            ErrorCause::Server { class } => std::str::from_utf8(class).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for ErrorCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sqlstate_class() {
            Some(class) => write!(f, "server (SQLSTATE class {class})"),
            None => f.write_str(self.as_str()),
        }
    }
}

impl StoreError {
    /// The finer cause of this error (see [`ErrorCause`]); for the embedded
    /// store it is always the [`StoreError::failure`] kind.
    pub fn cause(&self) -> ErrorCause {
        match self {
            StoreError::SchemaMissing | StoreError::SchemaVersion { .. } => ErrorCause::Schema,
            StoreError::Backend { op, source } => {
                crate::postgres::cause_of(op, source.as_ref()).unwrap_or(ErrorCause::Write(self.failure()))
            }
            _ => ErrorCause::Write(self.failure()),
        }
    }
}

/// The cause of a failed write, coarse enough to be a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteFailure {
    /// The file system is full (or a quota is exhausted).
    NoSpace,
    /// The file system is read-only.
    ReadOnly,
    /// Any other I/O error.
    Io,
    /// Bytes on disk that cannot be decoded.
    Corrupt,
    /// The engine refused without an I/O error (for example poisoned, or
    /// closed while it is reopened).
    Engine,
}

impl WriteFailure {
    /// Every kind, in a fixed order (for metric labels).
    pub const ALL: [WriteFailure; 5] =
        [WriteFailure::NoSpace, WriteFailure::ReadOnly, WriteFailure::Io, WriteFailure::Corrupt, WriteFailure::Engine];

    /// A stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteFailure::NoSpace => "no_space",
            WriteFailure::ReadOnly => "read_only",
            WriteFailure::Io => "io",
            WriteFailure::Corrupt => "corrupt",
            WriteFailure::Engine => "engine",
        }
    }

    /// Classify an I/O error.
    pub fn of_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => WriteFailure::NoSpace,
            std::io::ErrorKind::ReadOnlyFilesystem => WriteFailure::ReadOnly,
            _ => WriteFailure::Io,
        }
    }
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_causes_are_found_through_the_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("engine")]
        struct Engine(#[source] std::io::Error);
        let full = StoreError::backend("commit", Engine(std::io::Error::from(std::io::ErrorKind::StorageFull)));
        assert_eq!(full.failure(), WriteFailure::NoSpace);
        let ro = StoreError::backend("commit", std::io::Error::from(std::io::ErrorKind::ReadOnlyFilesystem));
        assert_eq!(ro.failure(), WriteFailure::ReadOnly);
        let other = StoreError::backend("commit", std::io::Error::other("x"));
        assert_eq!(other.failure(), WriteFailure::Io);
        assert_eq!(StoreError::Unwritable { cause: WriteFailure::NoSpace }.failure(), WriteFailure::NoSpace);
        assert_eq!(StoreError::Closed.failure(), WriteFailure::Engine);
    }
}

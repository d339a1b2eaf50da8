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
            StoreError::Closed | StoreError::SchemaMissing | StoreError::SchemaVersion { .. } => WriteFailure::Engine,
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

//! Store errors. Engine errors are carried as sources, never as engine types
//! in the API, so callers do not depend on which engine is behind the trait.

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
}

impl StoreError {
    pub(crate) fn backend(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend { op, source: Box::new(e) }
    }
}

//! What a driver error means for the store: the [`WriteFailure`] an
//! operator acts on, as `postgres::failure_of` does for PostgreSQL.
//!
//! Cassandra reports no "disk full" or "read-only" state of its own: a
//! replica that cannot write answers the coordinator with a failure, and
//! the coordinator answers the client with a timeout, "unavailable" or a
//! write failure. Those are outages of the cluster as seen from here, like
//! a lost connection, so they count as [`WriteFailure::Io`]; only a server
//! message that names a full disk is [`WriteFailure::NoSpace`]. A refusal
//! for any other reason (a bad statement, no permission, a server that
//! answered something unexpected) is [`WriteFailure::Engine`].

use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};

use crate::WriteFailure;

/// Why a CQL request failed, as carried in [`crate::StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum CqlError {
    /// Running a statement failed (boxed: the driver's error is large).
    #[error(transparent)]
    Execution(Box<ExecutionError>),
    /// Preparing a statement failed.
    #[error(transparent)]
    Prepare(Box<PrepareError>),
    /// The server answered, but not as CQL promises (a conditional insert
    /// without its `[applied]` column).
    #[error("the CQL server answered unexpectedly: {0}")]
    Unexpected(&'static str),
    /// Another writer or reader won a lightweight transaction this commit
    /// needed, and the commit cannot go on: the outcome is unknown, as for
    /// a timeout, so the requests are retried by their idempotency keys.
    #[error("{0}; retry the requests")]
    Raced(&'static str),
}

impl From<ExecutionError> for CqlError {
    fn from(e: ExecutionError) -> Self {
        CqlError::Execution(Box::new(e))
    }
}

impl From<PrepareError> for CqlError {
    fn from(e: PrepareError) -> Self {
        CqlError::Prepare(Box::new(e))
    }
}

impl CqlError {
    /// The cause of a failed write, in metric terms.
    pub(crate) fn failure(&self) -> WriteFailure {
        match self {
            CqlError::Execution(e) => of_execution(e),
            CqlError::Prepare(e) => of_prepare(e),
            CqlError::Unexpected(_) => WriteFailure::Engine,
            CqlError::Raced(_) => WriteFailure::Io,
        }
    }
}

fn of_execution(e: &ExecutionError) -> WriteFailure {
    match e {
        ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) | ExecutionError::EmptyPlan => {
            WriteFailure::Io
        }
        ExecutionError::LastAttemptError(attempt) => of_attempt(attempt),
        ExecutionError::PrepareError(p) => of_prepare(p),
        _ => WriteFailure::Engine,
    }
}

fn of_prepare(e: &PrepareError) -> WriteFailure {
    match e {
        PrepareError::ConnectionPoolError(_) => WriteFailure::Io,
        PrepareError::AllAttemptsFailed { first_attempt } => of_attempt(first_attempt),
        _ => WriteFailure::Engine,
    }
}

fn of_attempt(e: &RequestAttemptError) -> WriteFailure {
    match e {
        RequestAttemptError::BrokenConnectionError(_) | RequestAttemptError::UnableToAllocStreamId => WriteFailure::Io,
        RequestAttemptError::DbError(db, message) => of_db(db, message),
        _ => WriteFailure::Engine,
    }
}

fn of_db(e: &DbError, message: &str) -> WriteFailure {
    let full = ["No space left", "disk full", "Insufficient disk space"];
    if full.iter().any(|m| message.contains(m)) {
        return WriteFailure::NoSpace;
    }
    match e {
        DbError::Unavailable { .. }
        | DbError::ReadTimeout { .. }
        | DbError::WriteTimeout { .. }
        | DbError::ReadFailure { .. }
        | DbError::WriteFailure { .. }
        | DbError::Overloaded
        | DbError::IsBootstrapping
        | DbError::RateLimitReached { .. } => WriteFailure::Io,
        _ => WriteFailure::Engine,
    }
}

#[cfg(test)]
mod tests {
    use scylla::{errors::WriteType, statement::Consistency};

    use super::*;

    fn db(e: DbError, message: &str) -> CqlError {
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(e, message.into())).into()
    }

    #[test]
    fn cluster_outages_are_io_full_disks_no_space_refusals_engine() {
        let unavailable = DbError::Unavailable { consistency: Consistency::LocalQuorum, required: 2, alive: 1 };
        assert_eq!(db(unavailable, "Cannot achieve consistency level").failure(), WriteFailure::Io);
        let timeout = DbError::WriteTimeout {
            consistency: Consistency::LocalQuorum,
            received: 1,
            required: 2,
            write_type: WriteType::UnloggedBatch,
        };
        assert_eq!(db(timeout, "timed out").failure(), WriteFailure::Io);
        assert_eq!(
            db(DbError::ServerError, "java.io.IOException: No space left on device").failure(),
            WriteFailure::NoSpace
        );
        assert_eq!(db(DbError::Invalid, "unconfigured table messages").failure(), WriteFailure::Engine);
        assert_eq!(db(DbError::Unauthorized, "no permission").failure(), WriteFailure::Engine);
        assert_eq!(CqlError::from(ExecutionError::RequestTimeout(Default::default())).failure(), WriteFailure::Io);
        assert_eq!(CqlError::Unexpected("no [applied]").failure(), WriteFailure::Engine);
        assert_eq!(CqlError::Raced("a position was declared a hole").failure(), WriteFailure::Io);
    }

    #[test]
    fn the_failure_is_found_through_a_store_error() {
        let e = crate::StoreError::backend("commit", db(DbError::Overloaded, "busy"));
        assert_eq!(e.failure(), WriteFailure::Io);
    }
}

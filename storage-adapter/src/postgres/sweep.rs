//! The idempotency-key retention sweep on PostgreSQL: a batched `DELETE`
//! by time.
//!
//! Why a keyset walk over the primary key rather than `DELETE ... WHERE id
//! < cutoff`: the table has no index on `id`, and one would cost every
//! commit an index entry. Walking `(sender, client_id)` in key order, a
//! step reads at most `limit` index entries and removes the expired ones
//! among them in the same statement, so each step is short whatever the
//! size of the table, and holds row locks only on keys nobody resends.
//! The age of a key is its message id (a Snowflake id carries its creation
//! time). A commit binding a key concurrently is safe: the `DELETE`
//! rechecks `id < cutoff` on the row it locks, and a fresh binding has a
//! fresh id.

use chatgw_protocol::{MessageId, UserId};

use super::{pg_id, pg_u64, pool::Connection};
use crate::{KeySweep, StoreError};

/// One step's answer: keys examined, keys removed, the last key examined.
pub(super) type StepRow = (i64, i64, Option<i64>, Option<Vec<u8>>);

/// Starts the first step: below every key (the empty client id is never
/// bound, so no key equals it).
const FIRST: (i64, &[u8]) = (i64::MIN, b"");

/// One step (see
/// [`MessageStore::sweep_idempotency_keys`](crate::MessageStore::sweep_idempotency_keys)).
pub(super) fn step(
    c: &mut Connection,
    after: Option<(UserId, &str)>,
    older_than: MessageId,
    limit: usize,
) -> Result<StepRow, postgres::Error> {
    let s = c.prepared(
        "WITH batch AS (
             SELECT sender, client_id, id FROM idempotency
             WHERE (sender, client_id) > ($1, $2) ORDER BY sender, client_id LIMIT $3),
         gone AS (
             DELETE FROM idempotency i USING batch b
             WHERE i.sender = b.sender AND i.client_id = b.client_id AND b.id < $4 AND i.id < $4
             RETURNING 1),
         last AS (SELECT sender, client_id FROM batch ORDER BY sender DESC, client_id DESC LIMIT 1)
         SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM gone),
                (SELECT sender FROM last), (SELECT client_id FROM last)",
    )?;
    let (sender, cid) = match after {
        Some((u, cid)) => (pg_u64(u.0), cid.as_bytes()),
        None => FIRST,
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let row = c.client().query_one(&s, &[&sender, &cid, &limit, &pg_id(older_than)])?;
    Ok((row.get(0), row.get(1), row.get(2), row.get(3)))
}

/// The answer of [`step`] as a [`KeySweep`].
pub(super) fn decode((examined, removed, sender, cid): StepRow, limit: usize) -> Result<KeySweep, StoreError> {
    let examined = usize::try_from(examined).unwrap_or(0);
    let next = match (sender, cid) {
        (Some(s), Some(cid)) if examined == limit => {
            let cid = String::from_utf8(cid)
                .map_err(|_| StoreError::Corrupt { table: "idempotency", what: "a client id that is not UTF-8" })?;
            Some((UserId(s as u64), cid))
        }
        _ => None,
    };
    Ok(KeySweep { examined, removed: u64::try_from(removed).unwrap_or(0), next })
}

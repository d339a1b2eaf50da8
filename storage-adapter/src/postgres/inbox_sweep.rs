//! The inbox retention sweep on PostgreSQL, and the floor a `sync` compares
//! with.
//!
//! Why by inbox and by position: readers page an inbox by its dense
//! positions, so the sweep may only ever remove a prefix. Per inbox, the
//! first entry to keep is found by walking the `(user_id, pos)` index from
//! the bottom to the first event at or above the cutoff (what it walks is
//! exactly what is removed), and the entries below it are deleted, at most
//! `limit` of them, lowest positions first. With several writers a later
//! position can hold a slightly older id (clocks differ by milliseconds);
//! such an entry waits until everything below it is old enough, so no
//! position inside the kept range is ever missing. The inboxes are walked
//! in the order of `inbox_heads` (one row per inbox, its primary key), so
//! a step costs the inboxes it visits plus what it removes, whatever the
//! size of the table. A commit adding an event at the same time is never
//! touched: its id is fresh, far above the cutoff.
//!
//! The floor needs no record: positions start at 1 and stay dense, so the
//! highest position removed is one below the first kept; an inbox the
//! sweep emptied starts after its head.

use chatgw_protocol::{MessageId, UserId};

use super::{pg_id, pg_u64, pool::Connection};
use crate::{InboxPos, InboxSweep};

/// One step (see [`MessageStore::sweep_inboxes`](crate::MessageStore::sweep_inboxes)):
/// inboxes looked at, entries removed, and the inbox the next step starts
/// at.
pub(super) fn step(
    c: &mut Connection,
    from: Option<UserId>,
    older_than: MessageId,
    limit: usize,
) -> Result<InboxSweep, postgres::Error> {
    let s = c.prepared(
        "WITH users AS (
             SELECT user_id FROM inbox_heads WHERE user_id >= $1 ORDER BY user_id LIMIT $2),
         firsts AS (
             SELECT u.user_id,
                    (SELECT min(k.pos) FROM inbox k WHERE k.user_id = u.user_id) AS lowest,
                    (SELECT k.pos FROM inbox k WHERE k.user_id = u.user_id AND k.event >= $3
                     ORDER BY k.pos LIMIT 1) AS kept
             FROM users u),
         gone AS (
             DELETE FROM inbox i USING firsts f
             WHERE i.user_id = f.user_id AND i.pos < f.lowest + $2 AND i.event < $3
               AND (f.kept IS NULL OR i.pos < f.kept)
             RETURNING i.user_id),
         per_user AS (SELECT user_id, count(*) AS n FROM gone GROUP BY user_id)
         SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM gone),
                (SELECT max(user_id) FROM users),
                (SELECT min(user_id) FROM per_user WHERE n >= $2)",
    )?;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let from = from.map_or(i64::MIN, |u| pg_u64(u.0));
    let row = c.client().query_one(&s, &[&from, &limit_sql, &pg_id(older_than)])?;
    let (inboxes, removed): (i64, i64) = (row.get(0), row.get(1));
    let (last, full): (Option<i64>, Option<i64>) = (row.get(2), row.get(3));
    let inboxes = usize::try_from(inboxes).unwrap_or(0);
    // An inbox that gave a whole step's worth may hold more: start there.
    let next = match (full, last) {
        (Some(user), _) => Some(user),
        (None, Some(last)) if inboxes == limit => last.checked_add(1),
        _ => None,
    };
    Ok(InboxSweep { inboxes, removed: u64::try_from(removed).unwrap_or(0), next: next.map(|u| UserId(u as u64)) })
}

/// The highest position removed from `user`'s inbox.
pub(super) fn floor(c: &mut Connection, user: UserId) -> Result<InboxPos, postgres::Error> {
    let s = c.prepared(
        "SELECT coalesce(
             (SELECT min(pos) - 1 FROM inbox WHERE user_id = $1),
             (SELECT head FROM inbox_heads WHERE user_id = $1),
             0)",
    )?;
    let pos: i64 = c.client().query_one(&s, &[&pg_u64(user.0)])?.get(0);
    Ok(InboxPos(u64::try_from(pos).unwrap_or(0)))
}

//! The inbox retention sweep on PostgreSQL, and the floor a `sync` compares
//! with.
//!
//! Why by inbox and by position: readers page an inbox by its dense
//! positions, so the sweep may only ever remove a prefix. Per inbox, the
//! first entry to keep is found by walking the `(user_id, pos)` index from
//! the bottom to the first event at or above the cutoff (what it walks is
//! exactly what is removed, within the inbox's first `limit` positions),
//! and the entries below it are deleted, lowest positions first, at most
//! `limit` in the whole step. With several writers a later
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
         windows AS (
             SELECT u.user_id, (SELECT min(k.pos) FROM inbox k WHERE k.user_id = u.user_id) + $2 AS past
             FROM users u),
         firsts AS (
             SELECT w.user_id, w.past,
                    (SELECT k.pos FROM inbox k WHERE k.user_id = w.user_id AND k.pos < w.past AND k.event >= $3
                     ORDER BY k.pos LIMIT 1) AS kept
             FROM windows w WHERE w.past IS NOT NULL),
         doomed AS (
             SELECT i.user_id, i.pos FROM firsts f CROSS JOIN LATERAL (
                 SELECT k.user_id, k.pos FROM inbox k
                 WHERE k.user_id = f.user_id AND k.pos < coalesce(f.kept, f.past) AND k.event < $3) i
             ORDER BY i.user_id, i.pos LIMIT $2),
         gone AS (
             DELETE FROM inbox d USING doomed o WHERE d.user_id = o.user_id AND d.pos = o.pos
             RETURNING d.user_id)
         SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM gone),
                (SELECT max(user_id) FROM users), (SELECT max(user_id) FROM doomed)",
    )?;
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    let from = from.map_or(i64::MIN, |u| pg_u64(u.0));
    let row = c.client().query_one(&s, &[&from, &limit_sql, &pg_id(older_than)])?;
    let (inboxes, removed): (i64, i64) = (row.get(0), row.get(1));
    let (last, last_removed): (Option<i64>, Option<i64>) = (row.get(2), row.get(3));
    let inboxes = usize::try_from(inboxes).unwrap_or(0);
    // A whole step's worth removed: the last inbox removed from may hold
    // more, so the next step starts there.
    let next = match (last_removed, last) {
        (Some(user), _) if removed >= limit_sql => Some(user),
        (_, Some(last)) if inboxes == limit => last.checked_add(1),
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

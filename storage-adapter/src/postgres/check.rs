//! The integrity check of a PostgreSQL store, with the embedded check's
//! report types ([`IntegrityReport`], [`Violation`]).
//!
//! Why SQL rather than reading every table into the process: the
//! invariants are mostly references ("this inbox row names a message that
//! exists"), which the server answers as anti-joins over the primary-key
//! indexes in one pass each, streaming only the violations back. What SQL
//! cannot judge (receipt bodies and group records are encoded by this crate,
//! and group membership over time is a replay of system messages) is decoded
//! here, reusing the embedded check's replay.
//!
//! Everything runs in one `REPEATABLE READ READ ONLY` transaction: one
//! snapshot, and every commit is one transaction, so the check sees whole
//! batches only and is valid even while gateways write.
//!
//! The SQL is all in [`QUERIES`] and the few statements below it, which
//! name the schema's tables and columns (schema version 1); a schema change
//! is a change here.

use std::collections::{BTreeMap, HashMap};

use chatgw_protocol::{ConversationId, GroupId, MessageId, MessageKind};
use postgres::{fallible_iterator::FallibleIterator, Row, Transaction};

use super::{pg_id, PostgresStore};
use crate::{
    codec::{self, InboxRecord},
    embedded::{hex, receipt_ids, Timeline},
    IntegrityCounts, IntegrityReport, StoreError,
};

/// The 8 bytes of a conversation key after its tag (`d` lo hi, `g` group)
/// at byte `from` (2 or 10), as the `bigint` users and groups are stored as.
macro_rules! key_u64 {
    ($col:literal, $from:literal) => {
        concat!("('x' || encode(substring(", $col, " FROM ", $from, " FOR 8), 'hex'))::bit(64)::bigint")
    };
}

/// `$col` is a direct conversation key (`d`, lo, hi: 17 bytes).
macro_rules! is_direct {
    ($col:literal) => {
        concat!("(substring(", $col, " FROM 1 FOR 1) = 'd'::bytea AND length(", $col, ") = 17)")
    };
}

/// `$col` is a group conversation key (`g`, group: 9 bytes).
macro_rules! is_group {
    ($col:literal) => {
        concat!("(substring(", $col, " FROM 1 FOR 1) = 'g'::bytea AND length(", $col, ") = 9)")
    };
}

/// A violation per row a query returns; `$1`, where a query has it, is the
/// high water.
struct Query {
    table: &'static str,
    sql: &'static str,
    describe: fn(&Row, u64) -> String,
}

/// A stored conversation key, shown as the conversation or as hex.
fn conv(row: &Row, i: usize) -> String {
    let key: Vec<u8> = row.get(i);
    match ConversationId::from_key(&key) {
        Some(c) => format!("{c:?}"),
        None => format!("undecodable conversation {}", hex(&key)),
    }
}

fn int(row: &Row, i: usize) -> u64 {
    row.get::<_, i64>(i) as u64
}

const QUERIES: &[Query] = &[
    Query {
        table: "messages",
        sql: concat!(
            "SELECT id, conversation FROM messages WHERE NOT (",
            is_direct!("conversation"),
            " OR ",
            is_group!("conversation"),
            ")"
        ),
        describe: |r, _| format!("message {}: {}", int(r, 0), conv(r, 1)),
    },
    Query {
        table: "messages",
        sql: "SELECT id, conversation FROM messages WHERE id > $1 ORDER BY id",
        describe: |r, hw| format!("message {} is above the high water {hw}", int(r, 0)),
    },
    Query {
        table: "messages",
        sql: "SELECT id, count(*) FROM messages GROUP BY id HAVING count(*) > 1 ORDER BY id",
        describe: |r, _| format!("message id {} is in {} conversations", int(r, 0), r.get::<_, i64>(1)),
    },
    Query {
        table: "inbox",
        sql: "SELECT user_id, event FROM inbox WHERE event > $1 ORDER BY user_id, event",
        describe: |r, _| format!("user {}: event {} is above the high water", int(r, 0), int(r, 1)),
    },
    Query {
        table: "inbox",
        sql: "SELECT i.user_id, i.event, i.conversation FROM inbox i
              WHERE i.conversation IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation = i.conversation AND m.id = i.event)
              ORDER BY i.user_id, i.event",
        describe: |r, _| format!("user {}: reference to missing message {} of {}", int(r, 0), int(r, 1), conv(r, 2)),
    },
    Query {
        table: "inbox",
        sql: concat!(
            "SELECT user_id, event, conversation FROM inbox WHERE ",
            is_direct!("conversation"),
            " AND user_id <> ",
            key_u64!("conversation", 2),
            " AND user_id <> ",
            key_u64!("conversation", 10),
            " ORDER BY user_id, event"
        ),
        describe: |r, _| {
            format!("user {} holds message {} of {}, a conversation it is not in", int(r, 0), int(r, 1), conv(r, 2))
        },
    },
    Query {
        table: "idempotency",
        sql: "SELECT k.sender, k.client_id, k.id, m.id IS NULL, m.sender, m.client_id
              FROM idempotency k LEFT JOIN messages m ON m.conversation = k.conversation AND m.id = k.id
              WHERE (m.id IS NULL OR m.sender <> k.sender OR m.client_id <> k.client_id)
              ORDER BY k.sender, k.client_id",
        describe: |r, _| {
            let key = format!("({}, {:?})", int(r, 0), String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)));
            match r.get::<_, bool>(3) {
                true => format!("{key} points to missing message {}", int(r, 2)),
                false => format!(
                    "{key} points to message {} from {} with client id {:?}",
                    int(r, 2),
                    int(r, 4),
                    String::from_utf8_lossy(&r.get::<_, Vec<u8>>(5))
                ),
            }
        },
    },
    Query {
        table: "delivered",
        sql: "SELECT d.user_id, d.id, d.conversation FROM delivered d WHERE NOT EXISTS
                (SELECT 1 FROM messages m WHERE m.conversation = d.conversation AND m.id = d.id)
              ORDER BY d.conversation, d.id, d.user_id",
        describe: |r, _| format!("mark of user {} for missing message {} of {}", int(r, 0), int(r, 1), conv(r, 2)),
    },
    Query {
        table: "read_by",
        sql: "SELECT d.user_id, d.id, d.conversation FROM read_by d WHERE NOT EXISTS
                (SELECT 1 FROM messages m WHERE m.conversation = d.conversation AND m.id = d.id)
              ORDER BY d.conversation, d.id, d.user_id",
        describe: |r, _| format!("mark of user {} for missing message {} of {}", int(r, 0), int(r, 1), conv(r, 2)),
    },
    Query {
        table: "reads",
        sql: "SELECT conversation, up_to FROM read_marks WHERE up_to > $1 ORDER BY conversation, reader",
        describe: |r, _| format!("read mark in {} up to {}, above the high water", conv(r, 0), int(r, 1)),
    },
    Query {
        table: "groups",
        sql: concat!(
            "SELECT DISTINCT ",
            key_u64!("m.conversation", 2),
            " FROM messages m WHERE m.kind = 8 AND ",
            is_group!("m.conversation"),
            " AND NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = ",
            key_u64!("m.conversation", 2),
            ") ORDER BY 1"
        ),
        describe: |r, _| format!("group {} has system messages but no record", int(r, 0)),
    },
];

/// The inbox invariants, which depend on the inbox retention: `$1` is the
/// retention cutoff (zero if inboxes are kept forever). An inbox may then
/// start above position 1 (its oldest entries were swept; the kept ones
/// must still be dense), a head may stand over an inbox the sweep emptied,
/// and a message older than the cutoff may be missing from inboxes.
const INBOX_QUERIES: &[Query] = &[
    Query {
        table: "inbox",
        sql: "SELECT user_id, pos, event FROM (
                  SELECT user_id, pos, event, row_number() OVER (PARTITION BY user_id ORDER BY pos) AS n,
                         min(pos) OVER (PARTITION BY user_id) AS first FROM inbox
              ) numbered WHERE pos <> n + CASE WHEN $1::bigint > 0 THEN first - 1 ELSE 0 END
              ORDER BY user_id, pos LIMIT 1000",
        describe: |r, _| {
            format!("user {}: event {} is at position {}, after a gap (positions are dense)", int(r, 0), int(r, 2), int(r, 1))
        },
    },
    Query {
        table: "inbox_heads",
        sql: "SELECT coalesce(h.user_id, i.user_id), coalesce(h.head, 0), coalesce(i.last, 0) FROM inbox_heads h
              FULL JOIN (SELECT user_id, max(pos) AS last FROM inbox GROUP BY user_id) i ON i.user_id = h.user_id
              WHERE h.head IS DISTINCT FROM i.last AND NOT ($1::bigint > 0 AND i.last IS NULL) ORDER BY 1",
        describe: |r, _| {
            format!("user {}: the inbox head says {} but the last position is {}", int(r, 0), int(r, 1), int(r, 2))
        },
    },
    Query {
        table: "inbox",
        sql: "SELECT m.id FROM messages m WHERE NOT EXISTS
                (SELECT 1 FROM inbox i WHERE i.user_id = m.sender AND i.event = m.id AND i.conversation = m.conversation)
              AND m.id >= $1 ORDER BY m.id",
        describe: |r, _| format!("message {} is missing from its sender's inbox", int(r, 0)),
    },
    Query {
        table: "inbox",
        sql: concat!(
            "SELECT m.id FROM messages m WHERE ",
            is_direct!("m.conversation"),
            " AND ",
            key_u64!("m.conversation", 2),
            " <> ",
            key_u64!("m.conversation", 10),
            " AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event = m.id AND i.conversation = m.conversation
                 AND i.user_id = CASE WHEN ",
            key_u64!("m.conversation", 2),
            " = m.sender THEN ",
            key_u64!("m.conversation", 10),
            " ELSE ",
            key_u64!("m.conversation", 2),
            " END) AND m.id >= $1 ORDER BY m.id"
        ),
        describe: |r, _| format!("message {} is missing from the recipient's inbox", int(r, 0)),
    },
];

const COUNTS: &str = "SELECT
    (SELECT coalesce(max(id), 0) FROM high_water),
    (SELECT count(*) FROM messages),
    (SELECT count(*) FROM inbox WHERE conversation IS NOT NULL),
    (SELECT count(*) FROM inbox WHERE receipt IS NOT NULL),
    (SELECT count(*) FROM idempotency),
    (SELECT count(*) FROM delivered),
    (SELECT count(*) FROM read_by),
    (SELECT count(*) FROM read_marks),
    (SELECT count(*) FROM groups)";

const GROUPS: &str = "SELECT id, record FROM groups ORDER BY id";

/// `$1`: a group conversation key.
const SYSTEM_MESSAGES: &str = "SELECT id, body FROM messages WHERE conversation = $1 AND kind = 8 ORDER BY id";

const GROUP_REFERENCES: &str = concat!(
    "SELECT user_id, event, conversation FROM inbox WHERE ",
    is_group!("conversation"),
    " ORDER BY conversation, event"
);

const RECEIPTS: &str = "SELECT user_id, event, receipt FROM inbox WHERE receipt IS NOT NULL ORDER BY user_id, event";

/// `$1`: message ids; answers the positions of those no message has.
const MISSING_IDS: &str = "SELECT k.ord FROM unnest($1::bigint[]) WITH ORDINALITY AS k(id, ord)
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = k.id) ORDER BY k.ord";

/// Receipt ids looked up per statement.
const RECEIPT_CHUNK: usize = 10_000;

impl PostgresStore {
    /// Verify the store's invariants in one snapshot (the same ones as
    /// [`EmbeddedStore::check_integrity`](crate::EmbeddedStore::check_integrity),
    /// see its module). Fails only if the database cannot be read; damage
    /// is reported in the returned [`IntegrityReport`].
    pub fn check_integrity(&self) -> Result<IntegrityReport, StoreError> {
        self.check_integrity_keys_from(MessageId(0))
    }

    /// [`PostgresStore::check_integrity`] of a store whose idempotency keys
    /// expire: a message with an id below `keys_from` (see
    /// [`retention_cutoff`](crate::retention_cutoff)) may have lost its key
    /// to the sweep, which is no violation.
    pub fn check_integrity_keys_from(&self, keys_from: MessageId) -> Result<IntegrityReport, StoreError> {
        self.check_integrity_retained(keys_from, MessageId(0))
    }

    /// [`PostgresStore::check_integrity_keys_from`] of a store whose inboxes
    /// are swept too: an inbox may start above position 1 and a message
    /// with an id below `inbox_from` may be missing from inboxes, which is
    /// no violation; kept entries must still be dense (docs/STORAGE.md,
    /// "Inbox retention").
    pub fn check_integrity_retained(
        &self,
        keys_from: MessageId,
        inbox_from: MessageId,
    ) -> Result<IntegrityReport, StoreError> {
        let mut connection = self.pool.get()?;
        let fail = |e| StoreError::backend("integrity check", e);
        let mut tx = connection
            .client()
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(fail)?;
        let report = check(&mut tx, keys_from, inbox_from).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(report)
    }
}

fn check(
    tx: &mut Transaction<'_>,
    keys_from: MessageId,
    inbox_from: MessageId,
) -> Result<IntegrityReport, postgres::Error> {
    let mut report = IntegrityReport { counts: counts(tx)?, ..IntegrityReport::default() };
    let high_water = report.counts.high_water;
    let hw = high_water as i64;
    let inbox_from = pg_id(inbox_from);
    let queries = QUERIES.iter().map(|q| (q, &hw)).chain(INBOX_QUERIES.iter().map(|q| (q, &inbox_from)));
    for (q, one) in queries {
        let params: &[&(dyn postgres::types::ToSql + Sync)] = if q.sql.contains("$1") { &[one] } else { &[] };
        let mut rows = tx.query_raw(q.sql, params.iter().copied())?;
        while let Some(row) = rows.next()? {
            report.flag(q.table, (q.describe)(&row, high_water));
        }
    }
    check_unkeyed(tx, keys_from, &mut report)?;
    let timelines = check_groups(tx, &mut report)?;
    check_group_references(tx, &timelines, &mut report)?;
    check_receipts(tx, &mut report)?;
    Ok(report)
}

/// Messages with a client id but no idempotency key, but for those below
/// `keys_from`, whose key may have been swept.
fn check_unkeyed(
    tx: &mut Transaction<'_>,
    keys_from: MessageId,
    report: &mut IntegrityReport,
) -> Result<(), postgres::Error> {
    let sql = "SELECT m.id FROM messages m WHERE m.client_id <> ''::bytea AND m.id >= $1 AND NOT EXISTS
                 (SELECT 1 FROM idempotency k WHERE k.sender = m.sender AND k.client_id = m.client_id
                    AND k.conversation = m.conversation AND k.id = m.id)
               ORDER BY m.id";
    for row in tx.query(sql, &[&pg_id(keys_from)])? {
        report.flag("idempotency", format!("message {} has a client id but no idempotency key", int(&row, 0)));
    }
    Ok(())
}

fn counts(tx: &mut Transaction<'_>) -> Result<IntegrityCounts, postgres::Error> {
    let r = tx.query_one(COUNTS, &[])?;
    let n = |i| r.get::<_, i64>(i) as u64;
    Ok(IntegrityCounts {
        high_water: n(0),
        messages: n(1),
        inbox_messages: n(2),
        inbox_receipts: n(3),
        idempotency_keys: n(4),
        delivery_marks: n(5),
        read_by_marks: n(6),
        read_marks: n(7),
        groups: n(8),
    })
}

/// Every group record decodes and equals the membership its system
/// messages replay to. Returns the replays, by group.
fn check_groups(
    tx: &mut Transaction<'_>,
    report: &mut IntegrityReport,
) -> Result<HashMap<u64, Timeline>, postgres::Error> {
    let mut timelines = HashMap::new();
    for row in tx.query(GROUPS, &[])? {
        let gid = int(&row, 0);
        let group = match codec::decode_group(GroupId(gid), &row.get::<_, Vec<u8>>(1)) {
            Ok(g) => g,
            Err(e) => {
                report.flag("groups", format!("group {gid}: {e}"));
                continue;
            }
        };
        let key = codec::conv_key(&ConversationId::Group(GroupId(gid)));
        let system: BTreeMap<u64, String> = tx
            .query(SYSTEM_MESSAGES, &[&key])?
            .iter()
            .map(|r| (int(r, 0), String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)).into_owned()))
            .collect();
        if system.is_empty() {
            report.flag("groups", format!("group {gid} has no system messages"));
            continue;
        }
        match Timeline::replay(&system) {
            Ok(t) => {
                let stored: BTreeMap<u64, bool> = group.members.iter().map(|m| (m.user.0, m.admin)).collect();
                if stored != t.current() {
                    let problem = format!(
                        "group {gid}: the record has members {stored:?}, its system messages give {:?}",
                        t.current()
                    );
                    report.flag("groups", problem);
                }
                timelines.insert(gid, t);
            }
            Err(why) => report.flag("groups", format!("group {gid}: {why}")),
        }
    }
    Ok(timelines)
}

/// Every group message in an inbox is held by a member of the group at
/// the time (groups whose record is broken were flagged already).
fn check_group_references(
    tx: &mut Transaction<'_>,
    timelines: &HashMap<u64, Timeline>,
    report: &mut IntegrityReport,
) -> Result<(), postgres::Error> {
    let mut rows = tx.query_raw(GROUP_REFERENCES, std::iter::empty::<i64>())?;
    while let Some(row) = rows.next()? {
        let (user, event) = (int(&row, 0), int(&row, 1));
        let Some(ConversationId::Group(g)) = ConversationId::from_key(&row.get::<_, Vec<u8>>(2)) else { continue };
        if timelines.get(&g.0).is_some_and(|t| !t.may_hold(event, user)) {
            let problem = format!("user {user} holds message {event} of group {}, a conversation it is not in", g.0);
            report.flag("inbox", problem);
        }
    }
    Ok(())
}

/// Every receipt in an inbox decodes and names existing messages.
fn check_receipts(tx: &mut Transaction<'_>, report: &mut IntegrityReport) -> Result<(), postgres::Error> {
    // (user, receipt event, named id), looked up a chunk at a time.
    let mut named: Vec<(u64, u64, u64)> = Vec::new();
    let mut rows = tx.query_raw(RECEIPTS, std::iter::empty::<i64>())?;
    while let Some(row) = rows.next()? {
        let (user, event) = (int(&row, 0), int(&row, 1));
        match codec::decode_inbox(MessageId(event), &row.get::<_, Vec<u8>>(2)) {
            Ok(InboxRecord::Receipt(r)) => named.extend(receipt_ids(&r).into_iter().map(|id| (user, event, id))),
            Ok(InboxRecord::Amended(_, id) | InboxRecord::Hidden(_, id)) => named.push((user, event, id.0)),
            Ok(InboxRecord::KeysChanged(_)) => {}
            Ok(InboxRecord::Message(_)) => {
                report.flag("inbox", format!("user {user}, event {event}: a message reference stored as a receipt"))
            }
            Err(e) => report.flag("inbox", format!("user {user}, event {event}: {e}")),
        }
    }
    drop(rows);
    for chunk in named.chunks(RECEIPT_CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|(_, _, id)| *id as i64).collect();
        for row in tx.query(MISSING_IDS, &[&ids])? {
            let at = usize::try_from(row.get::<_, i64>(0) - 1).ok().and_then(|i| chunk.get(i));
            if let Some((user, event, id)) = at {
                report.flag("inbox", format!("user {user}: receipt {event} names missing message {id}"));
            }
        }
    }
    Ok(())
}

// MessageKind::System is stored as 8 in the queries above.
const _: () = assert!(MessageKind::System as u8 == 8);

#[cfg(test)]
mod tests;

//! One attempt at a commit batch, and what may be retried.
//!
//! A batch without group writes or group messages is the single statement
//! of `commit`, in autocommit. A batch with them runs the group writes
//! first, in batch order, each as a compare-and-set on `groups.version`
//! together with binding its announcement's idempotency key, and checks
//! each group message's membership version against the group's (read
//! `FOR SHARE`, so it cannot change before COMMIT), then the statement,
//! all in one explicit transaction: a write that conflicts is left out of
//! the statement and nothing of it is stored. After the commit, the originals of keys another
//! writer had bound are read (one more round trip, only then).
//!
//! A deadlock or serialization failure rolls the whole transaction back,
//! so the caller may simply run the batch again ([`is_retryable`]).

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, Message, MessageId, Receipt, UserId};
use postgres::{Client, Statement};

use super::{
    commit::{Columns, Decided, GroupStep, Heads, COMMIT},
    pg_id, pg_u64,
    pool::Connection,
};
use crate::{codec, Committed, GroupVersion, OutboxOptions, Write, WriteOutcome};

/// Bind an announcement's idempotency key ahead of its group write.
const BIND_KEY: &str = "INSERT INTO idempotency (sender, client_id, conversation, id)
VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// Undo [`BIND_KEY`] when the group write it announced conflicted.
const UNBIND_KEY: &str = "DELETE FROM idempotency WHERE sender = $1 AND client_id = $2 AND id = $3";
const CREATE_GROUP: &str = "INSERT INTO groups (id, record, version) VALUES ($1, $2, 1) ON CONFLICT DO NOTHING";
const CHANGE_GROUP: &str = "UPDATE groups SET record = $2, version = version + 1 WHERE id = $1 AND version = $3";
/// The stored versions of the groups a batch's messages were fanned out
/// for, share-locked until COMMIT so no other writer changes them before
/// the messages are in (rows in id order, as every writer takes them).
const GROUP_VERSIONS: &str = "SELECT id, version FROM groups WHERE id = ANY($1) ORDER BY id FOR SHARE";

/// The group whose membership version a message write names, and that
/// version: only group messages carry one.
pub(super) fn membership_of(w: &Write<'_>) -> Option<(i64, i64)> {
    match *w {
        Write::Message { message, membership: Some(v), .. } => match message.conversation {
            ConversationId::Group(g) => Some((pg_u64(g.0), pg_u64(v.0))),
            ConversationId::Direct { .. } => None,
        },
        _ => None,
    }
}

/// The key of a message, if it has one, as the statements bind it.
fn key_of(m: &Message) -> Option<(i64, Vec<u8>, Vec<u8>, i64)> {
    (!m.client_id.is_empty())
        .then(|| (pg_u64(m.from.0), m.client_id.as_bytes().to_vec(), codec::conv_key(&m.conversation), pg_id(m.id)))
}

/// The group writes of a batch, in order: run each compare-and-set (after
/// binding its announcement's key) inside the caller's transaction, and
/// return how each fared. Run one by one, so a second change of the same
/// group in the batch sees the first. A group message whose membership
/// version is not the group's version at that point of the batch (the
/// stored one, share-locked, or the one an earlier write of the batch
/// made) is refused.
fn decide_groups(client: &mut Client, writes: &[Write<'_>]) -> Result<Decided, postgres::Error> {
    let mut decided = Decided::new();
    let mut wanted: Vec<i64> = writes.iter().filter_map(membership_of).map(|(g, _)| g).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut versions: HashMap<i64, i64> = HashMap::new();
    if !wanted.is_empty() {
        for row in client.query(GROUP_VERSIONS, &[&wanted])? {
            versions.insert(row.get(0), row.get(1));
        }
    }
    for (ord, w) in writes.iter().enumerate() {
        if let Some((g, v)) = membership_of(w) {
            if versions.get(&g) != Some(&v) {
                decided.insert(ord, GroupStep::Conflict);
            }
            continue;
        }
        let Write::Group { group, based_on, announce, .. } = *w else { continue };
        let key = announce.and_then(key_of);
        if let Some((sender, client_id, conversation, id)) = &key {
            if client.execute(BIND_KEY, &[sender, client_id, conversation, id])? == 0 {
                decided.insert(ord, GroupStep::KeyTaken);
                continue;
            }
        }
        let record = codec::encode_group(group);
        let changed = if based_on == GroupVersion::ABSENT {
            client.execute(CREATE_GROUP, &[&pg_u64(group.id.0), &record])?
        } else {
            client.execute(CHANGE_GROUP, &[&pg_u64(group.id.0), &record, &pg_u64(based_on.0)])?
        };
        if changed == 0 {
            if let Some((sender, client_id, _, id)) = &key {
                client.execute(UNBIND_KEY, &[sender, client_id, id])?;
            }
            decided.insert(ord, GroupStep::Conflict);
        } else {
            versions.insert(pg_u64(group.id.0), pg_u64(based_on.next().0));
            decided.insert(ord, GroupStep::Applied);
        }
    }
    Ok(decided)
}

/// SQLSTATEs after which the whole batch is simply tried again: the
/// transaction was rolled back and nothing of it is stored.
pub(super) fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// One attempt at a batch: the group compare-and-sets and the main
/// statement in one transaction (the main statement alone when the batch
/// changes no group), then the originals of any taken keys.
pub(super) fn run(
    connection: &mut Connection,
    writes: &[Write<'_>],
    high_water: MessageId,
    outbox: Option<OutboxOptions>,
) -> Result<Committed, postgres::Error> {
    let statement = connection.prepared(COMMIT)?;
    let client = connection.client();
    let checked = |w: &Write<'_>| matches!(w, Write::Group { .. }) || membership_of(w).is_some();
    // A read mark's recount and hidden marks are second statements, so
    // they need the transaction too.
    let reads = |w: &Write<'_>| matches!(w, Write::Receipt { receipt: Receipt::Read { .. }, .. } | Write::Hide { .. });
    // Outbox records are appended in the same transaction.
    let (columns, decided, heads) = if outbox.is_some() || writes.iter().any(|w| checked(w) || reads(w)) {
        client.batch_execute("BEGIN")?;
        let result = in_transaction(client, &statement, writes, high_water, outbox);
        if result.is_err() && !client.is_closed() {
            // Leave the connection usable for the retry; if this fails too
            // the connection is discarded by the caller.
            let _ = client.batch_execute("ROLLBACK");
        }
        result?
    } else {
        let columns = Columns::of(writes, &Decided::new(), high_water);
        let heads = columns.execute(client, &statement)?;
        (columns, Decided::new(), heads)
    };
    let taken: Vec<usize> = heads
        .duplicates
        .iter()
        .copied()
        .chain(decided.iter().filter(|(_, s)| **s == GroupStep::KeyTaken).map(|(ord, _)| *ord))
        .collect();
    let originals = if taken.is_empty() { HashMap::new() } else { originals(connection, writes, &taken)? };
    Ok(columns.outcomes(writes, &decided, &heads, &originals))
}

fn in_transaction(
    client: &mut Client,
    statement: &Statement,
    writes: &[Write<'_>],
    high_water: MessageId,
    outbox: Option<OutboxOptions>,
) -> Result<(Columns, Decided, Heads), postgres::Error> {
    let decided = decide_groups(client, writes)?;
    let columns = Columns::of(writes, &decided, high_water);
    let heads = columns.execute(client, statement)?;
    if columns.moves_read_marks() {
        columns.recount(client)?;
    }
    if columns.hides() {
        columns.hide(client)?;
    }
    if let Some(options) = outbox {
        // Which writes applied is known now; the originals of taken keys
        // are not needed to tell.
        let applied = columns.outcomes(writes, &decided, &heads, &HashMap::new());
        super::outbox::append(client, writes, &applied, options)?;
    }
    client.batch_execute("COMMIT")?;
    Ok((columns, decided, heads))
}

/// The message each taken key of `taken` (write indexes) is bound to.
fn originals(
    connection: &mut Connection,
    writes: &[Write<'_>],
    taken: &[usize],
) -> Result<HashMap<usize, WriteOutcome>, postgres::Error> {
    let keyed: Vec<(usize, &Message)> = taken
        .iter()
        .filter_map(|&ord| match writes.get(ord)? {
            Write::Message { message, .. } => Some((ord, *message)),
            Write::Group { announce: Some(m), .. } => Some((ord, *m)),
            _ => None,
        })
        .collect();
    let keys: Vec<(UserId, &str)> = keyed.iter().map(|(_, m)| (m.from, m.client_id.as_str())).collect();
    let rows = super::reads::messages_by_client_ids(connection, &keys)?;
    let mut out = HashMap::new();
    for row in rows {
        let n = usize::try_from(row.get::<_, i64>(0) - 1).ok();
        let Some((ord, _)) = n.and_then(|n| keyed.get(n)) else { continue };
        let Some(conversation) = ConversationId::from_key(row.get(1)) else { continue };
        let id = MessageId(row.get::<_, i64>(2) as u64);
        out.insert(*ord, WriteOutcome::Duplicate { conversation, id });
    }
    Ok(out)
}

//! What a commit decides before it writes anything else: which messages'
//! idempotency keys are theirs, and which group changes apply.
//!
//! Why first: a write that is not applied must leave nothing behind (no
//! message row, no inbox entry, no position), so its fate is settled by a
//! lightweight transaction before any of its rows is planned:
//! - A message's key: `INSERT ... IF NOT EXISTS`. Not applied means another
//!   message holds it; the answer carries that message, reported as
//!   `Duplicate`. A key that appears twice in one batch is bound once, by
//!   its first write; the later ones are duplicates of whatever the key
//!   then names.
//! - A group write: its announcement's key first (as above), then `INSERT
//!   ... IF NOT EXISTS` (a create) or `UPDATE ... IF version = ?`; if the
//!   record changed meanwhile the key is released again (`DELETE ... IF id
//!   = ?`) and the write is a `Conflict`. Group writes run one by one in
//!   batch order, so a second change of a group in one batch sees the
//!   first; keys of messages are bound all at once.
//! - A group message's membership version (`UPDATE groups SET version = v
//!   ... IF version = v`, once per group and version, in batch order with
//!   the group writes): not applied means another writer changed the group
//!   since the message was fanned out, and the message is a `Conflict`
//!   (its key is not bound). The check is linearizable but not held: a
//!   change that lands between it and the message's inbox entries is not
//!   caught (docs/STORAGE.md).

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, Message, MessageId};
use futures::{stream, StreamExt, TryStreamExt};
use scylla::value::CqlValue;

use super::{answer::Answer, plan::big, statements as cql, Cql, CqlError, CONCURRENCY};
use crate::{codec, GroupVersion, StoreError, Write, WriteOutcome};

type Result<T> = std::result::Result<T, StoreError>;

fn failed(e: CqlError) -> StoreError {
    StoreError::backend("commit", e)
}

/// The values of [`cql::BIND_KEY`] for a message whose key lives `ttl`
/// seconds (0: forever).
pub(super) fn bind_values(m: &Message, ttl: i32) -> Vec<CqlValue> {
    vec![
        big(m.from.0),
        CqlValue::Text(m.client_id.clone()),
        CqlValue::Blob(codec::conv_key(&m.conversation)),
        big(m.id.0),
        CqlValue::Int(ttl),
    ]
}

/// What binding `m`'s key answered: applied, or the message that holds it.
pub(super) fn bound(m: &Message, answer: &Answer) -> Result<WriteOutcome> {
    if answer.applied {
        return Ok(WriteOutcome::Applied);
    }
    let corrupt = |what| StoreError::Corrupt { table: "idempotency", what };
    let conversation = answer.blob("conversation").and_then(ConversationId::from_key);
    let conversation = conversation.ok_or(corrupt("a taken key answered without its conversation"))?;
    let id = answer.big("id").ok_or(corrupt("a taken key answered without its message id"))?;
    let id = MessageId(id as u64);
    // The key names this very message: it was bound by this commit's
    // earlier attempt, so it is this write's, not another's.
    if id == m.id && conversation == m.conversation {
        return Ok(WriteOutcome::Applied);
    }
    Ok(WriteOutcome::Duplicate { conversation, id })
}

async fn bind(c: &Cql, m: &Message) -> Result<WriteOutcome> {
    let answer =
        Answer::of(c.execute(cql::BIND_KEY, bind_values(m, c.key_ttl)).await.map_err(failed)?).map_err(failed)?;
    bound(m, &answer)
}

/// The compare-and-set of one group write, with its values.
pub(super) fn group_cas(record: Vec<u8>, id: u64, based_on: GroupVersion) -> (&'static str, Vec<CqlValue>) {
    if based_on == GroupVersion::ABSENT {
        (cql::CREATE_GROUP, vec![big(id), CqlValue::Blob(record)])
    } else {
        (cql::CHANGE_GROUP, vec![CqlValue::Blob(record), big(based_on.next().0), big(id), big(based_on.0)])
    }
}

async fn group(c: &Cql, w: &Write<'_>) -> Result<WriteOutcome> {
    let Write::Group { group, based_on, announce, .. } = *w else { return Ok(WriteOutcome::Applied) };
    let key = announce.filter(|m| !m.client_id.is_empty());
    if let Some(m) = key {
        let outcome = bind(c, m).await?;
        if outcome != WriteOutcome::Applied {
            return Ok(outcome);
        }
    }
    let (statement, values) = group_cas(codec::encode_group(group), group.id.0, based_on);
    let answer = Answer::of(c.execute(statement, values).await.map_err(failed)?).map_err(failed)?;
    if answer.applied {
        return Ok(WriteOutcome::Applied);
    }
    if let Some(m) = key {
        let values = (big(m.from.0), CqlValue::Text(m.client_id.clone()), big(m.id.0));
        c.execute(cql::UNBIND_KEY, values).await.map_err(failed)?;
    }
    Ok(WriteOutcome::Conflict)
}

/// Whether group `g` is still at version `v` (see [`cql::CHECK_GROUP`]).
async fn membership_holds(c: &Cql, g: u64, v: GroupVersion) -> Result<bool> {
    let answer =
        Answer::of(c.execute(cql::CHECK_GROUP, (big(v.0), big(g), big(v.0))).await.map_err(failed)?).map_err(failed)?;
    Ok(answer.applied)
}

/// The group and version a group message was fanned out for.
fn membership_of(w: &Write<'_>) -> Option<(u64, GroupVersion)> {
    match *w {
        Write::Message { message, membership: Some(v), .. } => match message.conversation {
            ConversationId::Group(g) => Some((g.0, v)),
            ConversationId::Direct { .. } => None,
        },
        _ => None,
    }
}

/// Which writes of a batch bind a key, by key: the first write with each
/// that is not already refused.
fn first_of_each_key<'a>(
    writes: &'a [Write<'a>],
    outcomes: &[WriteOutcome],
) -> (Vec<(usize, &'a Message)>, HashMap<usize, usize>) {
    let mut first: HashMap<(u64, &str), usize> = HashMap::new();
    let mut binds = Vec::new();
    let mut repeats = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        let Write::Message { message, .. } = w else { continue };
        if message.client_id.is_empty() || outcomes.get(i) != Some(&WriteOutcome::Applied) {
            continue;
        }
        match first.get(&(message.from.0, message.client_id.as_str())) {
            Some(&j) => {
                repeats.insert(i, j);
            }
            None => {
                first.insert((message.from.0, message.client_id.as_str()), i);
                binds.push((i, *message));
            }
        }
    }
    (binds, repeats)
}

/// The outcome of every write of the batch, in order.
pub(super) async fn decide(c: &Cql, writes: &[Write<'_>]) -> Result<Vec<WriteOutcome>> {
    let mut outcomes = vec![WriteOutcome::Applied; writes.len()];
    let mut checked: HashMap<(u64, GroupVersion), bool> = HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::Group { group: g, .. } = w {
            outcomes[i] = group(c, w).await?;
            checked.retain(|(id, _), _| *id != g.id.0);
        } else if let Some((g, v)) = membership_of(w) {
            let holds = match checked.get(&(g, v)) {
                Some(h) => *h,
                None => {
                    let h = membership_holds(c, g, v).await?;
                    checked.insert((g, v), h);
                    h
                }
            };
            if !holds {
                outcomes[i] = WriteOutcome::Conflict;
            }
        }
    }
    let (binds, repeats) = first_of_each_key(writes, &outcomes);
    let bound: Vec<(usize, WriteOutcome)> =
        stream::iter(binds.into_iter().map(|(i, m)| async move { Ok::<_, StoreError>((i, bind(c, m).await?)) }))
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
    for (i, outcome) in bound {
        outcomes[i] = outcome;
    }
    for (i, first) in repeats {
        outcomes[i] = match (outcomes[first], writes[first]) {
            (WriteOutcome::Applied, Write::Message { message, .. }) => {
                WriteOutcome::Duplicate { conversation: message.conversation, id: message.id }
            }
            (other, _) => other,
        };
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{MessageKind, Snowflake, UserId};

    use super::*;

    fn text(id: u64, client_id: &str) -> Message {
        Message {
            id: MessageId(id),
            conversation: ConversationId::direct(UserId(1), UserId(2)),
            from: UserId(1),
            kind: MessageKind::Text,
            client_id: client_id.into(),
            ts: Snowflake::unix_ms(MessageId(id)),
            body: "\"b\"".into(),
            amended: None,
        }
    }

    #[test]
    fn a_taken_key_names_the_message_that_holds_it() {
        let m = text(20, "k");
        let original = text(10, "k");
        let conv = CqlValue::Blob(codec::conv_key(&original.conversation));
        let taken = Answer::test(false, &[("conversation", conv.clone()), ("id", big(10))]);
        assert_eq!(
            bound(&m, &taken).unwrap(),
            WriteOutcome::Duplicate { conversation: original.conversation, id: original.id }
        );
        assert_eq!(bound(&m, &Answer::test(true, &[])).unwrap(), WriteOutcome::Applied);
        let ours = Answer::test(false, &[("conversation", conv), ("id", big(20))]);
        assert_eq!(bound(&m, &ours).unwrap(), WriteOutcome::Applied, "bound by this very message");
        let broken = Answer::test(false, &[("id", big(10))]);
        assert!(matches!(bound(&m, &broken), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn a_key_twice_in_a_batch_is_bound_once_by_its_first_write() {
        let (a, b, c, none) = (text(1, "x"), text(2, "y"), text(3, "x"), text(4, ""));
        let to = [UserId(2)];
        let writes: Vec<Write<'_>> = [&a, &b, &c, &none]
            .into_iter()
            .map(|m| Write::Message { message: m, inboxes: &to, membership: None })
            .collect();
        let (binds, repeats) = first_of_each_key(&writes, &[WriteOutcome::Applied; 4]);
        assert_eq!(binds.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1], "no bind for a system message");
        assert_eq!(repeats, HashMap::from([(2, 0)]));
        // A message refused for a stale membership binds nothing: the next
        // with its key binds it.
        let refused = [WriteOutcome::Conflict, WriteOutcome::Applied, WriteOutcome::Applied, WriteOutcome::Applied];
        let (binds, repeats) = first_of_each_key(&writes, &refused);
        assert_eq!(binds.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2]);
        assert!(repeats.is_empty());
    }

    #[test]
    fn a_create_inserts_if_absent_and_a_change_compares_the_version() {
        let (statement, values) = group_cas(vec![9], 7, GroupVersion::ABSENT);
        assert_eq!((statement, values), (cql::CREATE_GROUP, vec![big(7), CqlValue::Blob(vec![9])]));
        let (statement, values) = group_cas(vec![9], 7, GroupVersion(3));
        assert_eq!(statement, cql::CHANGE_GROUP);
        assert_eq!(values, vec![CqlValue::Blob(vec![9]), big(4), big(7), big(3)], "record, next version, id, based on");
    }
}

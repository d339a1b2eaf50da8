//! A commit batch as one statement: one round trip, one transaction, with
//! inbox positions, idempotency keys and group versions decided inside it.
//!
//! Why one statement: the batch is turned into column arrays per table and
//! sent as the parameters of a single prepared statement whose
//! data-modifying CTEs insert from `unnest(...)` of each array. Run outside
//! an explicit transaction it is its own transaction, so a batch of any
//! size costs one round trip, is atomic, and with `synchronous_commit` on
//! the reply comes only after the commit record is flushed.
//!
//! Several writers (docs/STORAGE.md, "Several gateways on one store"):
//! - Positions: the statement raises `inbox_heads.head` of every inbox the
//!   batch touches by the number of its events there (`INSERT ... ON
//!   CONFLICT DO UPDATE`, rows in user order) and numbers the events below
//!   the new head. The head rows stay locked until COMMIT, so a second
//!   writer touching the same inbox waits, then numbers above: positions
//!   are dense per inbox and become visible in position order.
//! - Idempotency: keys are inserted `ON CONFLICT DO NOTHING RETURNING`; a
//!   message whose key did not come back was already bound by another
//!   writer, and nothing of it is written (no message row, no inbox rows,
//!   no position). The statement returns those writes; the original each
//!   key names is read once the commit is done.
//! - Groups: a group write is a compare-and-set on `groups.version`, run
//!   before the main statement inside one explicit transaction (group
//!   changes are rare; a batch without one stays a single statement; see
//!   `attempt`).
//! - Read marks only move forward (`DO UPDATE ... WHERE up_to <
//!   EXCLUDED.up_to`), and the high water is one row per Snowflake
//!   generator, only ever raised.
//!
//! Writers can deadlock (on head rows, key inserts, read marks); rows are
//! locked in sorted order where the statement controls it, and the store
//! retries the whole batch on a deadlock or serialization failure (see
//! `attempt` and `PostgresStore::commit`).

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, Message, MessageId, Receipt, ReceiptStatus, UserId};
use postgres::{Client, Statement};

use super::{pg_id, pg_u64};
use crate::{codec, CommitStats, Committed, InboxPos, Write, WriteOutcome};

pub(super) const COMMIT: &str = "
WITH
msg AS (SELECT * FROM unnest($1::int4[], $2::bytea[], $3::int8[], $4::int8[], $5::int2[], $6::bytea[], $7::bytea[],
                             $8::bool[])
        AS t(ord, conversation, id, sender, kind, client_id, body, keyed)),
k AS (INSERT INTO idempotency (sender, client_id, conversation, id)
      SELECT sender, client_id, conversation, id FROM msg WHERE keyed
      ON CONFLICT DO NOTHING RETURNING sender, client_id, id),
dup AS (SELECT w.ord FROM msg w WHERE w.keyed AND NOT EXISTS
        (SELECT 1 FROM k WHERE k.sender = w.sender AND k.client_id = w.client_id AND k.id = w.id)),
mi AS (INSERT INTO messages (conversation, id, sender, kind, client_id, body)
       SELECT conversation, id, sender, kind, client_id, body FROM msg WHERE ord NOT IN (SELECT ord FROM dup)
       ON CONFLICT DO NOTHING),
live AS (SELECT * FROM unnest($9::int4[], $10::int8[], $11::int8[], $12::bytea[], $13::bytea[]) WITH ORDINALITY
         AS t(ord, user_id, event, conversation, receipt, n)
         WHERE ord NOT IN (SELECT ord FROM dup)),
counts AS (SELECT user_id, count(*) AS n FROM live GROUP BY user_id),
h AS (INSERT INTO inbox_heads (user_id, head) SELECT user_id, n FROM counts ORDER BY user_id
      ON CONFLICT (user_id) DO UPDATE SET head = inbox_heads.head + EXCLUDED.head
      RETURNING user_id, head),
i AS (INSERT INTO inbox (user_id, event, pos, conversation, receipt)
      SELECT l.user_id, l.event, h.head - c.n + row_number() OVER (PARTITION BY l.user_id ORDER BY l.n),
             l.conversation, l.receipt
      FROM live l JOIN h ON h.user_id = l.user_id JOIN counts c ON c.user_id = l.user_id
      ON CONFLICT DO NOTHING),
d AS (INSERT INTO delivered (conversation, id, user_id, at)
      SELECT * FROM unnest($14::bytea[], $15::int8[], $16::int8[], $17::int8[])
      ON CONFLICT DO NOTHING),
r AS (INSERT INTO read_by (conversation, id, user_id, at)
      SELECT * FROM unnest($18::bytea[], $19::int8[], $20::int8[], $21::int8[])
      ON CONFLICT DO NOTHING),
rm AS (INSERT INTO read_marks (conversation, reader, up_to, at)
      SELECT * FROM unnest($22::bytea[], $23::int8[], $24::int8[], $25::int8[])
      ON CONFLICT (conversation, reader) DO UPDATE SET up_to = EXCLUDED.up_to, at = EXCLUDED.at
      WHERE read_marks.up_to < EXCLUDED.up_to),
cl AS (INSERT INTO conversation_list (user_id, conversation, last, unread)
      SELECT l.user_id, l.conversation, max(l.event), count(*) FILTER (WHERE m.sender <> l.user_id AND m.kind <> 8)
      FROM live l JOIN msg m ON m.ord = l.ord AND m.id = l.event
      WHERE l.conversation IS NOT NULL
      GROUP BY l.user_id, l.conversation ORDER BY l.user_id, l.conversation
      ON CONFLICT (user_id, conversation) DO UPDATE
      SET last = GREATEST(conversation_list.last, EXCLUDED.last), unread = conversation_list.unread + EXCLUDED.unread),
hw AS (INSERT INTO high_water (slot, id) VALUES ($26, $27)
      ON CONFLICT (slot) DO UPDATE SET id = EXCLUDED.id WHERE high_water.id < EXCLUDED.id),
am AS (UPDATE messages m SET body = a.body
      FROM unnest($28::bytea[], $29::int8[], $30::bytea[]) AS a(conversation, id, body)
      WHERE m.conversation = a.conversation AND m.id = a.id
        AND (substring(m.body FROM 1 FOR 2) <> '~d'::bytea OR substring(a.body FROM 1 FOR 2) = '~d'::bytea))
SELECT false, user_id, head FROM h
UNION ALL SELECT true, ord::int8, 0::int8 FROM dup";

/// The hidden marks of a batch (`Write::Hide`): a second statement of the
/// commit's transaction, run only when the batch hides something, so other
/// batches pay nothing. A mark already stored keeps its first event.
const HIDE: &str = "INSERT INTO hidden (user_id, conversation, msg, event)
SELECT * FROM unnest($1::int8[], $2::bytea[], $3::int8[], $4::int8[])
ON CONFLICT (user_id, conversation, msg) DO NOTHING";

/// After [`COMMIT`], in its transaction: each reader's unread count of a
/// conversation whose read mark the batch moved, counted again from the
/// stored mark (a statement of its own because the CTEs of [`COMMIT`] do
/// not see each other's rows). Somebody else's messages after the mark up
/// to the row's last, system messages (kind 8) left out, at most
/// [`crate::MAX_UNREAD_RECOUNT`] of them (the `LIMIT`).
pub(super) const RECOUNT: &str = "
UPDATE conversation_list cl
SET unread = (SELECT count(*) FROM (SELECT 1 FROM messages m
              WHERE m.conversation = cl.conversation AND m.id > rm.up_to AND m.id <= cl.last
                AND m.sender <> cl.user_id AND m.kind <> 8 LIMIT 10000) x)
FROM unnest($1::bytea[], $2::int8[]) AS t(conversation, reader)
JOIN read_marks rm ON rm.conversation = t.conversation AND rm.reader = t.reader
WHERE cl.user_id = t.reader AND cl.conversation = t.conversation";

/// `(conversation, id, user, at)` rows of a receipt table.
#[derive(Default)]
pub(super) struct Marks {
    pub(super) conversation: Vec<Vec<u8>>,
    pub(super) id: Vec<i64>,
    pub(super) user: Vec<i64>,
    pub(super) at: Vec<i64>,
}

impl Marks {
    fn push(&mut self, c: &ConversationId, id: MessageId, user: u64, at: u64) {
        self.conversation.push(codec::conv_key(c));
        self.id.push(pg_id(id));
        self.user.push(pg_u64(user));
        self.at.push(pg_u64(at));
    }
}

/// Every column array of [`COMMIT`].
#[derive(Default)]
pub(super) struct Columns {
    m_ord: Vec<i32>,
    m_conversation: Vec<Vec<u8>>,
    m_id: Vec<i64>,
    m_sender: Vec<i64>,
    m_kind: Vec<i16>,
    m_client_id: Vec<Vec<u8>>,
    m_body: Vec<Vec<u8>>,
    m_keyed: Vec<bool>,
    i_ord: Vec<i32>,
    i_user: Vec<i64>,
    i_event: Vec<i64>,
    i_conversation: Vec<Option<Vec<u8>>>,
    i_receipt: Vec<Option<Vec<u8>>>,
    delivered: Marks,
    read_by: Marks,
    rm_conversation: Vec<Vec<u8>>,
    rm_reader: Vec<i64>,
    rm_up_to: Vec<i64>,
    rm_at: Vec<i64>,
    a_conversation: Vec<Vec<u8>>,
    a_id: Vec<i64>,
    a_body: Vec<Vec<u8>>,
    hide_user: Vec<i64>,
    hide_conversation: Vec<Vec<u8>>,
    hide_msg: Vec<i64>,
    hide_event: Vec<i64>,
    h_slot: i16,
    h_id: i64,
    pub(super) stats: CommitStats,
}

/// The high-water row a Snowflake id belongs to: its generator bits.
pub(super) fn slot_of(id: MessageId) -> i16 {
    ((id.0 >> 12) & 0x3ff) as i16
}

/// How a group write fared before the main statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GroupStep {
    /// The record was written and its announcement's key bound.
    Applied,
    /// The stored version was not the one the change was based on.
    Conflict,
    /// The announcement's idempotency key was bound already.
    KeyTaken,
}

/// The group writes of a batch, by index, decided before the main statement.
pub(super) type Decided = HashMap<usize, GroupStep>;

impl Columns {
    /// Split a batch into column arrays, leaving out the writes already
    /// decided as not applied. Read marks are folded per key first
    /// (furthest mark) and sorted, because one statement may not update the
    /// same row twice and writers lock rows in one order.
    pub(super) fn of(writes: &[Write<'_>], decided: &Decided, high_water: MessageId) -> Self {
        let mut c = Columns { h_slot: slot_of(high_water), h_id: pg_id(high_water), ..Columns::default() };
        let mut marks: HashMap<(Vec<u8>, u64), (MessageId, u64)> = HashMap::new();
        // The last amendment of each message: one statement may not update
        // a row twice.
        let mut amended: HashMap<(Vec<u8>, i64), &Message> = HashMap::new();
        let mut rows = 1;
        for (ord, w) in writes.iter().enumerate() {
            if decided.get(&ord).is_some_and(|o| *o != GroupStep::Applied) {
                continue;
            }
            let ord = i32::try_from(ord).unwrap_or(i32::MAX);
            match *w {
                Write::Message { message, inboxes, .. } => rows += c.message(ord, message, inboxes, true),
                Write::Amend { message, inboxes } => {
                    amended.insert((codec::conv_key(&message.conversation), pg_id(message.id)), message);
                    let event = message.amended.map_or(MessageId(0), |a| a.event);
                    let encoded = codec::encode_amended(&message.conversation, message.id);
                    for user in inboxes {
                        c.i_ord.push(ord);
                        c.i_user.push(pg_u64(user.0));
                        c.i_event.push(pg_id(event));
                        c.i_conversation.push(None);
                        c.i_receipt.push(Some(encoded.clone()));
                        c.stats.bytes += 24 + encoded.len();
                    }
                    rows += inboxes.len();
                }
                Write::Hide { user, conversation, msg, event } => {
                    let encoded = codec::encode_hidden(&conversation, msg);
                    c.i_ord.push(ord);
                    c.i_user.push(pg_u64(user.0));
                    c.i_event.push(pg_id(event));
                    c.i_conversation.push(None);
                    c.stats.bytes += 24 + encoded.len();
                    c.i_receipt.push(Some(encoded));
                    let conversation = codec::conv_key(&conversation);
                    c.stats.bytes += 24 + conversation.len();
                    c.hide_user.push(pg_u64(user.0));
                    c.hide_conversation.push(conversation);
                    c.hide_msg.push(pg_id(msg));
                    c.hide_event.push(pg_id(event));
                    rows += 2;
                }
                Write::KeysChanged { user, event, inboxes } => {
                    let encoded = codec::encode_keys_changed(*user);
                    for to in inboxes {
                        c.i_ord.push(ord);
                        c.i_user.push(pg_u64(to.0));
                        c.i_event.push(pg_id(event));
                        c.i_conversation.push(None);
                        c.i_receipt.push(Some(encoded.clone()));
                        c.stats.bytes += 24 + encoded.len();
                    }
                    rows += inboxes.len();
                }
                Write::Group { group, announce, inboxes, .. } => {
                    // Applied: the record is written, and the key (if any) bound.
                    c.stats.bytes += 16 + codec::encode_group(group).len();
                    rows += 1;
                    if let Some(m) = announce {
                        rows += c.message(ord, m, inboxes, false);
                    }
                }
                Write::Receipt { receipt, inboxes } => {
                    match receipt {
                        Receipt::Delivered { conversation, by, ids, at, .. } => {
                            for id in ids {
                                c.delivered.push(conversation, *id, by.0, *at);
                                rows += 1;
                            }
                        }
                        Receipt::Read { conversation, by, up_to, at, .. } => {
                            let mark = marks.entry((codec::conv_key(conversation), by.0)).or_insert((*up_to, *at));
                            if *up_to > mark.0 {
                                *mark = (*up_to, *at);
                            }
                        }
                        Receipt::Group { group, status, items, at, .. } => {
                            let conversation = ConversationId::Group(*group);
                            let table = match status {
                                ReceiptStatus::Delivered => &mut c.delivered,
                                ReceiptStatus::Read => &mut c.read_by,
                            };
                            for (by, ids) in items {
                                for id in ids {
                                    table.push(&conversation, *id, by.0, *at);
                                    rows += 1;
                                }
                            }
                        }
                    }
                    let encoded = codec::encode_receipt(receipt);
                    for user in inboxes {
                        c.i_ord.push(ord);
                        c.i_user.push(pg_u64(user.0));
                        c.i_event.push(pg_id(receipt.event()));
                        c.i_conversation.push(None);
                        c.i_receipt.push(Some(encoded.clone()));
                        c.stats.bytes += 24 + encoded.len();
                    }
                    rows += inboxes.len();
                }
            }
        }
        let mut amended: Vec<_> = amended.into_iter().collect();
        amended.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((conversation, id), m) in amended {
            let body = codec::stored_body(m).into_owned().into_bytes();
            c.stats.bytes += conversation.len() + 8 + body.len();
            c.a_conversation.push(conversation);
            c.a_id.push(id);
            c.a_body.push(body);
            rows += 1;
        }
        c.stats.bytes += 36 * (c.delivered.id.len() + c.read_by.id.len());
        let mut marks: Vec<_> = marks.into_iter().collect();
        marks.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for ((conversation, reader), (up_to, at)) in marks {
            c.stats.bytes += conversation.len() + 24;
            c.rm_conversation.push(conversation);
            c.rm_reader.push(pg_u64(reader));
            c.rm_up_to.push(pg_id(up_to));
            c.rm_at.push(pg_u64(at));
            rows += 1;
        }
        c.stats.records = rows;
        c
    }

    /// One message and its inbox rows; `keyed` when the statement binds
    /// its idempotency key (an announcement's key is bound before). Returns
    /// the rows written.
    fn message(&mut self, ord: i32, m: &Message, inboxes: &[UserId], keyed: bool) -> usize {
        let conv = codec::conv_key(&m.conversation);
        let keyed = keyed && !m.client_id.is_empty();
        self.stats.bytes += conv.len() + 18 + m.client_id.len() + m.body.len();
        self.m_ord.push(ord);
        self.m_conversation.push(conv.clone());
        self.m_id.push(pg_id(m.id));
        self.m_sender.push(pg_u64(m.from.0));
        self.m_kind.push(i16::from(m.kind.to_u8()));
        self.m_client_id.push(m.client_id.as_bytes().to_vec());
        self.m_body.push(m.body.as_bytes().to_vec());
        self.m_keyed.push(keyed);
        for user in inboxes {
            self.i_ord.push(ord);
            self.i_user.push(pg_u64(user.0));
            self.i_event.push(pg_id(m.id));
            self.i_conversation.push(Some(conv.clone()));
            self.i_receipt.push(None);
            self.stats.bytes += 24 + conv.len();
        }
        let key_rows = if m.client_id.is_empty() { 0 } else { 1 };
        1 + key_rows + inboxes.len()
    }

    /// Run [`COMMIT`]: the new head of every inbox touched, and the writes
    /// refused for a taken idempotency key.
    pub(super) fn execute(&self, client: &mut Client, statement: &Statement) -> Result<Heads, postgres::Error> {
        let rows = client.query(
            statement,
            &[
                &self.m_ord,
                &self.m_conversation,
                &self.m_id,
                &self.m_sender,
                &self.m_kind,
                &self.m_client_id,
                &self.m_body,
                &self.m_keyed,
                &self.i_ord,
                &self.i_user,
                &self.i_event,
                &self.i_conversation,
                &self.i_receipt,
                &self.delivered.conversation,
                &self.delivered.id,
                &self.delivered.user,
                &self.delivered.at,
                &self.read_by.conversation,
                &self.read_by.id,
                &self.read_by.user,
                &self.read_by.at,
                &self.rm_conversation,
                &self.rm_reader,
                &self.rm_up_to,
                &self.rm_at,
                &self.h_slot,
                &self.h_id,
                &self.a_conversation,
                &self.a_id,
                &self.a_body,
            ],
        )?;
        let mut heads = Heads::default();
        for row in rows {
            if row.get::<_, bool>(0) {
                heads.duplicates.push(usize::try_from(row.get::<_, i64>(1)).unwrap_or(usize::MAX));
            } else {
                heads.after.insert(row.get(1), row.get(2));
            }
        }
        Ok(heads)
    }

    /// Whether the batch moves read marks, whose unread counts [`RECOUNT`]
    /// then recounts in the same transaction.
    pub(super) fn moves_read_marks(&self) -> bool {
        !self.rm_reader.is_empty()
    }

    /// Whether the batch hides messages, whose marks [`HIDE`] then writes
    /// in the same transaction.
    pub(super) fn hides(&self) -> bool {
        !self.hide_user.is_empty()
    }

    /// Run [`HIDE`] for the hidden marks of this batch.
    pub(super) fn hide(&self, client: &mut Client) -> Result<(), postgres::Error> {
        client.execute(HIDE, &[&self.hide_user, &self.hide_conversation, &self.hide_msg, &self.hide_event])?;
        Ok(())
    }

    /// Run [`RECOUNT`] for the read marks of this batch.
    pub(super) fn recount(&self, client: &mut Client) -> Result<(), postgres::Error> {
        client.execute(RECOUNT, &[&self.rm_conversation, &self.rm_reader])?;
        Ok(())
    }

    /// Number the applied events of each inbox below its new head, in
    /// batch order (the order the statement numbered them in), and report
    /// each write's outcome. `originals` names, per refused write, the
    /// message its key is bound to.
    pub(super) fn outcomes(
        &self,
        writes: &[Write<'_>],
        decided: &Decided,
        heads: &Heads,
        originals: &HashMap<usize, WriteOutcome>,
    ) -> Committed {
        let refused = |ord: usize| heads.duplicates.contains(&ord);
        // Events per inbox in this batch, to find where each inbox's first
        // new position is.
        let mut next: HashMap<i64, i64> = HashMap::new();
        for (ord, user) in self.i_ord.iter().zip(&self.i_user) {
            if !refused(*ord as usize) {
                *next.entry(*user).or_insert(0) += 1;
            }
        }
        for (user, n) in next.iter_mut() {
            *n = heads.after.get(user).copied().unwrap_or(0) - *n + 1;
        }
        let mut out = Committed::with_capacity(writes.len(), self.i_user.len());
        for (ord, w) in writes.iter().enumerate() {
            // A taken key whose original cannot be read is reported as a
            // conflict: the caller answers "retry", never a false success.
            // It happens when the key sweep unbinds an expired key between
            // the statement and the read of its original; the retry then
            // binds the key anew, as any resend after the retention does.
            let original = || originals.get(&ord).copied().unwrap_or(WriteOutcome::Conflict);
            let outcome = match decided.get(&ord) {
                Some(GroupStep::Conflict) => WriteOutcome::Conflict,
                Some(GroupStep::KeyTaken) => original(),
                _ if refused(ord) => original(),
                _ => WriteOutcome::Applied,
            };
            if outcome != WriteOutcome::Applied {
                out.push(outcome, std::iter::empty());
                continue;
            }
            let positions = w.inboxes().iter().map(|user| {
                let slot = next.entry(pg_u64(user.0)).or_insert(0);
                let pos = *slot;
                *slot += 1;
                InboxPos(u64::try_from(pos).unwrap_or(0))
            });
            out.push(outcome, positions);
        }
        out.stats = self.stats;
        out
    }
}

/// What [`COMMIT`] returned.
#[derive(Default)]
pub(super) struct Heads {
    /// The head of every inbox touched, after the commit.
    pub(super) after: HashMap<i64, i64>,
    /// Writes (by index) whose idempotency key was already bound.
    pub(super) duplicates: Vec<usize>,
}

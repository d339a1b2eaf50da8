//! A commit batch as one statement: one round trip, one transaction.
//!
//! Why one statement: the batch is turned into column arrays per table and
//! sent as the parameters of a single prepared statement whose
//! data-modifying CTEs insert from `unnest(...)` of each array. Run outside
//! an explicit transaction it is its own transaction, so a batch of any
//! size costs one round trip, is atomic, and with `synchronous_commit` on
//! the reply comes only after the commit record is flushed.
//!
//! Several writers: every insert is idempotent (`ON CONFLICT DO NOTHING`,
//! so a batch retried after an unknown outcome changes nothing), the
//! idempotency key keeps the first message bound to it, a read mark only
//! moves forward (`DO UPDATE ... WHERE up_to < EXCLUDED.up_to`, evaluated on
//! the locked row), and the high water is one row per Snowflake generator,
//! only ever raised, so gateways do not contend on one row.

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, MessageId, Receipt, ReceiptStatus};

use super::{pg_id, pg_u64};
use crate::{codec, CommitStats, Write};

pub(super) const COMMIT: &str = "
WITH
m AS (INSERT INTO messages (conversation, id, sender, kind, client_id, body)
      SELECT * FROM unnest($1::bytea[], $2::int8[], $3::int8[], $4::int2[], $5::bytea[], $6::bytea[])
      ON CONFLICT DO NOTHING),
k AS (INSERT INTO idempotency (sender, client_id, conversation, id)
      SELECT * FROM unnest($7::int8[], $8::bytea[], $9::bytea[], $10::int8[])
      ON CONFLICT DO NOTHING),
i AS (INSERT INTO inbox (user_id, event, conversation, receipt)
      SELECT * FROM unnest($11::int8[], $12::int8[], $13::bytea[], $14::bytea[])
      ON CONFLICT DO NOTHING),
d AS (INSERT INTO delivered (conversation, id, user_id, at)
      SELECT * FROM unnest($15::bytea[], $16::int8[], $17::int8[], $18::int8[])
      ON CONFLICT DO NOTHING),
r AS (INSERT INTO read_by (conversation, id, user_id, at)
      SELECT * FROM unnest($19::bytea[], $20::int8[], $21::int8[], $22::int8[])
      ON CONFLICT DO NOTHING),
rm AS (INSERT INTO read_marks (conversation, reader, up_to, at)
      SELECT * FROM unnest($23::bytea[], $24::int8[], $25::int8[], $26::int8[])
      ON CONFLICT (conversation, reader) DO UPDATE SET up_to = EXCLUDED.up_to, at = EXCLUDED.at
      WHERE read_marks.up_to < EXCLUDED.up_to),
g AS (INSERT INTO groups (id, record)
      SELECT * FROM unnest($27::int8[], $28::bytea[])
      ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record),
h AS (INSERT INTO high_water (slot, id) VALUES ($29, $30)
      ON CONFLICT (slot) DO UPDATE SET id = EXCLUDED.id WHERE high_water.id < EXCLUDED.id)
SELECT 1";

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
    pub(super) m_conversation: Vec<Vec<u8>>,
    pub(super) m_id: Vec<i64>,
    pub(super) m_sender: Vec<i64>,
    pub(super) m_kind: Vec<i16>,
    pub(super) m_client_id: Vec<Vec<u8>>,
    pub(super) m_body: Vec<Vec<u8>>,
    pub(super) k_sender: Vec<i64>,
    pub(super) k_client_id: Vec<Vec<u8>>,
    pub(super) k_conversation: Vec<Vec<u8>>,
    pub(super) k_id: Vec<i64>,
    pub(super) i_user: Vec<i64>,
    pub(super) i_event: Vec<i64>,
    pub(super) i_conversation: Vec<Option<Vec<u8>>>,
    pub(super) i_receipt: Vec<Option<Vec<u8>>>,
    pub(super) delivered: Marks,
    pub(super) read_by: Marks,
    pub(super) rm_conversation: Vec<Vec<u8>>,
    pub(super) rm_reader: Vec<i64>,
    pub(super) rm_up_to: Vec<i64>,
    pub(super) rm_at: Vec<i64>,
    pub(super) g_id: Vec<i64>,
    pub(super) g_record: Vec<Vec<u8>>,
    pub(super) h_slot: i16,
    pub(super) h_id: i64,
    pub(super) stats: CommitStats,
}

/// The high-water row a Snowflake id belongs to: its generator bits.
fn slot_of(id: MessageId) -> i16 {
    ((id.0 >> 12) & 0x3ff) as i16
}

impl Columns {
    /// Split a batch into column arrays. Read marks and group records are
    /// folded per key first (furthest mark, last record), because one
    /// statement may not update the same row twice.
    pub(super) fn of(writes: &[Write<'_>], high_water: MessageId) -> Self {
        let mut c = Columns { h_slot: slot_of(high_water), h_id: pg_id(high_water), ..Columns::default() };
        let mut marks: HashMap<(Vec<u8>, u64), (MessageId, u64)> = HashMap::new();
        let mut groups: HashMap<u64, Vec<u8>> = HashMap::new();
        let mut rows = 1;
        for w in writes {
            match *w {
                Write::Message { message: m, inboxes } => {
                    let conv = codec::conv_key(&m.conversation);
                    c.stats.bytes += conv.len() + 18 + m.client_id.len() + m.body.len();
                    c.m_conversation.push(conv.clone());
                    c.m_id.push(pg_id(m.id));
                    c.m_sender.push(pg_u64(m.from.0));
                    c.m_kind.push(i16::from(m.kind.to_u8()));
                    c.m_client_id.push(m.client_id.as_bytes().to_vec());
                    c.m_body.push(m.body.as_bytes().to_vec());
                    // System messages without a client id have no idempotency key.
                    if !m.client_id.is_empty() {
                        c.k_sender.push(pg_u64(m.from.0));
                        c.k_client_id.push(m.client_id.as_bytes().to_vec());
                        c.k_conversation.push(conv.clone());
                        c.k_id.push(pg_id(m.id));
                        c.stats.bytes += 16 + m.client_id.len() + conv.len();
                        rows += 1;
                    }
                    for user in inboxes {
                        c.i_user.push(pg_u64(user.0));
                        c.i_event.push(pg_id(m.id));
                        c.i_conversation.push(Some(conv.clone()));
                        c.i_receipt.push(None);
                        c.stats.bytes += 16 + conv.len();
                    }
                    rows += 1 + inboxes.len();
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
                        c.i_user.push(pg_u64(user.0));
                        c.i_event.push(pg_id(receipt.event()));
                        c.i_conversation.push(None);
                        c.i_receipt.push(Some(encoded.clone()));
                        c.stats.bytes += 16 + encoded.len();
                    }
                    rows += inboxes.len();
                }
                Write::Group { group } => {
                    groups.insert(group.id.0, codec::encode_group(group));
                }
            }
        }
        c.stats.bytes += 36 * (c.delivered.id.len() + c.read_by.id.len());
        for ((conversation, reader), (up_to, at)) in marks {
            c.stats.bytes += conversation.len() + 24;
            c.rm_conversation.push(conversation);
            c.rm_reader.push(pg_u64(reader));
            c.rm_up_to.push(pg_id(up_to));
            c.rm_at.push(pg_u64(at));
            rows += 1;
        }
        for (id, record) in groups {
            c.stats.bytes += 8 + record.len();
            c.g_id.push(pg_u64(id));
            c.g_record.push(record);
            rows += 1;
        }
        c.stats.records = rows;
        c
    }
}

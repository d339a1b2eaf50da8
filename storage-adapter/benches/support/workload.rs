//! The workload both the commit benchmark and the instruction-count loop
//! run: direct messages of ~100-byte bodies with client ids, between 400
//! distinct pairs of users, each stored in its sender's and its
//! recipient's inbox, committed in batches the way the group committer
//! commits them.

use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
use chatgw_storage::{EmbeddedStore, MessageStore, Write};

/// Distinct `(sender, recipient)` pairs the messages cycle through.
pub(crate) const PAIRS: u64 = 400;

/// Makes the messages of successive batches.
pub(crate) struct Workload {
    ids: Snowflake,
    seq: u64,
}

impl Workload {
    pub(crate) fn new() -> Self {
        Workload { ids: Snowflake::new(1), seq: 0 }
    }

    /// The next `n` messages, each with the two inboxes it goes to.
    pub(crate) fn batch(&mut self, n: usize) -> Vec<(Message, [UserId; 2])> {
        (0..n)
            .map(|_| {
                self.seq += 1;
                let pair = self.seq % PAIRS;
                // Half the pairs talk each way, so both users send.
                let (a, b) = if self.seq % 2 == 0 { (pair, pair + PAIRS) } else { (pair + PAIRS, pair) };
                let (from, to) = (UserId(1_000 + a), UserId(1_000 + b));
                let id = self.ids.next_id();
                let message = Message {
                    id,
                    conversation: ConversationId::direct(from, to),
                    from,
                    kind: MessageKind::Text,
                    // A UUID-shaped client id, as most clients send.
                    client_id: format!("{:08x}-4e1c-4b7a-9f3d-{:012x}", self.seq >> 12, self.seq),
                    ts: Snowflake::unix_ms(id),
                    // A JSON string literal of 100 bytes.
                    body: format!("\"{:<98}\"", format!("message {} of the benchmark", self.seq)),
                    amended: None,
                };
                (message, [from, to])
            })
            .collect()
    }
}

/// Commit `batch` as the gateway's group committer does: one batched
/// lookup of the client ids it has not seen (all of them: they are new),
/// then one commit. Returns the records and bytes written.
pub(crate) fn commit(store: &EmbeddedStore, batch: &[(Message, [UserId; 2])]) -> (usize, usize) {
    let keys: Vec<(UserId, &str)> = batch.iter().map(|(m, _)| (m.from, m.client_id.as_str())).collect();
    let found = store.messages_by_client_ids(&keys).expect("lookup");
    assert!(found.iter().all(Option::is_none), "every client id is new");
    let writes: Vec<Write<'_>> =
        batch.iter().map(|(m, inboxes)| Write::Message { message: m, inboxes, membership: None }).collect();
    let last = batch.last().map_or(MessageId(0), |(m, _)| m.id);
    let done = store.commit(&writes, last).expect("commit");
    (done.stats.records, done.stats.bytes)
}

//! The store's answers for one batch, asked for before the batch is
//! prepared: one call per kind of lookup per batch.
//!
//! Why: the checks of a request (was this client id used, does this
//! message exist and who sent it, was it delivered to this user, how far
//! has this user read) were point reads made one after another. On the
//! embedded store each is a few microseconds; on a remote store with a
//! millisecond round trip, a batch of 2,000 requests would wait seconds.
//! So before preparing a batch the committer lists every key its caches
//! (in-flight decisions, recent messages) cannot answer, asks the store for
//! each kind once, and the per-request checks then read the answers here.
//!
//! Why the answers stay true while the batch is prepared: they are the
//! store's state after every batch the writer had finished when this one
//! began, and every decision since (earlier batches still in flight, and
//! earlier requests of this batch) is in the in-flight decisions, which the
//! checks consult first. A key nobody predicted (a cache entry evicted while
//! the batch was prepared) is asked of the store on its own, as before.

use std::collections::{HashMap, HashSet};

use chatgw_protocol::{ConversationId, Message, MessageId, UserId};
use chatgw_storage::{MessageHeader, StoreError};

use super::{batch::Batch, client_ids::digest, groups::create_key};
use crate::events::{CommitRequest, GroupOp};

/// What the store said about the keys one batch needs.
#[derive(Default)]
pub(super) struct Lookups {
    pub(super) client_ids: HashMap<(UserId, String), Option<(ConversationId, MessageId)>>,
    /// The digest of kind and body of each stored message a send's client
    /// id is bound to (in the send's conversation), `None` if the store no
    /// longer has it: what a resend is told apart from a conflict by.
    pub(super) originals: HashMap<(ConversationId, MessageId), Option<u64>>,
    pub(super) headers: HashMap<(ConversationId, MessageId), Option<MessageHeader>>,
    pub(super) delivered: HashMap<(ConversationId, MessageId, UserId), bool>,
    pub(super) reads: HashMap<(ConversationId, UserId), Option<MessageId>>,
    /// Messages amendments of this batch change, as stored.
    pub(super) messages: HashMap<(ConversationId, MessageId), Option<Message>>,
}

impl Lookups {
    pub(super) fn clear(&mut self) {
        self.client_ids.clear();
        self.originals.clear();
        self.headers.clear();
        self.delivered.clear();
        self.reads.clear();
        self.messages.clear();
    }
}

/// Keys wanted, each once, in first-seen order.
#[derive(Default)]
struct Wanted {
    client_ids: Vec<(UserId, String)>,
    headers: Vec<(ConversationId, MessageId)>,
    delivered: Vec<(ConversationId, MessageId, UserId)>,
    reads: Vec<(ConversationId, UserId)>,
    seen_client_ids: HashSet<(UserId, String)>,
    seen_headers: HashSet<(ConversationId, MessageId)>,
    seen_delivered: HashSet<(ConversationId, MessageId, UserId)>,
    seen_reads: HashSet<(ConversationId, UserId)>,
}

impl Wanted {
    fn client_id(&mut self, from: UserId, client_id: &str) {
        let key = (from, client_id.to_owned());
        if self.seen_client_ids.insert(key.clone()) {
            self.client_ids.push(key);
        }
    }

    fn header(&mut self, c: ConversationId, id: MessageId) {
        if self.seen_headers.insert((c, id)) {
            self.headers.push((c, id));
        }
    }

    fn delivered(&mut self, c: ConversationId, id: MessageId, user: UserId) {
        if self.seen_delivered.insert((c, id, user)) {
            self.delivered.push((c, id, user));
        }
    }

    fn read(&mut self, c: ConversationId, user: UserId) {
        if self.seen_reads.insert((c, user)) {
            self.reads.push((c, user));
        }
    }
}

impl Batch<'_> {
    /// Ask the store, once per kind, for every key `requests` will need
    /// that the caches cannot answer now.
    pub(super) fn look_up(&mut self, requests: &[CommitRequest]) -> Result<(), StoreError> {
        let mut want = Wanted::default();
        // Whose block lists the batch checks: recipients of direct sends,
        // senders of the messages a direct receipt acknowledges.
        let mut blockers = Vec::new();
        // Messages to amend that this committer has not amended itself.
        let mut amends: Vec<(ConversationId, MessageId)> = Vec::new();
        for r in requests {
            match r {
                CommitRequest::Send { conversation: c @ ConversationId::Direct { .. }, from, .. }
                | CommitRequest::Delivered { conversation: c @ ConversationId::Direct { .. }, by: from, .. }
                | CommitRequest::Read { conversation: c @ ConversationId::Direct { .. }, by: from, .. } => {
                    blockers.extend(c.peer_of(*from).filter(|p| p != from));
                }
                _ => {}
            }
            match r {
                CommitRequest::Send { from, client_id, .. } => {
                    if self.in_flight.client_id(*from, client_id).is_none() {
                        want.client_id(*from, client_id);
                    }
                }
                CommitRequest::Group { by, op: GroupOp::Create { request_id, .. }, .. } => {
                    let key = create_key(request_id);
                    if self.in_flight.client_id(*by, &key).is_none() {
                        want.client_id(*by, &key);
                    }
                }
                CommitRequest::Delivered { by, conversation, ids, .. } => {
                    for id in ids {
                        if self.recent.contains((*conversation, *id)) {
                            continue;
                        }
                        want.header(*conversation, *id);
                        if !self.in_flight.is_delivered(*conversation, *id, *by) {
                            want.delivered(*conversation, *id, *by);
                        }
                    }
                }
                CommitRequest::Read { by, conversation, up_to, .. } => {
                    if !self.recent.contains((*conversation, *up_to)) {
                        want.header(*conversation, *up_to);
                    }
                    if self.in_flight.read_mark(*conversation, *by).is_none() {
                        want.read(*conversation, *by);
                    }
                }
                CommitRequest::Amend { conversation, msg, .. } => {
                    if self.amended.get((*conversation, *msg)).is_none() && !amends.contains(&(*conversation, *msg)) {
                        amends.push((*conversation, *msg));
                    }
                }
                CommitRequest::Group { .. }
                | CommitRequest::Block { .. }
                | CommitRequest::DirectFrom { .. }
                | CommitRequest::KeysChanged { .. }
                | CommitRequest::Stop => {}
            }
        }
        let store = self.store();
        self.blocks.prefetch(store, &blockers)?;
        // Direct message settings, alongside: only direct sends check them.
        let recipients: Vec<UserId> = requests
            .iter()
            .filter_map(|r| match r {
                CommitRequest::Send { conversation: c @ ConversationId::Direct { .. }, from, .. } => {
                    c.peer_of(*from).filter(|p| p != from)
                }
                _ => None,
            })
            .collect();
        self.direct_from.prefetch(store, &recipients)?;
        let found = &mut self.lookups;
        if !want.client_ids.is_empty() {
            let keys: Vec<(UserId, &str)> = want.client_ids.iter().map(|(u, c)| (*u, c.as_str())).collect();
            let answers = answered(keys.len(), store.messages_by_client_ids(&keys)?, "idempotency")?;
            found.client_ids.extend(want.client_ids.into_iter().zip(answers));
            // Client ids used before: the originals, to compare with.
            let mut originals = Vec::new();
            for r in requests {
                if let CommitRequest::Send { from, client_id, conversation, .. } = r {
                    let bound = found.client_ids.get(&(*from, client_id.clone())).copied().flatten();
                    if let Some(key @ (c, _)) = bound {
                        if c == *conversation && !found.originals.contains_key(&key) && !originals.contains(&key) {
                            originals.push(key);
                        }
                    }
                }
            }
            if !originals.is_empty() {
                let answers = answered(originals.len(), store.messages(&originals)?, "messages")?;
                // An amended message's sent body is gone: no digest (see `client_ids`).
                let digests =
                    answers.into_iter().map(|m| m.filter(|m| m.amended.is_none()).map(|m| digest(m.kind, &m.body)));
                found.originals.extend(originals.into_iter().zip(digests));
            }
        }
        if !want.headers.is_empty() {
            let answers = answered(want.headers.len(), store.message_headers(&want.headers)?, "messages")?;
            found.headers.extend(want.headers.into_iter().zip(answers));
        }
        if !want.delivered.is_empty() {
            let answers = answered(want.delivered.len(), store.delivery_marks(&want.delivered)?, "delivered")?;
            found.delivered.extend(want.delivered.into_iter().zip(answers));
        }
        if !amends.is_empty() {
            let answers = answered(amends.len(), store.messages(&amends)?, "messages")?;
            for m in answers.iter().flatten() {
                // A direct recipient's block list decides whether they are told.
                if let ConversationId::Direct { .. } = m.conversation {
                    blockers.extend(m.conversation.peer_of(m.from).filter(|p| *p != m.from));
                }
            }
            found.messages.extend(amends.into_iter().zip(answers));
            self.blocks.prefetch(store, &blockers)?;
        }
        if !want.reads.is_empty() {
            let answers = answered(want.reads.len(), store.read_marks(&want.reads)?, "reads")?;
            found.reads.extend(want.reads.into_iter().zip(answers));
        }
        Ok(())
    }
}

/// The answers to `asked` keys, refused as damage if the store answered
/// another number of them (it would pair answers with the wrong keys).
pub(super) fn answered<T>(asked: usize, answers: Vec<T>, table: &'static str) -> Result<Vec<T>, StoreError> {
    if answers.len() == asked {
        Ok(answers)
    } else {
        Err(StoreError::Corrupt { table, what: "a batched lookup answered another number of keys than asked" })
    }
}

/// The one answer to a lookup of one key.
pub(super) fn only<T>(answers: Vec<T>, table: &'static str) -> Result<T, StoreError> {
    answered(1, answers, table)?.pop().ok_or(StoreError::Corrupt { table, what: "no answer" })
}

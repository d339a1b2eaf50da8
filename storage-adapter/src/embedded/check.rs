//! An offline integrity check of the embedded store.
//!
//! Why: the store promises that a commit is atomic (a message, its inbox
//! references and its idempotency key land together or not at all) and
//! that ids only grow. A crash at the wrong moment, a bug in journal
//! recovery or a damaged disk would break exactly those promises, and the
//! gateway would only notice when a device's `sync` trips over the damage.
//! [`EmbeddedStore::check_integrity`] reads every table once and verifies
//! the invariants the schema implies:
//!
//! - every key and value decodes; message ids are unique across
//!   conversations and no id (message or inbox event) is above the stored
//!   high water;
//! - every inbox message reference points to an existing message of that
//!   conversation, and its user belongs to the conversation (a participant
//!   of a direct conversation; a member of the group when the message was
//!   committed); every message is referenced from its sender's inbox, and a
//!   direct message from both participants';
//! - every receipt in an inbox names existing messages;
//! - every idempotency key points to an existing message with the same
//!   sender and client id, and every message with a client id has its key;
//! - delivery and per-message read marks refer to existing messages;
//!   conversation read marks are not above the high water;
//! - every group record equals the membership its system messages replay
//!   to, and every group conversation has a record.
//!
//! It is meant for a store no gateway has open (after a stop or a crash).

mod membership;

use std::collections::{BTreeMap, HashMap, HashSet};

use chatgw_protocol::{ConversationId, GroupId, MessageId, MessageKind, Receipt};
use fjall::Keyspace;

pub(crate) use self::membership::Timeline;
use super::{tables::Tables, EmbeddedStore};
use crate::{
    codec::{self, InboxRecord},
    StoreError,
};

/// Violations kept in a report; more are counted but not listed.
const MAX_LISTED: usize = 1000;

/// What the check read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityCounts {
    /// The stored high water (largest id handed out).
    pub high_water: u64,
    /// Messages, system messages included.
    pub messages: u64,
    /// Inbox references to messages.
    pub inbox_messages: u64,
    /// Receipt events in inboxes.
    pub inbox_receipts: u64,
    /// Idempotency keys.
    pub idempotency_keys: u64,
    /// Delivery marks (per message and recipient).
    pub delivery_marks: u64,
    /// Per-message read marks (groups).
    pub read_by_marks: u64,
    /// Per-conversation read marks.
    pub read_marks: u64,
    /// Group records.
    pub groups: u64,
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The table it was found in.
    pub table: &'static str,
    /// What is wrong, naming the record.
    pub problem: String,
}

/// The outcome of [`EmbeddedStore::check_integrity`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    /// What was read.
    pub counts: IntegrityCounts,
    /// Every violation found (at most the first 1,000 are listed).
    pub violations: Vec<Violation>,
    /// How many violations were found in all.
    pub violation_count: u64,
}

impl IntegrityReport {
    /// No invariant is broken.
    pub fn is_clean(&self) -> bool {
        self.violation_count == 0
    }

    pub(crate) fn flag(&mut self, table: &'static str, problem: String) {
        self.violation_count += 1;
        if self.violations.len() < MAX_LISTED {
            self.violations.push(Violation { table, problem });
        }
    }
}

/// What the later passes need to know of a message.
struct MsgInfo {
    conversation: ConversationId,
    from: u64,
    client_id: String,
    /// Whether some inbox references it: (sender's, peer's).
    referenced: (bool, bool),
}

/// Everything the passes share.
struct Pass {
    report: IntegrityReport,
    high_water: u64,
    messages: HashMap<u64, MsgInfo>,
    /// Group id -> its system messages (id -> body).
    system: HashMap<u64, BTreeMap<u64, String>>,
    timelines: HashMap<u64, Timeline>,
}

impl EmbeddedStore {
    /// Read every table and verify the store's invariants (see the module
    /// documentation). Fails only if the engine cannot be read; damage is
    /// reported in the returned [`IntegrityReport`].
    pub fn check_integrity(&self) -> Result<IntegrityReport, StoreError> {
        self.check_integrity_keys_from(MessageId(0))
    }

    /// [`EmbeddedStore::check_integrity`] of a store whose idempotency keys
    /// expire: a message with an id below `keys_from` (see
    /// [`retention_cutoff`](crate::retention_cutoff)) may have lost its key
    /// to retention, which is no violation. Keys still present are checked
    /// as always.
    pub fn check_integrity_keys_from(&self, keys_from: MessageId) -> Result<IntegrityReport, StoreError> {
        self.check_integrity_retained(keys_from, MessageId(0))
    }

    /// [`EmbeddedStore::check_integrity_keys_from`] of a store whose inboxes
    /// are swept too: a message with an id below `inbox_from` may be
    /// missing from inboxes, which is no violation (docs/STORAGE.md, "Inbox
    /// retention").
    pub fn check_integrity_retained(
        &self,
        keys_from: MessageId,
        inbox_from: MessageId,
    ) -> Result<IntegrityReport, StoreError> {
        self.with(|t| t.check_integrity(keys_from, inbox_from))
    }

    /// Run `f` on the open engine's tables (tests corrupt them on purpose).
    #[cfg(test)]
    pub(super) fn with_tables<R>(&self, f: impl FnOnce(&Tables) -> R) -> R {
        self.with(|t| Ok(f(t))).expect("the engine is open")
    }
}

impl Tables {
    fn check_integrity(&self, keys_from: MessageId, inbox_from: MessageId) -> Result<IntegrityReport, StoreError> {
        let high_water = self.high_water()?.0;
        let mut p = Pass {
            report: IntegrityReport::default(),
            high_water,
            messages: HashMap::new(),
            system: HashMap::new(),
            timelines: HashMap::new(),
        };
        p.report.counts.high_water = high_water;
        self.check_messages(&mut p)?;
        self.check_groups(&mut p)?;
        self.check_inbox(&mut p)?;
        self.check_idempotency(&mut p, keys_from)?;
        for (ks, table) in [(&self.delivered, "delivered"), (&self.read_by, "read_by")] {
            check_marks(ks, table, &mut p)?;
        }
        self.check_read_marks(&mut p)?;
        check_references(&mut p, inbox_from);
        Ok(p.report)
    }

    fn check_messages(&self, p: &mut Pass) -> Result<(), StoreError> {
        each(&self.messages, "scan messages", |k, v| {
            p.report.counts.messages += 1;
            let Some((conversation, id)) = split_message_key(k) else {
                p.report.flag("messages", format!("undecodable key {}", hex(k)));
                return;
            };
            let m = match codec::decode_message(conversation, id, v) {
                Ok(m) => m,
                Err(e) => {
                    p.report.flag("messages", format!("message {} in {conversation:?}: {e}", id.0));
                    return;
                }
            };
            if id.0 > p.high_water {
                p.report.flag("messages", format!("message {} is above the high water {}", id.0, p.high_water));
            }
            if let Some(other) = p.messages.get(&id.0) {
                let problem = format!("message id {} in {conversation:?} and in {:?}", id.0, other.conversation);
                p.report.flag("messages", problem);
                return;
            }
            if let (ConversationId::Group(g), MessageKind::System) = (conversation, m.kind) {
                p.system.entry(g.0).or_default().insert(id.0, m.body.clone());
            }
            let info = MsgInfo { conversation, from: m.from.0, client_id: m.client_id, referenced: (false, false) };
            p.messages.insert(id.0, info);
        })?;
        Ok(())
    }

    fn check_groups(&self, p: &mut Pass) -> Result<(), StoreError> {
        let mut recorded = HashSet::new();
        each(&self.groups, "scan groups", |k, v| {
            p.report.counts.groups += 1;
            let Some(gid) = codec::u64_value(k).filter(|_| k.len() == 8) else {
                p.report.flag("groups", format!("undecodable key {}", hex(k)));
                return;
            };
            recorded.insert(gid);
            let group = match codec::decode_group(GroupId(gid), v) {
                Ok(g) => g,
                Err(e) => {
                    p.report.flag("groups", format!("group {gid}: {e}"));
                    return;
                }
            };
            let Some(system) = p.system.get(&gid) else {
                p.report.flag("groups", format!("group {gid} has no system messages"));
                return;
            };
            match Timeline::replay(system) {
                Ok(t) => {
                    let stored: BTreeMap<u64, bool> = group.members.iter().map(|m| (m.user.0, m.admin)).collect();
                    if stored != t.current() {
                        let problem = format!(
                            "group {gid}: the record has members {stored:?}, its system messages give {:?}",
                            t.current()
                        );
                        p.report.flag("groups", problem);
                    }
                    p.timelines.insert(gid, t);
                }
                Err(why) => p.report.flag("groups", format!("group {gid}: {why}")),
            }
        })?;
        let mut orphans: Vec<u64> = p.system.keys().filter(|g| !recorded.contains(*g)).copied().collect();
        orphans.sort_unstable();
        for g in orphans {
            p.report.flag("groups", format!("group {g} has system messages but no record"));
        }
        Ok(())
    }

    fn check_inbox(&self, p: &mut Pass) -> Result<(), StoreError> {
        each(&self.inbox, "scan inbox", |k, v| {
            let (Some(user), Some(event), 16) = (codec::u64_value(k), codec::id_from_message_key(k), k.len()) else {
                p.report.flag("inbox", format!("undecodable key {}", hex(k)));
                return;
            };
            if event.0 > p.high_water {
                p.report.flag("inbox", format!("user {user}: event {} is above the high water", event.0));
            }
            match codec::decode_inbox(event, v) {
                Err(e) => p.report.flag("inbox", format!("user {user}, event {}: {e}", event.0)),
                Ok(InboxRecord::Message(c)) => {
                    p.report.counts.inbox_messages += 1;
                    inbox_reference(p, user, event.0, c);
                }
                Ok(InboxRecord::Amended(_, id) | InboxRecord::Hidden(_, id)) => {
                    p.report.counts.inbox_receipts += 1;
                    if !p.messages.contains_key(&id.0) {
                        let problem = format!("user {user}: amendment {} names missing message {id}", event.0);
                        p.report.flag("inbox", problem);
                    }
                }
                // Names a user, no message: nothing to check against.
                Ok(InboxRecord::KeysChanged(_)) => p.report.counts.inbox_receipts += 1,
                Ok(InboxRecord::Receipt(r)) => {
                    p.report.counts.inbox_receipts += 1;
                    for id in receipt_ids(&r) {
                        if !p.messages.contains_key(&id) {
                            let problem = format!("user {user}: receipt {} names missing message {id}", event.0);
                            p.report.flag("inbox", problem);
                        }
                    }
                }
            }
        })?;
        Ok(())
    }

    fn check_idempotency(&self, p: &mut Pass, keys_from: MessageId) -> Result<(), StoreError> {
        let mut keyed = HashSet::new();
        each(&self.idempotency, "scan idempotency keys", |k, v| {
            p.report.counts.idempotency_keys += 1;
            let (Some(from), Some(cid)) = (codec::u64_value(k), k.get(8..).and_then(|c| std::str::from_utf8(c).ok()))
            else {
                p.report.flag("idempotency", format!("undecodable key {}", hex(k)));
                return;
            };
            let (c, id) = match codec::decode_idempotency(v) {
                Ok(x) => x,
                Err(e) => {
                    p.report.flag("idempotency", format!("({from}, {cid:?}): {e}"));
                    return;
                }
            };
            match p.messages.get(&id.0) {
                None => p.report.flag("idempotency", format!("({from}, {cid:?}) points to missing message {}", id.0)),
                Some(m) if m.conversation != c || m.from != from || m.client_id != cid => {
                    let problem = format!(
                        "({from}, {cid:?}) points to message {} of {:?} from {} with client id {:?}",
                        id.0, m.conversation, m.from, m.client_id
                    );
                    p.report.flag("idempotency", problem);
                }
                Some(_) => {
                    keyed.insert(id.0);
                }
            }
        })?;
        let mut unkeyed: Vec<u64> = p
            .messages
            .iter()
            .filter(|(id, m)| !m.client_id.is_empty() && !keyed.contains(*id) && **id >= keys_from.0)
            .map(|(id, _)| *id)
            .collect();
        unkeyed.sort_unstable();
        for id in unkeyed {
            p.report.flag("idempotency", format!("message {id} has a client id but no idempotency key"));
        }
        Ok(())
    }

    fn check_read_marks(&self, p: &mut Pass) -> Result<(), StoreError> {
        each(&self.reads, "scan read marks", |k, v| {
            p.report.counts.read_marks += 1;
            let conv = k.len().checked_sub(8).and_then(|n| k.get(..n)).and_then(ConversationId::from_key);
            let (Some(c), Some(up_to)) = (conv, codec::u64_value(v)) else {
                p.report.flag("reads", format!("undecodable record {}", hex(k)));
                return;
            };
            if up_to > p.high_water {
                p.report.flag("reads", format!("read mark in {c:?} up to {up_to}, above the high water"));
            }
        })?;
        Ok(())
    }
}

/// A message reference in `user`'s inbox at `event`, to conversation `c`.
fn inbox_reference(p: &mut Pass, user: u64, event: u64, c: ConversationId) {
    let Some(m) = p.messages.get_mut(&event) else {
        p.report.flag("inbox", format!("user {user}: reference to missing message {event} of {c:?}"));
        return;
    };
    if m.conversation != c {
        let problem = format!("user {user}: reference to message {event} as {c:?}, stored in {:?}", m.conversation);
        p.report.flag("inbox", problem);
        return;
    }
    if user == m.from {
        m.referenced.0 = true;
    } else {
        m.referenced.1 = true;
    }
    let belongs = match c {
        ConversationId::Direct { lo, hi } => user == lo.0 || user == hi.0,
        ConversationId::Group(g) => p.timelines.get(&g.0).is_some_and(|t| t.may_hold(event, user)),
    };
    if !belongs {
        p.report.flag("inbox", format!("user {user} holds message {event} of {c:?}, a conversation it is not in"));
    }
}

/// Every message is in its sender's inbox; a direct message to someone
/// else is in the peer's too; but for messages below `inbox_from`, whose
/// entries the inbox retention may have removed.
fn check_references(p: &mut Pass, inbox_from: MessageId) {
    let mut missing: Vec<(u64, &'static str)> = Vec::new();
    for (&id, m) in p.messages.iter().filter(|(&id, _)| id >= inbox_from.0) {
        if !m.referenced.0 {
            missing.push((id, "its sender's"));
        }
        if let ConversationId::Direct { lo, hi } = m.conversation {
            if lo != hi && !m.referenced.1 {
                missing.push((id, "the recipient's"));
            }
        }
    }
    missing.sort_unstable();
    for (id, whose) in missing {
        p.report.flag("inbox", format!("message {id} is missing from {whose} inbox"));
    }
}

/// Delivery or read marks: message key + user.
fn check_marks(ks: &Keyspace, table: &'static str, p: &mut Pass) -> Result<(), StoreError> {
    each(ks, "scan marks", |k, _| {
        match table {
            "delivered" => p.report.counts.delivery_marks += 1,
            _ => p.report.counts.read_by_marks += 1,
        }
        let parsed = k.len().checked_sub(8).and_then(|n| k.get(..n)).and_then(split_message_key);
        let Some((c, id)) = parsed else {
            p.report.flag(table, format!("undecodable key {}", hex(k)));
            return;
        };
        let user = codec::id_from_message_key(k).map_or(0, |u| u.0);
        if !p.messages.get(&id.0).is_some_and(|m| m.conversation == c) {
            p.report.flag(table, format!("mark of user {user} for missing message {} of {c:?}", id.0));
        }
    })?;
    Ok(())
}

/// The message ids a receipt names (every backend's check resolves them).
pub(crate) fn receipt_ids(r: &Receipt) -> Vec<u64> {
    match r {
        Receipt::Delivered { ids, .. } => ids.iter().map(|i| i.0).collect(),
        Receipt::Read { .. } => Vec::new(),
        Receipt::Group { items, .. } => items.iter().flat_map(|(_, ids)| ids.iter().map(|i| i.0)).collect(),
    }
}

/// Conversation key + message id.
fn split_message_key(k: &[u8]) -> Option<(ConversationId, MessageId)> {
    let n = k.len().checked_sub(8)?;
    Some((ConversationId::from_key(k.get(..n)?)?, codec::id_from_message_key(k)?))
}

/// Hand every record of `ks` to `f`, in key order, without holding the table in memory.
fn each(ks: &Keyspace, op: &'static str, mut f: impl FnMut(&[u8], &[u8])) -> Result<(), StoreError> {
    for guard in ks.iter() {
        let (k, v) = guard.into_inner().map_err(|e| StoreError::backend(op, e))?;
        f(&k, &v);
    }
    Ok(())
}

/// Bytes as lowercase hex, for keys that do not decode.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;

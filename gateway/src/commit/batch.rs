//! One group commit being built: ids, idempotency, receipt checks.
//!
//! Every check sees the store, the batches the writer has not stored yet
//! (`in_flight`) and the requests earlier in the same batch, so two sends
//! with one client id store one message however close together they come,
//! and an acknowledgement of a message sent in the same batch is accepted.

use std::collections::{BTreeMap, HashMap};

use chatgw_protocol::{
    ConversationId, DirectFrom, ErrorCode, Group, GroupId, Message, MessageId, MessageKind, Receipt, ReceiptStatus,
    Snowflake, UserId,
};
use chatgw_router::Endpoint;
use chatgw_storage::{GroupVersion, MessageStore, StoreError, Write};

use super::{
    amend::{AmendWindows, AmendedCache, DEFAULT_WINDOWS},
    blocks::BlockCache,
    client_ids::{digest, Earlier, CLIENT_ID_CONFLICT},
    direct_from::DirectFromCache,
    hide::HiddenCache,
    in_flight::{InFlight, Taken},
    lookups::{only, Lookups},
    order::{segments, BatchIds},
    recent::{Delivery, RecentMessages},
    route,
};
use crate::events::CommitRequest;

/// What a request turned into once ids and checks were done, in commit
/// order. Dispatch walks this list after the fsync.
pub(super) enum Outcome {
    /// A new message. `origin` gets a `sent` ack and no live copy; system
    /// messages have no origin and reach every device. A group message
    /// carries the version of the membership `inboxes` was taken from; the
    /// store refuses it if the group has changed since.
    Stored {
        origin: Option<Endpoint>,
        client_id: String,
        message: Message,
        inboxes: Vec<UserId>,
        membership: Option<GroupVersion>,
    },
    /// A resend: the original id, nothing stored.
    Duplicate { origin: Endpoint, client_id: String, id: MessageId },
    /// A receipt event for `inboxes`.
    Receipt { origin: Option<Endpoint>, receipt: Receipt, inboxes: Vec<UserId> },
    /// A group record to persist with the system message that announces
    /// the change, compare-and-set on the version it was based on. Applied,
    /// the announcement reaches every device of `inboxes` and `origin` gets
    /// a `group` frame; in conflict with another writer, `origin` gets a
    /// retryable error instead.
    GroupWrite {
        origin: Endpoint,
        reference: Option<String>,
        group: Group,
        based_on: GroupVersion,
        announce: Message,
        inboxes: Vec<UserId>,
    },
    /// A message amended (deleted for everyone or edited): stored as
    /// `message`, an `amended` event for `inboxes`; `origin` gets the
    /// frame as its answer (and only the position of its own event).
    Amend { origin: Endpoint, message: Message, inboxes: Vec<UserId> },
    /// A repeated amendment: `origin` gets the `amended` frame of the
    /// message as it is, nothing is written.
    AmendRepeat { origin: Endpoint, message: Message },
    /// A message hidden from `user` only (delete for me): the mark and an
    /// `amended` event for `user`'s inbox; `message` is the hidden form,
    /// `origin` gets the frame as its answer.
    Hide { origin: Endpoint, user: UserId, message: Message },
    /// A `keys_changed` event naming `user` for `inboxes`.
    KeysChanged { user: UserId, event: MessageId, inboxes: Vec<UserId> },
    /// A `blocks` frame (the requester's block list) for the requester.
    Blocks { origin: Endpoint, users: Vec<UserId> },
    /// A `direct_from` frame (the requester's setting) for the requester.
    DirectFrom { origin: Endpoint, from: DirectFrom },
    /// A `group` frame for the requester.
    GroupReply { origin: Endpoint, group: Group, reference: Option<String> },
    /// An `error` frame for the requester.
    Refused { origin: Endpoint, code: ErrorCode, why: String, reference: Option<String> },
}

/// A message before it has an id.
pub(super) struct Draft {
    pub(super) from: UserId,
    pub(super) client_id: String,
    pub(super) conversation: ConversationId,
    pub(super) kind: MessageKind,
    /// Raw JSON string literal.
    pub(super) body: String,
}

impl Outcome {
    /// The id of the inbox event this outcome writes, if it writes one.
    pub(super) fn event(&self) -> Option<MessageId> {
        match self {
            Outcome::Stored { message, .. } => Some(message.id),
            Outcome::Receipt { receipt, .. } => Some(receipt.event()),
            Outcome::GroupWrite { announce, .. } => Some(announce.id),
            Outcome::Amend { message, .. } | Outcome::Hide { message, .. } => message.amended.map(|a| a.event),
            Outcome::KeysChanged { event, .. } => Some(*event),
            _ => None,
        }
    }
}

pub(super) fn refused(origin: Endpoint, code: ErrorCode, why: impl Into<String>, reference: Option<String>) -> Outcome {
    Outcome::Refused { origin, code, why: why.into(), reference }
}

/// Group receipts gathered over a batch: (group, sender, status) -> who acknowledged which ids.
type PendingGroupReceipts = BTreeMap<(GroupId, UserId, u8), BTreeMap<UserId, Vec<MessageId>>>;

pub(super) struct Batch<'s> {
    store: &'s dyn MessageStore,
    ids: BatchIds,
    pub(super) max_group_members: usize,
    outcomes: Vec<Outcome>,
    /// Messages stored recently, with their delivery marks (see `recent`).
    pub(super) recent: RecentMessages,
    /// The store's answers for this batch (see `lookups`).
    pub(super) lookups: Lookups,
    /// Decisions of this and earlier batches the writer has not stored yet.
    pub(super) in_flight: InFlight,
    /// Membership cache with the version of each record; lives across
    /// batches (see `groups`).
    pub(super) groups: HashMap<GroupId, (Group, GroupVersion)>,
    pub(super) group_receipts: PendingGroupReceipts,
    /// Block lists; live across batches (see `blocks`).
    pub(super) blocks: BlockCache,
    /// Direct message settings; live across batches (see `direct_from`).
    pub(super) direct_from: DirectFromCache,
    /// Messages this committer amended, as they are now (see `amend`).
    pub(super) amended: AmendedCache,
    /// Hides this committer decided (see `hide`).
    pub(super) hidden: HiddenCache,
    /// The delete and edit windows.
    pub(super) windows: AmendWindows,
    /// Message headers walked by group reads since the metrics last took them.
    pub(super) read_rows_scanned: u64,
    /// Users whose block list or setting this batch changed: the other
    /// pipelines are told (`peers`).
    pub(super) changed_users: Vec<UserId>,
    /// This pipeline's number and how many there are (`route`).
    pub(super) pipeline: (usize, usize),
}

impl<'s> Batch<'s> {
    pub(super) fn new(store: &'s dyn MessageStore, ids: impl Into<BatchIds>, max_group_members: usize) -> Self {
        Batch {
            store,
            ids: ids.into(),
            max_group_members,
            outcomes: Vec::new(),
            recent: RecentMessages::default(),
            lookups: Lookups::default(),
            in_flight: InFlight::default(),
            groups: HashMap::new(),
            group_receipts: BTreeMap::new(),
            blocks: BlockCache::default(),
            direct_from: DirectFromCache::default(),
            amended: AmendedCache::default(),
            hidden: HiddenCache::default(),
            windows: DEFAULT_WINDOWS,
            read_rows_scanned: 0,
            changed_users: Vec::new(),
            pipeline: (0, 1),
        }
    }

    pub(super) fn store(&self) -> &'s dyn MessageStore {
        self.store
    }

    #[cfg(test)]
    pub(super) fn outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// The outcomes of a committed batch, for dispatch.
    pub(super) fn take_outcomes(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.outcomes)
    }

    pub(super) fn push(&mut self, o: Outcome) {
        self.outcomes.push(o);
    }

    pub(super) fn next_id(&mut self) -> MessageId {
        self.ids.next_id()
    }

    pub(super) fn last_id(&self) -> MessageId {
        self.ids.last()
    }

    /// The batch's tickets and where each one's outcomes end, for the
    /// writer (see `order`).
    pub(super) fn take_tickets(&mut self) -> Vec<(u64, usize)> {
        let ranges = self.ids.take();
        segments(self.outcomes.iter().map(Outcome::event), &ranges)
    }

    /// The id sequencer (tests that drive a writer by hand).
    #[cfg(test)]
    pub(super) fn sequencer(&self) -> &std::sync::Arc<super::Sequencer> {
        self.ids.sequencer()
    }

    /// Reserve ids for a batch of `requests` requests (see `order`); more
    /// are reserved as needed.
    pub(super) fn reserve_ids(&mut self, requests: usize) {
        self.ids.begin(requests);
    }

    /// Start batch `seq` (the caches stay); the writer has stored every
    /// batch up to `done_through`.
    pub(super) fn begin(&mut self, seq: u64, done_through: u64) {
        self.outcomes.clear();
        self.group_receipts.clear();
        self.lookups.clear();
        self.in_flight.begin(seq, done_through);
    }

    /// A batch was refused by the store, or the store was reopened after an
    /// outage: nothing cached may be trusted, since the failed batches (and
    /// the ones prepared on top of them) may or may not have reached the
    /// disk. The caches fill again from the store.
    pub(super) fn forget_all_cached(&mut self) {
        self.groups.clear();
        self.recent.clear();
        self.lookups.clear();
        self.in_flight.clear();
        self.blocks.clear();
        self.direct_from.clear();
        self.amended.clear();
        self.hidden.clear();
    }

    /// Another writer changed this group since it was cached (a group write
    /// based on the cached version conflicted): read it again when next
    /// needed.
    pub(super) fn forget_group(&mut self, g: GroupId) {
        self.groups.remove(&g);
    }

    /// Another pipeline changed `user`'s block list or setting.
    pub(super) fn forget_user(&mut self, user: UserId) {
        self.blocks.forget(user);
        self.direct_from.forget(user);
    }

    /// Messages held by the recent-messages cache, and delivery marks held with them.
    pub(super) fn recent_sizes(&self) -> (usize, usize) {
        (self.recent.len(), self.recent.marks())
    }

    /// Hand out ids above `floor` from now on (never lowers the last id).
    pub(super) fn resume_after(&mut self, floor: MessageId) {
        self.ids.sequencer().resume_after(floor);
    }

    /// The writes of this batch, in order.
    #[cfg(test)]
    pub(super) fn writes(&self) -> Vec<Write<'_>> {
        let mut out = Vec::new();
        writes_of(&self.outcomes, &mut out);
        out
    }

    /// The sender of a message of this conversation and whether it is a
    /// system message, if it exists (stored, or earlier in this batch).
    pub(super) fn sender_of(&mut self, c: ConversationId, id: MessageId) -> Result<Option<(UserId, bool)>, StoreError> {
        if let Some(found) = self.recent.sender_of((c, id)) {
            return Ok(Some(found));
        }
        let header = match self.lookups.headers.get(&(c, id)) {
            Some(h) => *h,
            None => {
                let h = only(self.store.message_headers(&[(c, id)])?, "messages")?;
                self.lookups.headers.insert((c, id), h);
                h
            }
        };
        Ok(header.map(|h| (h.from, h.kind == MessageKind::System)))
    }

    /// Whether this is the first acknowledgement of the message by `user`;
    /// records it if so.
    pub(super) fn first_delivery(
        &mut self,
        c: ConversationId,
        id: MessageId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        match self.recent.first_delivery((c, id), user) {
            Delivery::Repeated => return Ok(false),
            Delivery::First => {
                // Also kept with the batch: the message may leave the recent
                // cache before the writer has stored this mark.
                self.in_flight.mark_delivered(c, id, user);
                return Ok(true);
            }
            Delivery::Unknown => {}
        }
        if self.in_flight.is_delivered(c, id, user) {
            return Ok(false);
        }
        let stored = match self.lookups.delivered.get(&(c, id, user)) {
            Some(d) => *d,
            None => only(self.store.delivery_marks(&[(c, id, user)])?, "delivered")?,
        };
        if stored {
            return Ok(false);
        }
        self.in_flight.mark_delivered(c, id, user);
        Ok(true)
    }

    /// How far `user` has read `c`: the newest decision in flight, else the store.
    pub(super) fn read_mark(&mut self, c: ConversationId, user: UserId) -> Result<Option<MessageId>, StoreError> {
        if let found @ Some(_) = self.in_flight.read_mark(c, user) {
            return Ok(found);
        }
        match self.lookups.reads.get(&(c, user)) {
            Some(mark) => Ok(*mark),
            None => {
                let mark = only(self.store.read_marks(&[(c, user)])?, "reads")?;
                self.lookups.reads.insert((c, user), mark);
                Ok(mark)
            }
        }
    }

    /// Move `user`'s read mark to `up_to`; returns the previous mark, or
    /// `None` if it was already at or past `up_to` (marks never move back).
    pub(super) fn advance_read(
        &mut self,
        c: ConversationId,
        user: UserId,
        up_to: MessageId,
    ) -> Result<Option<MessageId>, StoreError> {
        let current = self.read_mark(c, user)?;
        if current.is_some_and(|m| m >= up_to) {
            return Ok(None);
        }
        self.in_flight.mark_read(c, user, up_to);
        Ok(Some(current.unwrap_or(MessageId(0))))
    }

    /// A new message with a fresh id, unless `(from, client_id)` was used
    /// before: then `sent` with the original id if it is the same message,
    /// `client_id_conflict` if not. System messages pass an empty client id
    /// and are never deduplicated.
    pub(super) fn new_message(
        &mut self,
        origin: Option<Endpoint>,
        draft: Draft,
        inboxes: Vec<UserId>,
        membership: Option<GroupVersion>,
    ) -> Result<(), StoreError> {
        if let Some(origin) = origin {
            match self.earlier_use(&draft)? {
                Some(Earlier::Resend(id)) => {
                    self.outcomes.push(Outcome::Duplicate { origin, client_id: draft.client_id, id });
                    return Ok(());
                }
                Some(Earlier::Conflict) => {
                    self.outcomes.push(refused(
                        origin,
                        ErrorCode::ClientIdConflict,
                        CLIENT_ID_CONFLICT,
                        Some(draft.client_id),
                    ));
                    return Ok(());
                }
                None => {}
            }
            // Routed here by its client id (`route`), but the first use
            // stored nothing: the conversation's own pipeline stores it.
            if !route::owns(&draft.conversation, self.pipeline.0, self.pipeline.1) {
                let why = "the server is busy with this client id; retry with the same id";
                self.outcomes.push(refused(origin, ErrorCode::Unavailable, why, Some(draft.client_id)));
                return Ok(());
            }
        }
        let message = self.message_of(draft);
        let client_id = message.client_id.clone();
        self.outcomes.push(Outcome::Stored { origin, client_id, message, inboxes, membership });
        Ok(())
    }

    /// The message a draft becomes: a fresh id, its client id taken.
    pub(super) fn message_of(&mut self, draft: Draft) -> Message {
        let Draft { from, client_id, conversation, kind, body } = draft;
        let id = self.ids.next_id();
        if !client_id.is_empty() {
            let taken = Taken { conversation, id, digest: digest(kind, &body) };
            self.in_flight.take_client_id(from, client_id.clone(), taken);
        }
        self.recent.insert((conversation, id), from, kind == MessageKind::System);
        Message { id, conversation, from, kind, client_id, ts: Snowflake::unix_ms(id), body, amended: None }
    }

    /// Take one request into the batch.
    pub(super) fn add(&mut self, req: CommitRequest) -> Result<(), StoreError> {
        match req {
            CommitRequest::Send { origin, from, client_id, conversation, kind, body } => match conversation {
                ConversationId::Direct { .. } => {
                    let to = conversation.peer_of(from).unwrap_or(from);
                    // A recipient who takes direct messages from contacts
                    // only refuses a stranger's: nothing is stored.
                    if self.refuses_stranger(to, from)? {
                        self.refuse_stranger(origin, client_id);
                        return Ok(());
                    }
                    // A recipient who blocks the sender never gets it: it
                    // is stored in the sender's inbox only.
                    let inboxes = if to == from || self.blocks.blocks(self.store, to, from)? {
                        vec![from]
                    } else {
                        self.direct_from.note_direct(from, to);
                        vec![from, to]
                    };
                    let draft = Draft { from, client_id, conversation, kind, body };
                    self.new_message(Some(origin), draft, inboxes, None)?;
                }
                ConversationId::Group(g) => self.send_to_group(origin, from, client_id, g, kind, body)?,
            },
            CommitRequest::Delivered { origin, by, conversation, ids } => match conversation {
                ConversationId::Direct { .. } => self.direct_delivered(origin, by, conversation, ids)?,
                ConversationId::Group(g) => self.group_delivered(origin, by, g, ids)?,
            },
            CommitRequest::Read { origin, by, conversation, up_to } => match conversation {
                ConversationId::Direct { .. } => self.direct_read(origin, by, conversation, up_to)?,
                ConversationId::Group(g) => self.group_read(origin, by, g, up_to)?,
            },
            CommitRequest::Group { origin, by, op } => self.group_op(origin, by, op)?,
            CommitRequest::Block { origin, by, op } => self.block_op(origin, by, op)?,
            CommitRequest::DirectFrom { origin, by, set } => self.direct_from_op(origin, by, set)?,
            CommitRequest::Amend { origin, by, conversation, msg, op } => {
                self.amend(origin, by, conversation, msg, op)?
            }
            CommitRequest::KeysChanged { user, contacts } => {
                let event = self.ids.next_id();
                self.outcomes.push(Outcome::KeysChanged { user, event, inboxes: contacts });
            }
            CommitRequest::Stop => {}
        }
        Ok(())
    }

    /// Turn the group receipts gathered over the batch into one event per
    /// (group, sender, status): however many members acknowledged, the
    /// sender gets one frame per commit.
    pub(super) fn finish(&mut self) {
        for ((group, sender, status), items) in std::mem::take(&mut self.group_receipts) {
            let event = self.ids.next_id();
            let status = if status == 0 { ReceiptStatus::Delivered } else { ReceiptStatus::Read };
            let receipt = Receipt::Group {
                event,
                group,
                status,
                items: items.into_iter().collect(),
                at: Snowflake::unix_ms(event),
            };
            // Marks are kept either way; the event only reaches a sender who is still a member.
            let member = self.groups.get(&group).is_none_or(|(g, _)| g.is_member(sender));
            let inboxes = if member { vec![sender] } else { Vec::new() };
            self.outcomes.push(Outcome::Receipt { origin: None, receipt, inboxes });
        }
    }

    fn direct_delivered(
        &mut self,
        origin: Endpoint,
        by: UserId,
        conversation: ConversationId,
        ids: Vec<MessageId>,
    ) -> Result<(), StoreError> {
        let mut fresh = Vec::with_capacity(ids.len());
        let mut unknown = Vec::new();
        for id in ids {
            match self.sender_of(conversation, id)? {
                // Only the other side of the conversation acknowledges delivery.
                Some((from, _)) if from != by => {
                    if self.first_delivery(conversation, id, by)? && !fresh.contains(&id) {
                        fresh.push(id);
                    }
                }
                Some(_) => {}
                None => unknown.push(id),
            }
        }
        if !unknown.is_empty() {
            self.outcomes.push(no_such_messages(origin, &unknown));
        }
        if !fresh.is_empty() {
            let sender = conversation.peer_of(by).unwrap_or(by);
            let event = self.ids.next_id();
            let receipt = Receipt::Delivered { event, conversation, by, ids: fresh, at: Snowflake::unix_ms(event) };
            // The marks are kept either way; a sender who blocks `by` is not told.
            let inboxes = if self.blocks.blocks(self.store, sender, by)? { Vec::new() } else { vec![sender] };
            self.outcomes.push(Outcome::Receipt { origin: Some(origin), receipt, inboxes });
        }
        Ok(())
    }

    fn direct_read(
        &mut self,
        origin: Endpoint,
        by: UserId,
        conversation: ConversationId,
        up_to: MessageId,
    ) -> Result<(), StoreError> {
        if self.sender_of(conversation, up_to)?.is_none() {
            self.outcomes.push(no_such_messages(origin, &[up_to]));
            return Ok(());
        }
        if self.advance_read(conversation, by, up_to)?.is_none() {
            return Ok(());
        }
        let peer = conversation.peer_of(by).unwrap_or(by);
        let event = self.ids.next_id();
        let receipt = Receipt::Read { event, conversation, by, up_to, at: Snowflake::unix_ms(event) };
        // The reader's other devices learn of the read too; a peer who
        // blocks the reader does not.
        let inboxes = if peer == by || self.blocks.blocks(self.store, peer, by)? { vec![by] } else { vec![peer, by] };
        self.outcomes.push(Outcome::Receipt { origin: Some(origin), receipt, inboxes });
        Ok(())
    }
}

/// The writes of a batch's outcomes, in order, appended to `out`.
pub(super) fn writes_of<'o>(outcomes: &'o [Outcome], out: &mut Vec<Write<'o>>) {
    out.extend(outcomes.iter().filter_map(|o| match o {
        Outcome::Stored { message, inboxes, membership, .. } => {
            Some(Write::Message { message, inboxes, membership: *membership })
        }
        Outcome::Receipt { receipt, inboxes, .. } => Some(Write::Receipt { receipt, inboxes }),
        Outcome::Amend { message, inboxes, .. } => Some(Write::Amend { message, inboxes }),
        Outcome::Hide { user, message, .. } => Some(Write::Hide {
            user,
            conversation: message.conversation,
            msg: message.id,
            event: message.amended.map_or(MessageId(0), |a| a.event),
        }),
        Outcome::GroupWrite { group, based_on, announce, inboxes, .. } => {
            Some(Write::Group { group, based_on: *based_on, announce: Some(announce), inboxes })
        }
        Outcome::KeysChanged { user, event, inboxes } => Some(Write::KeysChanged { user, event: *event, inboxes }),
        _ => None,
    }));
}

pub(super) fn no_such_messages(origin: Endpoint, ids: &[MessageId]) -> Outcome {
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    refused(origin, ErrorCode::NotAllowed, format!("no such message in this conversation: {}", list.join(", ")), None)
}

#[cfg(test)]
mod tests {
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

    use super::*;

    fn ep(slot: u32) -> Endpoint {
        Endpoint { core: 0, slot, generation: 1 }
    }

    fn send(from: u64, to: u64, client_id: &str) -> CommitRequest {
        CommitRequest::Send {
            origin: ep(from as u32),
            from: UserId(from),
            client_id: client_id.into(),
            conversation: ConversationId::direct(UserId(from), UserId(to)),
            kind: MessageKind::Text,
            body: "\"x\"".into(),
        }
    }

    /// A committer on `store` whose batch 1 sent "a" from user 1 to user 2;
    /// the writer has not stored it.
    fn batch_with_one_send(store: &EmbeddedStore) -> (Batch<'_>, ConversationId, MessageId) {
        let mut batch = Batch::new(store, Snowflake::new(0), 256);
        batch.begin(1, 0);
        batch.add(send(1, 2, "a")).unwrap();
        let Some(Outcome::Stored { message, .. }) = batch.outcomes().first() else { panic!("not stored") };
        let id = message.id;
        (batch, ConversationId::direct(UserId(1), UserId(2)), id)
    }

    /// Batches prepared while earlier ones are still with the writer: the
    /// store has none of them, yet every check sees them.
    #[test]
    fn checks_see_batches_the_writer_has_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let (mut batch, c, id) = batch_with_one_send(&store);
        // Scrolled out of the recent-messages cache: only the in-flight
        // decisions and the store can answer from here on.
        batch.recent.clear();

        batch.begin(2, 0);
        batch.add(send(1, 2, "a")).unwrap();
        assert!(
            matches!(batch.outcomes(), [Outcome::Duplicate { id: d, .. }] if *d == id),
            "a resend while the first is being written is answered with the first id"
        );

        batch.begin(3, 0);
        let ack = || CommitRequest::Delivered { origin: ep(2), by: UserId(2), conversation: c, ids: vec![id] };
        let read = |up_to| CommitRequest::Read { origin: ep(2), by: UserId(2), conversation: c, up_to };
        let later = MessageId(id.0 + 1_000);
        // The first message is written by now (its batch's marks are not),
        // and a later one exists to be read up to.
        store_message(&store, id, c, "a");
        store_message(&store, later, c, "b");
        batch.add(ack()).unwrap();
        batch.add(read(later)).unwrap();
        assert_eq!(batch.outcomes().len(), 2, "a delivery receipt and a read receipt");

        batch.begin(4, 0);
        batch.add(ack()).unwrap();
        batch.add(read(id)).unwrap();
        batch.add(read(later)).unwrap();
        assert!(batch.outcomes().is_empty(), "no second receipt, and the read mark does not move back");

        // The writer refused batch 3: what it decided is forgotten.
        batch.forget_all_cached();
        batch.begin(5, 4);
        batch.add(ack()).unwrap();
        assert_eq!(batch.outcomes().len(), 1, "acknowledged again once the mark is known to be lost");
    }

    #[test]
    fn an_ack_is_remembered_after_its_message_leaves_the_recent_cache() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let (mut batch, c, id) = batch_with_one_send(&store);
        let ack = || CommitRequest::Delivered { origin: ep(2), by: UserId(2), conversation: c, ids: vec![id] };
        batch.begin(2, 0);
        batch.add(ack()).unwrap();
        assert_eq!(batch.outcomes().len(), 1, "the first acknowledgement makes a receipt");
        // Many newer messages push it out of the recent cache before the
        // writer has stored batches 1 and 2; the store knows the message
        // but not the mark.
        let stored = store_message(&store, id, c, "a");
        batch.recent.clear();
        batch.begin(3, 0);
        batch.add(ack()).unwrap();
        assert!(batch.outcomes().is_empty(), "a repeated acknowledgement makes no second receipt: {stored}");
    }

    /// Store a message from user 1 as the writer would; returns a
    /// description for assertion messages.
    fn store_message(store: &EmbeddedStore, id: MessageId, c: ConversationId, client_id: &str) -> String {
        let message = Message {
            id,
            conversation: c,
            from: UserId(1),
            kind: MessageKind::Text,
            client_id: client_id.into(),
            ts: 0,
            body: "\"x\"".into(),
            amended: None,
        };
        store
            .commit(&[Write::Message { message: &message, inboxes: &[UserId(1), UserId(2)], membership: None }], id)
            .unwrap();
        format!("message {id} stored, its delivery mark still with the writer")
    }
}

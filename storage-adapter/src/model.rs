//! What goes into a commit, what comes out of it, and what an inbox scan
//! returns.

use chatgw_protocol::{ConversationId, Group, Message, MessageId, MessageKind, Receipt, UserId};

/// One write of a commit batch.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// A new message: stored once in its conversation, referenced from each
    /// inbox listed, and bound to its idempotency key `(from, client_id)`.
    /// If the key is already bound to another message, nothing of this
    /// write is applied ([`WriteOutcome::Duplicate`]).
    Message {
        /// The message, with its final id.
        message: &'a Message,
        /// Users whose inbox gets a reference (sender and recipients),
        /// each listed once.
        inboxes: &'a [UserId],
        /// For a message to a group: the version of the group record whose
        /// members `inboxes` lists. If the stored record is at another
        /// version when the batch commits (another writer changed the
        /// group), nothing of this write is applied
        /// ([`WriteOutcome::Conflict`]), so a message never reaches the
        /// members of a stale record. `None` checks nothing (direct
        /// messages; a version on a direct message is ignored).
        membership: Option<GroupVersion>,
    },
    /// A receipt: recorded as delivery or read state, and put as an event in
    /// each inbox listed. Always applied.
    Receipt {
        /// The receipt, with its final event id.
        receipt: &'a Receipt,
        /// Users whose inbox gets the event, each listed once.
        inboxes: &'a [UserId],
    },
    /// A group's membership, replacing what was stored if the stored record
    /// is still the one `based_on` names (compare-and-set), together with
    /// the system message that announces the change. Either both are
    /// applied or neither ([`WriteOutcome::Conflict`]).
    Group {
        /// The whole new record.
        group: &'a Group,
        /// The version the change was computed from:
        /// [`GroupVersion::ABSENT`] to create the group.
        based_on: GroupVersion,
        /// The system message announcing the change, stored like a
        /// [`Write::Message`] (its idempotency key, if any, included).
        announce: Option<&'a Message>,
        /// Users whose inbox gets the announcement, each listed once.
        inboxes: &'a [UserId],
    },
    /// An edit or a delete for everyone: the stored message is replaced by
    /// `message` (same conversation and id, its new body and its
    /// [`Amendment`](chatgw_protocol::Amendment)), and each inbox listed
    /// gets an `amended` event whose id is the amendment's event. The event
    /// refers to the message, so reading it shows the message as it is
    /// then. A delete is final: an edit committed after it (by another
    /// writer that had not seen it) leaves the tombstone in place where the
    /// backend can tell (embedded, PostgreSQL). Always applied.
    Amend {
        /// The message as it is after the change; `amended` is set.
        message: &'a Message,
        /// Users whose inbox gets the event, each listed once.
        inboxes: &'a [UserId],
    },
    /// A delete for one user only: `user` hides message `msg` of
    /// `conversation` from themselves. Stored as a hidden mark per
    /// `(user, conversation, msg)` holding `event`, and an `amended` event
    /// `event` in `user`'s inbox only, which reads as the message in its
    /// hidden form ([`chatgw_protocol::hidden_view`]). The message itself
    /// and everyone else's view are unchanged. A mark already stored is
    /// kept (the first hide stands). Always applied.
    Hide {
        /// Who hides it; the only inbox written.
        user: &'a UserId,
        /// The message's conversation.
        conversation: ConversationId,
        /// The message.
        msg: MessageId,
        /// The `amended` event's id.
        event: MessageId,
    },
    /// `user`'s devices with keys, or a device's identity, changed
    /// (docs/E2EE.md): a `keys_changed` event `event` naming `user` in each
    /// inbox listed (the user's contacts). Nothing else is stored. Always
    /// applied.
    KeysChanged {
        /// Whose keys changed.
        user: &'a UserId,
        /// The event's id.
        event: MessageId,
        /// Users whose inbox gets the event, each listed once.
        inboxes: &'a [UserId],
    },
}

impl Write<'_> {
    /// The inboxes this write puts an event in.
    pub fn inboxes(&self) -> &[UserId] {
        match self {
            Write::Message { inboxes, .. }
            | Write::Receipt { inboxes, .. }
            | Write::Amend { inboxes, .. }
            | Write::KeysChanged { inboxes, .. } => inboxes,
            Write::Group { announce: Some(_), inboxes, .. } => inboxes,
            Write::Group { announce: None, .. } => &[],
            Write::Hide { user, .. } => std::slice::from_ref(*user),
        }
    }
}

/// A position in one user's inbox, assigned by the store when the event is
/// committed. Positions of an inbox strictly increase in commit order, so
/// a reader paging `pos > after` never passes an event that commits later.
/// A shared backend (PostgreSQL, Cassandra) makes them dense too (1, 2,
/// 3, ...; see [`MessageStore::dense_positions`](crate::MessageStore::dense_positions));
/// the embedded store, which has one writer, uses the event id (increasing,
/// not dense). Zero is "before the first event".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboxPos(pub u64);

/// Which version of a group record a change was computed from: a count of
/// the record's writes. A create makes version 1 and every applied change
/// adds one, so a writer that changes a group twice before the first change
/// is stored knows what the second is based on. [`GroupVersion::ABSENT`]
/// names "no record".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupVersion(pub u64);

impl GroupVersion {
    /// No record (a create is based on this).
    pub const ABSENT: GroupVersion = GroupVersion(0);

    /// The version a write based on this one gives the record.
    pub fn next(self) -> GroupVersion {
        GroupVersion(self.0 + 1)
    }
}

/// What the store did with one write of a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied; its inbox events have positions.
    Applied,
    /// A message whose idempotency key was already bound to another
    /// message: nothing of it was written. Names the original.
    Duplicate {
        /// The original message's conversation.
        conversation: ConversationId,
        /// The original message's id.
        id: MessageId,
    },
    /// A group write whose `based_on` is not the stored version (or a create
    /// of a group that exists), or a group message whose `membership` is
    /// not the stored version: nothing of it was written.
    Conflict,
}

/// What a commit did: its size, and per write its outcome and the inbox
/// positions it was given.
///
/// Positions are kept flat, one list for the whole batch with an offset
/// per write, so a commit of N writes costs three allocations whatever
/// their fan-out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// Bytes and records written.
    pub stats: CommitStats,
    outcomes: Vec<WriteOutcome>,
    /// Where each write's positions start in `positions`.
    starts: Vec<usize>,
    positions: Vec<InboxPos>,
}

impl Committed {
    /// Room for `writes` writes and `events` inbox events.
    pub(crate) fn with_capacity(writes: usize, events: usize) -> Self {
        Committed {
            stats: CommitStats::default(),
            outcomes: Vec::with_capacity(writes),
            starts: Vec::with_capacity(writes),
            positions: Vec::with_capacity(events),
        }
    }

    /// Record the next write's outcome and positions (empty unless applied).
    pub(crate) fn push(&mut self, outcome: WriteOutcome, positions: impl IntoIterator<Item = InboxPos>) {
        self.outcomes.push(outcome);
        self.starts.push(self.positions.len());
        self.positions.extend(positions);
    }

    /// Writes reported.
    pub fn len(&self) -> usize {
        self.outcomes.len()
    }

    /// Whether no write was reported.
    pub fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }

    /// The outcome of write `i` (in the order given to `commit`).
    pub fn outcome(&self, i: usize) -> Option<WriteOutcome> {
        self.outcomes.get(i).copied()
    }

    /// The positions write `i` got, one per inbox it listed, in the same
    /// order; empty unless it was applied.
    pub fn positions(&self, i: usize) -> &[InboxPos] {
        let Some(&start) = self.starts.get(i) else { return &[] };
        let end = self.starts.get(i + 1).copied().unwrap_or(self.positions.len());
        self.positions.get(start..end).unwrap_or(&[])
    }
}

/// Who a message reached and who read it, with times (Unix milliseconds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageReceipts {
    /// Users whose device acknowledged delivery.
    pub delivered: Vec<(UserId, u64)>,
    /// Users who read it.
    pub read: Vec<(UserId, u64)>,
}

/// An inbox entry, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboxEvent {
    /// A message (sent or received by the inbox owner).
    Message(Message),
    /// A receipt for the inbox owner.
    Receipt(Receipt),
    /// A message was edited or deleted: the event id, and the message as
    /// it is now (not as it was when the event was made).
    Amended {
        /// The event id.
        event: MessageId,
        /// The message as stored when read.
        message: Message,
    },
    /// A user's keys changed ([`Write::KeysChanged`]).
    KeysChanged {
        /// The event id.
        event: MessageId,
        /// Whose keys changed.
        user: UserId,
    },
}

impl InboxEvent {
    /// The event id (the message id for messages).
    pub fn id(&self) -> MessageId {
        match self {
            InboxEvent::Message(m) => m.id,
            InboxEvent::Receipt(r) => r.event(),
            InboxEvent::Amended { event, .. } | InboxEvent::KeysChanged { event, .. } => *event,
        }
    }
}

/// An inbox event with its position, as inbox paging returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxEntry {
    /// Where it is in the inbox.
    pub pos: InboxPos,
    /// The event.
    pub event: InboxEvent,
}

/// What a commit wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Key and value bytes handed to the engine (before its own overhead).
    pub bytes: usize,
    /// Records written.
    pub records: usize,
}

/// What the committer needs to know of a stored message: who sent it and
/// what kind it is, without its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// The message id.
    pub id: MessageId,
    /// Its sender.
    pub from: UserId,
    /// Its kind (system messages are nobody's to acknowledge).
    pub kind: MessageKind,
}

/// What one step of [`MessageStore::sweep_idempotency_keys`](crate::MessageStore::sweep_idempotency_keys)
/// did: how many keys it looked at and removed, and where the next step
/// starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySweep {
    /// Keys looked at in this step.
    pub examined: usize,
    /// Keys removed because their message is older than the cutoff.
    pub removed: u64,
    /// The last key looked at, `(sender, client id)`: the next step starts
    /// after it. `None` once the walk reached the last key (the next pass
    /// starts from the first again).
    pub next: Option<(UserId, String)>,
}

/// What one step of the inbox retention sweep did
/// ([`MessageStore::sweep_inboxes`](crate::MessageStore::sweep_inboxes)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InboxSweep {
    /// Inboxes looked at in this step.
    pub inboxes: usize,
    /// Inbox entries removed because their event is older than the cutoff.
    pub removed: u64,
    /// The inbox the next step starts at (it may be one this step looked at,
    /// when more than one step's worth of its entries had expired). `None`
    /// once the walk passed the last inbox.
    pub next: Option<UserId>,
}

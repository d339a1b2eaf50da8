//! What goes into a commit and what comes out of an inbox scan.

use chatgw_protocol::{Group, Message, MessageId, MessageKind, Receipt, UserId};

/// One write of a commit batch.
#[derive(Clone, Copy, Debug)]
pub enum Write<'a> {
    /// A new message: stored once in its conversation, referenced from each
    /// inbox listed, and bound to its idempotency key `(from, client_id)`.
    Message {
        /// The message, with its final id.
        message: &'a Message,
        /// Users whose inbox gets a reference (sender and recipients).
        inboxes: &'a [UserId],
    },
    /// A receipt: recorded as delivery or read state, and put as an event in
    /// each inbox listed.
    Receipt {
        /// The receipt, with its final event id.
        receipt: &'a Receipt,
        /// Users whose inbox gets the event.
        inboxes: &'a [UserId],
    },
    /// A group's membership, replacing what was stored.
    Group {
        /// The whole record.
        group: &'a Group,
    },
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
}

impl InboxEvent {
    /// The event id (the message id for messages).
    pub fn id(&self) -> chatgw_protocol::MessageId {
        match self {
            InboxEvent::Message(m) => m.id,
            InboxEvent::Receipt(r) => r.event(),
        }
    }
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

//! What moves between threads: requests from cores to the committer and the
//! readers, and results from them back to the cores.

use std::sync::Arc;

use chatgw_protocol::{
    ConversationId, DeviceName, DirectFrom, GroupChange, GroupId, MessageId, MessageKind, TypingState, UserId,
};
use chatgw_router::Endpoint;
use chatgw_storage::InboxPos;

/// A write request from a core to the group committer.
#[derive(Debug)]
pub(crate) enum CommitRequest {
    /// Store and deliver a message.
    Send {
        origin: Endpoint,
        from: UserId,
        client_id: String,
        conversation: ConversationId,
        kind: MessageKind,
        /// Raw JSON string literal.
        body: String,
    },
    /// Record delivery of messages to `by`.
    Delivered { origin: Endpoint, by: UserId, conversation: ConversationId, ids: Vec<MessageId> },
    /// Record that `by` read the conversation up to `up_to`.
    Read { origin: Endpoint, by: UserId, conversation: ConversationId, up_to: MessageId },
    /// Create, change or describe a group.
    Group { origin: Endpoint, by: UserId, op: GroupOp },
    /// Change or show `by`'s block list.
    Block { origin: Endpoint, by: UserId, op: BlockOp },
    /// Set (`Some`) or show `by`'s direct message setting.
    DirectFrom { origin: Endpoint, by: UserId, set: Option<DirectFrom> },
    /// Delete (for everyone or for `by` only) or edit message `msg` of the
    /// conversation.
    Amend { origin: Endpoint, by: UserId, conversation: ConversationId, msg: MessageId, op: AmendOp },
    /// `user`'s devices with keys, or a device's identity, changed: a
    /// `keys_changed` event for each of `contacts` (at most
    /// `devices::contacts::KEYS_CHANGED_BATCH`; see there). Nobody asked,
    /// so nobody is answered.
    KeysChanged { user: UserId, contacts: Vec<UserId> },
    /// Finish everything queued before this, then exit.
    Stop,
}

/// A group operation.
#[derive(Debug)]
pub(crate) enum GroupOp {
    Create { request_id: String, name: String, members: Vec<UserId> },
    Change { group: GroupId, change: GroupChange },
    Info { group: GroupId },
}

/// What an amendment does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AmendOp {
    /// Delete for everyone.
    Delete,
    /// Replace the body (raw JSON string literal). `device` is the device
    /// the editing connection's token names: the new envelope of an
    /// `encrypted` message must say it was written there (boxed: it would
    /// double the size of every queued commit request).
    Edit { body: String, device: Option<Box<DeviceName>> },
    /// Delete for the requester only: hide it from their own view.
    Hide,
}

/// A block list operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockOp {
    Block(UserId),
    Unblock(UserId),
    List,
}

/// A read request from a core to a reader thread.
#[derive(Debug)]
pub(crate) enum QueryRequest {
    /// One page of `user`'s inbox after `after`.
    Sync { origin: Endpoint, user: UserId, after: SyncFrom, limit: usize },
    /// One page of a conversation `user` takes part in.
    History { origin: Endpoint, user: UserId, conversation: ConversationId, before: Option<MessageId>, limit: usize },
    /// Delivery and read details of one group message of `user`.
    MessageInfo { origin: Endpoint, user: UserId, group: GroupId, msg: MessageId },
    /// `user`'s named devices, asked by a connection of device hash `own`.
    Devices { origin: Endpoint, user: UserId, own: u32 },
    /// Log out `device` of `user`.
    LogoutDevice { origin: Endpoint, user: UserId, device: DeviceName },
    /// Set (`Some`) or remove `user`'s `device`'s push target.
    /// `token_iat` is the asking connection's token's.
    SetPush {
        origin: Endpoint,
        user: UserId,
        device: DeviceName,
        token_iat: Option<u64>,
        target: Option<chatgw_protocol::PushTarget>,
    },
    /// A key directory request of `user`'s `device` (see `devices::keys`).
    /// `token_iat` is the asking connection's token's.
    Keys { origin: Endpoint, user: UserId, device: DeviceName, token_iat: Option<u64>, op: crate::devices::keys::KeyOp },
    /// A media frame of `user` (see `media::requests`).
    Media { origin: Endpoint, user: UserId, op: crate::media::requests::MediaOp },
    /// One page of `user`'s conversation list.
    Conversations { origin: Endpoint, user: UserId, before: Option<MessageId>, limit: usize },
    /// Who shares `conversation` with `user`, for a presence subscription
    /// or a typing state (see `presence`).
    Members { origin: Endpoint, user: UserId, conversation: ConversationId, then: MembersFor },
    /// Exit.
    Stop,
}

/// What the members of a conversation are looked up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MembersFor {
    /// A `subscribe_presence`.
    Subscribe,
    /// A `typing` frame.
    Typing(TypingState),
}

/// Where a sync page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SyncFrom {
    /// The first page: after the device's cursor (the id of the last event
    /// it received), which the reader resolves to a position.
    Cursor(MessageId),
    /// A later page: after the last position the connection was given.
    Position(InboxPos),
}

/// One event of a sync page: its position, its id and the encoded frame.
pub(crate) type PagedEvent = (InboxPos, MessageId, Vec<u8>);

/// Something for one connection of a core.
#[derive(Debug)]
pub(crate) enum CoreEvent {
    /// A live inbox event (message or receipt) as a JSON text payload,
    /// shared by every connection it fans out to, with its position in the
    /// inbox of this connection's user.
    Deliver { to: Endpoint, event: MessageId, pos: InboxPos, payload: Arc<[u8]> },
    /// The event at `pos` of this connection's inbox is its own (a message
    /// it sent, a receipt it made): the device has it already, so nothing is
    /// sent, but the connection's position moves past it. Without this, the
    /// next live event would look like a gap in a dense inbox.
    Seen { to: Endpoint, event: MessageId, pos: InboxPos },
    /// A reply to this connection's own request (`sent`, `error`, `history`).
    Reply { to: Endpoint, payload: Vec<u8> },
    /// A frame that is never stored (`presence`, `typing`), shared by every
    /// connection it fans out to; written as it comes, sync or not.
    Ephemeral { to: Endpoint, payload: Arc<[u8]> },
    /// One page of a sync: the position it was read after, and its events
    /// in position order. `full` when the page held as many as asked.
    /// `truncated` on the first page of a sync whose cursor stands below
    /// entries the inbox retention removed (`inbox_retention`).
    SyncPage { to: Endpoint, after: InboxPos, events: Vec<PagedEvent>, full: bool, truncated: bool },
    /// A sync page could not be read; the payload is an `error` frame.
    SyncFailed { to: Endpoint, payload: Vec<u8> },
    /// This connection may have missed live events (another node committed
    /// to its inbox and could not deliver them): it catches up from the
    /// store now, from the position it has, if it is subscribed; a sync in
    /// progress reads one more page instead.
    CatchUp { to: Endpoint },
    /// Every subscribed connection of core `core` catches up (a link to
    /// another node was lost, so any of them may have missed events), at
    /// most `CATCH_UP_READS` (64) reads at a time. Addressed to
    /// no connection: [`CoreEvent::endpoint`] names
    /// [`CoreEvent::whole_core`].
    CatchUpAll { core: u16 },
    /// The connection's user had its sessions revoked (`device` 0), or one
    /// device of it, named by its hash (`DeviceName::hash32`): the
    /// connection closes with 4004 if it is that device. Whatever its
    /// token: the connection keeps no issue time (it would cost every
    /// connection 8 bytes), see `revoke`.
    Revoke { to: Endpoint, device: u32 },
}

/// What cores receive in one mailbox item.
pub(crate) type CoreBatch = Vec<CoreEvent>;

impl CoreEvent {
    /// The connection this event is for; for an event for a whole core,
    /// [`CoreEvent::whole_core`], which no connection ever has.
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            CoreEvent::Deliver { to, .. }
            | CoreEvent::Seen { to, .. }
            | CoreEvent::Reply { to, .. }
            | CoreEvent::Ephemeral { to, .. }
            | CoreEvent::SyncPage { to, .. }
            | CoreEvent::SyncFailed { to, .. }
            | CoreEvent::CatchUp { to }
            | CoreEvent::Revoke { to, .. } => *to,
            CoreEvent::CatchUpAll { core } => CoreEvent::whole_core(*core),
        }
    }

    /// The placeholder address of an event for every connection of `core`:
    /// a slot no table reaches (slabs are bounded far below `u32::MAX`), so
    /// per-connection handling (the mailbox's overflow closes) finds no
    /// connection there.
    pub(crate) const fn whole_core(core: u16) -> Endpoint {
        Endpoint { core, slot: u32::MAX, generation: u32::MAX }
    }
}

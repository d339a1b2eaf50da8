//! Presence and typing: who is online (or when they were last seen) and
//! who is typing, for the users who share a conversation with them. Never
//! stored, never replayed by `sync` (docs/PROTOCOL.md, "Presence and
//! typing"; docs/CLUSTER.md for the fleet).
//!
//! Why one thread (the hub) rather than the cores: a presence change of one
//! user fans out to watchers on every core, and a popular user flapping
//! must not become a storm. One thread owns every subscription, the
//! coalescing window of each watched user and every live typing state, so
//! it decides once per change, per window, who hears of it, and posts one
//! batch per core (`hub`). It learns of connections coming and going from
//! the directory's presence feed (first and last connection of a user on
//! this node), drained every [`TICK`].
//!
//! Why the readers check first: "shares a conversation" needs the store
//! (a group's members; for a direct conversation, that a message exists
//! between the two) and the block lists, and no event loop waits on the
//! store. So `subscribe_presence` and `typing` go to a reader
//! (`QueryRequest::Members`), which answers a refusal itself or hands the
//! hub the members it may tell (`members`). `unsubscribe_presence` and
//! `set_presence` need no store and go to the hub straight from the core.
//!
//! Across a fleet (`remote`), each hub tells every peer its own users'
//! presence (changes as they happen, everyone online now and then) and
//! forwards typing to them; each peer's hub then serves its own watchers.

mod hub;
mod members;
mod remote;

use std::time::Duration;

use chatgw_protocol::{ConversationId, TypingState, UserId};
use chatgw_router::Endpoint;

pub(crate) use self::{
    hub::{Hub, HubThread},
    members::answer_members,
    remote::RemoteIn,
};

/// How often the hub drains the directory's feed and looks at its timers.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Queue between the cores, readers and links and the hub.
pub(crate) const QUEUE: usize = 65_536;
/// `typing` frames one connection may send per second, sustained; more are
/// dropped without an answer.
pub(crate) const TYPING_PER_SEC: u32 = 1;
/// ... and in a burst.
pub(crate) const TYPING_BURST: u32 = 3;

/// Settings of presence and typing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PresenceSettings {
    /// A watcher hears of one user's presence at most once per window; a
    /// connection lost and regained within it is never seen.
    pub(crate) window: Duration,
    /// A `typing` state lapses after this unless repeated.
    pub(crate) typing_expiry: Duration,
}

/// What the hub is asked.
#[derive(Debug)]
pub(crate) enum PresenceRequest {
    /// Watch `watch` for `origin` (a member of `conversation`, checked);
    /// `hidden` are members it may not see (a block either way).
    Subscribe { origin: Endpoint, user: UserId, conversation: ConversationId, watch: Vec<UserId>, hidden: Vec<UserId> },
    /// Stop watching the members of `conversation` for `origin`.
    Unsubscribe { origin: Endpoint, conversation: ConversationId },
    /// Show or hide `user`'s presence.
    SetVisible { origin: Endpoint, user: UserId, visible: bool },
    /// `user` typing (or not) in `conversation`, for the devices of `to`.
    Typing { origin: Endpoint, user: UserId, conversation: ConversationId, to: Vec<UserId>, state: TypingState },
    /// `by` blocked `target`: neither watches the other any more on this
    /// node (their subscriptions made before the block are checked again
    /// only when renewed).
    Blocked { by: UserId, target: UserId },
    /// Presence of another node's users (`remote`).
    Remote { node: u16, entries: Vec<chatgw_cluster::link::PresenceEntry> },
    /// Exit.
    Stop,
}

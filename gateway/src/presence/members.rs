//! Who shares a conversation with a user, checked on a reader thread for
//! `subscribe_presence` and `typing`.
//!
//! A group: the requester must be a member; the others are the group's
//! other members. A direct conversation: at least one message must exist
//! between the two (one message read from its history), so nobody learns
//! a stranger's presence by naming their id. Blocks hide both ways: a
//! member the requester blocks, or who blocks the requester, is neither
//! watched nor told of typing, and shows as `hidden`.

use chatgw_protocol::{server, ConversationId, ErrorCode, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::{MessageStore, StoreError};
use crossbeam_channel::{Sender, TrySendError};

use super::PresenceRequest;
use crate::events::{CoreEvent, MembersFor};

/// The members `user` may see and be seen by, and those hidden by a block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shared {
    visible: Vec<UserId>,
    hidden: Vec<UserId>,
}

/// Look up the members of `conversation` for `user`, then either hand the
/// request to the hub (`None`) or answer it with an error (`Some`).
pub(crate) fn answer_members(
    store: &dyn MessageStore,
    hub: &Sender<PresenceRequest>,
    origin: Endpoint,
    user: UserId,
    conversation: ConversationId,
    then: MembersFor,
) -> Option<CoreEvent> {
    let refuse = |code, message: &str| {
        let mut p = Vec::new();
        server::error(&mut p, code, message, None);
        Some(CoreEvent::Reply { to: origin, payload: p })
    };
    let shared = match shared(store, user, conversation) {
        Ok(Ok(shared)) => shared,
        Ok(Err(why)) => return refuse(ErrorCode::NotAllowed, why),
        Err(e) => {
            tracing::debug!(error = %e, "reading a conversation's members for presence failed");
            return refuse(ErrorCode::Unavailable, "the store could not be read; retry");
        }
    };
    let request = match then {
        MembersFor::Subscribe => {
            PresenceRequest::Subscribe { origin, user, conversation, watch: shared.visible, hidden: shared.hidden }
        }
        MembersFor::Typing(state) => PresenceRequest::Typing { origin, user, conversation, to: shared.visible, state },
    };
    match hub.try_send(request) {
        Ok(()) => None,
        // Typing is advisory: a busy hub drops it without a word.
        Err(TrySendError::Full(PresenceRequest::Typing { .. })) => None,
        Err(TrySendError::Full(_)) => refuse(ErrorCode::Unavailable, "presence is busy; retry"),
        Err(TrySendError::Disconnected(_)) => refuse(ErrorCode::ShuttingDown, "the server is shutting down"),
    }
}

/// The members `user` shares `conversation` with, or why it shares none.
fn shared(
    store: &dyn MessageStore,
    user: UserId,
    conversation: ConversationId,
) -> Result<Result<Shared, &'static str>, StoreError> {
    let others: Vec<UserId> = match conversation {
        ConversationId::Group(g) => match store.group(g)? {
            Some(group) if group.is_member(user) => {
                group.members.iter().map(|m| m.user).filter(|u| *u != user).collect()
            }
            _ => return Ok(Err("not a member of this group")),
        },
        ConversationId::Direct { .. } => {
            let peer = match conversation.peer_of(user) {
                Some(p) if p != user => p,
                _ => return Ok(Err("presence and typing are for conversations with others")),
            };
            if store.history(conversation, None, 1)?.is_empty() {
                return Ok(Err("no conversation with this user yet: presence and typing need a message between you"));
            }
            vec![peer]
        }
    };
    let mut asked = Vec::with_capacity(others.len() + 1);
    asked.push(user);
    asked.extend_from_slice(&others);
    let lists = store.blocked_by(&asked)?;
    let mine = lists.first().map(Vec::as_slice).unwrap_or_default();
    let mut shared = Shared::default();
    for (i, other) in others.into_iter().enumerate() {
        let theirs = lists.get(i + 1).map(Vec::as_slice).unwrap_or_default();
        if mine.contains(&other) || theirs.contains(&user) {
            shared.hidden.push(other);
        } else {
            shared.visible.push(other);
        }
    }
    Ok(Ok(shared))
}

//! What the engine asks of the rest of the gateway: writes for the
//! committer, reads for the readers.
//!
//! The engine does not hold the committer's or the readers' queues. It
//! appends each request to its list of [`Action`]s, in the order the
//! frames arrived, and its driver takes the list once per loop turn
//! ([`Engine::poll_actions`]) and hands each one on. A queue that refuses
//! one (full, or gone at shutdown) is reported back with
//! [`Engine::on_action_refused`], and the engine answers the client as it
//! would have at once: `unavailable` ("retry with the same id", with the
//! client's id as `ref`) for a full write queue, `shutting_down` for a
//! closed one, `sync_failed` (and no live events until the next `sync`)
//! for a sync page the readers cannot take.
//!
//! Why a list and a report rather than a callback the engine calls: the
//! engine stays plain data with no channels, threads or trait objects, so
//! a unit test drives it turn by turn and reads back both what it wrote
//! and what it asked for (the shape of quinn's `quinn-proto`). The list
//! is swapped with the driver's, so both allocations are reused and a
//! request costs one move more than a direct send.
//!
//! An answer to a refused action follows whatever the engine wrote to that
//! connection earlier in the same turn (a `pong`, another error), where a
//! direct send used to put it in line with the frame that caused it. No
//! reply to two different requests was ever ordered, so clients see no
//! difference they could rely on.

use chatgw_protocol::{ErrorCode, ProtocolError};
use chatgw_router::Endpoint;

use super::Engine;
use crate::{
    events::{CommitRequest, GroupOp, QueryRequest},
    presence::PresenceRequest,
};

/// A request for another thread.
#[derive(Debug)]
pub(crate) enum Action {
    /// For the group committer.
    Commit(CommitRequest),
    /// For a reader thread.
    Query(QueryRequest),
    /// For the presence thread.
    Presence(PresenceRequest),
}

/// Why an action was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full: the gateway is saturated, the client may retry.
    Full,
    /// The queue is closed: the gateway is shutting down.
    Gone,
}

impl<S> Engine<S> {
    /// Move the actions queued since the last call into `into` (which must
    /// be empty; it gets the engine's buffer, the engine keeps `into`'s).
    pub(crate) fn poll_actions(&mut self, into: &mut Vec<Action>) {
        debug_assert!(into.is_empty(), "actions taken earlier were not all handed on");
        std::mem::swap(&mut self.actions, into);
    }

    /// Whether actions wait for [`Engine::poll_actions`].
    pub(crate) fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// `action`, taken from [`Engine::poll_actions`], was refused: answer
    /// the connection that asked, if it is still there.
    pub(crate) fn on_action_refused(&mut self, action: Action, why: Refused) {
        match action {
            Action::Commit(request) => {
                let Some((origin, reference)) = origin_of_commit(request) else { return };
                let Some(slot) = self.live_slot(origin) else { return };
                let mut err = match why {
                    Refused::Full => {
                        ProtocolError::new(ErrorCode::Unavailable, "the write queue is full; retry with the same id")
                    }
                    Refused::Gone => ProtocolError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                };
                err.reference = reference;
                self.send_error(slot, &err);
            }
            Action::Query(QueryRequest::Sync { origin, .. }) => {
                let Some(slot) = self.live_slot(origin) else { return };
                // The readers are saturated or gone: the device retries its
                // sync (a catch-up's pages are sync pages), and gets no live
                // events until then.
                self.leave_catch_up(slot);
                self.not_live(slot);
                if let Some(c) = self.conns.get_mut(slot) {
                    c.syncing = false;
                    c.subscribed = false;
                    // Never sent: no answer will come.
                    c.page = super::conn::PageRead::Idle;
                }
                let e = ProtocolError::new(
                    ErrorCode::SyncFailed,
                    "the readers are busy; send sync again from your last cursor",
                );
                self.send_error(slot, &e);
            }
            Action::Query(
                QueryRequest::History { origin, .. }
                | QueryRequest::MessageInfo { origin, .. }
                | QueryRequest::Devices { origin, .. }
                | QueryRequest::LogoutDevice { origin, .. }
                | QueryRequest::SetPush { origin, .. }
                | QueryRequest::Keys { origin, .. }
                | QueryRequest::Media { origin, .. }
                | QueryRequest::Conversations { origin, .. }
                | QueryRequest::Members { origin, .. },
            )
            | Action::Presence(
                PresenceRequest::SetVisible { origin, .. }
                | PresenceRequest::Unsubscribe { origin, .. }
                | PresenceRequest::Subscribe { origin, .. }
                | PresenceRequest::Typing { origin, .. },
            ) => {
                let Some(slot) = self.live_slot(origin) else { return };
                let err = match why {
                    Refused::Full => ProtocolError::new(ErrorCode::Unavailable, "the read queue is full; retry"),
                    Refused::Gone => ProtocolError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                };
                self.send_error(slot, &err);
            }
            Action::Query(QueryRequest::Stop)
            | Action::Presence(
                PresenceRequest::Remote { .. } | PresenceRequest::Blocked { .. } | PresenceRequest::Stop,
            ) => {}
        }
    }

    /// The slot of `origin` if that connection is still the one there.
    fn live_slot(&self, origin: Endpoint) -> Option<usize> {
        let slot = origin.slot as usize;
        self.conns.get(slot).filter(|c| origin.core == self.core && c.generation == origin.generation).map(|_| slot)
    }
}

/// Who asked for `request`, and the id the client gave it (a send's client
/// id, a group creation's request id) to quote back as `ref`.
fn origin_of_commit(request: CommitRequest) -> Option<(Endpoint, Option<String>)> {
    match request {
        CommitRequest::Send { origin, client_id, .. } => Some((origin, Some(client_id))),
        CommitRequest::Group { origin, op: GroupOp::Create { request_id, .. }, .. } => Some((origin, Some(request_id))),
        CommitRequest::Delivered { origin, .. }
        | CommitRequest::Read { origin, .. }
        | CommitRequest::Group { origin, .. }
        | CommitRequest::Block { origin, .. }
        | CommitRequest::DirectFrom { origin, .. }
        | CommitRequest::Amend { origin, .. } => Some((origin, None)),
        CommitRequest::KeysChanged { .. } | CommitRequest::Stop => None,
    }
}

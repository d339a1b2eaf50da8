//! Handing a core's [`Action`]s to the committer and the readers.
//!
//! The engine queues requests instead of sending them (see the engine's
//! `action` module); the driver calls [`Dispatch::run`] once per loop turn,
//! before it writes, so what a refusal answers goes out in the same turn.
//! The queues are bounded: `try_send` never blocks an event loop, and a
//! refusal goes back to the engine with why.

use crossbeam_channel::{Sender, TrySendError};

use crate::{
    commit::CommitQueues,
    core::{Action, Engine, Refused},
    events::QueryRequest,
    presence::PresenceRequest,
};

/// One core's ends of the committer's and the readers' queues.
pub(crate) struct Dispatch {
    commits: CommitQueues,
    queries: Sender<QueryRequest>,
    presence: Sender<PresenceRequest>,
    /// The engine's last list of actions; swapped back empty each turn, so
    /// neither list is allocated again.
    taken: Vec<Action>,
}

impl Dispatch {
    pub(crate) fn new(
        commits: impl Into<CommitQueues>,
        queries: Sender<QueryRequest>,
        presence: Sender<PresenceRequest>,
    ) -> Self {
        Dispatch { commits: commits.into(), queries, presence, taken: Vec::new() }
    }

    /// Hand on everything `engine` asked for since the last call, in order.
    pub(crate) fn run<S>(&mut self, engine: &mut Engine<S>) {
        engine.poll_actions(&mut self.taken);
        for action in self.taken.drain(..) {
            let sent = match action {
                Action::Commit(r) => self.commits.try_send(r).map_err(|e| refusal(e, Action::Commit)),
                Action::Query(q) => self.queries.try_send(q).map_err(|e| refusal(e, Action::Query)),
                Action::Presence(p) => self.presence.try_send(p).map_err(|e| refusal(e, Action::Presence)),
            };
            if let Err((action, why)) = sent {
                engine.on_action_refused(action, why);
            }
        }
    }
}

fn refusal<T>(e: TrySendError<T>, wrap: fn(T) -> Action) -> (Action, Refused) {
    match e {
        TrySendError::Full(t) => (wrap(t), Refused::Full),
        TrySendError::Disconnected(t) => (wrap(t), Refused::Gone),
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{client, ConversationRef, ErrorCode, MessageId, MessageKind, ServerFrame, UserId};

    use super::*;
    use crate::core::harness::Harness;
    use crate::events::CommitRequest;

    fn send_text(client_id: &str) -> String {
        let mut text = String::new();
        client::send(&mut text, client_id, ConversationRef::Peer(UserId(8)), MessageKind::Text, r#""hi""#);
        text
    }

    #[test]
    fn actions_go_to_their_queues_in_order_and_a_full_queue_is_reported_back() {
        let mut h = Harness::connect(|_| {});
        let (commit_tx, commit_rx) = crossbeam_channel::bounded(1);
        let (query_tx, query_rx) = crossbeam_channel::bounded(1);
        let mut dispatch = Dispatch::new(commit_tx, query_tx, crossbeam_channel::bounded(1).0);
        let mut sync = String::new();
        client::sync(&mut sync, MessageId(0), 10);
        h.receive_text(&send_text("a"));
        h.receive_text(&sync);
        h.receive_text(&send_text("b"));
        dispatch.run(&mut h.engine);
        h.turn();

        assert!(matches!(commit_rx.try_recv(), Ok(CommitRequest::Send { client_id, .. }) if client_id == "a"));
        assert!(matches!(query_rx.try_recv(), Ok(QueryRequest::Sync { limit: 10, .. })));
        match h.server_frames().as_slice() {
            [ServerFrame::Error(e)] => {
                assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::Unavailable, Some("b")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_closed_queue_is_reported_as_shutting_down() {
        let mut h = Harness::connect(|_| {});
        let (commit_tx, commit_rx) = crossbeam_channel::bounded(1);
        let (query_tx, _query_rx) = crossbeam_channel::bounded(1);
        drop(commit_rx);
        let mut dispatch = Dispatch::new(commit_tx, query_tx, crossbeam_channel::bounded(1).0);
        h.receive_text(&send_text("c"));
        dispatch.run(&mut h.engine);
        h.turn();
        match h.server_frames().as_slice() {
            [ServerFrame::Error(e)] => {
                assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::ShuttingDown, Some("c")));
            }
            other => panic!("{other:?}"),
        }
    }
}

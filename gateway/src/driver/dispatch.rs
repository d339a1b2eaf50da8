//! Handing a core's [`Action`]s to the committer and the readers.
//!
//! The engine queues requests instead of sending them (see the engine's
//! `action` module); the driver calls [`Dispatch::run`] once per loop turn,
//! before it writes, so what a refusal answers goes out in the same turn.
//! The queues are bounded: `try_send` never blocks an event loop, and a
//! refusal goes back to the engine with why.

use crossbeam_channel::{Sender, TrySendError};

use crate::{
    core::{Action, Engine, Refused},
    events::{CommitRequest, QueryRequest},
};

/// One core's ends of the committer's and the readers' queues.
pub(crate) struct Dispatch {
    commits: Sender<CommitRequest>,
    queries: Sender<QueryRequest>,
    /// The engine's last list of actions; swapped back empty each turn, so
    /// neither list is allocated again.
    taken: Vec<Action>,
}

impl Dispatch {
    pub(crate) fn new(commits: Sender<CommitRequest>, queries: Sender<QueryRequest>) -> Self {
        Dispatch { commits, queries, taken: Vec::new() }
    }

    /// Hand on everything `engine` asked for since the last call, in order.
    pub(crate) fn run<S>(&mut self, engine: &mut Engine<S>) {
        engine.poll_actions(&mut self.taken);
        for action in self.taken.drain(..) {
            let sent = match action {
                Action::Commit(r) => self.commits.try_send(r).map_err(|e| refusal(e, Action::Commit)),
                Action::Query(q) => self.queries.try_send(q).map_err(|e| refusal(e, Action::Query)),
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

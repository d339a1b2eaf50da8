//! Presence and typing frames of a connection (see `crate::presence`).
//!
//! `subscribe_presence` and `typing` need the store (who shares the
//! conversation, blocks), so they go to a reader first; `unsubscribe_presence`
//! and `set_presence` go straight to the presence thread. `typing` is
//! rate-limited here, per connection, before it costs a store read: a
//! frame over the limit is dropped without an answer (typing is advisory,
//! and an error per dropped frame would cost more than the frame).

use std::collections::HashMap;

use chatgw_protocol::{ConversationId, UserId};
use chatgw_router::Endpoint;

use super::{Action, Engine};
use crate::{
    events::{MembersFor, QueryRequest},
    limits::TokenBucket,
    presence::{PresenceRequest, TYPING_BURST, TYPING_PER_SEC},
};

/// Each connection's typing bucket that typed, by slot, with the slot's
/// generation (a reused slot starts afresh).
#[derive(Default)]
pub(crate) struct TypingLimits(HashMap<usize, (u32, TokenBucket)>);

impl TypingLimits {
    /// Forget the connection in `slot`.
    pub(crate) fn forget(&mut self, slot: usize) {
        self.0.remove(&slot);
    }
}

impl<S> Engine<S> {
    /// `subscribe_presence` (`then` = Subscribe) or `typing`.
    pub(super) fn members_request(&mut self, origin: Endpoint, user: UserId, c: ConversationId, then: MembersFor) {
        if let MembersFor::Typing(_) = then {
            if !self.typing_allowed(origin) {
                self.ctx.metrics.typing_rate_limited.inc();
                return;
            }
        }
        self.actions.push(Action::Query(QueryRequest::Members { origin, user, conversation: c, then }));
    }

    /// `unsubscribe_presence` and `set_presence`.
    pub(super) fn presence_request(&mut self, request: PresenceRequest) {
        self.actions.push(Action::Presence(request));
    }

    fn typing_allowed(&mut self, origin: Endpoint) -> bool {
        let slot = origin.slot as usize;
        let now_ms = self.now_ms;
        let (generation, bucket) = self
            .typing_limits
            .0
            .entry(slot)
            .or_insert_with(|| (origin.generation, TokenBucket::full(TYPING_BURST, now_ms)));
        if *generation != origin.generation {
            *generation = origin.generation;
            *bucket = TokenBucket::full(TYPING_BURST, now_ms);
        }
        bucket.take(now_ms, TYPING_PER_SEC, TYPING_BURST)
    }
}

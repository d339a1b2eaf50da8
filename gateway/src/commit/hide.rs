//! `delete` with `"for":"me"` in the committer: a user hides a message of a
//! conversation they can see from their own view only.
//!
//! Why in the committer, like the other amendments: a hide is a write
//! (the hidden mark and an `amended` event in the user's own inbox) that
//! must be durable before it is answered and reach the user's other devices
//! live and by `sync` through the same path as everything else. Nobody else
//! is told and the message itself is not changed.
//!
//! Checks, in order:
//! 1. the message exists in the conversation and is not a system message
//!    (else `not_allowed`, "no such message", as for the other amendments);
//! 2. in a group, the user is a member who joined before the message (the
//!    messages their history shows); a direct conversation is the user's
//!    own by construction (`peer` names the other side);
//! 3. a repeat (a hide this committer decided, or a stored mark) is
//!    answered with the `amended` frame of the first hide, and nothing is
//!    written.
//!
//! There is no window: any message the user can see may be hidden, their
//! own or anybody else's, at any age.

use std::collections::HashMap;

use chatgw_protocol::{hidden_view, ConversationId, ErrorCode, MessageId, MessageKind, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::StoreError;

use super::{
    batch::{no_such_messages, refused, Batch, Outcome},
    lookups::only,
};

/// Hides kept; emptied when full (a mark is one store read away).
const MAX_CACHED: usize = 100_000;

/// The hides this committer decided, which the writer may not have stored
/// yet: `(user, conversation, message)` to the hiding event.
#[derive(Default)]
pub(super) struct HiddenCache(HashMap<(UserId, ConversationId, MessageId), MessageId>);

impl HiddenCache {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    fn insert(&mut self, key: (UserId, ConversationId, MessageId), event: MessageId) {
        if self.0.len() >= MAX_CACHED {
            self.0.clear();
        }
        self.0.insert(key, event);
    }
}

impl Batch<'_> {
    /// A `delete` for `by` only.
    pub(super) fn hide(
        &mut self,
        origin: Endpoint,
        by: UserId,
        c: ConversationId,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let Some(m) = self.current(c, id)?.filter(|m| m.kind != MessageKind::System) else {
            self.push(no_such_messages(origin, &[id]));
            return Ok(());
        };
        if let ConversationId::Group(g) = c {
            match self.cached_group(g)?.and_then(|grp| grp.member(by).map(|x| x.joined)) {
                None => {
                    self.push(refused(origin, ErrorCode::NotAllowed, "not a member of this group", None));
                    return Ok(());
                }
                // Sent before they joined: not in their history.
                Some(joined) if m.id < joined => {
                    self.push(no_such_messages(origin, &[id]));
                    return Ok(());
                }
                Some(_) => {}
            }
        }
        let key = (by, c, id);
        let earlier = match self.hidden.0.get(&key) {
            Some(event) => Some(*event),
            None => only(self.store().hidden_marks(by, &[(c, id)])?, "hidden marks")?,
        };
        if let Some(event) = earlier {
            self.hidden.insert(key, event);
            self.push(Outcome::AmendRepeat { origin, message: hidden_view(m, event) });
            return Ok(());
        }
        let event = self.next_id();
        self.hidden.insert(key, event);
        self.push(Outcome::Hide { origin, user: by, message: hidden_view(m, event) });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{AmendKind, Message};

    use super::*;
    use crate::events::{AmendOp, CommitRequest};

    fn hide(by: u64, c: ConversationId, msg: MessageId) -> CommitRequest {
        let origin = Endpoint { core: 0, slot: by as u32, generation: 1 };
        CommitRequest::Amend { origin, by: UserId(by), conversation: c, msg, op: AmendOp::Hide }
    }

    /// A hide the writer has not stored yet answers its repeat, with the
    /// same event and no second write; another user's hide is their own.
    #[test]
    fn a_hide_in_flight_answers_its_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let (store, c, id, ids) = super::super::test_store::with_one_message(dir.path());
        let mut batch = Batch::new(&store, ids, 256);
        batch.begin(1, 0);
        batch.add(hide(2, c, id)).unwrap();
        batch.add(hide(2, c, id)).unwrap();
        batch.add(hide(1, c, id)).unwrap();
        batch.add(hide(2, c, MessageId(id.0 + 1))).unwrap();
        let hidden_event = |m: &Message| m.amended.filter(|a| a.kind == AmendKind::Hidden).map(|a| a.event);
        match batch.outcomes() {
            [Outcome::Hide { user: UserId(2), message: first, .. }, Outcome::AmendRepeat { message: again, .. }, Outcome::Hide { user: UserId(1), message: other, .. }, Outcome::Refused { code: ErrorCode::NotAllowed, .. }] =>
            {
                assert!(first.body.is_empty(), "the hidden form has no body");
                assert_eq!(hidden_event(first), hidden_event(again), "the repeat names the first hide");
                assert_ne!(hidden_event(first), hidden_event(other));
            }
            other => panic!("{} outcomes", other.len()),
        }
        assert_eq!(batch.writes().len(), 2, "one write per user");
    }
}

//! `delete` (for everyone) and `edit` in the committer: who may, until
//! when, and what a repeat is answered with. A `delete` for the requester
//! only is handed to `hide`.
//!
//! Why in the committer: an amendment replaces the stored message and puts
//! an `amended` event in every participant's inbox, so it is a write like a
//! send: durable before it is acknowledged, ordered with the sends and
//! receipts around it, and delivered live and by `sync` by the same path.
//!
//! The message as it is now is what every check reads: the newest
//! amendment this committer decided (kept in [`AmendedCache`], since the
//! writer may not have stored it yet), else the store (read with the
//! batch's other lookups). Checks, in order:
//! 1. the message exists in the conversation and is not a system message;
//! 2. the requester may: the sender, or for a delete in a group an admin
//!    of a group that allows admins to delete (`admins_can_delete`);
//! 3. a repeat changes nothing: deleting a deleted message, or editing to
//!    the body it has after an edit, is answered with the `amended` frame
//!    of the existing event (no second event); editing a deleted message
//!    is refused (`message_deleted`);
//! 4. the window, counted from the message's `ts`: `--delete-window`,
//!    `--edit-window` (`window_closed`).
//!
//! An edit of an `encrypted` message replaces its envelope, so the new
//! body must be one, written by the editing device, as a send's must
//! (docs/PROTOCOL.md, "Encrypted messages"): checked here, where the
//! message's kind is known, after the requester was found to be its
//! sender.

use std::{collections::HashMap, time::Duration};

use chatgw_protocol::{
    check_envelope, now_ms, AmendKind, Amendment, ConversationId, DeviceName, ErrorCode, Message, MessageId,
    MessageKind, UserId,
};
use chatgw_router::Endpoint;
use chatgw_storage::StoreError;

use super::{
    batch::{no_such_messages, refused, Batch, Outcome},
    lookups::only,
};
use crate::events::AmendOp;

/// How long after sending a message may still be deleted for everyone, and
/// edited (`--delete-window`, `--edit-window`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AmendWindows {
    pub(crate) delete: Duration,
    pub(crate) edit: Duration,
}

/// The defaults: 48 hours to delete, 15 minutes to edit.
pub(crate) const DEFAULT_WINDOWS: AmendWindows =
    AmendWindows { delete: Duration::from_secs(48 * 3600), edit: Duration::from_secs(15 * 60) };

/// Messages amended most, kept; the cache is emptied when full (a message
/// is one store read away, and the store keeps a delete final).
const MAX_CACHED: usize = 100_000;

/// The newest amended form of each message this committer amended.
#[derive(Default)]
pub(super) struct AmendedCache(HashMap<(ConversationId, MessageId), Message>);

impl AmendedCache {
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn get(&self, key: (ConversationId, MessageId)) -> Option<&Message> {
        self.0.get(&key)
    }

    fn insert(&mut self, m: Message) {
        if self.0.len() >= MAX_CACHED {
            self.0.clear();
        }
        self.0.insert((m.conversation, m.id), m);
    }
}

impl Batch<'_> {
    /// The message as it is now: amended by this committer, else stored.
    pub(super) fn current(&mut self, c: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        if let Some(m) = self.amended.get((c, id)) {
            return Ok(Some(m.clone()));
        }
        match self.lookups.messages.get(&(c, id)) {
            Some(m) => Ok(m.clone()),
            None => only(self.store().messages(&[(c, id)])?, "messages"),
        }
    }

    /// A `delete` for everyone or an `edit` from `by`.
    pub(super) fn amend(
        &mut self,
        origin: Endpoint,
        by: UserId,
        c: ConversationId,
        id: MessageId,
        op: AmendOp,
    ) -> Result<(), StoreError> {
        if op == AmendOp::Hide {
            return self.hide(origin, by, c, id);
        }
        let Some(m) = self.current(c, id)?.filter(|m| m.kind != MessageKind::System) else {
            self.push(no_such_messages(origin, &[id]));
            return Ok(());
        };
        let deleting = matches!(op, AmendOp::Delete);
        // Who may: the sender; in a group, a member, and for a delete an
        // admin where the group allows it.
        let allowed = match c {
            ConversationId::Direct { .. } => m.from == by,
            ConversationId::Group(g) => match self.cached_group(g)? {
                Some(grp) if grp.is_member(by) => {
                    m.from == by || (deleting && grp.admins_can_delete && grp.member(by).is_some_and(|x| x.admin))
                }
                _ => false,
            },
        };
        if !allowed {
            let why = match (deleting, c) {
                (true, ConversationId::Group(_)) => {
                    "only the sender may delete this message (or an admin, where the group allows it)"
                }
                (true, _) => "only the sender may delete this message",
                (false, _) => "only the sender may edit this message",
            };
            self.push(refused(origin, ErrorCode::NotAllowed, why, None));
            return Ok(());
        }
        if let (AmendOp::Edit { body, device }, MessageKind::Encrypted) = (&op, m.kind) {
            if let Some((code, why)) = envelope_refusal(body, device.as_deref().copied()) {
                self.push(refused(origin, code, why, None));
                return Ok(());
            }
        }
        let state = m.amended.map(|a| a.kind);
        match (&op, state) {
            (AmendOp::Delete, Some(AmendKind::Deleted)) => {
                self.push(Outcome::AmendRepeat { origin, message: m });
                return Ok(());
            }
            (AmendOp::Edit { .. }, Some(AmendKind::Deleted)) => {
                let why = "this message was deleted; it cannot be edited";
                self.push(refused(origin, ErrorCode::MessageDeleted, why, None));
                return Ok(());
            }
            (AmendOp::Edit { body, .. }, Some(AmendKind::Edited)) if *body == m.body => {
                self.push(Outcome::AmendRepeat { origin, message: m });
                return Ok(());
            }
            _ => {}
        }
        let (window, what) = match op {
            // A hide was handed to `hide` above.
            AmendOp::Delete | AmendOp::Hide => (self.windows.delete, "delete"),
            AmendOp::Edit { .. } => (self.windows.edit, "edit"),
        };
        let age = now_ms().saturating_sub(m.ts);
        if window.is_zero() || u128::from(age) > window.as_millis() {
            let why = format!("too late to {what} this message: the window is {}s", window.as_secs());
            self.push(refused(origin, ErrorCode::WindowClosed, why, None));
            return Ok(());
        }
        let inboxes = self.amend_inboxes(&m)?;
        let event = self.next_id();
        let (kind, body) = match op {
            AmendOp::Delete | AmendOp::Hide => (AmendKind::Deleted, String::new()),
            AmendOp::Edit { body, .. } => (AmendKind::Edited, body),
        };
        let message = Message { body, amended: Some(Amendment { kind, event }), ..m };
        self.amended.insert(message.clone());
        self.push(Outcome::Amend { origin, message, inboxes });
        Ok(())
    }

    /// Who is told: the participants who got the message (a direct
    /// recipient who blocks the sender never did), and in a group its
    /// members now.
    fn amend_inboxes(&mut self, m: &Message) -> Result<Vec<UserId>, StoreError> {
        Ok(match m.conversation {
            ConversationId::Direct { .. } => {
                let to = m.conversation.peer_of(m.from).unwrap_or(m.from);
                let store = self.store();
                if to == m.from || self.blocks.blocks(store, to, m.from)? {
                    vec![m.from]
                } else {
                    vec![m.from, to]
                }
            }
            ConversationId::Group(g) => self.cached_group(g)?.map(|grp| grp.users().collect()).unwrap_or_default(),
        })
    }
}

/// Why the new body `body` (a raw JSON string literal) of an `encrypted`
/// message, edited from `device`, is refused, if it is.
fn envelope_refusal(body: &str, device: Option<DeviceName>) -> Option<(ErrorCode, String)> {
    let Some(device) = device else {
        let why =
            "encrypted messages come from named devices: connect with a token whose `dev` claim names this device";
        return Some((ErrorCode::NotAllowed, why.to_owned()));
    };
    // The parser checked that the literal decodes.
    let text: String = serde_json::from_str(body).unwrap_or_default();
    let why = match check_envelope(&text) {
        Err(why) => why,
        Ok(e) if e.device != device => format!("`d` must be this connection's device `{device}`"),
        Ok(_) => return None,
    };
    Some((ErrorCode::BadField, format!("field `body`: encrypted envelope: {why}")))
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::UserId;

    use super::*;
    use crate::events::CommitRequest;

    fn ep(slot: u32) -> Endpoint {
        Endpoint { core: 0, slot, generation: 1 }
    }

    fn amend(by: u64, c: ConversationId, msg: MessageId, op: AmendOp) -> CommitRequest {
        CommitRequest::Amend { origin: ep(by as u32), by: UserId(by), conversation: c, msg, op }
    }

    /// Amendments the writer has not stored yet decide the next ones: a
    /// delete still in flight refuses an edit, and a repeat of it is
    /// answered without a write.
    #[test]
    fn amendments_in_flight_decide_the_next_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (store, c, id, ids) = super::super::test_store::with_one_message(dir.path());
        let mut batch = Batch::new(&store, ids, 256);
        batch.begin(1, 0);
        batch.add(amend(1, c, id, AmendOp::Edit { body: "\"y\"".into(), device: None })).unwrap();
        batch.add(amend(1, c, id, AmendOp::Delete)).unwrap();
        let writes = batch.writes();
        assert_eq!(writes.len(), 2, "an edit and a delete, each a write");
        let kinds: Vec<_> = batch
            .outcomes()
            .iter()
            .map(|o| match o {
                Outcome::Amend { message, inboxes, .. } => (message.amended.map(|a| a.kind), inboxes.len()),
                _ => panic!("not an amendment"),
            })
            .collect();
        assert_eq!(kinds, vec![(Some(AmendKind::Edited), 2), (Some(AmendKind::Deleted), 2)]);

        // Nothing of batch 1 is stored yet.
        batch.begin(2, 0);
        batch.add(amend(1, c, id, AmendOp::Edit { body: "\"z\"".into(), device: None })).unwrap();
        batch.add(amend(1, c, id, AmendOp::Delete)).unwrap();
        batch.add(amend(2, c, id, AmendOp::Delete)).unwrap();
        match batch.outcomes() {
            [Outcome::Refused { code: ErrorCode::MessageDeleted, .. }, Outcome::AmendRepeat { message, .. }, Outcome::Refused { code: ErrorCode::NotAllowed, .. }] =>
            {
                assert!(message.amended.is_some_and(|a| a.kind == AmendKind::Deleted))
            }
            other => panic!("{}", other.len()),
        }
        assert!(batch.writes().is_empty(), "nothing to write");
    }
}

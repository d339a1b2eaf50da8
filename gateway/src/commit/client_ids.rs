//! Whether a `send`'s client id was used before, and for what: the same
//! message (a resend, answered with the original) or another one
//! (`client_id_conflict`).
//!
//! Why a digest: a client id taken in a batch the writer has not stored
//! yet is only in the committer's memory, and keeping every body there
//! until its batch is stored would double the memory of a burst; a digest
//! of kind and body tells a resend from a conflict in eight bytes. A client
//! id the store already binds is compared with the stored original, read
//! with the batch's lookups (`lookups`) and only for client ids used before,
//! so a first send costs no store read beyond the idempotency lookup it
//! always made.

use chatgw_protocol::{ConversationId, MessageId, MessageKind, UserId};
use chatgw_storage::StoreError;

use super::{
    batch::{Batch, Draft},
    lookups::only,
};

/// What a client id was used for before.
pub(super) enum Earlier {
    /// This very message (same conversation, kind and body): its id.
    Resend(MessageId),
    /// Another message.
    Conflict,
}

/// The `error` message of `client_id_conflict`.
pub(super) const CLIENT_ID_CONFLICT: &str =
    "this client id was already used for a different message; nothing was sent, use a new client id";

/// A digest of a message's kind and body, kept with a client id taken in
/// flight so a second use of it in a later (or the same) batch can be told
/// apart from a resend without keeping the body. Deterministic within the
/// process, which is as long as in-flight decisions live.
pub(super) fn digest(kind: MessageKind, body: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    kind.to_u8().hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

impl Batch<'_> {
    /// The message `from` stored (or is storing in this batch) under this client id.
    pub(super) fn earlier_message(
        &mut self,
        from: UserId,
        client_id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        if let Some(taken) = self.in_flight.client_id(from, client_id) {
            return Ok(Some((taken.conversation, taken.id)));
        }
        self.stored_client_id(from, client_id)
    }

    /// The message the store binds `(from, client_id)` to.
    fn stored_client_id(
        &mut self,
        from: UserId,
        client_id: &str,
    ) -> Result<Option<(ConversationId, MessageId)>, StoreError> {
        match self.lookups.client_ids.get(&(from, client_id.to_owned())) {
            Some(found) => Ok(*found),
            None => only(self.store().messages_by_client_ids(&[(from, client_id)])?, "idempotency"),
        }
    }

    /// Whether `draft`'s client id was used before, and if so whether for
    /// this very message (a resend) or another one. Found in flight, the
    /// digests decide; found in the store, the conversations, and if they
    /// match, the stored message's kind and body (read with the batch's
    /// lookups, and only for client ids that were used before).
    pub(super) fn earlier_use(&mut self, draft: &Draft) -> Result<Option<Earlier>, StoreError> {
        if let Some(taken) = self.in_flight.client_id(draft.from, &draft.client_id) {
            let same = taken.conversation == draft.conversation && taken.digest == digest(draft.kind, &draft.body);
            return Ok(Some(if same { Earlier::Resend(taken.id) } else { Earlier::Conflict }));
        }
        let Some((conversation, id)) = self.stored_client_id(draft.from, &draft.client_id)? else {
            return Ok(None);
        };
        if conversation != draft.conversation {
            return Ok(Some(Earlier::Conflict));
        }
        let original = match self.lookups.originals.get(&(conversation, id)) {
            Some(d) => *d,
            None => {
                let m = only(self.store().messages(&[(conversation, id)])?, "messages")?;
                // An amended message no longer holds the body it was sent
                // with: nothing to compare with (see below).
                let d = m.filter(|m| m.amended.is_none()).map(|m| digest(m.kind, &m.body));
                self.lookups.originals.insert((conversation, id), d);
                d
            }
        };
        Ok(Some(match original {
            Some(d) if d != digest(draft.kind, &draft.body) => Earlier::Conflict,
            // The key names a message the store no longer returns, or one
            // edited or deleted since: nothing to compare with, so the
            // original answer stands.
            _ => Earlier::Resend(id),
        }))
    }
}

//! Answering `conversations`: one page of a user's conversation list, read
//! by a reader thread.
//!
//! The store keeps, per user and conversation, the last message's key and
//! the unread count, up to date with every commit; this module only reads
//! a page of those rows and fills in what the client shows: each last
//! message as it is stored now (one batched `messages` read, so an edit or
//! deletion that rewrites a stored message shows here too), and for groups
//! the name and member count from the group record. A last message the
//! user deleted for themselves is shown in its hidden form (one batched
//! `hidden_marks` read per page; the rows and the commit path are
//! unchanged).

use chatgw_protocol::{
    server::{self, ConversationEntry},
    ConversationId, MessageId, UserId,
};
use chatgw_storage::{MessageStore, StoreError};

/// The encoded `conversations` answer for `user`: conversations whose last
/// message is older than `before`, newest first, at most `limit`. One
/// more row than asked is read to know whether a next page exists.
pub(crate) fn page(
    store: &dyn MessageStore,
    user: UserId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut rows = store.conversations(user, before, limit + 1)?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let keys: Vec<(ConversationId, MessageId)> = rows.iter().map(|r| (r.conversation, r.last)).collect();
    let mut messages = store.messages(&keys)?;
    // A last message the user hid is shown hidden (no body).
    crate::hidden_reads::show_hidden(store, user, messages.iter_mut().flatten())?;
    let mut groups = Vec::with_capacity(rows.len());
    for r in &rows {
        groups.push(match r.conversation {
            ConversationId::Group(g) => store.group(g)?,
            ConversationId::Direct { .. } => None,
        });
    }
    let entries: Vec<ConversationEntry<'_>> = rows
        .iter()
        .zip(&messages)
        .zip(&groups)
        .map(|((r, m), g)| ConversationEntry {
            conversation: r.conversation,
            last: m.as_ref(),
            unread: r.unread,
            group: g.as_ref(),
        })
        .collect();
    let next = if more { rows.last().map(|r| r.last) } else { None };
    let bytes: usize = messages.iter().flatten().map(|m| 200 + m.body.len() + m.client_id.len()).sum();
    let mut out = Vec::with_capacity(64 + bytes);
    server::conversations(&mut out, user, &entries, next);
    Ok(out)
}

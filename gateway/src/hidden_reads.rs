//! What a user who deleted messages for themselves reads: every message
//! they hid is shown in its hidden form (no body, the `hidden` mark), in
//! `history` pages, replayed `message` events of `sync`, and the `last`
//! message of `conversations` entries.
//!
//! Why at read time: a hide changes one user's view only, so the stored
//! message and the conversation list rows (kept up to date by every commit)
//! stay as they are, and the commit path pays nothing. Each page costs one
//! batched `hidden_marks` read of the messages on it; a page with no
//! message costs nothing.

use chatgw_protocol::{hidden_view, Message, UserId};
use chatgw_storage::{MessageStore, StoreError};

/// Replace each message `user` hid by its hidden form.
pub(crate) fn show_hidden<'m>(
    store: &dyn MessageStore,
    user: UserId,
    messages: impl IntoIterator<Item = &'m mut Message>,
) -> Result<(), StoreError> {
    let mut messages: Vec<&mut Message> = messages.into_iter().collect();
    if messages.is_empty() {
        return Ok(());
    }
    let keys: Vec<_> = messages.iter().map(|m| (m.conversation, m.id)).collect();
    let marks = store.hidden_marks(user, &keys)?;
    for (m, mark) in messages.iter_mut().zip(marks) {
        if let Some(event) = mark {
            **m = hidden_view((**m).clone(), event);
        }
    }
    Ok(())
}

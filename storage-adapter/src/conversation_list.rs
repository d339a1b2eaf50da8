//! The conversation list every store keeps per user, and the rules all
//! backends share for keeping it.
//!
//! Why a row per `(user, conversation)` updated by the commit: listing a
//! user's conversations must not scan message history, and an unread count
//! computed at query time would read every unread message of every
//! conversation. So the commit that stores a message raises the row's last
//! message and counts it as unread for each recipient it counts for, and
//! the commit that moves a read mark recounts only what lies after the new
//! mark (nothing when the mark reached the last message, the usual case).
//! The row keeps keys, never bodies: the list reads the last messages
//! themselves at query time, so it shows each message as it is stored now.

use chatgw_protocol::{ConversationId, MessageId, MessageKind, UserId};

/// Largest number of messages a read-mark recount walks (a read that
/// leaves more than this unread behind it is counted as this many until
/// the next read or message of the conversation). Bounds the work one
/// `read` adds to a commit.
pub const MAX_RECOUNT: usize = 10_000;

/// One conversation of a user's list, as the store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: ConversationId,
    /// The newest message of the conversation that reached the user's inbox.
    pub last: MessageId,
    /// Messages after the user's read mark that count as unread for them
    /// (see [`counts_as_unread`]).
    pub unread: u64,
}

/// Whether a message counts towards `user`'s unread count: somebody else's
/// message, and not a system message (membership announcements are shown,
/// but like in the chat apps users know, they raise no badge).
pub fn counts_as_unread(user: UserId, from: UserId, kind: MessageKind) -> bool {
    user != from && kind != MessageKind::System
}

/// A page of `rows` (one user's whole list, any order): the conversations
/// whose last message is older than `before` (all if `None`), newest
/// first, at most `limit`. Message ids are unique across conversations, so
/// the last message id alone is a total order and a cursor. For backends
/// that read the whole list of a user (one partition) and order it here.
pub(crate) fn page(
    mut rows: Vec<ConversationSummary>,
    before: Option<MessageId>,
    limit: usize,
) -> Vec<ConversationSummary> {
    if let Some(b) = before {
        rows.retain(|r| r.last < b);
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.last));
    rows.truncate(limit);
    rows
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::GroupId;

    use super::*;

    #[test]
    fn own_and_system_messages_do_not_count() {
        assert!(counts_as_unread(UserId(1), UserId(2), MessageKind::Text));
        assert!(!counts_as_unread(UserId(1), UserId(1), MessageKind::Text));
        assert!(!counts_as_unread(UserId(1), UserId(2), MessageKind::System));
    }

    #[test]
    fn a_page_is_newest_first_below_the_cursor() {
        let row = |g, last| ConversationSummary {
            conversation: ConversationId::Group(GroupId(g)),
            last: MessageId(last),
            unread: 0,
        };
        let rows = vec![row(1, 10), row(2, 30), row(3, 20), row(4, 40)];
        let ids = |v: Vec<ConversationSummary>| v.into_iter().map(|r| r.last.0).collect::<Vec<_>>();
        assert_eq!(ids(page(rows.clone(), None, 3)), vec![40, 30, 20]);
        assert_eq!(ids(page(rows.clone(), Some(MessageId(20)), 3)), vec![10]);
        assert_eq!(ids(page(rows, Some(MessageId(10)), 3)), Vec::<u64>::new());
    }
}

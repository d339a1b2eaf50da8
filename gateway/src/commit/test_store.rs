//! For the committer's unit tests: an embedded store holding one stored
//! direct message, from user 1 to user 2, that amendments and hides act on.

use chatgw_protocol::{now_ms, ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore, Write};

/// The store (in `dir`), the message's conversation and id, and the id
/// generator that made it (for the batch's next ids).
pub(super) fn with_one_message(dir: &std::path::Path) -> (EmbeddedStore, ConversationId, MessageId, Snowflake) {
    let store = EmbeddedStore::open(dir, &EmbeddedOptions::default()).unwrap();
    let c = ConversationId::direct(UserId(1), UserId(2));
    let mut ids = Snowflake::new(0);
    let id = ids.next_id();
    let m = Message {
        id,
        conversation: c,
        from: UserId(1),
        kind: MessageKind::Text,
        client_id: "c".into(),
        ts: now_ms(),
        body: "\"x\"".into(),
        amended: None,
    };
    store.commit(&[Write::Message { message: &m, inboxes: &[UserId(1), UserId(2)], membership: None }], id).unwrap();
    (store, c, id, ids)
}

//! The one history every backend's integrity check is tested on, built
//! once so the embedded, PostgreSQL and Cassandra checks are compared on
//! the same records: users 1 and 2 talk directly (2 acknowledges
//! delivery); user 1 creates a group with 2 and 3, 2 sends to it, then 1
//! removes 3.

use chatgw_protocol::{
    ConversationId, Group, GroupId, Member, Message, MessageId, MessageKind, Receipt, Snowflake, UserId,
};

use crate::{GroupVersion, MessageStore, Write};

pub(crate) const U1: UserId = UserId(1);
pub(crate) const U2: UserId = UserId(2);
pub(crate) const U3: UserId = UserId(3);

/// The records of the history, in the order they were made.
pub(crate) struct CheckHistory {
    pub(crate) direct: Message,
    pub(crate) receipt: Receipt,
    pub(crate) created: Message,
    pub(crate) text: Message,
    pub(crate) removed: Message,
    /// The group as created (1, 2 and 3).
    pub(crate) before: Group,
    /// The group after 3 was removed.
    pub(crate) group: Group,
}

/// A message with the next id of `g`.
pub(crate) fn message(
    g: &mut Snowflake,
    conversation: ConversationId,
    from: UserId,
    kind: MessageKind,
    cid: &str,
    body: &str,
) -> Message {
    let id = g.next_id();
    Message {
        id,
        conversation,
        from,
        kind,
        client_id: cid.into(),
        ts: Snowflake::unix_ms(id),
        body: body.into(),
        amended: None,
    }
}

impl CheckHistory {
    pub(crate) fn new() -> Self {
        let mut ids = Snowflake::new(0);
        let dc = ConversationId::direct(U1, U2);
        let direct = message(&mut ids, dc, U1, MessageKind::Text, "c1", "\"hi\"");
        let receipt =
            Receipt::Delivered { event: ids.next_id(), conversation: dc, by: U2, ids: vec![direct.id], at: 1 };
        let gid = GroupId(ids.next_id().0);
        let gc = ConversationId::Group(gid);
        let created = r#"{"event":"created","by":"1","name":"T","members":["1","2","3"]}"#;
        let created = message(&mut ids, gc, U1, MessageKind::System, "g:g1", &quoted(created));
        let text = message(&mut ids, gc, U2, MessageKind::Text, "c2", "\"to all\"");
        let removed = r#"{"event":"removed","by":"1","members":["3"],"new_admins":[]}"#;
        let removed = message(&mut ids, gc, U1, MessageKind::System, "", &quoted(removed));
        let member = |user, admin| Member { user, admin, joined: MessageId(gid.0) };
        let before = Group {
            id: gid,
            name: "T".into(),
            description: String::new(),
            admins_only: false,
            admins_can_delete: false,
            created_by: U1,
            members: vec![member(U1, true), member(U2, false), member(U3, false)],
        };
        let mut group = before.clone();
        group.members.retain(|m| m.user != U3);
        CheckHistory { direct, receipt, created, text, removed, before, group }
    }

    /// Write the history through `store`'s own commit, in two batches.
    pub(crate) fn commit_to(&self, store: &dyn MessageStore) {
        let (all, two) = ([U1, U2, U3], [U1, U2]);
        let writes = [
            Write::Message { message: &self.direct, inboxes: &two, membership: None },
            Write::Receipt { receipt: &self.receipt, inboxes: &[U1] },
            Write::Group {
                group: &self.before,
                based_on: GroupVersion::ABSENT,
                announce: Some(&self.created),
                inboxes: &all,
            },
            Write::Message { message: &self.text, inboxes: &all, membership: None },
        ];
        store.commit(&writes, self.text.id).expect("the first batch commits");
        let change = Write::Group {
            group: &self.group,
            based_on: GroupVersion(1),
            announce: Some(&self.removed),
            inboxes: &all,
        };
        store.commit(&[change], self.removed.id).expect("the second batch commits");
    }
}

/// A system message body: the event's JSON as a JSON string.
fn quoted(json: &str) -> String {
    serde_json::to_string(json).expect("a string serialises")
}

//! The conversation list: kept by commits, newest first, paged by the last
//! message id, with unread counts that follow messages and read marks.

use chatgw_protocol::{
    ConversationId, Group, GroupId, Member, Message, MessageId, MessageKind, Receipt, Snowflake, UserId,
};

use super::{text, Backend};
use crate::{ConversationSummary, GroupVersion, MessageStore, Write};

fn list(
    s: &dyn MessageStore,
    user: u64,
    before: Option<MessageId>,
    limit: usize,
) -> Vec<(ConversationId, MessageId, u64)> {
    s.conversations(UserId(user), before, limit)
        .expect("read the conversation list")
        .into_iter()
        .map(|ConversationSummary { conversation, last, unread }| (conversation, last, unread))
        .collect()
}

fn read(ids: &mut Snowflake, c: ConversationId, by: u64, up_to: MessageId) -> Receipt {
    let event = ids.next_id();
    Receipt::Read { event, conversation: c, by: UserId(by), up_to, at: Snowflake::unix_ms(event) }
}

fn send<'a>(m: &'a Message, inboxes: &'a [UserId]) -> Write<'a> {
    Write::Message { message: m, inboxes, membership: None }
}

/// Users 1, 2 and 3 talk directly and in a group: each sees their
/// conversations newest first with the right last message; unread counts
/// rise with others' messages (not with their own or system messages), drop
/// to zero on a read of the last message, to what is left on a read of an
/// earlier one, and never change on a read that does not move the mark;
/// pages follow the last message id; everything survives a reopen.
pub fn conversation_list_and_unread_counts(backend: &dyn Backend) {
    let place = backend.new_place();
    let s = backend.open(&place);
    let mut ids = Snowflake::new(3);
    let (u1, u2, u3) = (UserId(1), UserId(2), UserId(3));
    assert!(list(s.as_ref(), 1, None, 10).is_empty(), "nobody has conversations yet");

    // 1 <-> 2: two from 2, one from 1, two more from 2, in two batches.
    let d12 = ConversationId::direct(u1, u2);
    let both = [u1, u2];
    let a = text(&mut ids, 2, 1, "a");
    let b = text(&mut ids, 2, 1, "b");
    let c = text(&mut ids, 1, 2, "c");
    s.commit(&[send(&a, &both), send(&b, &both), send(&c, &both)], c.id).unwrap();
    let d = text(&mut ids, 2, 1, "d");
    let e = text(&mut ids, 2, 1, "e");
    s.commit(&[send(&d, &both), send(&e, &both)], e.id).unwrap();
    // 1 <-> 3: one from 3.
    let d13 = ConversationId::direct(u1, u3);
    let f = text(&mut ids, 3, 1, "f");
    s.commit(&[send(&f, &[u1, u3])], f.id).unwrap();
    // A group of 1, 2, 3 created by 2 (a system announcement), then one
    // message from 3.
    let gid = GroupId(ids.next_id().0);
    let g = Group {
        id: gid,
        name: "trip".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: u2,
        members: [u2, u1, u3]
            .iter()
            .map(|&user| Member { user, admin: user == u2, joined: MessageId(gid.0) })
            .collect(),
    };
    let gc = ConversationId::Group(gid);
    let announce_id = ids.next_id();
    let announce = Message {
        id: announce_id,
        conversation: gc,
        from: u2,
        kind: MessageKind::System,
        client_id: String::new(),
        ts: Snowflake::unix_ms(announce_id),
        body: "\"created\"".into(),
        amended: None,
    };
    let all = [u1, u2, u3];
    s.commit(
        &[Write::Group { group: &g, based_on: GroupVersion::ABSENT, announce: Some(&announce), inboxes: &all }],
        announce_id,
    )
    .unwrap();
    assert_eq!(list(s.as_ref(), 1, None, 10)[0], (gc, announce_id, 0), "a system message raises no count");
    let h_id = ids.next_id();
    let h = Message {
        id: h_id,
        conversation: gc,
        from: u3,
        kind: MessageKind::Text,
        client_id: "h".into(),
        ts: Snowflake::unix_ms(h_id),
        body: "\"h\"".into(),
        amended: None,
    };
    s.commit(&[Write::Message { message: &h, inboxes: &all, membership: None }], h_id).unwrap();

    assert_eq!(list(s.as_ref(), 1, None, 10), vec![(gc, h.id, 1), (d13, f.id, 1), (d12, e.id, 4)], "newest first");
    assert_eq!(list(s.as_ref(), 2, None, 10), vec![(gc, h.id, 1), (d12, e.id, 1)], "own messages do not count");
    assert_eq!(list(s.as_ref(), 3, None, 10), vec![(gc, h.id, 0), (d13, f.id, 0)]);
    assert_eq!(list(s.as_ref(), 1, None, 2), vec![(gc, h.id, 1), (d13, f.id, 1)], "limit");
    assert_eq!(list(s.as_ref(), 1, Some(f.id), 2), vec![(d12, e.id, 4)], "the next page starts below the cursor");
    assert!(list(s.as_ref(), 1, Some(e.id), 2).is_empty(), "past the last page");

    // 1 reads up to b: c is 1's own, so d and e are left.
    s.commit(&[Write::Receipt { receipt: &read(&mut ids, d12, 1, b.id), inboxes: &both }], ids.next_id()).unwrap();
    assert_eq!(list(s.as_ref(), 1, Some(f.id), 1), vec![(d12, e.id, 2)], "a read of an earlier message");
    // A read behind the mark moves nothing.
    s.commit(&[Write::Receipt { receipt: &read(&mut ids, d12, 1, a.id), inboxes: &both }], ids.next_id()).unwrap();
    assert_eq!(list(s.as_ref(), 1, Some(f.id), 1), vec![(d12, e.id, 2)], "a read that does not move the mark");
    // A message and a read of it in one batch (another device of 1 reads
    // what arrived): nothing unread.
    let i = text(&mut ids, 2, 1, "i");
    let r = read(&mut ids, d12, 1, i.id);
    s.commit(&[send(&i, &both), Write::Receipt { receipt: &r, inboxes: &both }], r.event()).unwrap();
    assert_eq!(list(s.as_ref(), 1, None, 1), vec![(d12, i.id, 0)], "read in the same batch");
    // The group read by 1 up to its last message.
    s.commit(&[Write::Receipt { receipt: &read(&mut ids, gc, 1, h.id), inboxes: &[u1] }], ids.next_id()).unwrap();
    assert_eq!(list(s.as_ref(), 1, None, 10), vec![(d12, i.id, 0), (gc, h.id, 0), (d13, f.id, 1)]);

    // A message that came back as a duplicate changes no list.
    let dup = Message { id: ids.next_id(), ..a.clone() };
    s.commit(&[send(&dup, &both)], dup.id).unwrap();
    assert_eq!(list(s.as_ref(), 1, None, 1), vec![(d12, i.id, 0)], "a duplicate is not counted");

    drop(s);
    let s = backend.open(&place);
    assert_eq!(
        list(s.as_ref(), 1, None, 10),
        vec![(d12, i.id, 0), (gc, h.id, 0), (d13, f.id, 1)],
        "the list survives a reopen"
    );
    assert_eq!(list(s.as_ref(), 2, None, 10), vec![(d12, i.id, 1), (gc, h.id, 1)], "2 never read c");
    if backend.several_writers() {
        let other = backend.second_handle(&place, &s);
        let j = text(&mut ids, 3, 1, "j");
        other.commit(&[send(&j, &[u1, u3])], j.id).unwrap();
        assert_eq!(list(s.as_ref(), 1, None, 1), vec![(d13, j.id, 2)], "another writer's message is listed at once");
    }
}

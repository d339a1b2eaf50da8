//! The checks of what a commit decides per write: inbox positions and
//! the cursors that resolve to them, idempotency keys bound elsewhere, and
//! group versions.

use chatgw_protocol::{ConversationId, Group, GroupId, Member, Message, MessageId, MessageKind, Snowflake, UserId};

use super::{ids, inbox, text, Backend};
use crate::{GroupVersion, InboxEvent, InboxPos, Write, WriteOutcome};

const BOTH: [UserId; 2] = [UserId(1), UserId(2)];

fn messages<'a>(ms: &'a [Message], inboxes: &'a [UserId]) -> Vec<Write<'a>> {
    ms.iter().map(|m| Write::Message { message: m, inboxes, membership: None }).collect()
}

/// A device's cursor (the id of the last event it received) resolves to
/// that event's position; zero to zero; an id that is no event of the inbox
/// to the highest position whose event id is below it, so paging on from
/// there replays exactly the events with larger ids (one writer).
pub fn cursors_resolve_to_positions(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let mut ms: Vec<Message> = (0..3).map(|i| text(&mut g, 1, 2, &format!("c{i}"))).collect();
    // An id between two events, never an event of this inbox.
    let between = g.next_id();
    ms.extend((3..6).map(|i| text(&mut g, 1, 2, &format!("c{i}"))));
    for pair in ms.chunks(2) {
        s.commit(&messages(pair, &BOTH), pair[1].id).unwrap();
    }
    let entries = s.inbox_after(UserId(2), InboxPos(0), 100).unwrap();
    assert_eq!(entries.len(), 6);
    for e in &entries {
        assert_eq!(s.inbox_position(UserId(2), e.event.id()).unwrap(), e.pos, "a known cursor is its event's position");
    }
    assert_eq!(s.inbox_position(UserId(2), MessageId(0)).unwrap(), InboxPos(0), "cursor 0: from the start");
    assert_eq!(s.inbox_position(UserId(2), MessageId(1)).unwrap(), InboxPos(0), "below every event: from the start");
    assert_eq!(s.inbox_position(UserId(9), ms[3].id).unwrap(), InboxPos(0), "an empty inbox");
    let pos = s.inbox_position(UserId(2), between).unwrap();
    assert_eq!(pos, entries[2].pos, "an unknown cursor: the highest position at or below it");
    let rest: Vec<MessageId> = s.inbox_after(UserId(2), pos, 100).unwrap().iter().map(|e| e.event.id()).collect();
    assert_eq!(rest, ids(&ms[3..], |m| m.id), "paging on replays exactly the events after the cursor");
    let beyond = MessageId(ms[5].id.0 + 1_000);
    assert_eq!(s.inbox_position(UserId(2), beyond).unwrap(), entries[5].pos, "past the end: the last position");
}

/// A message whose `(sender, client id)` is already bound to another
/// message writes nothing (no message, no inbox event, no position) and is
/// reported as a duplicate of the original, in a later batch or the same
/// one; the writes around it are applied.
pub fn duplicate_keys_write_nothing(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let original = text(&mut g, 1, 2, "k");
    let first = s.commit(&messages(std::slice::from_ref(&original), &BOTH), original.id).unwrap();
    assert_eq!(first.outcome(0), Some(WriteOutcome::Applied));
    assert_eq!(first.positions(0).len(), 2, "one position per inbox");
    let (resend, other, again) = (text(&mut g, 1, 2, "k"), text(&mut g, 1, 2, "other"), text(&mut g, 1, 2, "other"));
    let done = s.commit(&messages(&[resend.clone(), other.clone(), again.clone()], &BOTH), again.id).unwrap();
    let dup = |m: &Message| Some(WriteOutcome::Duplicate { conversation: m.conversation, id: m.id });
    assert_eq!(done.len(), 3);
    assert_eq!(done.outcome(0), dup(&original), "a later batch: the original's id");
    assert_eq!(done.outcome(1), Some(WriteOutcome::Applied));
    assert_eq!(done.outcome(2), dup(&other), "the same batch: the first of the two");
    assert!(done.positions(0).is_empty() && done.positions(2).is_empty(), "no position for a duplicate");
    assert_eq!(s.message(resend.conversation, resend.id).unwrap(), None, "no message row");
    assert_eq!(s.message(again.conversation, again.id).unwrap(), None, "no message row");
    let entries = s.inbox_after(UserId(2), InboxPos(0), 10).unwrap();
    let got: Vec<MessageId> = entries.iter().map(|e| e.event.id()).collect();
    assert_eq!(got, vec![original.id, other.id], "no inbox event for a duplicate");
    assert_eq!(entries[1].pos, done.positions(1)[1], "the reported position is where it is");
    if backend.several_writers() {
        assert_eq!(entries[1].pos, InboxPos(entries[0].pos.0 + 1), "the duplicate took no position");
    }
    assert_eq!(
        s.messages_by_client_ids(&[(UserId(1), "k")]).unwrap(),
        vec![Some((original.conversation, original.id))]
    );
}

fn member(u: u64, admin: bool) -> Member {
    Member { user: UserId(u), admin, joined: MessageId(u) }
}

fn group_write<'a>(group: &'a Group, based_on: u64) -> Write<'a> {
    Write::Group { group, based_on: GroupVersion(based_on), announce: None, inboxes: &[] }
}

/// Group records: absent until written, replaced whole, several per batch,
/// each write based on the version the one before made.
pub fn group_records(backend: &dyn Backend) {
    let place = backend.new_place();
    let g7 = Group {
        id: GroupId(7),
        name: "seven".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![member(1, true)],
    };
    let g8 = Group {
        id: GroupId(8),
        name: "eight".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(2),
        members: vec![member(2, true)],
    };
    {
        let s = backend.open(&place);
        assert_eq!(s.group(GroupId(7)).unwrap(), None);
        assert_eq!(s.versioned_group(GroupId(7)).unwrap(), None);
        s.commit(&[group_write(&g7, 0), group_write(&g8, 0)], MessageId(1)).unwrap();
        assert_eq!(s.versioned_group(GroupId(7)).unwrap(), Some((g7.clone(), GroupVersion(1))), "a create is 1");
        let grown =
            Group { name: "seven, renamed".into(), members: (1..=4).map(|u| member(u, u == 2)).collect(), ..g7 };
        s.commit(&[group_write(&grown, 1)], MessageId(2)).unwrap();
        assert_eq!(s.versioned_group(GroupId(7)).unwrap(), Some((grown.clone(), GroupVersion(2))));
        let shrunk = Group { members: vec![member(3, true)], ..grown };
        let last = Group { name: "last in the batch wins".into(), ..shrunk.clone() };
        let done = s.commit(&[group_write(&shrunk, 2), group_write(&last, 3)], MessageId(3)).unwrap();
        assert_eq!((done.outcome(0), done.outcome(1)), (Some(WriteOutcome::Applied), Some(WriteOutcome::Applied)));
    }
    let s = backend.open(&place);
    let (g, version) = s.versioned_group(GroupId(7)).unwrap().expect("group 7");
    assert_eq!((g.name.as_str(), g.members.len(), version), ("last in the batch wins", 1, GroupVersion(4)));
    assert_eq!(s.group(GroupId(8)).unwrap(), Some(g8));
    assert_eq!(s.group(GroupId(9)).unwrap(), None);
}

/// A group write based on a version that is no longer stored, or a create
/// of a group that exists, is a conflict: neither the record nor its
/// announcement is written, and the other writes of the batch are.
pub fn group_writes_compare_and_set(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut ids = Snowflake::new(1);
    let created = Group {
        id: GroupId(70),
        name: "g".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![member(1, true)],
    };
    let mut announce = |cid: &str| {
        let mut m = text(&mut ids, 1, 1, cid);
        m.conversation = ConversationId::Group(GroupId(70));
        m.kind = MessageKind::System;
        m
    };
    let (hello, added, stale_note, again) = (announce("create"), announce(""), announce(""), announce("create-2"));
    let create =
        Write::Group { group: &created, based_on: GroupVersion::ABSENT, announce: Some(&hello), inboxes: &[UserId(1)] };
    let done = s.commit(&[create], hello.id).unwrap();
    assert_eq!((done.outcome(0), done.positions(0).len()), (Some(WriteOutcome::Applied), 1));
    let grown = Group { members: vec![member(1, true), member(2, false)], ..created.clone() };
    let change = Write::Group { group: &grown, based_on: GroupVersion(1), announce: Some(&added), inboxes: &BOTH };
    assert_eq!(s.commit(&[change], added.id).unwrap().outcome(0), Some(WriteOutcome::Applied));

    // Another writer's view, one version behind, and a create of the same id.
    let lost = Group { members: vec![member(1, true), member(3, false)], ..created.clone() };
    let stale = Write::Group { group: &lost, based_on: GroupVersion(1), announce: Some(&stale_note), inboxes: &BOTH };
    let recreate =
        Write::Group { group: &lost, based_on: GroupVersion::ABSENT, announce: Some(&again), inboxes: &BOTH };
    let unrelated = text(&mut Snowflake::new(2), 1, 2, "unrelated");
    let writes = [stale, Write::Message { message: &unrelated, inboxes: &BOTH, membership: None }, recreate];
    let done = s.commit(&writes, again.id).unwrap();
    assert_eq!(done.outcome(0), Some(WriteOutcome::Conflict), "based on a version no longer stored");
    assert_eq!(done.outcome(1), Some(WriteOutcome::Applied), "the rest of the batch is applied");
    assert_eq!(done.outcome(2), Some(WriteOutcome::Conflict), "a create of a group that exists");
    assert!(done.positions(0).is_empty() && done.positions(2).is_empty());
    assert_eq!(s.versioned_group(GroupId(70)).unwrap(), Some((grown, GroupVersion(2))), "the record is untouched");
    let c = ConversationId::Group(GroupId(70));
    assert_eq!(s.message(c, stale_note.id).unwrap(), None, "no announcement of a change not made");
    assert_eq!(s.message(c, again.id).unwrap(), None);
    assert_eq!(s.messages_by_client_ids(&[(UserId(1), "create-2")]).unwrap(), vec![None], "its key is not bound");
    let user2: Vec<MessageId> = inbox(s.as_ref(), 2, 10).iter().map(InboxEvent::id).collect();
    assert_eq!(user2, vec![added.id, unrelated.id], "no inbox event of a conflicting write");

    // A create whose announcement's key is taken: a duplicate, nothing written.
    let other = Group { id: GroupId(71), ..created.clone() };
    let mut retry = text(&mut Snowflake::new(3), 1, 1, "create");
    retry.conversation = ConversationId::Group(GroupId(71));
    retry.kind = MessageKind::System;
    let twice =
        Write::Group { group: &other, based_on: GroupVersion::ABSENT, announce: Some(&retry), inboxes: &[UserId(1)] };
    let done = s.commit(&[twice], retry.id).unwrap();
    assert_eq!(done.outcome(0), Some(WriteOutcome::Duplicate { conversation: c, id: hello.id }));
    assert_eq!(s.group(GroupId(71)).unwrap(), None, "no second group for one request");
}

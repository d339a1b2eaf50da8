//! The checks the fleet relies on when several gateways share a store:
//! dense inbox positions under concurrent writers (a jump in a device's
//! positions then means it missed events), and group messages refused
//! when the membership they were fanned out to is no longer the stored one.

use std::sync::Barrier;

use chatgw_protocol::{ConversationId, Group, GroupId, Member, MessageId, MessageKind, Snowflake, UserId};

use super::{text, Backend};
use crate::{GroupVersion, InboxPos, Write, WriteOutcome};

/// Where the backend promises density ([`crate::MessageStore::dense_positions`]):
/// two handles commit 40 batches each, at once, to the same two inboxes;
/// every inbox then reads 1, 2, 3, ... with no position skipped, and each
/// commit's reported positions are exactly the ones read. A backend that
/// does not promise it is only checked for increasing positions.
pub fn dense_positions_under_concurrent_writers(backend: &dyn Backend) {
    let place = backend.new_place();
    let a = backend.open(&place);
    let b = backend.second_handle(&place, &a);
    let dense = a.dense_positions();
    assert_eq!(dense, b.dense_positions(), "both handles make the same promise");
    const BATCHES: usize = 40;
    let start = Barrier::new(2);
    let reported: Vec<Vec<(MessageId, u64, InboxPos)>> = std::thread::scope(|scope| {
        let writers: Vec<_> = [(a.clone(), 1u16), (b.clone(), 2u16)]
            .into_iter()
            .map(|(s, node)| {
                let start = &start;
                scope.spawn(move || {
                    let mut ids = Snowflake::new(node);
                    let mut out = Vec::new();
                    start.wait();
                    for i in 0..BATCHES {
                        // Batches of one to three messages from user 1 to 2.
                        let ms: Vec<_> =
                            (0..=i % 3).map(|j| text(&mut ids, 1, 2, &format!("n{node}-{i}-{j}"))).collect();
                        let writes: Vec<_> = ms
                            .iter()
                            .map(|m| Write::Message { message: m, inboxes: &[UserId(1), UserId(2)], membership: None })
                            .collect();
                        let high = ms.last().map_or(MessageId(0), |m| m.id);
                        let done = s.commit(&writes, high).expect("commit");
                        for (k, m) in ms.iter().enumerate() {
                            for (user, pos) in [1u64, 2].iter().zip(done.positions(k)) {
                                out.push((m.id, *user, *pos));
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().expect("writer thread")).collect()
    });
    let total: usize = (0..BATCHES).map(|i| i % 3 + 1).sum::<usize>() * 2;
    for user in [1u64, 2] {
        let read = a.inbox_after(UserId(user), InboxPos(0), 10_000).unwrap();
        assert_eq!(read.len(), total, "user {user}: every event of both writers is in the inbox");
        assert!(read.windows(2).all(|w| w[0].pos < w[1].pos), "user {user}: positions increase");
        if dense {
            let positions: Vec<u64> = read.iter().map(|e| e.pos.0).collect();
            assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>(), "user {user}: dense from 1");
        }
        for (id, u, pos) in reported.iter().flatten().filter(|r| r.1 == user) {
            let at = read.iter().find(|e| e.event.id() == *id).map(|e| e.pos);
            assert_eq!(at, Some(*pos), "user {u}: event {id} is read where its commit said");
        }
    }
}

/// A group message carries the membership version it was fanned out to.
/// Once the group changed (through another handle), a message written with
/// the old version is a `Conflict` that writes nothing (no message, no
/// inbox event, no key); the same message with the current version is
/// applied. A version is checked in batch order: a change earlier in the
/// same batch counts.
pub fn stale_membership_refuses_group_messages(backend: &dyn Backend) {
    let place = backend.new_place();
    let a = backend.open(&place);
    let b = backend.second_handle(&place, &a);
    let g = GroupId(90);
    let conversation = ConversationId::Group(g);
    let created = two_member_group(g);
    let mut ids = Snowflake::new(5);
    let mut in_group = |cid: &str, kind: MessageKind| {
        let mut m = text(&mut ids, 1, 1, cid);
        m.conversation = conversation;
        m.kind = kind;
        m
    };
    let hello = in_group("", MessageKind::System);
    let create = Write::Group { group: &created, based_on: GroupVersion::ABSENT, announce: Some(&hello), inboxes: &[] };
    assert_eq!(a.commit(&[create], hello.id).unwrap().outcome(0), Some(WriteOutcome::Applied));
    let two = [UserId(1), UserId(2)];
    let first = in_group("first", MessageKind::Text);
    let fresh = Write::Message { message: &first, inboxes: &two, membership: Some(GroupVersion(1)) };
    assert_eq!(a.commit(&[fresh], first.id).unwrap().outcome(0), Some(WriteOutcome::Applied));

    // The other handle adds user 3.
    let grown = Group { members: vec![member(1), member(2), member(3)], ..created.clone() };
    let added = in_group("", MessageKind::System);
    let change = Write::Group { group: &grown, based_on: GroupVersion(1), announce: Some(&added), inboxes: &[] };
    assert_eq!(b.commit(&[change], added.id).unwrap().outcome(0), Some(WriteOutcome::Applied));

    let late = in_group("late", MessageKind::Text);
    let unrelated = text(&mut Snowflake::new(6), 1, 2, "unrelated");
    let writes = [
        Write::Message { message: &late, inboxes: &two, membership: Some(GroupVersion(1)) },
        Write::Message { message: &unrelated, inboxes: &two, membership: None },
    ];
    let done = a.commit(&writes, unrelated.id).unwrap();
    assert_eq!(done.outcome(0), Some(WriteOutcome::Conflict), "fanned out to a membership no longer stored");
    assert!(done.positions(0).is_empty());
    assert_eq!(done.outcome(1), Some(WriteOutcome::Applied), "the rest of the batch is applied");
    assert_eq!(a.message(conversation, late.id).unwrap(), None, "nothing of it is stored");
    assert_eq!(a.messages_by_client_ids(&[(UserId(1), "late")]).unwrap(), vec![None], "its key is not bound");
    let user2: Vec<MessageId> =
        a.inbox_after(UserId(2), InboxPos(0), 100).unwrap().iter().map(|e| e.event.id()).collect();
    assert!(!user2.contains(&late.id), "no inbox event of the refused message");

    // The resend, fanned out to the current members, is applied.
    let three = [UserId(1), UserId(2), UserId(3)];
    let resend = Write::Message { message: &late, inboxes: &three, membership: Some(GroupVersion(2)) };
    let done = a.commit(&[resend], late.id).unwrap();
    assert_eq!(done.outcome(0), Some(WriteOutcome::Applied));
    assert_eq!(done.positions(0).len(), 3);

    // A change and a message based on it in one batch: the message is
    // checked against the version the change makes.
    let smaller = Group { members: vec![member(1), member(3)], ..created.clone() };
    let removed = in_group("", MessageKind::System);
    let after = in_group("after", MessageKind::Text);
    let both = [UserId(1), UserId(3)];
    let writes = [
        Write::Group { group: &smaller, based_on: GroupVersion(2), announce: Some(&removed), inboxes: &[] },
        Write::Message { message: &after, inboxes: &both, membership: Some(GroupVersion(3)) },
    ];
    let done = a.commit(&writes, after.id).unwrap();
    assert_eq!((done.outcome(0), done.outcome(1)), (Some(WriteOutcome::Applied), Some(WriteOutcome::Applied)));
}

/// A group's description and admins-only mode are part of its record:
/// stored, read back by another handle and after reopening, and changed
/// only by a compare-and-set write that moves the version on. So turning
/// the mode on refuses a message fanned out (by a gateway that still saw it
/// off) at the version before, like a membership change does.
pub fn group_settings_are_versioned_with_the_record(backend: &dyn Backend) {
    let place = backend.new_place();
    let a = backend.open(&place);
    let b = backend.second_handle(&place, &a);
    let g = GroupId(91);
    let conversation = ConversationId::Group(g);
    let created = two_member_group(g);
    let mut ids = Snowflake::new(5);
    let mut in_group = |from: u64, cid: &str, kind: MessageKind| {
        let mut m = text(&mut ids, from, 1, cid);
        m.conversation = conversation;
        m.kind = kind;
        m
    };
    let hello = in_group(1, "", MessageKind::System);
    let create = Write::Group { group: &created, based_on: GroupVersion::ABSENT, announce: Some(&hello), inboxes: &[] };
    assert_eq!(a.commit(&[create], hello.id).unwrap().outcome(0), Some(WriteOutcome::Applied));

    // The other handle sets a description (2) and turns the mode on (3).
    let described = Group { description: "about ☕, \"quoted\"\n".repeat(20), ..created.clone() };
    let note = in_group(1, "", MessageKind::System);
    let change = Write::Group { group: &described, based_on: GroupVersion(1), announce: Some(&note), inboxes: &[] };
    assert_eq!(b.commit(&[change], note.id).unwrap().outcome(0), Some(WriteOutcome::Applied));
    let locked = Group { admins_only: true, ..described.clone() };
    let on = in_group(1, "", MessageKind::System);
    let change = Write::Group { group: &locked, based_on: GroupVersion(2), announce: Some(&on), inboxes: &[] };
    assert_eq!(b.commit(&[change], on.id).unwrap().outcome(0), Some(WriteOutcome::Applied));
    assert_eq!(a.versioned_group(g).unwrap(), Some((locked.clone(), GroupVersion(3))));

    // User 2's message, fanned out while the mode was still off, is refused.
    let two = [UserId(1), UserId(2)];
    let late = in_group(2, "late", MessageKind::Text);
    let stale = Write::Message { message: &late, inboxes: &two, membership: Some(GroupVersion(2)) };
    assert_eq!(a.commit(&[stale], late.id).unwrap().outcome(0), Some(WriteOutcome::Conflict));
    assert_eq!(a.message(conversation, late.id).unwrap(), None, "nothing of it is stored");

    // Turning it off again is one more version; the record reads back whole.
    let open = Group { admins_only: false, ..locked };
    let off = in_group(1, "", MessageKind::System);
    let change = Write::Group { group: &open, based_on: GroupVersion(3), announce: Some(&off), inboxes: &[] };
    assert_eq!(a.commit(&[change], off.id).unwrap().outcome(0), Some(WriteOutcome::Applied));
    drop((a, b));
    let s = backend.open(&place);
    assert_eq!(s.versioned_group(g).unwrap(), Some((open, GroupVersion(4))));
}

/// Member `user` of the groups here: user 1 is the admin.
fn member(user: u64) -> Member {
    Member { user: UserId(user), admin: user == 1, joined: MessageId(0) }
}

/// Group `g` as created by user 1 (its admin) with user 2.
fn two_member_group(g: GroupId) -> Group {
    Group {
        id: g,
        name: "g".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![member(1), member(2)],
    }
}

//! What a commit writes, request by request, checked without a server.

use chatgw_protocol::{
    ConversationId, Group, GroupId, Message, MessageId, MessageKind, Receipt, ReceiptStatus, Snowflake, UserId,
    EPOCH_MS,
};
use scylla::value::CqlValue;

use super::*;
use crate::GroupVersion;

const DAY: u64 = 24 * 60 * 60 * 1000;

fn text(id: MessageId, from: u64, to: u64, client_id: &str, body_len: usize) -> Message {
    Message {
        id,
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        kind: MessageKind::Text,
        client_id: client_id.into(),
        ts: Snowflake::unix_ms(id),
        body: "b".repeat(body_len),
        amended: None,
    }
}

fn nothing_recorded(_: &BucketRow) -> bool {
    false
}

fn statements(unit: &Unit) -> Vec<&'static str> {
    unit.iter().flatten().map(|s| s.cql).collect()
}

fn all(_: usize) -> bool {
    true
}

/// The position bound in an inbox entry.
fn pos_of(s: &Stmt) -> CqlValue {
    s.values[2].clone()
}

#[test]
fn a_message_is_stored_then_referenced_from_each_inbox_at_its_position() {
    let m = text(Snowflake::new(1).next_at(EPOCH_MS + 5), 1, 2, "c1", 10);
    let both = [UserId(1), UserId(2)];
    let p = plan(&[Write::Message { message: &m, inboxes: &both, membership: None }], &all, m.id, &nothing_recorded);
    let first: Vec<Vec<&str>> = p.first.iter().map(statements).collect();
    assert_eq!(
        first,
        vec![
            vec![cql::INSERT_MESSAGE],
            vec![cql::INSERT_CONVERSATION_BUCKET],
            vec![cql::INSERT_INBOX_BUCKET],
            vec![cql::INSERT_INBOX_BUCKET],
            vec![cql::INSERT_UNREAD],
            vec![cql::INSERT_CONVERSATION_LAST, cql::PRUNE_CONVERSATION_LAST],
            vec![cql::INSERT_CONVERSATION_LAST, cql::PRUNE_CONVERSATION_LAST],
            vec![cql::INSERT_HIGH_WATER, cql::PRUNE_HIGH_WATER],
        ],
        "phase one: what the inbox entries point at (the key was bound before), and both conversation lists"
    );
    let unread = &p.first[4][0][0];
    assert_eq!(unread.values[0], big(2), "unread for the recipient only, not the sender");
    assert_eq!(p.events.keys().copied().collect::<Vec<_>>(), vec![1, 2], "one event per inbox");
    let (entries, ids) = inbox_rows(2, 41, &p.events[&2]);
    assert_eq!(statements(&entries), vec![cql::INSERT_INBOX_MESSAGE]);
    assert_eq!(entries[0][0].values[..4], [big(2), CqlValue::Int(0), big(41), big(m.id.0)], "user, bucket, pos, event");
    assert_eq!(ids.iter().map(statements).collect::<Vec<_>>(), vec![vec![cql::INSERT_INBOX_ID]]);
    assert_eq!(ids[0][0][0].values[3], big(41), "the id row finds the position");
    assert_eq!(p.buckets.len(), 3, "one conversation bucket, two inbox buckets");
    assert_eq!(
        p.stats.records, 13,
        "message, key, two inbox entries and id rows, three bucket rows, an unread row, two list rows, high water"
    );
    assert!(p.stats.bytes > m.body.len() + 2 * 8, "{:?}", p.stats);
}

#[test]
fn a_system_message_binds_no_key_and_recorded_buckets_are_not_written_again() {
    let mut m = text(Snowflake::new(1).next_at(EPOCH_MS + 5), 1, 2, "", 3);
    m.kind = MessageKind::System;
    let to = [UserId(2)];
    let p = plan(&[Write::Message { message: &m, inboxes: &to, membership: None }], &all, m.id, &|_| true);
    let first: Vec<&str> = p.first.iter().flat_map(statements).collect();
    assert_eq!(
        first,
        vec![
            cql::INSERT_MESSAGE,
            cql::INSERT_CONVERSATION_LAST,
            cql::PRUNE_CONVERSATION_LAST,
            cql::INSERT_HIGH_WATER,
            cql::PRUNE_HIGH_WATER
        ],
        "a system message is listed but counts as unread for nobody"
    );
    assert_eq!(p.stats.records, 5, "message, inbox entry and id row, list row, high water: no key");
    assert!(p.buckets.is_empty());
}

#[test]
fn a_refused_write_plans_nothing_and_a_group_write_only_its_announcement() {
    let mut g = Snowflake::new(1);
    let (taken, fresh) = (text(g.next_at(EPOCH_MS + 5), 1, 2, "k", 3), text(g.next_at(EPOCH_MS + 6), 1, 2, "n", 3));
    let mut note = text(g.next_at(EPOCH_MS + 7), 1, 2, "", 3);
    note.conversation = ConversationId::Group(GroupId(7));
    note.kind = MessageKind::System;
    let group = Group {
        id: GroupId(7),
        name: "g".into(),
        description: String::new(),
        admins_only: false,
        admins_can_delete: false,
        created_by: UserId(1),
        members: vec![],
    };
    let to = [UserId(2)];
    let writes = [
        Write::Message { message: &taken, inboxes: &to, membership: None },
        Write::Message { message: &fresh, inboxes: &to, membership: None },
        Write::Group { group: &group, based_on: GroupVersion::ABSENT, announce: Some(&note), inboxes: &to },
        Write::Group { group: &group, based_on: GroupVersion(1), announce: Some(&note), inboxes: &to },
    ];
    let p = plan(&writes, &|i| i == 1 || i == 2, note.id, &nothing_recorded);
    let ids: Vec<&CqlValue> =
        p.first.iter().flatten().flatten().filter(|s| s.cql == cql::INSERT_MESSAGE).map(|s| &s.values[2]).collect();
    assert_eq!(ids, vec![&big(fresh.id.0), &big(note.id.0)], "the applied message and one announcement");
    let events: Vec<MessageId> = p.events[&2].iter().map(|e| e.id).collect();
    assert_eq!(events, vec![fresh.id, note.id], "inbox events in batch order, none of the refused writes");
    assert!(
        p.first.iter().flatten().flatten().all(|s| !s.cql.contains("groups")),
        "the record is written by its compare-and-set, not here"
    );
}

#[test]
fn rows_of_one_partition_share_a_batch_and_large_ones_are_cut_in_order() {
    let mut g = Snowflake::new(1);
    // 40 messages of 2 KiB in one conversation and bucket: 80 KiB of bodies.
    let ms: Vec<Message> = (0..40).map(|i| text(g.next_at(EPOCH_MS + 10), 1, 2, &format!("m{i}"), 2048)).collect();
    let to = [UserId(2)];
    let writes: Vec<Write<'_>> =
        ms.iter().map(|m| Write::Message { message: m, inboxes: &to, membership: None }).collect();
    let p = plan(&writes, &all, ms[39].id, &nothing_recorded);
    let messages = p.first.iter().find(|u| u[0][0].cql == cql::INSERT_MESSAGE).expect("the message partition");
    assert_eq!(p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_MESSAGE).count(), 1, "one partition, one unit");
    assert!(messages.len() >= 3, "80 KiB does not fit one chunk: {}", messages.len());
    for chunk in messages {
        let bytes: usize = chunk.iter().map(Stmt::bytes).sum();
        assert!(bytes <= CHUNK_BYTES, "a chunk of {bytes} bytes");
    }
    let ids: Vec<&CqlValue> = messages.iter().flatten().map(|s| &s.values[2]).collect();
    let want: Vec<CqlValue> = ms.iter().map(|m| big(m.id.0)).collect();
    assert_eq!(ids, want.iter().collect::<Vec<_>>(), "chunks keep id order");
    let (entries, _) = inbox_rows(2, 1, &p.events[&2]);
    assert_eq!((entries.len(), entries[0].len()), (1, 40), "40 small inbox rows: one batch");
    let positions: Vec<CqlValue> = entries[0].iter().map(pos_of).collect();
    assert_eq!(positions, (1..=40).map(big).collect::<Vec<_>>(), "dense, in batch order");
}

/// The chunk holding a commit's first position in an inbox is written
/// last, so readers (who stop below a gap) see the commit's events there
/// all at once.
#[test]
fn inbox_entries_are_written_last_position_first_across_chunks_and_partitions() {
    let mut g = Snowflake::new(1);
    let ms: Vec<Message> = (0..300).map(|i| text(g.next_at(EPOCH_MS + 10), 1, 2, &format!("m{i}"), 1)).collect();
    let to = [UserId(2)];
    let writes: Vec<Write<'_>> =
        ms.iter().map(|m| Write::Message { message: m, inboxes: &to, membership: None }).collect();
    let p = plan(&writes, &all, ms[299].id, &nothing_recorded);
    let (entries, _) = inbox_rows(2, 1, &p.events[&2]);
    assert_eq!(entries.iter().map(Vec::len).collect::<Vec<_>>(), vec![44, 256], "300 rows: two chunks");
    assert_eq!(pos_of(&entries[1][0]), big(1), "the chunk with the first position goes last");
    assert_eq!(pos_of(&entries[0][0]), big(257));

    // A block across two position partitions (65,536 positions each).
    let (entries, _) = inbox_rows(2, 65_530, &p.events[&2][..10]);
    assert_eq!(entries.len(), 2, "one chunk per partition");
    assert_eq!(entries[0][0].values[1], CqlValue::Int(1), "the later partition first");
    assert_eq!(pos_of(&entries[0][0]), big(65_536));
    assert_eq!((entries[1][0].values[1].clone(), pos_of(&entries[1][0])), (CqlValue::Int(0), big(65_530)));
    assert!(entries.iter().flatten().all(|s| cql::is_conditional(s.cql)), "every entry is conditional");
}

#[test]
fn one_inbox_across_a_time_bucket_boundary_gets_id_rows_in_both() {
    // Two generators: one never hands out an id older than its last.
    let late = text(Snowflake::new(1).next_at(EPOCH_MS + DAY + 1), 1, 2, "b", 1);
    let early = text(Snowflake::new(2).next_at(EPOCH_MS + DAY - 1), 1, 2, "a", 1);
    let to = [UserId(2)];
    let p = plan(
        &[
            Write::Message { message: &late, inboxes: &to, membership: None },
            Write::Message { message: &early, inboxes: &to, membership: None },
        ],
        &all,
        late.id,
        &nothing_recorded,
    );
    let (entries, ids) = inbox_rows(2, 1, &p.events[&2]);
    assert_eq!(entries.len(), 1, "positions 1 and 2: one partition");
    let order: Vec<(CqlValue, CqlValue)> = entries[0].iter().map(|s| (pos_of(s), s.values[3].clone())).collect();
    assert_eq!(order, vec![(big(1), big(late.id.0)), (big(2), big(early.id.0))], "batch order, not id order");
    assert_eq!(ids.len(), 2, "id rows in two day buckets");
    assert_eq!(ids[0][0][0].values[1], CqlValue::Int(0), "the older bucket");
    assert_eq!(ids[1][0][0].values[1], CqlValue::Int(1));
    let index = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_INBOX_BUCKET).count();
    assert_eq!(index, 1, "both bucket index rows of the user in one batch");
    let messages = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_MESSAGE).count();
    assert_eq!(messages, 1, "both in the first 10-day message bucket");
}

#[test]
fn read_marks_fold_to_the_furthest_and_marks_share_a_partition() {
    let c = ConversationId::direct(UserId(1), UserId(2));
    let read = |event: u64, up_to: u64| Receipt::Read {
        event: MessageId(event),
        conversation: c,
        by: UserId(2),
        up_to: MessageId(up_to),
        at: event,
    };
    let (r1, r2) = (read(10, 9), read(11, 7));
    let delivered = Receipt::Group {
        event: MessageId(12),
        group: GroupId(7),
        status: ReceiptStatus::Delivered,
        items: vec![(UserId(3), vec![MessageId(4), MessageId(5)]), (UserId(4), vec![MessageId(4)])],
        at: 1,
    };
    let p = plan(
        &[
            Write::Receipt { receipt: &r1, inboxes: &[UserId(1)] },
            Write::Receipt { receipt: &r2, inboxes: &[UserId(1)] },
            Write::Receipt { receipt: &delivered, inboxes: &[] },
        ],
        &all,
        MessageId(12),
        &nothing_recorded,
    );
    let marks: Vec<&Unit> = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_READ_MARK).collect();
    assert_eq!(marks.len(), 1);
    assert_eq!(statements(marks[0]), vec![cql::INSERT_READ_MARK, cql::PRUNE_READ_MARKS], "one batch");
    assert_eq!(marks[0][0][0].values[2], CqlValue::BigInt(9), "the furthest mark");
    assert_eq!(marks[0][0][1].values[2], CqlValue::BigInt(9), "prunes what is below it");
    let delivered: Vec<usize> =
        p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_DELIVERED).map(|u| u[0].len()).collect();
    assert_eq!(delivered, vec![2, 1], "partition (group, message 4) holds two users, (group, 5) one");
    let (entries, _) = inbox_rows(1, 1, &p.events[&1]);
    assert_eq!(entries.len(), 1, "both read receipts in user 1's inbox partition");
    assert_eq!(statements(&entries), vec![cql::INSERT_INBOX_RECEIPT, cql::INSERT_INBOX_RECEIPT]);
}

#[test]
fn ids_past_the_signed_range_bound_like_the_largest() {
    assert_eq!(id_bound(MessageId(u64::MAX)), i64::MAX);
    assert_eq!(id_bound(MessageId(42)), 42);
    let p = plan(&[], &all, MessageId(u64::MAX), &nothing_recorded);
    assert_eq!(p.first[0][0][0].values[1], CqlValue::BigInt(i64::MAX));
}

#[test]
fn a_read_clears_the_readers_unread_rows_up_to_its_mark_in_their_partition() {
    let mut g = Snowflake::new(1);
    let m = text(g.next_at(EPOCH_MS + 5), 1, 2, "c1", 3);
    let event = g.next_at(EPOCH_MS + 6);
    let r = Receipt::Read { event, conversation: m.conversation, by: UserId(2), up_to: m.id, at: 6 };
    let both = [UserId(1), UserId(2)];
    let p = plan(
        &[
            Write::Message { message: &m, inboxes: &both, membership: None },
            Write::Receipt { receipt: &r, inboxes: &both },
        ],
        &all,
        event,
        &|_| true,
    );
    let unread: Vec<&Unit> = p.first.iter().filter(|u| statements(u).contains(&cql::CLEAR_UNREAD)).collect();
    assert_eq!(unread.len(), 1, "{:?}", p.first);
    assert_eq!(
        statements(unread[0]),
        vec![cql::INSERT_UNREAD, cql::CLEAR_UNREAD],
        "the insert and the clear share the reader's partition's batch (the clear wins)"
    );
    assert_eq!(unread[0][0][1].values, vec![big(2), CqlValue::Blob(codec::conv_key(&m.conversation)), big(m.id.0)]);
}

/// An amendment rewrites the message row (only the last of a batch, since
/// rows of one batch share a timestamp) and puts an event referring to the
/// message in each inbox.
#[test]
fn amendments_rewrite_the_row_once_per_batch_and_refer_to_the_message() {
    let mut ids = Snowflake::new(1);
    let m = text(ids.next_at(EPOCH_MS + 5), 1, 2, "c1", 10);
    let (e1, e2) = (ids.next_id(), ids.next_id());
    let amend = |kind, event, body: &str| Message {
        body: body.into(),
        amended: Some(chatgw_protocol::Amendment { kind, event }),
        ..m.clone()
    };
    let edit = amend(chatgw_protocol::AmendKind::Edited, e1, "\"new\"");
    let delete = amend(chatgw_protocol::AmendKind::Deleted, e2, "");
    let both = [UserId(1), UserId(2)];
    let writes = [Write::Amend { message: &edit, inboxes: &both }, Write::Amend { message: &delete, inboxes: &both }];
    let p = plan(&writes, &all, e2, &nothing_recorded);
    let rows: Vec<&Stmt> = p.first.iter().flatten().flatten().filter(|s| s.cql == cql::INSERT_MESSAGE).collect();
    assert_eq!(rows.len(), 1, "one row write for the message");
    assert_eq!(rows[0].values[6], CqlValue::Text(format!("~d{e2}")), "the last amendment's stored body");
    for user in [1, 2] {
        let events: Vec<MessageId> = p.events[&user].iter().map(|e| e.id).collect();
        assert_eq!(events, vec![e1, e2], "an event per amendment in each inbox");
        for e in &p.events[&user] {
            assert_eq!(e.payload, Payload::Receipt(codec::encode_amended(&m.conversation, m.id)));
        }
    }
}

/// A hide writes its mark in the first phase, in the hiding user's
/// partition, and one event in that user's inbox only.
#[test]
fn a_hide_writes_the_mark_first_and_one_event_for_its_user() {
    let mut ids = Snowflake::new(1);
    let m = text(ids.next_at(EPOCH_MS + 5), 1, 2, "c1", 10);
    let event = ids.next_id();
    let writes = [Write::Hide { user: &UserId(2), conversation: m.conversation, msg: m.id, event }];
    let p = plan(&writes, &all, event, &nothing_recorded);
    let marks: Vec<&Stmt> = p.first.iter().flatten().flatten().filter(|s| s.cql == cql::INSERT_HIDDEN).collect();
    assert_eq!(marks.len(), 1, "{:?}", p.first);
    assert_eq!(
        marks[0].values,
        vec![big(2), CqlValue::Blob(codec::conv_key(&m.conversation)), big(m.id.0), big(event.0)]
    );
    assert_eq!(p.events.keys().copied().collect::<Vec<_>>(), vec![2], "the hiding user's inbox only");
    assert_eq!(p.events[&2].len(), 1);
    assert_eq!(p.events[&2][0].id, event);
    assert_eq!(p.events[&2][0].payload, Payload::Receipt(codec::encode_hidden(&m.conversation, m.id)));
}

/// A `keys_changed` write is one event per listed inbox, the user it names
/// encoded, and nothing else.
#[test]
fn keys_changed_writes_one_event_per_listed_inbox_and_nothing_else() {
    let mut ids = Snowflake::new(1);
    let event = ids.next_id();
    let writes = [Write::KeysChanged { user: &UserId(7), event, inboxes: &[UserId(2), UserId(3)] }];
    let p = plan(&writes, &all, event, &nothing_recorded);
    // The first phase holds only the index rows every event needs.
    let rows: Vec<&Stmt> = p.first.iter().flatten().flatten().collect();
    assert!(rows.iter().all(|s| s.cql.contains("inbox_buckets") || s.cql.contains("high_water")), "{rows:?}");
    assert_eq!(p.events.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    for user in [2, 3] {
        assert_eq!(p.events[&user].len(), 1);
        assert_eq!(p.events[&user][0].id, event);
        assert_eq!(p.events[&user][0].payload, Payload::Receipt(codec::encode_keys_changed(UserId(7))));
    }
}

//! What a commit writes, request by request, checked without a server.

use chatgw_protocol::{
    ConversationId, Group, GroupId, Message, MessageId, MessageKind, Receipt, ReceiptStatus, Snowflake, UserId,
    EPOCH_MS,
};
use scylla::value::CqlValue;

use super::*;

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
    }
}

fn nothing_recorded(_: &BucketRow) -> bool {
    false
}

fn statements(unit: &Unit) -> Vec<&'static str> {
    unit.iter().flatten().map(|s| s.cql).collect()
}

#[test]
fn a_message_is_stored_then_referenced_from_each_inbox_and_bound_to_its_key() {
    let m = text(Snowflake::new(1).next_at(EPOCH_MS + 5), 1, 2, "c1", 10);
    let both = [UserId(1), UserId(2)];
    let p = plan(&[Write::Message { message: &m, inboxes: &both }], m.id, &nothing_recorded);
    let first: Vec<Vec<&str>> = p.first.iter().map(statements).collect();
    assert_eq!(
        first,
        vec![
            vec![cql::INSERT_MESSAGE],
            vec![cql::INSERT_CONVERSATION_BUCKET],
            vec![cql::INSERT_INBOX_BUCKET],
            vec![cql::INSERT_INBOX_BUCKET],
            vec![cql::INSERT_HIGH_WATER, cql::PRUNE_HIGH_WATER],
        ],
        "phase one: what the inbox entries and the key point at"
    );
    let second: Vec<Vec<&str>> = p.second.iter().map(statements).collect();
    assert_eq!(second, vec![vec![cql::INSERT_INBOX_MESSAGE], vec![cql::INSERT_INBOX_MESSAGE], vec![cql::BIND_KEY]]);
    assert_eq!(p.buckets.len(), 3, "one conversation bucket, two inbox buckets");
    assert_eq!(p.stats.records, 8, "message, key, two inbox rows, three bucket rows, high water");
    assert!(p.stats.bytes > m.body.len() + 2 * 8, "{:?}", p.stats);
}

#[test]
fn a_system_message_binds_no_key_and_recorded_buckets_are_not_written_again() {
    let mut m = text(Snowflake::new(1).next_at(EPOCH_MS + 5), 1, 2, "", 3);
    m.kind = MessageKind::System;
    let to = [UserId(2)];
    let p = plan(&[Write::Message { message: &m, inboxes: &to }], m.id, &|_| true);
    let all: Vec<&str> = p.first.iter().chain(&p.second).flat_map(statements).collect();
    assert_eq!(
        all,
        vec![cql::INSERT_MESSAGE, cql::INSERT_HIGH_WATER, cql::PRUNE_HIGH_WATER, cql::INSERT_INBOX_MESSAGE]
    );
    assert!(p.buckets.is_empty());
}

#[test]
fn rows_of_one_partition_share_a_batch_and_large_ones_are_cut_in_order() {
    let mut g = Snowflake::new(1);
    // 40 messages of 2 KiB in one conversation and bucket: 80 KiB of bodies.
    let ms: Vec<Message> = (0..40).map(|i| text(g.next_at(EPOCH_MS + 10), 1, 2, &format!("m{i}"), 2048)).collect();
    let to = [UserId(2)];
    let writes: Vec<Write<'_>> = ms.iter().map(|m| Write::Message { message: m, inboxes: &to }).collect();
    let p = plan(&writes, ms[39].id, &nothing_recorded);
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
    let inbox = &p.second[0];
    assert_eq!((inbox.len(), inbox[0].len()), (1, 40), "40 small inbox rows: one batch");
}

#[test]
fn one_inbox_across_a_bucket_boundary_is_written_bucket_by_bucket() {
    // Two generators: one never hands out an id older than its last.
    let late = text(Snowflake::new(1).next_at(EPOCH_MS + DAY + 1), 1, 2, "b", 1);
    let early = text(Snowflake::new(2).next_at(EPOCH_MS + DAY - 1), 1, 2, "a", 1);
    let to = [UserId(2)];
    let p = plan(
        &[Write::Message { message: &late, inboxes: &to }, Write::Message { message: &early, inboxes: &to }],
        late.id,
        &nothing_recorded,
    );
    let inbox = &p.second[0];
    assert_eq!(inbox.len(), 2, "two partitions of one user, in one unit");
    assert_eq!(inbox[0][0].values[1], CqlValue::Int(0), "the older bucket first");
    assert_eq!(inbox[1][0].values[1], CqlValue::Int(1));
    let messages = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_MESSAGE).count();
    assert_eq!(messages, 1, "both in the first 10-day message bucket");
}

#[test]
fn read_marks_fold_to_the_furthest_and_group_records_to_the_last() {
    let c = ConversationId::direct(UserId(1), UserId(2));
    let read = |event: u64, up_to: u64| Receipt::Read {
        event: MessageId(event),
        conversation: c,
        by: UserId(2),
        up_to: MessageId(up_to),
        at: event,
    };
    let (r1, r2) = (read(10, 9), read(11, 7));
    let g1 = Group { id: GroupId(7), name: "one".into(), created_by: UserId(1), members: vec![] };
    let g2 = Group { name: "two".into(), ..g1.clone() };
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
            Write::Group { group: &g1 },
            Write::Group { group: &g2 },
            Write::Receipt { receipt: &delivered, inboxes: &[] },
        ],
        MessageId(12),
        &nothing_recorded,
    );
    let marks: Vec<&Unit> = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_READ_MARK).collect();
    assert_eq!(marks.len(), 1);
    assert_eq!(statements(marks[0]), vec![cql::INSERT_READ_MARK, cql::PRUNE_READ_MARKS], "one batch");
    assert_eq!(marks[0][0][0].values[2], CqlValue::BigInt(9), "the furthest mark");
    assert_eq!(marks[0][0][1].values[2], CqlValue::BigInt(9), "prunes what is below it");
    let groups: Vec<&Unit> = p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_GROUP).collect();
    assert_eq!(groups.len(), 1);
    let CqlValue::Blob(record) = &groups[0][0][0].values[1] else { panic!("a blob") };
    assert_eq!(codec::decode_group(GroupId(7), record).unwrap().name, "two", "the last record wins");
    let delivered: Vec<usize> =
        p.first.iter().filter(|u| u[0][0].cql == cql::INSERT_DELIVERED).map(|u| u[0].len()).collect();
    assert_eq!(delivered, vec![2, 1], "partition (group, message 4) holds two users, (group, 5) one");
    assert_eq!(p.second.len(), 1, "both read receipts in user 1's inbox partition");
    assert_eq!(p.second[0][0].len(), 2);
}

#[test]
fn ids_past_the_signed_range_bound_like_the_largest() {
    assert_eq!(id_bound(MessageId(u64::MAX)), i64::MAX);
    assert_eq!(id_bound(MessageId(42)), 42);
    let p = plan(&[], MessageId(u64::MAX), &nothing_recorded);
    assert_eq!(p.first[0][0][0].values[1], CqlValue::BigInt(i64::MAX));
}

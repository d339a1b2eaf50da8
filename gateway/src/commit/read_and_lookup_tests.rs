//! How much store work the committer does: batched lookups (one call per
//! kind per batch) and group reads (only the span between the marks).

use chatgw_protocol::{ConversationId, GroupId, MessageId, MessageKind, Receipt, ReceiptStatus, Snowflake, UserId};
use chatgw_router::Endpoint;
use chatgw_storage::MessageStore;

use super::{
    batch::{Batch, Outcome},
    counting_store::{CountingStore, Counts},
    groups::READ_SCAN_LIMIT,
};
use crate::events::{CommitRequest, GroupOp};

fn ep(slot: u32) -> Endpoint {
    Endpoint { core: 0, slot, generation: 1 }
}

/// Prepare `requests` as the committer does, then store the batch as the writer would.
fn prepare_and_store(batch: &mut Batch<'_>, seq: u64, requests: Vec<CommitRequest>) -> Vec<Outcome> {
    batch.begin(seq, seq - 1);
    batch.look_up(&requests).unwrap();
    for r in requests {
        batch.add(r).unwrap();
    }
    batch.finish();
    let writes = batch.writes();
    batch.store().commit(&writes, batch.last_id()).unwrap();
    batch.take_outcomes()
}

fn send(from: u64, conversation: ConversationId, client_id: &str) -> CommitRequest {
    CommitRequest::Send {
        origin: ep(from as u32),
        from: UserId(from),
        client_id: client_id.into(),
        conversation,
        kind: MessageKind::Text,
        body: "\"x\"".into(),
    }
}

fn stored(outcomes: &[Outcome]) -> Vec<MessageId> {
    outcomes
        .iter()
        .filter_map(|o| if let Outcome::Stored { message, .. } = o { Some(message.id) } else { None })
        .collect()
}

#[test]
fn a_batch_of_sends_and_acks_asks_the_store_once_per_kind_not_once_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let c = &store.counts;
    let mut batch = Batch::new(&store, Snowflake::new(0), 256);
    let pair = |i: u64| ConversationId::direct(UserId(i % 20 + 1), UserId(i % 20 + 100));
    let sends = |tag: &str| (0..200u64).map(|i| send(i % 20 + 1, pair(i), &format!("{tag}{i}"))).collect::<Vec<_>>();

    let first = prepare_and_store(&mut batch, 1, sends("c"));
    let ids = stored(&first);
    assert_eq!(ids.len(), 200);
    assert_eq!(
        (Counts::get(&c.client_ids), Counts::get(&c.blocks), Counts::get(&c.settings), c.calls()),
        (1, 1, 1, 3),
        "200 sends to 20 users: one idempotency lookup, one lookup of the recipients' block lists, one of \
         their direct message settings (and nothing more: none takes messages from contacts only)"
    );

    // Resends of all 200, plus a resend within the batch of one sent in it.
    let mut again = sends("c");
    again.push(send(1, pair(0), "fresh"));
    again.push(send(1, pair(0), "fresh"));
    let second = prepare_and_store(&mut batch, 2, again);
    let duplicates: Vec<MessageId> =
        second.iter().filter_map(|o| if let Outcome::Duplicate { id, .. } = o { Some(*id) } else { None }).collect();
    assert_eq!(duplicates.len(), 201, "every resend is answered with its original id");
    assert_eq!(&duplicates[..200], &ids[..]);
    assert_eq!(stored(&second).len(), 1);
    assert_eq!(
        (Counts::get(&c.client_ids), Counts::get(&c.messages), c.calls()),
        (2, 1, 5),
        "one idempotency lookup, and one read of the 200 originals to compare with (block lists and settings \
         are cached)"
    );

    // Acknowledgements the recent cache cannot answer: the store must.
    batch.recent.clear();
    let acks = || -> Vec<CommitRequest> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let conversation = pair(i as u64);
                let by = conversation.peer_of(UserId(i as u64 % 20 + 1)).unwrap();
                CommitRequest::Delivered { origin: ep(2), by, conversation, ids: vec![*id, *id] }
            })
            .collect()
    };
    let before = c.calls();
    let third = prepare_and_store(&mut batch, 3, acks());
    let receipts = third.iter().filter(|o| matches!(o, Outcome::Receipt { .. })).count();
    assert_eq!(receipts, 200, "one receipt per first acknowledgement");
    assert_eq!(
        c.calls() - before,
        3,
        "one header lookup, one delivery-mark lookup and one of the senders' block lists for 200 acks"
    );
    assert_eq!((Counts::get(&c.headers), Counts::get(&c.delivered), Counts::get(&c.blocks)), (1, 1, 2));

    // The same acknowledgements again, with the marks now in the store.
    batch.recent.clear();
    let fourth = prepare_and_store(&mut batch, 4, acks());
    assert!(fourth.is_empty(), "no second receipt for a mark the store holds");
    assert_eq!(c.calls() - before, 5, "block lists still cached");
    assert_eq!(Counts::get(&c.blocks), 2);
}

/// A group of users 1, 2 and 3 created by user 1, stored.
fn group_of_three(batch: &mut Batch<'_>) -> GroupId {
    let create = GroupOp::Create { request_id: "r".into(), name: "n".into(), members: vec![UserId(2), UserId(3)] };
    prepare_and_store(batch, 1, vec![CommitRequest::Group { origin: ep(1), by: UserId(1), op: create }]);
    *batch.groups.keys().next().unwrap()
}

fn read(by: u64, g: GroupId, up_to: MessageId) -> CommitRequest {
    CommitRequest::Read { origin: ep(by as u32), by: UserId(by), conversation: ConversationId::Group(g), up_to }
}

/// (sender, reader, ids) of every read item in the batch's group receipts.
fn read_items(outcomes: &[Outcome]) -> Vec<(UserId, UserId, Vec<MessageId>)> {
    let mut out = Vec::new();
    for o in outcomes {
        if let Outcome::Receipt {
            receipt: Receipt::Group { status: ReceiptStatus::Read, items, .. }, inboxes, ..
        } = o
        {
            for (by, ids) in items {
                out.push((inboxes[0], *by, ids.clone()));
            }
        }
    }
    out
}

/// The reader's own `read` receipt: (the mark it names, whether the requesting device is skipped).
fn read_echo(outcomes: &[Outcome]) -> Option<(MessageId, bool)> {
    outcomes.iter().find_map(|o| match o {
        Outcome::Receipt { receipt: Receipt::Read { up_to, .. }, origin, .. } => Some((*up_to, origin.is_some())),
        _ => None,
    })
}

#[test]
fn group_read_walks_only_past_the_previous_mark_and_a_repeated_read_walks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let c = &store.counts;
    let mut batch = Batch::new(&store, Snowflake::new(0), 256);
    let g = group_of_three(&mut batch);
    let gc = ConversationId::Group(g);
    let mut sends: Vec<CommitRequest> = (0..5).map(|i| send(2, gc, &format!("m{i}"))).collect();
    sends.push(send(3, gc, "m5"));
    let m = stored(&prepare_and_store(&mut batch, 2, sends));

    let first = prepare_and_store(&mut batch, 3, vec![read(1, g, m[2])]);
    assert_eq!(read_items(&first), vec![(UserId(2), UserId(1), m[..3].to_vec())]);
    assert_eq!(read_echo(&first), Some((m[2], true)));
    // The group's system message and the three read.
    assert_eq!(Counts::get(&c.rows_scanned), 4);

    // The same mark, and an older one: no effect, no walk.
    let (scans, calls) = (Counts::get(&c.header_scans), c.calls());
    batch.recent.clear();
    let repeated = prepare_and_store(&mut batch, 4, vec![read(1, g, m[2]), read(1, g, m[0])]);
    assert!(repeated.is_empty(), "a read at or behind the mark changes nothing");
    assert_eq!(Counts::get(&c.header_scans), scans, "a repeated read walks no messages");
    assert_eq!(c.calls() - calls, 2, "one read-mark lookup and one header lookup for the whole batch");

    // Further: only the three messages past the mark are walked and receipted.
    let rows = Counts::get(&c.rows_scanned);
    let next = prepare_and_store(&mut batch, 5, vec![read(1, g, m[5])]);
    assert_eq!(Counts::get(&c.rows_scanned) - rows, 3);
    let mut items = read_items(&next);
    items.sort();
    assert_eq!(items, vec![(UserId(2), UserId(1), m[3..5].to_vec()), (UserId(3), UserId(1), vec![m[5]])]);

    // A sender's own messages are not reported to them.
    let own = prepare_and_store(&mut batch, 6, vec![read(2, g, m[5])]);
    assert_eq!(read_items(&own), vec![(UserId(3), UserId(2), vec![m[5]])]);
    let receipts = store.receipts_of(gc, m[4]).unwrap();
    assert_eq!(receipts.read.iter().map(|r| r.0).collect::<Vec<_>>(), vec![UserId(1)], "message info of m4");
}

#[test]
fn group_read_marks_never_move_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let mut batch = Batch::new(&store, Snowflake::new(0), 256);
    let g = group_of_three(&mut batch);
    let gc = ConversationId::Group(g);
    let m = stored(&prepare_and_store(&mut batch, 2, (0..4).map(|i| send(2, gc, &format!("m{i}"))).collect()));

    // Newer then older in one batch, then older again in the next.
    let out = prepare_and_store(&mut batch, 3, vec![read(1, g, m[3]), read(1, g, m[1])]);
    assert_eq!(read_echo(&out), Some((m[3], true)));
    assert_eq!(store.read_marks(&[(gc, UserId(1))]).unwrap(), vec![Some(m[3])]);
    assert!(prepare_and_store(&mut batch, 4, vec![read(1, g, m[2])]).is_empty());
    assert_eq!(store.read_marks(&[(gc, UserId(1))]).unwrap(), vec![Some(m[3])], "the store keeps the maximum");
}

#[test]
fn group_read_past_the_scan_limit_stops_its_mark_and_tells_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let mut batch = Batch::new(&store, Snowflake::new(0), 256);
    let g = group_of_three(&mut batch);
    let gc = ConversationId::Group(g);
    let m = stored(&prepare_and_store(
        &mut batch,
        2,
        (0..READ_SCAN_LIMIT + 10).map(|i| send(2, gc, &format!("m{i}"))).collect(),
    ));
    let last = *m.last().unwrap();

    let first = prepare_and_store(&mut batch, 3, vec![read(1, g, last)]);
    // The system message is walked too: 999 of the sender's messages.
    let reached = m[READ_SCAN_LIMIT - 2];
    assert_eq!(read_echo(&first), Some((reached, false)), "the requesting device learns where the mark stopped");
    assert_eq!(read_items(&first), vec![(UserId(2), UserId(1), m[..READ_SCAN_LIMIT - 1].to_vec())]);
    assert_eq!(store.read_marks(&[(gc, UserId(1))]).unwrap(), vec![Some(reached)]);
    assert!(store.receipts_of(gc, m[READ_SCAN_LIMIT - 1]).unwrap().read.is_empty(), "no receipt past the mark");

    let second = prepare_and_store(&mut batch, 4, vec![read(1, g, last)]);
    assert_eq!(read_echo(&second), Some((last, true)));
    assert_eq!(read_items(&second), vec![(UserId(2), UserId(1), m[READ_SCAN_LIMIT - 1..].to_vec())]);
    assert_eq!(Counts::get(&store.counts.rows_scanned), READ_SCAN_LIMIT as u64 + 11);
}

fn refused_count(outcomes: &[Outcome]) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Refused { code: chatgw_protocol::ErrorCode::NotAllowed, .. }))
        .count()
}

#[test]
fn only_recipients_taking_messages_from_contacts_only_cost_a_list_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let c = &store.counts;
    store.set_contacts_only(UserId(1), true).unwrap();
    let mut batch = Batch::new(&store, Snowflake::new(0), 256);

    // Sends to users with the setting off: the settings lookup only.
    let to_others: Vec<_> =
        (10..30u64).map(|u| send(u, ConversationId::direct(UserId(u), UserId(u + 100)), "x")).collect();
    let before = c.calls();
    let out = prepare_and_store(&mut batch, 1, to_others);
    assert_eq!(stored(&out).len(), 20);
    assert_eq!((Counts::get(&c.settings), Counts::get(&c.other_reads)), (1, 0), "no conversation list read");
    assert_eq!(c.calls() - before, 3, "idempotency, block lists, settings");

    // Two strangers write to user 1: refused, nothing stored; the first
    // refusal reads user 1's list, the second reads it again (a refusal
    // is decided on a list read just now).
    let strangers: Vec<_> = (2..4u64).map(|u| send(u, ConversationId::direct(UserId(u), UserId(1)), "s")).collect();
    let out = prepare_and_store(&mut batch, 2, strangers);
    assert_eq!((refused_count(&out), stored(&out).len()), (2, 0));
    assert_eq!(Counts::get(&c.other_reads), 2, "one list read per refusal");

    // User 1 writes to 2 in a batch the writer has not stored yet; 2's
    // answer in the next batch is accepted all the same.
    batch.begin(3, 2);
    let first = send(1, ConversationId::direct(UserId(1), UserId(2)), "a");
    batch.look_up(std::slice::from_ref(&first)).unwrap();
    batch.add(first).unwrap();
    assert_eq!(stored(&batch.take_outcomes()).len(), 1);
    batch.begin(4, 2);
    let answer = send(2, ConversationId::direct(UserId(1), UserId(2)), "b");
    batch.look_up(std::slice::from_ref(&answer)).unwrap();
    batch.add(answer).unwrap();
    let out = batch.take_outcomes();
    assert_eq!((refused_count(&out), stored(&out).len()), (0, 1), "the conversation in flight counts");
}

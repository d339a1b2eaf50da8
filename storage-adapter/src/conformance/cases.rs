//! One check per promise of the `MessageStore` trait docs.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use chatgw_protocol::{
    ConversationId, GroupId, Message, MessageId, MessageKind, Receipt, ReceiptStatus, Snowflake, UserId,
};

use super::inbox;
use super::{ids, text, Backend};
use crate::{InboxEvent, InboxPos, MessageHeader, StoreError, Write};

const BOTH: [UserId; 2] = [UserId(1), UserId(2)];

fn header(m: &Message) -> MessageHeader {
    MessageHeader { id: m.id, from: m.from, kind: m.kind }
}

fn messages<'a>(ms: &'a [Message], inboxes: &'a [UserId]) -> Vec<Write<'a>> {
    ms.iter().map(|m| Write::Message { message: m, inboxes, membership: None }).collect()
}

/// A committed batch is all there after every handle is dropped and the
/// store is opened again: messages, inbox events, receipts, keys, marks.
pub fn commit_survives_reopen(backend: &dyn Backend) {
    let place = backend.new_place();
    let mut g = Snowflake::new(1);
    let (m1, m2) = (text(&mut g, 1, 2, "a"), text(&mut g, 2, 1, "b"));
    let rid = g.next_id();
    let receipt =
        Receipt::Delivered { event: rid, conversation: m1.conversation, by: UserId(2), ids: vec![m1.id], at: 5 };
    {
        let s = backend.open(&place);
        let stats = s
            .commit(
                &[
                    Write::Message { message: &m1, inboxes: &BOTH, membership: None },
                    Write::Message { message: &m2, inboxes: &BOTH, membership: None },
                    Write::Receipt { receipt: &receipt, inboxes: &[UserId(1)] },
                ],
                rid,
            )
            .expect("commit")
            .stats;
        assert!(stats.records > 0 && stats.bytes > 0, "a commit reports what it wrote: {stats:?}");
    }
    let s = backend.open(&place);
    assert_eq!(s.high_water(1).unwrap(), rid, "high water of generator 1 after reopen");
    assert_eq!(s.message(m1.conversation, m1.id).unwrap(), Some(m1.clone()));
    assert_eq!(s.message(m2.conversation, m2.id).unwrap(), Some(m2.clone()));
    assert_eq!(s.message(m1.conversation, MessageId(1)).unwrap(), None, "no such id");
    assert_eq!(
        inbox(s.as_ref(), 1, 100),
        vec![InboxEvent::Message(m1.clone()), InboxEvent::Message(m2.clone()), InboxEvent::Receipt(receipt)]
    );
    assert_eq!(inbox(s.as_ref(), 2, 100).len(), 2, "the receipt went to user 1 only");
    assert_eq!(s.messages_by_client_ids(&[(UserId(2), "b")]).unwrap(), vec![Some((m2.conversation, m2.id))]);
    assert_eq!(s.delivery_marks(&[(m1.conversation, m1.id, UserId(2))]).unwrap(), vec![true]);
    assert_eq!(s.history(m1.conversation, None, 10).unwrap(), vec![m2, m1]);
}

/// A reader running while a large batch commits sees none of it or all of
/// it, never a part.
pub fn commit_is_atomic_to_readers(backend: &dyn Backend) {
    let place = backend.new_place();
    let s = backend.open(&place);
    let mut g = Snowflake::new(1);
    let batch: Vec<Message> = (0..300).map(|i| text(&mut g, 1, 2, &format!("m{i}"))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let seen_sizes = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut sizes = Vec::new();
            while !stop.load(Ordering::Acquire) {
                let n = s.inbox_after(UserId(2), InboxPos(0), 1000).expect("read during commit").len();
                sizes.push(n);
            }
            sizes.push(s.inbox_after(UserId(2), InboxPos(0), 1000).expect("read after commit").len());
            sizes
        });
        s.commit(&messages(&batch, &BOTH), batch[299].id).expect("commit");
        stop.store(true, Ordering::Release);
        reader.join().expect("reader")
    });
    assert!(seen_sizes.iter().all(|&n| n == 0 || n == 300), "a reader saw part of a batch: {seen_sizes:?}");
    assert_eq!(seen_sizes.last(), Some(&300), "once commit returns, every reader sees the batch");
}

/// `high_water` is the largest id any commit recorded: zero at first,
/// never lowered by a commit that records a smaller one, kept across a
/// reopen.
pub fn high_water_never_goes_back(backend: &dyn Backend) {
    let place = backend.new_place();
    {
        let s = backend.open(&place);
        assert_eq!(s.high_water(0).unwrap(), MessageId(0), "an empty store");
        s.commit(&[], MessageId(1_000)).unwrap();
        assert_eq!(s.high_water(0).unwrap(), MessageId(1_000));
        s.commit(&[], MessageId(500)).unwrap();
        assert_eq!(s.high_water(0).unwrap(), MessageId(1_000), "a smaller high water does not lower it");
        s.commit(&[], MessageId(2_000)).unwrap();
    }
    assert_eq!(backend.open(&place).high_water(0).unwrap(), MessageId(2_000), "after reopen");
}

/// Batched idempotency lookups answer in input order, one per key,
/// duplicates included; a system message without a client id binds no key.
pub fn idempotency_lookups(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let (a, b) = (text(&mut g, 1, 2, "a"), text(&mut g, 2, 1, "b"));
    let mut system = text(&mut g, 1, 2, "");
    system.kind = MessageKind::System;
    s.commit(&messages(&[a.clone(), b.clone(), system.clone()], &BOTH), system.id).unwrap();
    assert!(s.messages_by_client_ids(&[]).unwrap().is_empty(), "empty in, empty out");
    assert_eq!(
        s.messages_by_client_ids(&[
            (UserId(1), "a"),
            (UserId(2), "a"),
            (UserId(2), "b"),
            (UserId(1), "a"),
            (UserId(1), "")
        ])
        .unwrap(),
        vec![Some((a.conversation, a.id)), None, Some((b.conversation, b.id)), Some((a.conversation, a.id)), None],
        "input order, duplicates answered, the empty client id bound to nothing"
    );
    // Keys are exact bytes: a prefix or a longer id is another key.
    assert_eq!(s.messages_by_client_ids(&[(UserId(1), "ab"), (UserId(1), "A")]).unwrap(), vec![None, None]);
}

/// Sender and kind of each message, `None` where the conversation holds no
/// such id (even if another conversation does).
pub fn message_headers(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let (a, b) = (text(&mut g, 1, 2, "a"), text(&mut g, 3, 1, "b"));
    s.commit(
        &[
            Write::Message { message: &a, inboxes: &BOTH, membership: None },
            Write::Message { message: &b, inboxes: &[UserId(1)], membership: None },
        ],
        b.id,
    )
    .unwrap();
    assert!(s.message_headers(&[]).unwrap().is_empty());
    assert_eq!(
        s.message_headers(&[
            (b.conversation, b.id),
            (a.conversation, b.id),
            (a.conversation, a.id),
            (b.conversation, b.id)
        ])
        .unwrap(),
        vec![Some(header(&b)), None, Some(header(&a)), Some(header(&b))]
    );
}

/// Whole messages by key, in input order, duplicates included; a key of
/// another conversation or no message is `None`; bodies come back byte for
/// byte.
pub fn messages_by_key(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let a = text(&mut g, 1, 2, "a");
    let mut b = text(&mut g, 3, 1, "b");
    b.kind = MessageKind::Image;
    b.body = r#""\u00e9 \"q\"""#.into();
    s.commit(
        &[
            Write::Message { message: &a, inboxes: &BOTH, membership: None },
            Write::Message { message: &b, inboxes: &[UserId(1)], membership: None },
        ],
        b.id,
    )
    .unwrap();
    assert!(s.messages(&[]).unwrap().is_empty());
    assert_eq!(
        s.messages(&[(b.conversation, b.id), (a.conversation, b.id), (a.conversation, a.id), (b.conversation, b.id)])
            .unwrap(),
        vec![Some(b.clone()), None, Some(a.clone()), Some(b)]
    );
}

/// Delivery marks from direct and group receipts; absent marks are false.
pub fn delivery_marks(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let a = text(&mut g, 1, 2, "a");
    let c = a.conversation;
    let gc = ConversationId::Group(GroupId(9));
    let direct = Receipt::Delivered { event: g.next_id(), conversation: c, by: UserId(2), ids: vec![a.id], at: 7 };
    let group = Receipt::Group {
        event: g.next_id(),
        group: GroupId(9),
        status: ReceiptStatus::Delivered,
        items: vec![(UserId(4), vec![MessageId(40), MessageId(41)])],
        at: 8,
    };
    s.commit(
        &[
            Write::Message { message: &a, inboxes: &BOTH, membership: None },
            Write::Receipt { receipt: &direct, inboxes: &[UserId(1)] },
            Write::Receipt { receipt: &group, inboxes: &[UserId(3)] },
        ],
        group.event(),
    )
    .unwrap();
    assert!(s.delivery_marks(&[]).unwrap().is_empty());
    assert_eq!(
        s.delivery_marks(&[
            (c, a.id, UserId(2)),
            (c, a.id, UserId(1)),
            (gc, MessageId(41), UserId(4)),
            (gc, MessageId(40), UserId(4)),
            (gc, MessageId(42), UserId(4)),
            (c, MessageId(41), UserId(4)),
        ])
        .unwrap(),
        vec![true, false, true, true, false, false]
    );
}

/// A read mark is the furthest any receipt reached: a later receipt with a
/// smaller `up_to`, in another batch or the same one, never lowers it.
/// Every read receipt is still an inbox event.
pub fn read_marks_never_move_backwards(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let c = ConversationId::direct(UserId(1), UserId(2));
    let read = |event: u64, up_to: u64| Receipt::Read {
        event: MessageId(event),
        conversation: c,
        by: UserId(2),
        up_to: MessageId(up_to),
        at: event,
    };
    assert_eq!(s.read_marks(&[(c, UserId(2))]).unwrap(), vec![None]);
    let (r1, r2) = (read(10, 7), read(11, 5));
    s.commit(&[Write::Receipt { receipt: &r1, inboxes: &BOTH }], MessageId(10)).unwrap();
    assert_eq!(s.read_marks(&[(c, UserId(1)), (c, UserId(2))]).unwrap(), vec![None, Some(MessageId(7))]);
    s.commit(&[Write::Receipt { receipt: &r2, inboxes: &BOTH }], MessageId(11)).unwrap();
    assert_eq!(s.read_marks(&[(c, UserId(2))]).unwrap(), vec![Some(MessageId(7))], "a later batch with less");
    let (r3, r4) = (read(12, 9), read(13, 8));
    s.commit(
        &[Write::Receipt { receipt: &r3, inboxes: &BOTH }, Write::Receipt { receipt: &r4, inboxes: &BOTH }],
        MessageId(13),
    )
    .unwrap();
    assert_eq!(s.read_marks(&[(c, UserId(2)), (c, UserId(2))]).unwrap(), vec![Some(MessageId(9)); 2], "same batch");
    let events = inbox(s.as_ref(), 1, 10);
    assert_eq!(events, [r1, r2, r3, r4].map(InboxEvent::Receipt).to_vec(), "every receipt is an event");
}

/// Headers of `after < id <= up_to` of one conversation, oldest first, at
/// most `limit`.
pub fn message_headers_between(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let ms: Vec<Message> = (0..6).map(|i| text(&mut g, 1 + i % 2, 2 - i % 2, &format!("m{i}"))).collect();
    let other = text(&mut g, 1, 3, "elsewhere");
    let mut writes = messages(&ms, &BOTH);
    writes.push(Write::Message { message: &other, inboxes: &BOTH, membership: None });
    s.commit(&writes, other.id).unwrap();
    let c = ms[0].conversation;
    let hid = |v: Vec<MessageHeader>| ids(&v, |h| h.id);
    assert_eq!(hid(s.message_headers_between(c, ms[1].id, ms[4].id, 100).unwrap()), vec![ms[2].id, ms[3].id, ms[4].id]);
    assert_eq!(hid(s.message_headers_between(c, ms[1].id, ms[4].id, 2).unwrap()), vec![ms[2].id, ms[3].id]);
    assert!(s.message_headers_between(c, ms[4].id, ms[4].id, 100).unwrap().is_empty(), "nothing after the mark");
    assert!(s.message_headers_between(c, ms[4].id, ms[1].id, 100).unwrap().is_empty(), "an older mark");
    assert!(s.message_headers_between(c, ms[0].id, ms[5].id, 0).unwrap().is_empty(), "limit 0");
    assert!(s.message_headers_between(c, MessageId(u64::MAX), MessageId(u64::MAX), 9).unwrap().is_empty());
    let all = s.message_headers_between(c, MessageId(0), MessageId(u64::MAX), 100).unwrap();
    assert_eq!(all.len(), 6, "other conversations stay out");
    assert_eq!(all[3], header(&ms[3]));
}

/// An inbox holds the owner's messages and receipts in commit order across
/// batches, at strictly increasing positions (dense on a shared backend);
/// paging with the last position as cursor reads each event once.
pub fn inbox_pages_in_position_order(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let mut expected = Vec::new();
    for batch in 0..5 {
        let ms: Vec<Message> = (0..4).map(|i| text(&mut g, 1 + i % 2, 2 - i % 2, &format!("b{batch}m{i}"))).collect();
        let noise = text(&mut g, 3, 4, &format!("noise{batch}"));
        let receipt = Receipt::Read {
            event: g.next_id(),
            conversation: ms[0].conversation,
            by: UserId(2),
            up_to: ms[3].id,
            at: 1,
        };
        let mut writes = messages(&ms, &BOTH);
        writes.push(Write::Message { message: &noise, inboxes: &[UserId(3), UserId(4)], membership: None });
        writes.push(Write::Receipt { receipt: &receipt, inboxes: &[UserId(1)] });
        s.commit(&writes, receipt.event()).unwrap();
        expected.extend(ms.into_iter().map(InboxEvent::Message));
        expected.push(InboxEvent::Receipt(receipt));
    }
    let mut paged = Vec::new();
    let mut positions = Vec::new();
    let mut cursor = InboxPos(0);
    loop {
        let page = s.inbox_after(UserId(1), cursor, 3).unwrap();
        assert!(page.len() <= 3, "a page holds at most `limit` events");
        let Some(last) = page.last() else { break };
        cursor = last.pos;
        positions.extend(page.iter().map(|e| e.pos));
        paged.extend(page.into_iter().map(|e| e.event));
    }
    assert_eq!(paged, expected, "every event once, in commit order");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions strictly increase: {positions:?}");
    if backend.several_writers() {
        let want: Vec<InboxPos> = (1..=positions.len() as u64).map(InboxPos).collect();
        assert_eq!(positions, want, "dense positions from 1");
    }
    let user2 = inbox(s.as_ref(), 2, 1000);
    assert_eq!(user2.len(), 20, "user 2 got the messages but not the receipts");
    assert!(user2.windows(2).all(|w| w[0].id() < w[1].id()), "one writer: commit order is id order");
    assert!(s.inbox_after(UserId(1), InboxPos(u64::MAX), 10).unwrap().is_empty());
    assert!(s.inbox_after(UserId(1), InboxPos(0), 0).unwrap().is_empty(), "limit 0");
    assert!(s.inbox_after(UserId(99), InboxPos(0), 10).unwrap().is_empty(), "an empty inbox");
}

/// History is newest first, before an exclusive cursor, one conversation.
pub fn history_pages_newest_first(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let mut g = Snowflake::new(1);
    let ms: Vec<Message> = (0..7).map(|i| text(&mut g, 1 + i % 2, 2 - i % 2, &format!("h{i}"))).collect();
    let other = text(&mut g, 1, 3, "other");
    s.commit(&messages(&ms[..3], &BOTH), ms[2].id).unwrap();
    let mut rest = messages(&ms[3..], &BOTH);
    rest.push(Write::Message { message: &other, inboxes: &BOTH, membership: None });
    s.commit(&rest, other.id).unwrap();
    let c = ms[0].conversation;
    let newest_first: Vec<Message> = ms.iter().rev().cloned().collect();
    assert_eq!(s.history(c, None, 100).unwrap(), newest_first);
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = s.history(c, before, 2).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        paged.extend(page);
    }
    assert_eq!(paged, newest_first, "paging with the oldest id as cursor");
    assert!(s.history(c, Some(MessageId(0)), 10).unwrap().is_empty());
    assert!(s.history(c, Some(ms[0].id), 10).unwrap().is_empty(), "nothing older than the first");
    assert_eq!(s.history(other.conversation, None, 10).unwrap(), vec![other]);
}

/// Who got a message and who read it, with times, ordered by user.
pub fn receipts_of_a_message(backend: &dyn Backend) {
    let s = backend.open(&backend.new_place());
    let c = ConversationId::Group(GroupId(7));
    let receipt = |event: u64, status, items: Vec<(UserId, Vec<MessageId>)>, at| Receipt::Group {
        event: MessageId(event),
        group: GroupId(7),
        status,
        items,
        at,
    };
    let delivered = receipt(
        5,
        ReceiptStatus::Delivered,
        vec![(UserId(3), vec![MessageId(3)]), (UserId(2), vec![MessageId(3), MessageId(4)])],
        50,
    );
    let read = receipt(6, ReceiptStatus::Read, vec![(UserId(3), vec![MessageId(3)])], 60);
    s.commit(
        &[
            Write::Receipt { receipt: &delivered, inboxes: &[UserId(1)] },
            Write::Receipt { receipt: &read, inboxes: &[UserId(1)] },
        ],
        MessageId(6),
    )
    .unwrap();
    let r = s.receipts_of(c, MessageId(3)).unwrap();
    assert_eq!(r.delivered, vec![(UserId(2), 50), (UserId(3), 50)]);
    assert_eq!(r.read, vec![(UserId(3), 60)]);
    let r4 = s.receipts_of(c, MessageId(4)).unwrap();
    assert_eq!((r4.delivered, r4.read), (vec![(UserId(2), 50)], vec![]));
    assert_eq!(s.receipts_of(c, MessageId(5)).unwrap(), Default::default());
    let d = ConversationId::direct(UserId(1), UserId(2));
    let direct =
        Receipt::Delivered { event: MessageId(9), conversation: d, by: UserId(2), ids: vec![MessageId(8)], at: 90 };
    s.commit(&[Write::Receipt { receipt: &direct, inboxes: &[UserId(1)] }], MessageId(9)).unwrap();
    assert_eq!(s.receipts_of(d, MessageId(8)).unwrap().delivered, vec![(UserId(2), 90)], "direct delivery");
    assert_eq!(inbox(s.as_ref(), 1, 10), [delivered, read, direct].map(InboxEvent::Receipt).to_vec());
}

/// After an outage a commit fails (never a false success), the store keeps
/// refusing writes or failing until `recover` succeeds, reads of what was
/// committed before keep working, and after `recover` commits go on; what
/// was committed before the outage is still there after a reopen.
pub fn outage_then_recover(backend: &dyn Backend) {
    let place = backend.new_place();
    let s = backend.open(&place);
    let mut g = Snowflake::new(1);
    let (before, during, after) =
        (text(&mut g, 1, 2, "before"), text(&mut g, 1, 2, "during"), text(&mut g, 1, 2, "after"));
    s.commit(&[Write::Message { message: &before, inboxes: &BOTH, membership: None }], before.id).unwrap();
    s.recover().expect("nothing failed: nothing to do");
    if !backend.interrupt(&place, &s) {
        return;
    }
    match s.commit(&[Write::Message { message: &during, inboxes: &BOTH, membership: None }], during.id) {
        Err(e @ (StoreError::Unwritable { .. } | StoreError::Backend { .. } | StoreError::Closed)) => {
            let _ = e.failure();
        }
        other => panic!("a commit during an outage must fail: {other:?}"),
    }
    match s.commit(&[Write::Message { message: &during, inboxes: &BOTH, membership: None }], during.id) {
        Err(StoreError::Unwritable { .. }) => {}
        other => panic!("until recover, writes are refused: {other:?}"),
    }
    assert_eq!(s.message(before.conversation, before.id).unwrap(), Some(before.clone()), "reads go on");
    let mut tries = 0;
    while let Err(e) = s.recover() {
        tries += 1;
        assert!(tries < 50, "recover keeps failing: {e}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    s.commit(&[Write::Message { message: &after, inboxes: &BOTH, membership: None }], after.id)
        .expect("writable after recover");
    drop(s);
    let s = backend.open(&place);
    let inbox = inbox(s.as_ref(), 2, 10);
    assert_eq!(inbox.first(), Some(&InboxEvent::Message(before)));
    assert_eq!(inbox.last(), Some(&InboxEvent::Message(after.clone())));
    assert!(inbox.len() == 2 || inbox.len() == 3, "the failed batch may or may not be there, nothing else: {inbox:?}");
    assert_eq!(s.high_water(1).unwrap(), after.id);
}

//! The outbox: one record per applied write, in the write's own batch,
//! with positions that follow commit order and never repeat (not even
//! after every record was removed and the store reopened), named cursors
//! that never move back, and removal of what every consumer is done with.
//! A backend without an outbox must refuse to enable one, loudly.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use chatgw_protocol::{
    AmendKind, Amendment, Message, MessageId, MessageKind, Receipt, ReceiptStatus, Snowflake, UserId,
};

use super::{text, Backend};
use crate::{MessageStore, OutboxDetail, OutboxOptions, OutboxPos, OutboxRecord, StoreError, Write, WriteOutcome};

fn open_with_outbox(backend: &dyn Backend, place: &str) -> Option<Arc<dyn MessageStore>> {
    let s = backend.open(place);
    match s.enable_outbox(OutboxOptions { bodies: true, node: 7 }) {
        Ok(()) => Some(s),
        Err(StoreError::Unsupported { .. }) => {
            let refused = s.set_outbox_cursor("kafka", OutboxPos(1));
            assert!(matches!(refused, Err(StoreError::Unsupported { .. })), "no outbox, no cursor: {refused:?}");
            None
        }
        Err(e) => panic!("enable the outbox: {e}"),
    }
}

fn all(s: &dyn MessageStore) -> Vec<OutboxRecord> {
    s.outbox_after(OutboxPos(0), 1000).expect("read the outbox")
}

/// Message, duplicate, receipt, edit and hide: what each record holds,
/// positions, cursors and removal, across reopens.
pub fn outbox_records_applied_writes(backend: &dyn Backend) {
    let place = backend.new_place();
    let Some(s) = open_with_outbox(backend, &place) else { return };
    let mut ids = Snowflake::new(7);
    let m = text(&mut ids, 1, 2, "o1");
    let dup = text(&mut ids, 1, 2, "o1");
    let both = [UserId(1), UserId(2)];
    let receipt = Receipt::Delivered {
        event: ids.next_id(),
        conversation: m.conversation,
        by: UserId(2),
        ids: vec![m.id],
        at: 42,
    };
    let edit_event = ids.next_id();
    let edit = Message {
        body: "\"edited\"".into(),
        amended: Some(Amendment { kind: AmendKind::Edited, event: edit_event }),
        ..m.clone()
    };
    let hide_event = ids.next_id();
    let writes = [
        Write::Message { message: &m, inboxes: &both, membership: None },
        Write::Message { message: &dup, inboxes: &both, membership: None },
        Write::Receipt { receipt: &receipt, inboxes: &[UserId(1)] },
        Write::Amend { message: &edit, inboxes: &both },
        Write::Hide { user: &UserId(2), conversation: m.conversation, msg: m.id, event: hide_event },
    ];
    let done = s.commit(&writes, hide_event).unwrap();
    assert!(matches!(done.outcome(1), Some(WriteOutcome::Duplicate { .. })));
    let records = all(s.as_ref());
    let events: Vec<MessageId> = records.iter().map(|r| r.event).collect();
    assert_eq!(events, vec![m.id, receipt.event(), edit_event, hide_event], "one per applied write, in batch order");
    assert!(records.windows(2).all(|p| p[0].pos < p[1].pos), "positions increase: {records:?}");
    assert!(records.iter().all(|r| r.conversation == m.conversation));
    assert_eq!((records[0].from, records[0].recipients.clone(), records[0].at), (UserId(1), vec![UserId(2)], m.ts));
    assert_eq!(
        records[0].detail,
        OutboxDetail::Message {
            id: m.id,
            kind: MessageKind::Text,
            size: m.body.len() as u64,
            body: Some(m.body.clone())
        }
    );
    assert_eq!((records[1].from, records[1].recipients.clone(), records[1].at), (UserId(2), vec![UserId(1)], 42));
    assert_eq!(
        records[1].detail,
        OutboxDetail::Receipt { status: ReceiptStatus::Delivered, ids: vec![m.id], by: Vec::new() }
    );
    assert_eq!(
        records[2].detail,
        OutboxDetail::Amended { id: m.id, op: AmendKind::Edited, size: 8, body: Some("\"edited\"".into()) }
    );
    assert_eq!((records[3].from, records[3].recipients.clone()), (UserId(2), Vec::new()), "a hide is for one user");
    assert!(matches!(records[3].detail, OutboxDetail::Amended { op: AmendKind::Hidden, .. }));
    assert_eq!(s.outbox_head().unwrap(), records[3].pos);
    assert_eq!(s.outbox_after(records[1].pos, 1).unwrap(), vec![records[2].clone()], "pages after a position");

    // Cursors: per consumer, never back; records go once all are past them.
    assert_eq!(s.outbox_cursor("kafka").unwrap(), OutboxPos(0));
    s.set_outbox_cursor("push", OutboxPos(0)).unwrap();
    s.set_outbox_cursor("kafka", records[3].pos).unwrap();
    assert_eq!(all(s.as_ref()).len(), 4, "the push cursor still needs every record");
    s.set_outbox_cursor("push", records[1].pos).unwrap();
    s.set_outbox_cursor("push", records[0].pos).unwrap();
    assert_eq!(s.outbox_cursor("push").unwrap(), records[1].pos, "a cursor never moves back");
    assert_eq!(all(s.as_ref()), records[2..].to_vec(), "records both consumers are done with are gone");
    s.set_outbox_cursor("push", records[3].pos).unwrap();
    assert!(all(s.as_ref()).is_empty());
    drop(s);

    // Reopened: cursors kept, and new positions above every old one.
    let s = open_with_outbox(backend, &place).expect("enabled before");
    assert_eq!(s.outbox_cursor("kafka").unwrap(), records[3].pos, "cursors are durable");
    assert_eq!(s.outbox_head().unwrap(), records[3].pos, "the head survives removal and reopen");
    let later = text(&mut ids, 2, 1, "o2");
    s.commit(&[Write::Message { message: &later, inboxes: &both, membership: None }], later.id).unwrap();
    let after = all(s.as_ref());
    assert_eq!(after.len(), 1);
    assert!(after[0].pos > records[3].pos, "positions never repeat: {:?}", after[0].pos);
    assert_eq!(
        after[0].detail,
        OutboxDetail::Message {
            id: later.id,
            kind: MessageKind::Text,
            size: later.body.len() as u64,
            body: Some(later.body.clone())
        }
    );
}

/// Commits from several threads at once while a reader pages by the last
/// position it saw: the reader ends with every record, none twice.
pub fn outbox_pager_never_skips_concurrent_commits(backend: &dyn Backend) {
    let place = backend.new_place();
    let Some(s) = open_with_outbox(backend, &place) else { return };
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let s = s.clone();
                scope.spawn(move || {
                    let mut ids = Snowflake::new(10 + t as u16);
                    for i in 0..50 {
                        // Each thread its own conversation, as commit pipelines are.
                        let m = text(&mut ids, 100 + t, 200 + t, &format!("c{t}-{i}"));
                        let inboxes = [UserId(100 + t), UserId(200 + t)];
                        s.commit(&[Write::Message { message: &m, inboxes: &inboxes, membership: None }], m.id).unwrap();
                    }
                })
            })
            .collect();
        let reader = scope.spawn(|| {
            let mut seen = Vec::new();
            let mut after = OutboxPos(0);
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = s.outbox_after(after, 7).unwrap();
                if let Some(last) = page.last() {
                    after = last.pos;
                }
                let empty = page.is_empty();
                seen.extend(page.into_iter().map(|r| r.event));
                if finished && empty {
                    return seen;
                }
            }
        });
        // Tell the reader once every writer has finished (positions need
        // not start at 1 nor be dense, so the head cannot tell).
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().unwrap()
    });
    assert_eq!(seen.len(), 200, "every record once");
    let mut unique = seen.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 200, "none twice");
}

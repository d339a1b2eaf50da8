//! The sync and live-cursor rules of a connection, driven through the
//! [`harness`](super::harness): what the device is written and which pages
//! the engine asks the readers for.

use chatgw_protocol::{client, ErrorCode, MessageId, ServerFrame};

use super::{
    harness::{deliver, deliver_at, sync_page, sync_page_at, texts, Harness},
    Action, Refused,
};
use chatgw_storage::InboxPos;

use crate::events::{CoreEvent, QueryRequest, SyncFrom};

/// The `(after, limit)` of every sync page asked for in `actions`; panics
/// on any other action.
fn pages_asked(actions: &[Action]) -> Vec<(SyncFrom, usize)> {
    actions
        .iter()
        .map(|a| match a {
            Action::Query(QueryRequest::Sync { after, limit, .. }) => (*after, *limit),
            other => panic!("expected a sync page request, got {other:?}"),
        })
        .collect()
}

/// The first page: after the device's cursor, an event id.
fn cursor(id: u64) -> SyncFrom {
    SyncFrom::Cursor(MessageId(id))
}

/// A later page: after an inbox position.
fn at(pos: u64) -> SyncFrom {
    SyncFrom::Position(InboxPos(pos))
}

fn sync(h: &mut Harness, after: u64, limit: usize) {
    let mut text = String::new();
    client::sync(&mut text, MessageId(after), limit);
    h.send_text(&text);
}

#[test]
fn live_events_before_the_first_sync_or_at_or_below_the_cursor_are_dropped() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    h.mail(vec![deliver(to, 3)]);
    assert_eq!(h.frames(), vec![], "not subscribed before its first sync");

    sync(&mut h, 10, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(10), 50)]);
    h.mail(vec![sync_page(to, 10, &[], 0, false)]);
    assert_eq!(h.server_frames(), vec![ServerFrame::Synced { cursor: MessageId(10) }]);

    h.mail(vec![deliver(to, 9), deliver(to, 10), deliver(to, 11), deliver(to, 11)]);
    assert_eq!(texts(&h.frames()), vec!["event-11"]);
    assert_eq!(h.cursor(), MessageId(11));
}

#[test]
fn live_events_during_a_sync_ask_for_another_page_instead_of_being_delivered() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 0, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(0), 50)]);

    h.mail(vec![deliver(to, 5)]);
    assert_eq!(h.frames(), vec![], "a live event passed the sync in progress");
    assert!(h.actions().is_empty());

    // The page read before event 5 was stored: another page, no `synced`.
    h.mail(vec![sync_page(to, 0, &[3], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-3"]);
    assert_eq!(pages_asked(&h.actions()), vec![(at(3), 50)]);

    h.mail(vec![sync_page(to, 3, &[5], 0, false)]);
    let frames = h.frames();
    assert_eq!(texts(&frames[..1]), vec!["event-5"]);
    assert_eq!(h.server_frames(), vec![]);
    let Some(super::harness::Frame::Text(last)) = frames.get(1) else { panic!("{frames:?}") };
    assert_eq!(ServerFrame::parse(last).ok(), Some(ServerFrame::Synced { cursor: MessageId(5) }));
    assert!(h.actions().is_empty());
}

#[test]
fn a_full_page_asks_for_the_next_page_from_the_new_cursor() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 0, 2);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(0), 2)]);
    h.mail(vec![sync_page(to, 0, &[1, 2], 0, true)]);
    assert_eq!(texts(&h.frames()), vec!["event-1", "event-2"]);
    assert_eq!(pages_asked(&h.actions()), vec![(at(2), 2)]);
    h.mail(vec![sync_page(to, 2, &[], 0, false)]);
    assert_eq!(h.server_frames(), vec![ServerFrame::Synced { cursor: MessageId(2) }]);
}

/// Several gateways on one store: ids are not in inbox order. The
/// connection follows positions, and `synced` names the id of the last
/// event by position, whatever its size.
#[test]
fn positions_not_ids_order_the_stream_and_synced_names_the_last_event() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 500, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(500), 50)]);
    // The reader resolved cursor 500 to position 7; an event at or below it
    // (a page racing a second sync) is not written again.
    h.mail(vec![sync_page_at(to, 7, &[(7, 500), (8, 900), (9, 400)], 0, false)]);
    let frames = h.frames();
    assert_eq!(texts(&frames[..2]), vec!["event-900", "event-400"]);
    let Some(super::harness::Frame::Text(last)) = frames.get(2) else { panic!("{frames:?}") };
    assert_eq!(ServerFrame::parse(last).ok(), Some(ServerFrame::Synced { cursor: MessageId(400) }));
    assert_eq!((h.cursor(), h.pos()), (MessageId(400), InboxPos(9)));

    // Live: a larger id at an old position is a repeat; a smaller id at a
    // new position is new.
    h.mail(vec![deliver_at(to, 950, 9), deliver_at(to, 300, 10)]);
    assert_eq!(texts(&h.frames()), vec!["event-300"]);
    assert_eq!((h.cursor(), h.pos()), (MessageId(300), InboxPos(10)));

    // The next sync starts from the cursor the device was given: an id.
    sync(&mut h, 300, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(300), 50)]);
}

#[test]
fn a_page_past_half_the_outbound_bound_pauses_until_the_socket_drains() {
    // Half the bound is 2016 bytes; each event is a 504-byte frame, so four
    // fill it exactly.
    let mut h = Harness::connect(|c| c.max_outbound = 4032);
    let to = h.endpoint();
    sync(&mut h, 0, 50);
    h.actions();
    h.block_socket();
    h.mail(vec![sync_page(to, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 500, false)]);
    assert_eq!(h.cursor(), MessageId(4), "four frames fit in half the bound");
    assert!(h.actions().is_empty(), "paused: no page until the socket drains");
    assert_eq!(h.engine.conns[h.slot].phase, super::Phase::Open, "not closed as a slow consumer");

    // Draining asks for the rest within the same turn, from the cursor.
    h.drain_socket(usize::MAX / 2);
    let written: Vec<String> = texts(&h.frames()).into_iter().map(str::to_owned).collect();
    assert_eq!(written, vec!["event-1", "event-2", "event-3", "event-4"]);
    assert_eq!(pages_asked(&h.actions()), vec![(at(4), 50)]);
    h.mail(vec![sync_page(to, 4, &[5, 6], 500, false)]);
    let frames = h.frames();
    assert_eq!(texts(&frames[..2]), vec!["event-5", "event-6"]);
    assert_eq!(frames.len(), 3, "then synced");
}

#[test]
fn a_sync_failure_unsubscribes_until_the_next_sync() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 0, 50);
    h.actions();
    let mut payload = Vec::new();
    chatgw_protocol::server::error(&mut payload, ErrorCode::SyncFailed, "store", None);
    h.mail(vec![CoreEvent::SyncFailed { to, payload }]);
    assert!(matches!(h.server_frames().as_slice(), [ServerFrame::Error(e)] if e.code == ErrorCode::SyncFailed));

    h.mail(vec![deliver(to, 3)]);
    assert_eq!(h.frames(), vec![], "a live event after a failed sync would skip the failed page");

    sync(&mut h, 0, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(0), 50)]);
    h.mail(vec![sync_page(to, 0, &[3], 0, false)]);
    h.frames();
    h.mail(vec![deliver(to, 4)]);
    assert_eq!(texts(&h.frames()), vec!["event-4"]);
}

#[test]
fn a_sync_page_the_readers_refuse_fails_the_sync_and_unsubscribes() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 0, 50);
    let asked = h.actions().pop().expect("a page request");
    h.refuse(asked, Refused::Full);
    match h.server_frames().as_slice() {
        [ServerFrame::Error(e)] => {
            assert_eq!(e.code, ErrorCode::SyncFailed);
            assert_eq!(e.message, "the readers are busy; send sync again from your last cursor");
        }
        other => panic!("{other:?}"),
    }
    h.mail(vec![deliver(to, 3)]);
    assert_eq!(h.frames(), vec![]);
}

#[test]
fn a_sync_sent_while_a_page_is_on_its_way_drops_that_page_and_starts_from_its_own_cursor() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    sync(&mut h, 0, 50);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(0), 50)]);
    // The device syncs again (from cursor 7) before the first page came.
    sync(&mut h, 7, 50);
    assert!(h.actions().is_empty(), "one page request at a time");
    // The answer to the first request (read from cursor 0) is dropped, and
    // the second sync's first page is asked for.
    h.mail(vec![sync_page(to, 0, &[3, 5], 0, false)]);
    assert_eq!(h.frames(), vec![], "a page of the replaced sync went out");
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(7), 50)]);
    h.mail(vec![sync_page(to, 7, &[9], 0, false)]);
    assert_eq!(texts(&h.frames()[..1]), vec!["event-9"]);
    assert_eq!(h.cursor(), MessageId(9));
}

/// The flag of the first page of a sync (its cursor stands below what the
/// inbox retention removed) ends that sync's `synced`, however many pages
/// follow, and only that sync's.
#[test]
fn a_truncated_first_page_ends_its_sync_with_the_truncated_flag() {
    let mut h = Harness::connect(|_| {});
    let to = h.endpoint();
    let last_text = |h: &mut Harness| match h.frames().pop() {
        Some(super::harness::Frame::Text(t)) => t,
        other => panic!("{other:?}"),
    };
    sync(&mut h, 10, 2);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(10), 2)]);
    let first = match sync_page_at(to, 0, &[(40, 40), (41, 41)], 0, true) {
        CoreEvent::SyncPage { to, after, events, full, .. } => {
            CoreEvent::SyncPage { to, after, events, full, truncated: true }
        }
        other => panic!("{other:?}"),
    };
    h.mail(vec![first]);
    assert_eq!(texts(&h.frames()), vec!["event-40", "event-41"]);
    assert_eq!(pages_asked(&h.actions()), vec![(at(41), 2)]);
    h.mail(vec![sync_page_at(to, 41, &[(42, 42)], 0, false)]);
    let frames = h.frames();
    assert_eq!(texts(&frames[..1]), vec!["event-42"]);
    let Some(super::harness::Frame::Text(synced)) = frames.get(1) else { panic!("{frames:?}") };
    assert_eq!(synced, r#"{"type":"synced","cursor":"42","truncated":true}"#);

    // The next sync, from a current cursor, says nothing of it.
    sync(&mut h, 42, 2);
    assert_eq!(pages_asked(&h.actions()), vec![(cursor(42), 2)]);
    h.mail(vec![sync_page_at(to, 42, &[], 0, false)]);
    assert_eq!(last_text(&mut h), r#"{"type":"synced","cursor":"42"}"#);
}

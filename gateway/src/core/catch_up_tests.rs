//! Catch-up rules on a store with dense positions, driven through the
//! [`harness`](super::harness): duplicates dropped, the next position
//! delivered, a gap read from the store as live events (no `synced`), and
//! catch-ups asked for one connection or a whole core, paced.

use chatgw_protocol::{client, MessageId, ServerFrame};
use chatgw_storage::InboxPos;

use super::{
    catch_up::CATCH_UP_READS,
    harness::{deliver_at, sync_page_at, texts, FakeSocket, Harness},
    Action, Phase,
};
use crate::events::{CoreEvent, QueryRequest, SyncFrom};

/// A harness on a dense store whose connection has synced an empty inbox.
fn synced_dense() -> Harness {
    let mut h = Harness::connect(|_| {});
    h.engine.ctx.settings.dense_positions = true;
    let to = h.endpoint();
    let mut text = String::new();
    client::sync(&mut text, MessageId(0), 50);
    h.send_text(&text);
    h.actions();
    h.mail(vec![sync_page_at(to, 0, &[], 0, false)]);
    assert_eq!(h.server_frames(), vec![ServerFrame::Synced { cursor: MessageId(0) }]);
    h
}

/// The positions after which sync pages were asked for.
fn pages_after(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .map(|a| match a {
            Action::Query(QueryRequest::Sync { after: SyncFrom::Position(p), .. }) => p.0,
            other => panic!("expected a page request from a position, got {other:?}"),
        })
        .collect()
}

/// The connections sync pages were asked for.
fn origins(actions: &[Action]) -> Vec<chatgw_router::Endpoint> {
    actions
        .iter()
        .map(|a| match a {
            Action::Query(QueryRequest::Sync { origin, .. }) => *origin,
            other => panic!("expected a page request, got {other:?}"),
        })
        .collect()
}

#[test]
fn a_repeat_is_dropped_the_next_position_delivered_and_a_gap_caught_up_as_live_events() {
    let mut h = synced_dense();
    let to = h.endpoint();
    h.mail(vec![deliver_at(to, 11, 1), deliver_at(to, 11, 1)]);
    assert_eq!(texts(&h.frames()), vec!["event-11"], "the repeat is dropped");
    assert!(h.actions().is_empty());

    // Position 2 never came (another node committed it): 3 is a gap.
    h.mail(vec![deliver_at(to, 13, 3)]);
    assert_eq!(h.frames(), vec![], "nothing past the gap is written live");
    assert_eq!(pages_after(&h.actions()), vec![1], "read from the store after position 1");
    assert_eq!(h.engine.catch_ups.reading(), 1);

    // Another live event while the page is read: held, and one more page.
    h.mail(vec![deliver_at(to, 14, 4)]);
    assert_eq!(h.frames(), vec![]);
    assert!(h.actions().is_empty());
    h.mail(vec![sync_page_at(to, 1, &[(2, 12), (3, 13)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-12", "event-13"], "as live events, in position order, no synced");
    assert_eq!(pages_after(&h.actions()), vec![3]);
    h.mail(vec![sync_page_at(to, 3, &[(4, 14)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-14"]);
    assert!(h.actions().is_empty(), "caught up");
    assert_eq!(h.engine.catch_ups.reading(), 0);
    assert_eq!((h.cursor(), h.pos()), (MessageId(14), InboxPos(4)));

    // Live again: the next position goes out at once, repeats do not.
    h.mail(vec![deliver_at(to, 14, 4), deliver_at(to, 15, 5)]);
    assert_eq!(texts(&h.frames()), vec!["event-15"]);
    let gaps = h.engine.ctx.metrics.render();
    assert!(gaps.contains("chatgw_catch_ups_total{reason=\"gap\"} 1"), "{gaps}");
}

#[test]
fn without_dense_positions_a_jump_is_delivered_as_before() {
    let mut h = synced_dense();
    h.engine.ctx.settings.dense_positions = false;
    let to = h.endpoint();
    h.mail(vec![deliver_at(to, 100, 100), deliver_at(to, 250, 250)]);
    assert_eq!(texts(&h.frames()), vec!["event-100", "event-250"]);
    assert!(h.actions().is_empty());
}

#[test]
fn catch_up_reads_from_the_position_and_joins_a_sync_in_progress() {
    let mut h = Harness::connect(|_| {});
    h.engine.ctx.settings.dense_positions = true;
    let to = h.endpoint();
    h.mail(vec![CoreEvent::CatchUp { to }]);
    assert!(h.actions().is_empty(), "not subscribed: nothing to catch up");

    // During a sync it asks for one more page, and the sync ends with synced.
    let mut text = String::new();
    client::sync(&mut text, MessageId(0), 50);
    h.send_text(&text);
    assert_eq!(h.actions().len(), 1);
    h.mail(vec![CoreEvent::CatchUp { to }]);
    assert!(h.actions().is_empty());
    h.mail(vec![sync_page_at(to, 0, &[(1, 5)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-5"]);
    assert_eq!(pages_after(&h.actions()), vec![1]);
    h.mail(vec![sync_page_at(to, 1, &[], 0, false)]);
    assert_eq!(h.server_frames(), vec![ServerFrame::Synced { cursor: MessageId(5) }]);

    // Subscribed and idle: a read after its position, ending silently.
    h.mail(vec![CoreEvent::CatchUp { to }]);
    assert_eq!(pages_after(&h.actions()), vec![1]);
    h.mail(vec![sync_page_at(to, 1, &[(2, 7)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-7"]);
    assert!(h.actions().is_empty());
    let asked = h.engine.ctx.metrics.render();
    assert!(asked.contains("chatgw_catch_ups_total{reason=\"asked\"} 1"), "{asked}");
}

#[test]
fn catch_up_all_reads_for_a_bounded_number_of_connections_at_a_time() {
    let mut h = synced_dense();
    // 99 more subscribed connections on the same core.
    let mut others = Vec::new();
    for _ in 0..99 {
        let slot = h.engine.accept(FakeSocket { room: usize::MAX }, std::net::IpAddr::from([127, 0, 0, 1]));
        let c = h.engine.conns.get_mut(slot).expect("just accepted");
        (c.phase, c.subscribed, c.sync_limit) = (Phase::Open, true, 50);
        others.push(h.engine.endpoint(slot).expect("open"));
    }
    h.mail(vec![CoreEvent::CatchUpAll { core: 0 }]);
    let asked = h.actions();
    assert_eq!(asked.len(), CATCH_UP_READS, "at most this many reads in flight");
    assert_eq!(h.engine.catch_ups.reading(), CATCH_UP_READS);
    let metrics = h.engine.ctx.metrics.render();
    assert!(metrics.contains("chatgw_catch_up_pending{core=\"0\"} 100"), "{metrics}");

    // Each catch-up that finishes lets one waiting connection read.
    let first = origins(&asked);
    for to in &first[..10] {
        h.mail(vec![sync_page_at(*to, 0, &[], 0, false)]);
    }
    let mut waiting = origins(&h.actions());
    assert_eq!(waiting.len(), 10);
    assert_eq!(h.engine.catch_ups.reading(), CATCH_UP_READS);

    // A connection that goes away frees its read too.
    let gone = first[10].slot as usize;
    h.engine.drop_conn(gone);
    h.turn();
    let next = origins(&h.actions());
    assert_eq!(next.len(), 1);
    waiting.extend(next);

    // The rest finish; nothing is left waiting.
    waiting.extend_from_slice(&first[11..]);
    while let Some(to) = waiting.pop() {
        h.mail(vec![sync_page_at(to, 0, &[], 0, false)]);
        waiting.extend(origins(&h.actions()));
    }
    assert_eq!(h.engine.catch_ups.reading(), 0);
    let metrics = h.engine.ctx.metrics.render();
    assert!(metrics.contains("chatgw_catch_up_pending{core=\"0\"} 0"), "{metrics}");
    assert!(metrics.contains("chatgw_catch_ups_total{reason=\"all\"} 100"), "{metrics}");
}

/// `Seen` for the connection's own event at `pos`.
fn seen_at(to: chatgw_router::Endpoint, event: u64, pos: u64) -> CoreEvent {
    CoreEvent::Seen { to, event: MessageId(event), pos: InboxPos(pos) }
}

#[test]
fn an_own_event_seen_while_catching_up_is_not_written_back_to_its_device() {
    let mut h = synced_dense();
    let to = h.endpoint();
    h.mail(vec![CoreEvent::CatchUp { to }]);
    assert_eq!(pages_after(&h.actions()), vec![0]);
    // The device sends a message meanwhile: its own inbox holds it at 2.
    h.mail(vec![deliver_at(to, 31, 1), seen_at(to, 32, 2)]);
    assert_eq!(h.frames(), vec![], "held while the page is read");
    h.mail(vec![sync_page_at(to, 0, &[(1, 31)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-31"]);
    assert_eq!(pages_after(&h.actions()), vec![1], "one more page for what arrived meanwhile");
    h.mail(vec![sync_page_at(to, 1, &[(2, 32), (3, 33)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-33"], "its own message is not echoed; the next one is");
    assert_eq!((h.cursor(), h.pos()), (MessageId(33), InboxPos(3)));
    assert!(h.actions().is_empty(), "caught up");
    assert_eq!(h.engine.own_events.len(), 0, "nothing kept once paging ends");
}

#[test]
fn an_own_event_past_a_gap_is_not_written_back_by_the_catch_up_it_starts() {
    let mut h = synced_dense();
    let to = h.endpoint();
    // Position 1 (another node's) is still in transit; the device's own
    // event at 2 opens the gap.
    h.mail(vec![seen_at(to, 42, 2)]);
    assert_eq!(pages_after(&h.actions()), vec![0]);
    h.mail(vec![sync_page_at(to, 0, &[(1, 41), (2, 42)], 0, false)]);
    assert_eq!(texts(&h.frames()), vec!["event-41"]);
    assert_eq!((h.cursor(), h.pos()), (MessageId(42), InboxPos(2)));
    h.mail(vec![deliver_at(to, 41, 1), deliver_at(to, 43, 3)]);
    assert_eq!(texts(&h.frames()), vec!["event-43"], "live again; the late repeat is dropped");
}

//! When a named connection counts as live (`named`), driven through the
//! [`harness`](super::harness): from its first `synced` until a sync fails,
//! the readers refuse one, or it closes; never for an unnamed connection.

use chatgw_protocol::{client, DeviceName, MessageId};

use super::{
    harness::{sync_page, Harness, USER},
    Action, Refused,
};
use crate::events::{CoreEvent, QueryRequest};

fn phone() -> DeviceName {
    DeviceName::new("phone").unwrap()
}

fn sync(h: &mut Harness) {
    let mut text = String::new();
    client::sync(&mut text, MessageId(0), 50);
    h.send_text(&text);
}

/// Sync and answer with one empty page: the connection gets `synced`.
fn synced(h: &mut Harness) {
    sync(h);
    h.actions();
    let to = h.endpoint();
    h.mail(vec![sync_page(to, 0, &[], 0, false)]);
    h.frames();
}

fn live(h: &Harness) -> bool {
    h.engine.ctx.live_devices.is_live(USER, phone())
}

#[test]
fn a_named_connection_is_live_from_synced_until_a_sync_fails_or_it_closes() {
    let mut h = Harness::connect_device("phone");
    assert!(!live(&h), "not before its first sync");
    sync(&mut h);
    assert!(!live(&h), "nor while its first sync is read");
    h.actions();
    let to = h.endpoint();
    h.mail(vec![sync_page(to, 0, &[], 0, false)]);
    assert!(live(&h), "live once synced");

    // A sync that fails stops live events, and liveness with them.
    sync(&mut h);
    h.actions();
    h.mail(vec![CoreEvent::SyncFailed { to, payload: b"{}".to_vec() }]);
    assert!(!live(&h));
    synced(&mut h);
    assert!(live(&h), "live again after the next sync");

    // So does a sync the readers refuse.
    sync(&mut h);
    for action in h.actions() {
        assert!(matches!(action, Action::Query(QueryRequest::Sync { .. })), "{action:?}");
        h.refuse(action, Refused::Full);
    }
    assert!(!live(&h));
    synced(&mut h);
    assert!(live(&h));

    let slot = h.slot;
    h.engine.on_hangup(slot);
    assert!(!live(&h), "not after it closed");
    assert_eq!(h.engine.ctx.live_devices.of(&[USER]), vec![(USER, vec![])]);
}

#[test]
fn an_unnamed_connection_is_never_live() {
    let mut h = Harness::connect(|_| {});
    synced(&mut h);
    assert_eq!(h.engine.ctx.live_devices.of(&[USER]), vec![(USER, vec![])]);
}

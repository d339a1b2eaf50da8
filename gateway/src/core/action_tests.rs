//! What a client is told when the committer's or the readers' queue
//! refuses the action its frame became, driven through the
//! [`harness`](super::harness).

use chatgw_protocol::{client, ConversationRef, ErrorCode, ErrorFrame, MessageKind, ServerFrame, UserId};

use super::{
    harness::{Harness, USER},
    Action, Refused,
};
use crate::events::{CommitRequest, GroupOp, QueryRequest};

fn send(h: &mut Harness, client_id: &str) -> Action {
    let mut text = String::new();
    client::send(&mut text, client_id, ConversationRef::Peer(UserId(8)), MessageKind::Text, r#""hi""#);
    h.send_text(&text);
    let mut actions = h.actions();
    assert_eq!(actions.len(), 1, "{actions:?}");
    actions.remove(0)
}

fn one_error(h: &mut Harness) -> ErrorFrame {
    match h.server_frames().as_slice() {
        [ServerFrame::Error(e)] => e.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn a_send_becomes_one_commit_action_from_its_connection() {
    let mut h = Harness::connect(|_| {});
    let origin = h.endpoint();
    match send(&mut h, "c-1") {
        Action::Commit(CommitRequest::Send { origin: o, from, client_id, .. }) => {
            assert_eq!((o, from, client_id.as_str()), (origin, USER, "c-1"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.frames(), vec![], "nothing is answered before the committer");
}

#[test]
fn a_full_commit_queue_answers_unavailable_with_the_client_id_as_ref() {
    let mut h = Harness::connect(|_| {});
    let action = send(&mut h, "c-1");
    h.refuse(action, Refused::Full);
    let e = one_error(&mut h);
    assert_eq!(e.code, ErrorCode::Unavailable);
    assert_eq!(e.message, "the write queue is full; retry with the same id");
    assert_eq!(e.reference.as_deref(), Some("c-1"));
}

#[test]
fn a_closed_commit_queue_answers_shutting_down_with_the_client_id_as_ref() {
    let mut h = Harness::connect(|_| {});
    let action = send(&mut h, "c-2");
    h.refuse(action, Refused::Gone);
    let e = one_error(&mut h);
    assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::ShuttingDown, Some("c-2")));
}

#[test]
fn a_refused_group_creation_quotes_its_request_id() {
    let mut h = Harness::connect(|_| {});
    let mut text = String::new();
    client::create_group(&mut text, "g-1", "friends", [UserId(8)]);
    h.send_text(&text);
    let action = h.actions().pop().expect("an action");
    assert!(matches!(&action, Action::Commit(CommitRequest::Group { op: GroupOp::Create { .. }, .. })));
    h.refuse(action, Refused::Full);
    let e = one_error(&mut h);
    assert_eq!((e.code, e.reference.as_deref()), (ErrorCode::Unavailable, Some("g-1")));
}

#[test]
fn a_full_read_queue_answers_unavailable_to_a_history_request() {
    let mut h = Harness::connect(|_| {});
    let mut text = String::new();
    client::history(&mut text, ConversationRef::Peer(UserId(8)), None, 20);
    h.send_text(&text);
    let action = h.actions().pop().expect("an action");
    assert!(matches!(&action, Action::Query(QueryRequest::History { limit: 20, .. })));
    h.refuse(action, Refused::Full);
    let e = one_error(&mut h);
    assert_eq!(
        (e.code, e.message.as_str(), e.reference),
        (ErrorCode::Unavailable, "the read queue is full; retry", None)
    );
}

#[test]
fn a_refusal_for_a_connection_gone_meanwhile_is_dropped() {
    let mut h = Harness::connect(|_| {});
    let action = send(&mut h, "c-3");
    h.engine.on_hangup(h.slot);
    h.refuse(action, Refused::Full);
    assert_eq!(h.frames(), vec![]);
    assert_eq!(h.engine.len(), 0);
}

#[test]
fn frames_refused_while_draining_make_no_action() {
    let mut h = Harness::connect(|_| {});
    h.engine.stop_intake();
    let mut text = String::new();
    client::send(&mut text, "c-4", ConversationRef::Peer(UserId(8)), MessageKind::Text, r#""hi""#);
    h.send_text(&text);
    assert!(h.actions().is_empty());
    assert_eq!(one_error(&mut h).code, ErrorCode::ShuttingDown);
}

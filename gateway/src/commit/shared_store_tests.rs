//! The committer when another gateway writes to the same store: the store's
//! per-write outcome, not the committer's own decision, is what the
//! requester is told and what devices receive.

use std::sync::{atomic::AtomicU64, Arc};

use chatgw_protocol::{ConversationId, ErrorCode, Message, MessageId, MessageKind, ServerFrame, Snowflake, UserId};
use chatgw_router::{Directory, Endpoint, Mail, Mailboxes, Wake};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore, Write};

use super::{
    batch::Batch,
    writer::{Failure, Job, Prepared, Writer},
    CommitContext,
};
use crate::{
    events::{CommitRequest, CoreEvent},
    metrics::Metrics,
};

struct NoWake;
impl Wake for NoWake {
    fn wake(&self) {}
}

fn ep(slot: u32) -> Endpoint {
    Endpoint { core: 0, slot, generation: 1 }
}

fn send(client_id: &str) -> CommitRequest {
    CommitRequest::Send {
        origin: ep(1),
        from: UserId(1),
        client_id: client_id.into(),
        conversation: ConversationId::direct(UserId(1), UserId(2)),
        kind: MessageKind::Text,
        body: "\"x\"".into(),
    }
}

/// Batch `seq` of `requests`, prepared while nothing is written yet.
fn prepare(batch: &mut Batch<'_>, seq: u64, requests: Vec<CommitRequest>) -> Job {
    batch.begin(seq, 0);
    let n = requests.len();
    for r in requests {
        batch.add(r).unwrap();
    }
    batch.finish();
    let tickets = batch.take_tickets();
    Job::Batch(Prepared {
        seq,
        tickets,
        outcomes: batch.take_outcomes(),
        high_water: batch.last_id(),
        origins: Vec::new(),
        requests: n,
    })
}

/// The replies to a send under key `k` and its resend, both prepared
/// before another gateway (node 2) stored `other_body` under the same key;
/// then what user 2's inbox holds.
fn race(other_body: &str) -> (Message, Vec<ServerFrame>, Vec<MessageId>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
    let directory = Arc::new(Directory::new());
    directory.register(2, ep(2));
    let ctx = CommitContext {
        directory,
        mailboxes: Arc::new(Mailboxes::new(vec![Arc::new(NoWake) as Arc<dyn Wake>], 1024)),
        metrics: Arc::new(Metrics::new()),
        node_id: 1,
        max_group_members: 256,
        amend_windows: super::amend::DEFAULT_WINDOWS,
        commit_batch: 64,
        commit_window: std::time::Duration::ZERO,
        stale_groups: crossbeam_channel::never(),
        remote: None,
        events_wake: Default::default(),
    };
    let mut batch = Batch::new(&store, Snowflake::new(1), 256);
    let first = prepare(&mut batch, 1, vec![send("k")]);
    let resend = prepare(&mut batch, 2, vec![send("k")]);

    // Meanwhile the other gateway stores its message under the same key.
    let id = Snowflake::new(2).next_id();
    let original = Message {
        id,
        conversation: ConversationId::direct(UserId(1), UserId(2)),
        from: UserId(1),
        kind: MessageKind::Text,
        client_id: "k".into(),
        ts: Snowflake::unix_ms(id),
        body: other_body.into(),
        amended: None,
    };
    store
        .commit(&[Write::Message { message: &original, inboxes: &[UserId(1), UserId(2)], membership: None }], id)
        .unwrap();

    let (failures, _failed) = crossbeam_channel::unbounded::<Failure>();
    let (conflicts, _conflicted) = crossbeam_channel::unbounded();
    let done_through = AtomicU64::new(0);
    let sequencer = batch.sequencer().clone();
    let peers = super::Peers::linked(1).remove(0);
    let mut writer = Writer::new(&ctx, &store, &sequencer, &peers, &failures, &conflicts, &done_through);
    writer.process([first, resend]);

    let mut replies = Vec::new();
    ctx.mailboxes.drain(0, |mail| {
        let Mail::Item(events) = mail else { panic!("the mailbox overflowed") };
        for ev in events {
            match ev {
                CoreEvent::Reply { to, payload } => {
                    assert_eq!(to, ep(1));
                    let text = String::from_utf8(payload).unwrap();
                    replies.push(ServerFrame::parse(&text).unwrap_or_else(|e| panic!("{text}: {e:?}")));
                }
                other => panic!("nothing but the two answers: {other:?}"),
            }
        }
    });
    let stored: Vec<MessageId> =
        store.inbox_after(UserId(2), chatgw_storage::InboxPos(0), 10).unwrap().iter().map(|e| e.event.id()).collect();
    (original, replies, stored)
}

/// A message with a client id another gateway (node 2) sent first: the
/// store refuses this gateway's copy; the sender hears the original id, for
/// the send and for a resend answered meanwhile from the batches in flight,
/// and the recipient's devices get no copy from this gateway.
#[test]
fn a_send_whose_key_another_gateway_bound_first_is_answered_with_the_original() {
    let (original, replies, stored) = race("\"x\"");
    let sent: Vec<_> = replies
        .iter()
        .map(|r| match r {
            ServerFrame::Sent(s) => (s.msg, s.duplicate),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent, vec![(original.id, true), (original.id, true)]);
    assert_eq!(stored, vec![original.id], "one message for the key");
}

/// The same race when the other gateway's message under the key has
/// another body: not the same message, so both answers are
/// `client_id_conflict`, and only the other gateway's message is stored.
#[test]
fn a_send_whose_key_another_gateway_bound_to_another_body_is_a_conflict() {
    let (original, replies, stored) = race("\"y\"");
    let codes: Vec<_> = replies
        .iter()
        .map(|r| match r {
            ServerFrame::Error(e) => (e.code, e.reference.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(codes, vec![(ErrorCode::ClientIdConflict, Some("k".into())); 2]);
    assert_eq!(stored, vec![original.id]);
}

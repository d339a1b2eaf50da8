//! Which commit pipeline takes a request.
//!
//! Everything whose checks depend on each other goes to one pipeline, so
//! each pipeline's caches and in-flight decisions stay exact without
//! locks: a request on a conversation (send, delivered, read, edit,
//! delete, hide) goes by the conversation (a direct conversation is its
//! unordered pair of users, a group its id), a group change or query by
//! the group, a group creation, a block or a direct message setting by the
//! user who asks. What crosses pipelines is handled elsewhere: ids and the
//! order of events (`order`), changes to records other pipelines cache
//! (`peers`), and idempotency keys one sender reuses in two conversations
//! (the store, which decides each key once).

use std::sync::Arc;

use chatgw_protocol::ConversationId;
use crossbeam_channel::{Sender, TrySendError};

use crate::events::{CommitRequest, GroupOp};

/// The cores' end of every pipeline's queue.
#[derive(Clone)]
pub(crate) struct CommitQueues(Arc<[Sender<CommitRequest>]>);

impl CommitQueues {
    pub(crate) fn new(queues: Vec<Sender<CommitRequest>>) -> Self {
        CommitQueues(queues.into())
    }

    /// Queue `r` for its pipeline without blocking.
    pub(crate) fn try_send(&self, r: CommitRequest) -> Result<(), TrySendError<CommitRequest>> {
        let i = pipeline_of(&r, self.0.len());
        self.0[i].try_send(r)
    }

    /// Ask every pipeline to finish what it was given and stop.
    pub(crate) fn stop(&self) {
        for q in self.0.iter() {
            let _ = q.send(CommitRequest::Stop);
        }
    }
}

impl From<Sender<CommitRequest>> for CommitQueues {
    fn from(one: Sender<CommitRequest>) -> Self {
        CommitQueues::new(vec![one])
    }
}

/// The pipeline (of `k`) that takes `r`.
pub(crate) fn pipeline_of(r: &CommitRequest, k: usize) -> usize {
    if k <= 1 {
        return 0;
    }
    let key = match r {
        CommitRequest::Send { conversation, .. }
        | CommitRequest::Delivered { conversation, .. }
        | CommitRequest::Read { conversation, .. }
        | CommitRequest::Amend { conversation, .. } => conversation_key(conversation),
        CommitRequest::Group { op: GroupOp::Change { group, .. } | GroupOp::Info { group }, .. } => {
            conversation_key(&ConversationId::Group(*group))
        }
        CommitRequest::Group { by, op: GroupOp::Create { .. }, .. }
        | CommitRequest::Block { by, .. }
        | CommitRequest::DirectFrom { by, .. } => mix(by.0 ^ 0x5555_5555),
        CommitRequest::Stop => 0,
    };
    (key % k as u64) as usize
}

fn conversation_key(c: &ConversationId) -> u64 {
    match c {
        ConversationId::Direct { lo, hi } => mix(lo.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ hi.0),
        ConversationId::Group(g) => mix(g.0),
    }
}

/// splitmix64's finaliser: sequential ids spread evenly.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{GroupId, MessageId, MessageKind, UserId};
    use chatgw_router::Endpoint;

    use super::*;
    use crate::events::AmendOp;

    const O: Endpoint = Endpoint { core: 0, slot: 0, generation: 1 };

    fn send(from: u64, to: u64) -> CommitRequest {
        CommitRequest::Send {
            origin: O,
            from: UserId(from),
            client_id: "c".into(),
            conversation: ConversationId::direct(UserId(from), UserId(to)),
            kind: MessageKind::Text,
            body: "\"x\"".into(),
        }
    }

    #[test]
    fn a_conversation_goes_to_one_pipeline_whoever_writes() {
        for a in 1..50u64 {
            let b = a * 7 + 3;
            let k = 4;
            let c = ConversationId::direct(UserId(a), UserId(b));
            let read = CommitRequest::Read { origin: O, by: UserId(b), conversation: c, up_to: MessageId(1) };
            let amend = CommitRequest::Amend {
                origin: O,
                by: UserId(a),
                conversation: c,
                msg: MessageId(1),
                op: AmendOp::Hide,
            };
            let p = pipeline_of(&send(a, b), k);
            assert_eq!(p, pipeline_of(&send(b, a), k));
            assert_eq!(p, pipeline_of(&read, k));
            assert_eq!(p, pipeline_of(&amend, k));
        }
        let g = GroupId(77);
        let to_group =
            CommitRequest::Delivered { origin: O, by: UserId(1), conversation: ConversationId::Group(g), ids: vec![] };
        let info = CommitRequest::Group { origin: O, by: UserId(2), op: GroupOp::Info { group: g } };
        assert_eq!(pipeline_of(&to_group, 3), pipeline_of(&info, 3));
    }

    #[test]
    fn conversations_spread_over_the_pipelines() {
        let mut counts = [0usize; 2];
        for a in 0..1000u64 {
            counts[pipeline_of(&send(a, a + 1), 2)] += 1;
        }
        assert!(counts.iter().all(|&n| n > 400), "{counts:?}");
    }
}

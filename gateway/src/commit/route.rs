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

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use chatgw_protocol::ConversationId;
use crossbeam_channel::{Sender, TrySendError};

use crate::events::{CommitRequest, GroupOp};

/// The cores' end of every pipeline's queue.
#[derive(Clone)]
pub(crate) struct CommitQueues {
    queues: Arc<[Sender<CommitRequest>]>,
    affinity: Arc<Affinity>,
}

impl CommitQueues {
    pub(crate) fn new(queues: Vec<Sender<CommitRequest>>) -> Self {
        CommitQueues { queues: queues.into(), affinity: Arc::new(Affinity::default()) }
    }

    /// Queue `r` for its pipeline without blocking.
    pub(crate) fn try_send(&self, r: CommitRequest) -> Result<(), TrySendError<CommitRequest>> {
        let k = self.queues.len();
        let mut i = pipeline_of(&r, k);
        if k > 1 {
            if let Some(key) = client_key(&r) {
                i = self.affinity.pipeline(key, i);
            }
        }
        self.queues[i].try_send(r)
    }

    /// Queue `r` for its pipeline, waiting up to `timeout` for room (for
    /// threads that may wait; cores never do).
    pub(crate) fn send_timeout(
        &self,
        r: CommitRequest,
        timeout: Duration,
    ) -> Result<(), crossbeam_channel::SendTimeoutError<CommitRequest>> {
        let i = pipeline_of(&r, self.queues.len());
        self.queues[i].send_timeout(r, timeout)
    }

    /// Ask every pipeline to finish what it was given and stop.
    pub(crate) fn stop(&self) {
        for q in self.queues.iter() {
            let _ = q.send(CommitRequest::Stop);
        }
    }
}

/// How long a client id keeps going where it went first, at least (at
/// most twice as long).
pub(crate) const AFFINITY_FOR: Duration = Duration::from_secs(5);

/// Client ids recently routed, by digest of (user, client id), to the
/// pipeline they went to: sharded so cores rarely meet on one lock, and
/// each shard keeps two generations, the older dropped every
/// [`AFFINITY_FOR`].
pub(crate) struct Affinity {
    shards: Box<[Mutex<Generations>]>,
}

struct Generations {
    now: HashMap<u64, u8>,
    before: HashMap<u64, u8>,
    since: Instant,
}

const SHARDS: usize = 64;

impl Default for Affinity {
    fn default() -> Self {
        let shard = || Mutex::new(Generations { now: HashMap::new(), before: HashMap::new(), since: Instant::now() });
        Affinity { shards: (0..SHARDS).map(|_| shard()).collect() }
    }
}

impl Affinity {
    /// Where the request whose client id has digest `key` goes: where the
    /// id went before, if recently, else `default` (remembered).
    fn pipeline(&self, key: u64, default: usize) -> usize {
        let shard = &self.shards[(key % SHARDS as u64) as usize];
        let mut g = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&p) = g.now.get(&key).or_else(|| g.before.get(&key)) {
            return usize::from(p);
        }
        if g.since.elapsed() >= AFFINITY_FOR {
            g.before = std::mem::take(&mut g.now);
            g.since = Instant::now();
        }
        g.now.insert(key, u8::try_from(default).unwrap_or(0));
        default
    }
}

/// The digest of the (user, client id) a request binds, if it binds one.
fn client_key(r: &CommitRequest) -> Option<u64> {
    let (user, id) = match r {
        CommitRequest::Send { from, client_id, .. } => (from, client_id),
        CommitRequest::Group { by, op: GroupOp::Create { request_id, .. }, .. } => (by, request_id),
        _ => return None,
    };
    let mut h = DefaultHasher::new();
    user.0.hash(&mut h);
    id.hash(&mut h);
    Some(h.finish())
}

impl From<Sender<CommitRequest>> for CommitQueues {
    fn from(one: Sender<CommitRequest>) -> Self {
        CommitQueues::new(vec![one])
    }
}

/// Whether `conversation` is pipeline `index`'s (of `k`): a send routed
/// by its client id to another pipeline must not be stored there.
pub(crate) fn owns(conversation: &ConversationId, index: usize, k: usize) -> bool {
    k <= 1 || (conversation_key(conversation) % k as u64) as usize == index
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
        | CommitRequest::DirectFrom { by, .. }
        | CommitRequest::KeysChanged { user: by, .. } => mix(by.0 ^ 0x5555_5555),
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
    fn a_client_id_goes_where_it_went_first() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| crossbeam_channel::unbounded()).unzip();
        let queues = CommitQueues::new(txs);
        // Find a peer whose conversation with user 1 is on the other
        // pipeline than user 1's conversation with user 2.
        let first = pipeline_of(&send(1, 2), 2);
        let other = (3..100).find(|&p| pipeline_of(&send(1, p), 2) != first).unwrap();
        queues.try_send(send(1, 2)).unwrap();
        queues.try_send(send(1, other)).unwrap();
        assert_eq!(rxs[first].len(), 2, "both uses of the client id in the first use's pipeline");
        let mut fresh = send(1, other);
        if let CommitRequest::Send { client_id, .. } = &mut fresh {
            *client_id = "another".into();
        }
        queues.try_send(fresh).unwrap();
        assert_eq!(rxs[1 - first].len(), 1, "another client id goes by its conversation");
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

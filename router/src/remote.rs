//! User -> the other nodes of a fleet where the user has connections: the
//! routing thread's cache of registry lookups.
//!
//! The registry (Redis) is the truth; asking it for every delivery would
//! put a network round trip on every cross-node message. So the node that
//! routes keeps what it looked up, including "on no other node", and forgets
//! a user when the registry says the user's placement changed (an
//! invalidation notice) or when the cache may have missed notices (all of
//! it). One thread owns the cache, so it needs no lock; a lookup and the
//! notices are handled in turn on that thread, which is what keeps a stale
//! answer from outliving the notice that follows it.
//!
//! Placements are kept as the registry returned them, ghosts included, and
//! filtered against the live-node table when read: a node that missed a
//! lease renewal (frozen) and comes back under the same epoch is routed to
//! again without a new lookup, and a node that restarted (new epoch) or
//! whose lease lapsed never is.

use std::collections::HashMap;

use smallvec::SmallVec;

/// One node a user has connections on, as the registry recorded it: the
/// node and the epoch (the run) of the process that recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    /// Node id.
    pub node: u16,
    /// The run of that node that recorded the user.
    pub epoch: u64,
}

/// What the cache knows of one user.
pub type Placements = SmallVec<[NodeRef; 2]>;

/// The routing thread's cache: user -> placements, and the live nodes.
#[derive(Debug)]
pub struct RemoteRoutes {
    me: u16,
    users: HashMap<u64, Placements>,
    /// Node -> epoch of its live lease.
    live: HashMap<u16, u64>,
    capacity: usize,
}

impl RemoteRoutes {
    /// An empty cache for node `me`, holding at most `capacity` users
    /// (when full it starts over: a user not cached costs one lookup).
    pub fn new(me: u16, capacity: usize) -> Self {
        RemoteRoutes { me, users: HashMap::new(), live: HashMap::new(), capacity: capacity.max(1) }
    }

    /// Replace the live-node table (node, epoch).
    pub fn set_live(&mut self, nodes: impl IntoIterator<Item = (u16, u64)>) {
        self.live.clear();
        self.live.extend(nodes);
    }

    /// Call `f` with every live node.
    pub fn live_nodes(&self, mut f: impl FnMut(u16)) {
        self.live.keys().copied().for_each(&mut f);
    }

    /// Whether `placement` names a live run of a node.
    pub fn is_live(&self, placement: NodeRef) -> bool {
        self.live.get(&placement.node) == Some(&placement.epoch)
    }

    /// Whether the placement is a ghost: a node whose lease lapsed or whose
    /// epoch changed. This node's own placements of an older run are
    /// ghosts too.
    pub fn is_ghost(&self, placement: NodeRef) -> bool {
        !self.is_live(placement)
    }

    /// Call `f` with every other live node `user` has connections on.
    /// Returns false when the user is not cached (nothing is called).
    pub fn nodes_of(&self, user: u64, mut f: impl FnMut(u16)) -> bool {
        let Some(placements) = self.users.get(&user) else { return false };
        for p in placements {
            if p.node != self.me && self.is_live(*p) {
                f(p.node);
            }
        }
        true
    }

    /// Remember what a lookup of `user` returned.
    pub fn insert(&mut self, user: u64, placements: Placements) {
        if self.users.len() >= self.capacity && !self.users.contains_key(&user) {
            self.users.clear();
        }
        self.users.insert(user, placements);
    }

    /// Forget `user` (their placement changed).
    pub fn invalidate(&mut self, user: u64) {
        self.users.remove(&user);
    }

    /// Forget everyone (notices may have been missed).
    pub fn clear(&mut self) {
        self.users.clear();
    }

    /// Users cached.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user is cached.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(node: u16, epoch: u64) -> NodeRef {
        NodeRef { node, epoch }
    }

    fn nodes(r: &RemoteRoutes, user: u64) -> Option<Vec<u16>> {
        let mut v = Vec::new();
        r.nodes_of(user, |n| v.push(n)).then_some(v)
    }

    #[test]
    fn live_other_nodes_only_and_ghosts_are_never_routed_to() {
        let mut r = RemoteRoutes::new(1, 100);
        r.set_live([(1, 10), (2, 20), (3, 30)]);
        r.insert(7, smallvec::smallvec![at(1, 10), at(2, 20), at(3, 29)]);
        assert_eq!(nodes(&r, 7), Some(vec![2]), "self and node 3's old run are skipped");
        assert!(r.is_ghost(at(3, 29)) && !r.is_ghost(at(2, 20)));
        assert_eq!(nodes(&r, 8), None, "not cached: look it up");
        r.insert(8, Placements::new());
        assert_eq!(nodes(&r, 8), Some(vec![]), "cached as on no other node");
        // Node 2's lease lapses: its placement is a ghost from now on; it
        // comes back under the same epoch (it was frozen): routed again.
        r.set_live([(1, 10), (3, 30)]);
        assert_eq!(nodes(&r, 7), Some(vec![]));
        r.set_live([(1, 10), (2, 20), (3, 30)]);
        assert_eq!(nodes(&r, 7), Some(vec![2]));
    }

    #[test]
    fn invalidation_and_capacity() {
        let mut r = RemoteRoutes::new(1, 2);
        r.set_live([(2, 1)]);
        r.insert(1, smallvec::smallvec![at(2, 1)]);
        r.insert(2, smallvec::smallvec![at(2, 1)]);
        r.invalidate(1);
        assert_eq!(nodes(&r, 1), None);
        r.insert(3, Placements::new());
        r.insert(4, Placements::new());
        assert!(r.len() <= 2, "the cache stays within its capacity");
        r.clear();
        assert!(r.is_empty());
    }
}

//! User -> live connections.
//!
//! In a fleet the directory also tells the registry which users came online
//! or went offline in this process ([`Directory::tracking_presence`]): a
//! register that adds a user's first connection, or an unregister that
//! removes the last, queues the user's id. The queue carries ids only, not
//! the direction: two cores changing one user at once may queue in either
//! order, so whoever drains it reads the user's state as it is then
//! ([`Directory::is_online`]), and the last change always leaves an id to
//! drain after it.

use crossbeam_queue::SegQueue;
use papaya::{Compute, HashMap, Operation};
use smallvec::SmallVec;

/// Where one connection lives: its core and its slot in that core's
/// connection table. `generation` tells a reused slot from the connection
/// that held it before, so a stale endpoint never reaches a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Worker core index.
    pub core: u16,
    /// Slot in the core's connection table.
    pub slot: u32,
    /// Generation of the slot when the connection was opened.
    pub generation: u32,
}

/// The endpoints of one user: most users have one or two devices online, so
/// two fit inline without a heap allocation.
pub(crate) type Endpoints = SmallVec<[Endpoint; 2]>;

/// User id -> open connections, shared by every core and the committer.
#[derive(Debug, Default)]
pub struct Directory {
    map: HashMap<u64, Endpoints>,
    /// Users whose presence in this process changed, when tracked.
    changed: Option<SegQueue<u64>>,
    /// The same, for a second reader (the gateway's presence thread), when
    /// fed ([`Directory::feeding_presence`]).
    feed: Option<SegQueue<u64>>,
}

impl Directory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory with room for `users` before it resizes.
    pub fn with_capacity(users: usize) -> Self {
        Directory { map: HashMap::with_capacity(users), changed: None, feed: None }
    }

    /// Like [`Directory::with_capacity`], and queue every user whose first
    /// connection opens or last connection closes, for
    /// [`Directory::take_presence_changes`].
    pub fn tracking_presence(users: usize) -> Self {
        Directory { map: HashMap::with_capacity(users), changed: Some(SegQueue::new()), feed: None }
    }

    /// Also queue every such change on a second queue, for
    /// [`Directory::take_presence_feed`]: the registry and the presence of
    /// users to their contacts each drain their own.
    pub fn feeding_presence(mut self) -> Self {
        self.feed = Some(SegQueue::new());
        self
    }

    /// Like [`Directory::take_presence_changes`], from the second queue.
    pub fn take_presence_feed(&self, mut f: impl FnMut(u64)) {
        if let Some(q) = &self.feed {
            while let Some(user) = q.pop() {
                f(user);
            }
        }
    }

    /// Record that `user` has a connection at `endpoint`.
    pub fn register(&self, user: u64, endpoint: Endpoint) {
        let map = self.map.pin();
        let mut first = false;
        map.update_or_insert_with(
            user,
            |eps| {
                let mut eps = eps.clone();
                if !eps.contains(&endpoint) {
                    eps.push(endpoint);
                }
                eps
            },
            || {
                first = true;
                smallvec::smallvec![endpoint]
            },
        );
        if first {
            self.presence_changed(user);
        }
    }

    /// Forget one connection of `user`; the user's entry goes when the last
    /// connection does.
    pub fn unregister(&self, user: u64, endpoint: Endpoint) {
        let map = self.map.pin();
        let gone: Compute<'_, u64, Endpoints, ()> = map.compute(user, |entry| match entry {
            Some((_, eps)) if eps.len() == 1 && eps[0] == endpoint => Operation::Remove,
            Some((_, eps)) if eps.contains(&endpoint) => {
                Operation::Insert(eps.iter().copied().filter(|e| *e != endpoint).collect())
            }
            _ => Operation::Abort(()),
        });
        if matches!(gone, Compute::Removed(..)) {
            self.presence_changed(user);
        }
    }

    fn presence_changed(&self, user: u64) {
        if let Some(q) = &self.changed {
            q.push(user);
        }
        if let Some(q) = &self.feed {
            q.push(user);
        }
    }

    /// Hand every queued presence change to `f` (users may repeat; read
    /// [`Directory::is_online`] for where each stands now). Nothing when the
    /// directory does not track presence.
    pub fn take_presence_changes(&self, mut f: impl FnMut(u64)) {
        if let Some(q) = &self.changed {
            while let Some(user) = q.pop() {
                f(user);
            }
        }
    }

    /// Call `f` with every user that has a connection open (a snapshot as
    /// the map is walked: users joining or leaving meanwhile may or may not
    /// be seen).
    pub fn for_each_user(&self, mut f: impl FnMut(u64)) {
        let map = self.map.pin();
        for (user, _) in map.iter() {
            f(*user);
        }
    }

    /// Call `f` with every open connection of `user` (none if offline).
    pub fn for_each(&self, user: u64, mut f: impl FnMut(Endpoint)) {
        let map = self.map.pin();
        if let Some(eps) = map.get(&user) {
            eps.iter().copied().for_each(&mut f);
        }
    }

    /// Whether `user` has any connection open.
    pub fn is_online(&self, user: u64) -> bool {
        self.map.pin().contains_key(&user)
    }

    /// Users with at least one connection.
    pub fn online_users(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ep(core: u16, slot: u32) -> Endpoint {
        Endpoint { core, slot, generation: 0 }
    }

    fn collect(d: &Directory, user: u64) -> Vec<Endpoint> {
        let mut v = Vec::new();
        d.for_each(user, |e| v.push(e));
        v
    }

    #[test]
    fn register_lookup_unregister() {
        let d = Directory::new();
        d.register(1, ep(0, 1));
        d.register(1, ep(1, 7));
        d.register(1, ep(1, 7));
        assert_eq!(collect(&d, 1), vec![ep(0, 1), ep(1, 7)]);
        d.unregister(1, ep(0, 1));
        assert_eq!(collect(&d, 1), vec![ep(1, 7)]);
        d.unregister(1, ep(9, 9));
        assert!(d.is_online(1));
        d.unregister(1, ep(1, 7));
        assert!(!d.is_online(1));
        assert_eq!(d.online_users(), 0);
    }

    #[test]
    fn presence_changes_are_queued_for_first_and_last_connections_only() {
        let d = Directory::tracking_presence(8);
        d.register(1, ep(0, 1));
        d.register(1, ep(1, 2));
        d.register(2, ep(0, 3));
        d.unregister(1, ep(0, 1));
        d.unregister(1, ep(1, 2));
        d.unregister(2, ep(9, 9));
        let mut changed = Vec::new();
        d.take_presence_changes(|u| changed.push(u));
        assert_eq!(changed, vec![1, 2, 1]);
        assert!(!d.is_online(1) && d.is_online(2));
        let mut users = Vec::new();
        d.for_each_user(|u| users.push(u));
        assert_eq!(users, vec![2]);
        let fed = Directory::with_capacity(8).feeding_presence();
        fed.register(4, ep(0, 1));
        fed.unregister(4, ep(0, 1));
        fed.take_presence_changes(|_| panic!("the registry's queue is not kept"));
        let mut feed = Vec::new();
        fed.take_presence_feed(|u| feed.push(u));
        assert_eq!(feed, vec![4, 4]);
        let untracked = Directory::new();
        untracked.register(3, ep(0, 1));
        untracked.take_presence_changes(|_| panic!("not tracked"));
    }

    #[test]
    fn stale_generation_does_not_remove_new_connection() {
        let d = Directory::new();
        d.register(5, Endpoint { core: 0, slot: 3, generation: 2 });
        d.unregister(5, Endpoint { core: 0, slot: 3, generation: 1 });
        assert!(d.is_online(5));
    }

    #[test]
    fn concurrent_devices_of_one_user_all_land() {
        let d = Arc::new(Directory::new());
        let threads: Vec<_> = (0..4u16)
            .map(|core| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for slot in 0..200 {
                        d.register(42, ep(core, slot));
                    }
                    for slot in 0..100 {
                        d.unregister(42, ep(core, slot));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(collect(&d, 42).len(), 400);
    }
}

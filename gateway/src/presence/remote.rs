//! Presence and typing across a fleet (docs/CLUSTER.md, "Presence and
//! typing").
//!
//! Each node's hub tells every live peer about its own users: a change as
//! soon as it drains it from the directory (a Presence link frame of
//! entries `(user, online here, hidden, last seen)`), and every user online
//! here every [`REFRESH_MS`]. A peer keeps, per user, the nodes that last
//! said "online here" and when; one that has not repeated it for
//! [`STALE_MS`] (a node that died, a link that lost frames) counts no
//! more. So a late joiner learns who is online within one refresh, and a
//! killed node's users go offline within [`STALE_MS`].
//!
//! Typing goes to every peer as an Ephemeral link frame naming its target
//! users; each peer writes it to whichever of them it holds. A fleet is a
//! handful of nodes and typing is rate-limited, so a broadcast is cheaper
//! than a registry lookup per frame. Both frames are lossy: a full link
//! queue drops them and owes nobody a catch-up, since nothing stored is
//! missing.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chatgw_cluster::link::{frame::Frame, Links, PresenceEntry};
use chatgw_protocol::UserId;
use chatgw_router::{Directory, Fanout, Mailboxes};
use crossbeam_channel::Sender;

use super::PresenceRequest;
use crate::events::{CoreBatch, CoreEvent};

/// How often a node repeats every user online on it to its peers.
pub(crate) const REFRESH_MS: u64 = 10_000;
/// How long a peer's "online here" counts without being repeated.
pub(crate) const STALE_MS: u64 = 3 * REFRESH_MS + 2_000;
/// Entries per Presence link frame (17 bytes each: 68 KiB).
const ENTRIES_PER_FRAME: usize = 4096;

/// What the hub knows of other nodes' users.
#[derive(Default)]
pub(super) struct RemoteState {
    /// User -> the nodes that said the user is online there, and when.
    online: HashMap<UserId, Vec<(u16, u64)>>,
    next_refresh_ms: u64,
}

impl RemoteState {
    pub(super) fn is_online(&self, user: UserId) -> bool {
        self.online.contains_key(&user)
    }

    /// `user`'s entry as this node tells it.
    pub(super) fn entry(
        &self,
        user: UserId,
        here: bool,
        hidden: &HashSet<UserId>,
        last_seen: &HashMap<UserId, u64>,
    ) -> PresenceEntry {
        let mut flags = 0;
        if here {
            flags |= PresenceEntry::ONLINE;
        }
        if hidden.contains(&user) {
            flags |= PresenceEntry::HIDDEN;
        }
        let last_seen = if here { 0 } else { last_seen.get(&user).copied().unwrap_or(0) };
        PresenceEntry { user: user.0, flags, last_seen }
    }

    /// Send `entries` to every peer.
    pub(super) fn tell_peers(&self, links: &Links, entries: &[PresenceEntry]) {
        for peer in links.peers() {
            for chunk in entries.chunks(ENTRIES_PER_FRAME) {
                let _ = links.send_lossy(peer.node, Frame::Presence(chunk.to_vec()));
            }
        }
    }

    /// Send a typing frame for `to` to every peer.
    pub(super) fn forward(&self, links: &Links, payload: Arc<[u8]>, to: &[UserId]) {
        let users: Vec<u64> = to.iter().map(|u| u.0).collect();
        for peer in links.peers() {
            let _ = links.send_lossy(peer.node, Frame::Ephemeral { payload: payload.clone(), users: users.clone() });
        }
    }

    /// What `node` said of its users; returns the users whose presence
    /// may have changed.
    pub(super) fn apply(
        &mut self,
        node: u16,
        entries: Vec<PresenceEntry>,
        hidden: &mut HashSet<UserId>,
        last_seen: &mut HashMap<UserId, u64>,
        now: u64,
    ) -> Vec<UserId> {
        let mut changed = Vec::new();
        for e in entries {
            let user = UserId(e.user);
            let was = (self.online.contains_key(&user), hidden.contains(&user));
            if e.flags & PresenceEntry::HIDDEN != 0 {
                hidden.insert(user);
            } else {
                hidden.remove(&user);
            }
            if e.flags & PresenceEntry::ONLINE != 0 {
                let nodes = self.online.entry(user).or_default();
                match nodes.iter_mut().find(|(n, _)| *n == node) {
                    Some(slot) => slot.1 = now,
                    None => nodes.push((node, now)),
                }
            } else {
                self.forget(user, node);
                if e.last_seen > 0 {
                    let seen = last_seen.entry(user).or_insert(0);
                    *seen = (*seen).max(e.last_seen);
                }
            }
            if was != (self.online.contains_key(&user), hidden.contains(&user)) {
                changed.push(user);
            }
        }
        changed
    }

    fn forget(&mut self, user: UserId, node: u16) {
        if let Some(nodes) = self.online.get_mut(&user) {
            nodes.retain(|(n, _)| *n != node);
            if nodes.is_empty() {
                self.online.remove(&user);
            }
        }
    }

    /// Every [`REFRESH_MS`]: tell the peers everyone online here, and
    /// forget other nodes' users not repeated for [`STALE_MS`] (returned:
    /// they went offline as far as this node knows, seen last now).
    pub(super) fn refresh(
        &mut self,
        links: &Links,
        directory: &Directory,
        hidden: &HashSet<UserId>,
        last_seen: &mut HashMap<UserId, u64>,
        now: u64,
    ) -> Vec<UserId> {
        if now < self.next_refresh_ms {
            return Vec::new();
        }
        self.next_refresh_ms = now + REFRESH_MS;
        let mut entries = Vec::new();
        directory.for_each_user(|u| entries.push(self.entry(UserId(u), true, hidden, last_seen)));
        self.tell_peers(links, &entries);
        let mut gone = Vec::new();
        self.online.retain(|user, nodes| {
            nodes.retain(|(_, at)| now.saturating_sub(*at) < STALE_MS);
            if nodes.is_empty() {
                gone.push(*user);
            }
            !nodes.is_empty()
        });
        for user in &gone {
            last_seen.insert(*user, now);
        }
        gone
    }
}

/// What the links bring for presence and typing: typing frames go straight
/// to this node's devices, presence entries to the hub.
pub(crate) struct RemoteIn {
    pub(crate) hub: Sender<PresenceRequest>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
}

impl RemoteIn {
    /// A typing frame for `users`' devices here.
    pub(crate) fn ephemeral(&self, payload: Arc<[u8]>, users: Vec<u64>) {
        let mut fanout = Fanout::new(self.mailboxes.cores());
        for user in users {
            self.directory.for_each(user, |to| {
                fanout.push(usize::from(to.core), CoreEvent::Ephemeral { to, payload: payload.clone() })
            });
        }
        fanout.flush(&self.mailboxes);
    }

    /// `node`'s users' presence, for the hub (dropped when it is busy: the
    /// next refresh repeats it).
    pub(crate) fn presence(&self, node: u16, entries: Vec<PresenceEntry>) {
        let _ = self.hub.try_send(PresenceRequest::Remote { node, entries });
    }
}

#[cfg(test)]
mod tests {
    use chatgw_cluster::link::{LinkKey, LinkSettings};

    use super::*;

    fn entry(user: u64, flags: u8, last_seen: u64) -> PresenceEntry {
        PresenceEntry { user, flags, last_seen }
    }

    #[test]
    fn a_user_is_online_while_any_node_says_so_and_its_last_seen_is_the_latest() {
        let (mut remote, mut hidden, mut seen) = (RemoteState::default(), HashSet::new(), HashMap::new());
        let changed = remote.apply(2, vec![entry(7, PresenceEntry::ONLINE, 0)], &mut hidden, &mut seen, 100);
        assert_eq!(changed, vec![UserId(7)]);
        let changed = remote.apply(3, vec![entry(7, PresenceEntry::ONLINE, 0)], &mut hidden, &mut seen, 110);
        assert!(changed.is_empty(), "online on a second node is no change");
        remote.apply(2, vec![entry(7, 0, 90)], &mut hidden, &mut seen, 120);
        assert!(remote.is_online(UserId(7)), "still on node 3");
        let changed = remote.apply(3, vec![entry(7, 0, 95)], &mut hidden, &mut seen, 130);
        assert_eq!(changed, vec![UserId(7)]);
        assert!(!remote.is_online(UserId(7)));
        assert_eq!(seen.get(&UserId(7)), Some(&95));
        // The setting travels with the entries, both ways.
        let changed = remote.apply(2, vec![entry(7, PresenceEntry::HIDDEN, 95)], &mut hidden, &mut seen, 140);
        assert_eq!((changed, hidden.contains(&UserId(7))), (vec![UserId(7)], true));
        remote.apply(2, vec![entry(7, 0, 95)], &mut hidden, &mut seen, 150);
        assert!(!hidden.contains(&UserId(7)));
    }

    #[test]
    fn a_node_that_stops_repeating_its_users_loses_them_after_the_stale_time() {
        let links = Links::new(1, 1, LinkKey::derive(b"test"), LinkSettings::default());
        let directory = Directory::new();
        let (mut remote, mut hidden, mut seen) = (RemoteState::default(), HashSet::new(), HashMap::new());
        remote.apply(2, vec![entry(7, PresenceEntry::ONLINE, 0)], &mut hidden, &mut seen, 1_000);
        assert!(remote.refresh(&links, &directory, &hidden, &mut seen, 1_000).is_empty());
        assert!(remote.refresh(&links, &directory, &hidden, &mut seen, 1_000 + STALE_MS - 1).is_empty());
        let gone = remote.refresh(&links, &directory, &hidden, &mut seen, 1_000 + STALE_MS + REFRESH_MS);
        assert_eq!(gone, vec![UserId(7)]);
        assert!(!remote.is_online(UserId(7)));
        assert_eq!(seen.get(&UserId(7)), Some(&(1_000 + STALE_MS + REFRESH_MS)));
        // An entry says what this node tells: online here, or its last seen.
        seen.insert(UserId(9), 5);
        hidden.insert(UserId(9));
        assert_eq!(remote.entry(UserId(9), false, &hidden, &seen), entry(9, PresenceEntry::HIDDEN, 5));
        assert_eq!(
            remote.entry(UserId(9), true, &hidden, &seen),
            entry(9, PresenceEntry::ONLINE | PresenceEntry::HIDDEN, 0)
        );
    }
}

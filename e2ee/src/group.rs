//! Megolm group sessions: one outbound session per group on each sending
//! device, and the inbound sessions other devices shared with this one.
//!
//! A group message is encrypted once (Megolm) instead of once per member
//! device (Olm); the session key goes to every member device over Olm
//! (`room_key` payloads). The price is that a session's key, once shared,
//! opens every later message of it: so the outbound session is replaced
//! (rotated) when someone leaves or is removed, when a device it was
//! shared with disappears or changes keys, after
//! [`RotationPolicy::max_messages`] messages and after
//! [`RotationPolicy::max_age`]. Members added later get the current
//! session from its current index on, so they do not read older messages.
//!
//! Inbound sessions are keyed by (sender user, sender device, session id):
//! a session is only ever looked up for the device that shared it over an
//! authenticated Olm channel, so another member cannot pass messages off
//! as someone else's by reusing a session id.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use vodozemac::megolm::{
    GroupSession, GroupSessionPickle, InboundGroupSession, InboundGroupSessionPickle, SessionConfig, SessionKey,
};

/// When a group's outbound session is replaced, besides membership changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Messages per session (default 100).
    pub max_messages: u32,
    /// Age of a session (default 7 days).
    pub max_age: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy { max_messages: 100, max_age: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// This device's sending session for one group.
pub(crate) struct Outbound {
    pub(crate) session: GroupSession,
    /// Unix seconds.
    created_at: u64,
    sent: u32,
    /// The devices that hold the key: (user, device).
    pub(crate) shared_with: BTreeSet<(u64, String)>,
}

/// A session another device (or this one) shared.
pub(crate) struct Inbound {
    pub(crate) session: InboundGroupSession,
    pub(crate) group: u64,
    /// The message id each opened index came in (a second id is a replay).
    pub(crate) seen: BTreeMap<u32, u64>,
}

/// A group as this device knows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Membership {
    /// The members, once known (from `group_info` or the `created` system
    /// message).
    pub(crate) members: Option<BTreeSet<u64>>,
}

#[derive(Default)]
pub(crate) struct GroupSessions {
    pub(crate) outbound: HashMap<u64, Outbound>,
    pub(crate) inbound: HashMap<(u64, String, String), Inbound>,
    pub(crate) groups: HashMap<u64, Membership>,
}

#[derive(Serialize, Deserialize)]
struct OutboundState {
    group: u64,
    session: GroupSessionPickle,
    created_at: u64,
    sent: u32,
    shared_with: BTreeSet<(u64, String)>,
}

#[derive(Serialize, Deserialize)]
struct InboundState {
    user: u64,
    device: String,
    group: u64,
    session: InboundGroupSessionPickle,
    #[serde(default)]
    seen: BTreeMap<u32, u64>,
}

/// The group sessions as stored in the state file.
#[derive(Serialize, Deserialize)]
pub(crate) struct GroupState {
    outbound: Vec<OutboundState>,
    inbound: Vec<InboundState>,
    groups: Vec<(u64, Membership)>,
}

impl GroupSessions {
    /// The outbound session of `group`, replaced first if `policy` says it
    /// is used up at `now` (Unix seconds); a new one is also installed as
    /// an inbound session of `(user, device)`, so this device reads its own
    /// messages in history.
    pub(crate) fn outbound(
        &mut self,
        group: u64,
        user: u64,
        device: &str,
        policy: RotationPolicy,
        now: u64,
    ) -> &mut Outbound {
        let expired = self.outbound.get(&group).is_some_and(|o| {
            o.sent >= policy.max_messages || now.saturating_sub(o.created_at) >= policy.max_age.as_secs()
        });
        if expired {
            self.outbound.remove(&group);
        }
        let inbound = &mut self.inbound;
        self.outbound.entry(group).or_insert_with(|| {
            let session = GroupSession::new(SessionConfig::version_1());
            let own = InboundGroupSession::new(&session.session_key(), SessionConfig::version_1());
            inbound.insert(
                (user, device.to_owned(), session.session_id()),
                Inbound { session: own, group, seen: BTreeMap::new() },
            );
            Outbound { session, created_at: now, sent: 0, shared_with: BTreeSet::new() }
        })
    }

    /// Count a message sent with the group's outbound session.
    pub(crate) fn count_sent(&mut self, group: u64) {
        if let Some(o) = self.outbound.get_mut(&group) {
            o.sent += 1;
        }
    }

    /// Drop every outbound session shared with `user` (all devices) or
    /// with `user`'s `device`.
    pub(crate) fn rotate_shared_with(&mut self, user: u64, device: Option<&str>) {
        self.outbound.retain(|_, o| !o.shared_with.iter().any(|(u, d)| *u == user && device.is_none_or(|x| x == d)));
    }

    /// Install a session shared by `user`'s `device` for `group`. A session
    /// already held is kept (it may know earlier messages).
    pub(crate) fn install(&mut self, user: u64, device: &str, group: u64, session_id: &str, key: &SessionKey) -> bool {
        let session = InboundGroupSession::new(key, SessionConfig::version_1());
        if session.session_id() != session_id {
            return false;
        }
        self.inbound.entry((user, device.to_owned(), session_id.to_owned())).or_insert(Inbound {
            session,
            group,
            seen: BTreeMap::new(),
        });
        true
    }

    /// The members of `group`, if known.
    pub(crate) fn members(&self, group: u64) -> Option<&BTreeSet<u64>> {
        self.groups.get(&group)?.members.as_ref()
    }

    /// Set `group`'s members; an outbound session shared with someone no
    /// longer a member is dropped.
    pub(crate) fn set_members(&mut self, group: u64, members: BTreeSet<u64>) {
        if let Some(o) = self.outbound.get(&group) {
            if o.shared_with.iter().any(|(u, _)| !members.contains(u)) {
                self.outbound.remove(&group);
            }
        }
        self.groups.entry(group).or_default().members = Some(members);
    }

    /// Forget `group`'s members (its sessions are kept).
    pub(crate) fn forget_members(&mut self, group: u64) {
        if let Some(m) = self.groups.get_mut(&group) {
            m.members = None;
        }
    }

    /// Users joined `group`.
    pub(crate) fn added(&mut self, group: u64, users: &[u64]) {
        if let Some(m) = self.groups.entry(group).or_default().members.as_mut() {
            m.extend(users);
        }
    }

    /// Users left or were removed from `group`: its outbound session is
    /// replaced before the next message. If `me` is one of them, the group
    /// is forgotten.
    pub(crate) fn removed(&mut self, group: u64, users: &[u64], me: u64) {
        self.outbound.remove(&group);
        if users.contains(&me) {
            self.groups.remove(&group);
            return;
        }
        if let Some(m) = self.groups.entry(group).or_default().members.as_mut() {
            for u in users {
                m.remove(u);
            }
        }
    }

    pub(crate) fn to_state(&self) -> GroupState {
        GroupState {
            outbound: self
                .outbound
                .iter()
                .map(|(g, o)| OutboundState {
                    group: *g,
                    session: o.session.pickle(),
                    created_at: o.created_at,
                    sent: o.sent,
                    shared_with: o.shared_with.clone(),
                })
                .collect(),
            inbound: self
                .inbound
                .iter()
                .map(|((u, d, _), i)| InboundState {
                    user: *u,
                    device: d.clone(),
                    group: i.group,
                    session: i.session.pickle(),
                    seen: i.seen.clone(),
                })
                .collect(),
            groups: self.groups.iter().map(|(g, m)| (*g, m.clone())).collect(),
        }
    }

    pub(crate) fn from_state(state: GroupState) -> Self {
        let outbound = state
            .outbound
            .into_iter()
            .map(|o| {
                let session = GroupSession::from_pickle(o.session);
                (o.group, Outbound { session, created_at: o.created_at, sent: o.sent, shared_with: o.shared_with })
            })
            .collect();
        let inbound = state
            .inbound
            .into_iter()
            .map(|i| {
                let session = InboundGroupSession::from_pickle(i.session);
                ((i.user, i.device, session.session_id()), Inbound { session, group: i.group, seen: i.seen })
            })
            .collect();
        GroupSessions { outbound, inbound, groups: state.groups.into_iter().collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_rotate_on_count_age_and_departures() {
        let policy = RotationPolicy { max_messages: 2, max_age: Duration::from_secs(60) };
        let mut g = GroupSessions::default();
        let first = g.outbound(5, 1, "phone", policy, 1000).session.session_id();
        assert!(g.inbound.contains_key(&(1, "phone".to_owned(), first.clone())), "own messages readable");
        g.count_sent(5);
        assert_eq!(g.outbound(5, 1, "phone", policy, 1001).session.session_id(), first);
        g.count_sent(5);
        let second = g.outbound(5, 1, "phone", policy, 1002).session.session_id();
        assert_ne!(second, first, "rotated after 2 messages");
        assert_ne!(g.outbound(5, 1, "phone", policy, 1062).session.session_id(), second, "rotated after 60 s");

        g.set_members(5, [1, 2, 3].into());
        let before = g.outbound(5, 1, "phone", policy, 1062).session.session_id();
        g.outbound.get_mut(&5).unwrap().shared_with.insert((3, "desk".into()));
        g.added(5, &[4]);
        assert_eq!(g.outbound(5, 1, "phone", policy, 1062).session.session_id(), before, "joining keeps it");
        g.removed(5, &[3], 1);
        assert_eq!(g.members(5).unwrap(), &[1, 2, 4].into());
        assert_ne!(g.outbound(5, 1, "phone", policy, 1062).session.session_id(), before, "leaving rotates");
        g.removed(5, &[1], 1);
        assert_eq!(g.members(5), None, "removed: the group is forgotten");
    }
}

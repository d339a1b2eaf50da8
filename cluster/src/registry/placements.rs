//! Users' placements: writing this node's, reading anyone's, removing
//! ghosts, and the notices that tell other nodes to forget what they cached.
//!
//! Every write is a pipeline (one round trip per server) followed by one
//! `PUBLISH` per [`NOTICE_IDS`] users, after the writes, so a node that
//! hears the notice and looks again reads the new placement. Each command
//! touches one user's key, so on a Redis Cluster each goes to its own slot.

use super::{
    keys::{self, NOTICES, NOTICE_IDS},
    reply,
    scripts::{self, eval},
    Placement, Presence, Registry, RegistryError,
};

impl Registry {
    /// Record presence changes of users on this node (online: this node's
    /// field holds this run's epoch, with a fresh TTL; offline: the field is
    /// removed), and announce them.
    pub fn apply(&mut self, changes: &[(u64, Presence)]) -> Result<(), RegistryError> {
        let node = self.config.node.to_string();
        let epoch = self.epoch.to_string();
        let ttl = ttl_ms(self);
        for chunk in changes.chunks(NOTICE_IDS) {
            let mut cmds = Vec::with_capacity(chunk.len() * 2 + 1);
            for (user, presence) in chunk {
                let key = keys::user(*user);
                match presence {
                    Presence::Online => {
                        cmds.push(redis::cmd("HSET").arg(&key).arg(&node).arg(self.epoch).to_owned());
                        cmds.push(redis::cmd("PEXPIRE").arg(&key).arg(ttl).to_owned());
                    }
                    // Only this run's field: a newer run of this node id
                    // may have written its own meanwhile.
                    Presence::Offline => cmds.push(eval(scripts::REMOVE_GHOST, &[&key], &[&node, &epoch])),
                }
            }
            let users: Vec<u64> = chunk.iter().map(|(u, _)| *u).collect();
            cmds.extend(keys::notices('u', &users).map(publish));
            self.conn.pipeline("publishing presence", cmds)?;
        }
        Ok(())
    }

    /// Write this node's placement of `users` again (after its lease had
    /// lapsed, after an outage, and before the placements' TTL runs out),
    /// and announce them.
    pub fn republish(&mut self, users: &[u64]) -> Result<(), RegistryError> {
        let node = self.config.node.to_string();
        let ttl = ttl_ms(self);
        for chunk in users.chunks(NOTICE_IDS) {
            let mut cmds = Vec::with_capacity(chunk.len() * 2 + 1);
            for user in chunk {
                let key = keys::user(*user);
                cmds.push(redis::cmd("HSET").arg(&key).arg(&node).arg(self.epoch).to_owned());
                cmds.push(redis::cmd("PEXPIRE").arg(&key).arg(ttl).to_owned());
            }
            cmds.extend(keys::notices('u', chunk).map(publish));
            self.conn.pipeline("republishing placements", cmds)?;
        }
        Ok(())
    }

    /// Announce that the membership of `groups` changed.
    pub fn publish_groups(&mut self, groups: &[u64]) -> Result<(), RegistryError> {
        let cmds = keys::notices('g', groups).map(publish).collect();
        self.conn.pipeline("announcing group changes", cmds).map(drop)
    }

    /// Where each of `users` has connections, in the order asked; one
    /// pipeline for all. Ghosts are included: the caller knows which leases
    /// are live. Malformed fields are skipped.
    pub fn lookup(&mut self, users: &[u64]) -> Result<Vec<Vec<Placement>>, RegistryError> {
        const OP: &str = "looking up users";
        let cmds = users.iter().map(|u| redis::cmd("HGETALL").arg(keys::user(*u)).to_owned()).collect();
        let replies = self.conn.pipeline(OP, cmds)?;
        let mut found = Vec::with_capacity(users.len());
        for (user, value) in users.iter().zip(&replies) {
            let Some(pairs) = reply::pairs(value) else {
                return Err(self.conn.bad_reply(OP, format!("{value:?} for user {user}")));
            };
            let mut placements: Vec<Placement> = pairs
                .into_iter()
                .filter_map(|(node, epoch)| Some(Placement { node: reply::parse(node)?, epoch: reply::parse(epoch)? }))
                .collect();
            placements.sort_unstable_by_key(|p| p.node);
            found.push(placements);
        }
        Ok(found)
    }

    /// Remove ghost placements: each user's field for that node, only if it
    /// still holds that epoch (a newer run of the node may have written it
    /// meanwhile). Returns how many were removed.
    pub fn remove_ghosts(&mut self, ghosts: &[(u64, Placement)]) -> Result<usize, RegistryError> {
        let cmds = ghosts
            .iter()
            .map(|(user, p)| {
                eval(scripts::REMOVE_GHOST, &[&keys::user(*user)], &[&p.node.to_string(), &p.epoch.to_string()])
            })
            .collect();
        let removed = self.conn.pipeline("removing ghost placements", cmds)?;
        Ok(removed.iter().filter(|v| reply::int(v).is_some_and(|n| n > 0)).count())
    }

    /// This run stops: its placement of `users` is removed (where it still
    /// holds this run's epoch) and announced, then its lease is given up,
    /// so other nodes stop routing here at once instead of after a lease.
    pub fn leave(&mut self, users: &[u64]) -> Result<(), RegistryError> {
        if !self.owner {
            return Err(RegistryError::Reader { op: "leaving" });
        }
        let node = self.config.node.to_string();
        let epoch = self.epoch.to_string();
        for chunk in users.chunks(NOTICE_IDS) {
            let mut cmds: Vec<redis::Cmd> =
                chunk.iter().map(|u| eval(scripts::REMOVE_GHOST, &[&keys::user(*u)], &[&node, &epoch])).collect();
            cmds.extend(keys::notices('u', chunk).map(publish));
            self.conn.pipeline("removing this node's placements", cmds)?;
        }
        self.drop_lease()
    }
}

fn publish(text: String) -> redis::Cmd {
    redis::cmd("PUBLISH").arg(NOTICES).arg(text).to_owned()
}

fn ttl_ms(registry: &Registry) -> u64 {
    u64::try_from(registry.config.user_ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

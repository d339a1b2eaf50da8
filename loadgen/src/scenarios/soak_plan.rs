//! Who is in a soak run and who talks to whom, fixed before it starts.
//!
//! Users are numbered from `--first-user`: first the direct pairs (users
//! 2p and 2p+1 of pair p), then the groups (`--group-size` users each).
//! Every third user has two devices (two connections under the same user
//! id), so the run also covers a message reaching the sender's other
//! device and a user's devices catching up independently. Message `n` of
//! the open-loop schedule goes to a conversation and from a device chosen
//! by a fixed hash of `n`; every `GROUP_EVERY`-th message goes to a group.

use crate::scenarios::{schedule::splitmix, soak_ledger::Conv};

/// One message in this many goes to a group (when there are groups).
const GROUP_EVERY: u64 = 4;

/// The run's users, devices and conversations.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    first_user: u64,
    pairs: u32,
    groups: u32,
    group_size: u32,
    /// User index -> its devices.
    devices_of_user: Vec<Vec<usize>>,
    /// Device -> user index.
    user_of_device: Vec<usize>,
}

impl Topology {
    /// `pairs` direct pairs and `groups` groups of `group_size` members.
    pub(crate) fn new(first_user: u64, pairs: u32, groups: u32, group_size: u32) -> Self {
        let users = 2 * pairs as usize + groups as usize * group_size as usize;
        let mut devices_of_user = Vec::with_capacity(users);
        let mut user_of_device = Vec::new();
        for u in 0..users {
            let n = if u % 3 == 0 { 2 } else { 1 };
            let mut mine = Vec::with_capacity(n);
            for _ in 0..n {
                mine.push(user_of_device.len());
                user_of_device.push(u);
            }
            devices_of_user.push(mine);
        }
        Topology { first_user, pairs, groups, group_size, devices_of_user, user_of_device }
    }

    /// Devices in all.
    pub(crate) fn device_count(&self) -> usize {
        self.user_of_device.len()
    }

    /// Users in all.
    pub(crate) fn user_count(&self) -> usize {
        self.devices_of_user.len()
    }

    /// Groups in all.
    pub(crate) fn group_count(&self) -> u32 {
        self.groups
    }

    /// The user id of device `d`.
    pub(crate) fn user_id(&self, d: usize) -> u64 {
        self.first_user + self.user_of_device.get(d).copied().unwrap_or(0) as u64
    }

    /// The user id of user index `u`.
    fn id_of(&self, u: usize) -> u64 {
        self.first_user + u as u64
    }

    /// User indexes taking part in `conv`.
    fn users_in(&self, conv: Conv) -> Vec<usize> {
        match conv {
            Conv::Pair(p) => vec![2 * p as usize, 2 * p as usize + 1],
            Conv::Group(g) => {
                let start = 2 * self.pairs as usize + g as usize * self.group_size as usize;
                (start..start + self.group_size as usize).collect()
            }
        }
    }

    /// Every device of every participant of `conv`.
    pub(crate) fn devices_in(&self, conv: Conv) -> Vec<usize> {
        self.users_in(conv).into_iter().flat_map(|u| self.devices_of_user[u].iter().copied()).collect()
    }

    /// The user ids of group `g`'s members, the creator first.
    pub(crate) fn group_members(&self, g: u32) -> Vec<u64> {
        self.users_in(Conv::Group(g)).into_iter().map(|u| self.id_of(u)).collect()
    }

    /// The device that creates group `g` (its first member's first device).
    pub(crate) fn group_creator(&self, g: u32) -> usize {
        let u = self.users_in(Conv::Group(g))[0];
        self.devices_of_user[u][0]
    }

    /// Message `n`: its conversation, the sending device, and for a direct
    /// message the recipient's user id.
    pub(crate) fn route(&self, n: u64) -> (Conv, usize, Option<u64>) {
        let h = splitmix(n);
        let (conv, sender, to) = if self.groups > 0 && (n % GROUP_EVERY == GROUP_EVERY - 1 || self.pairs == 0) {
            let g = (h % u64::from(self.groups)) as u32;
            let users = self.users_in(Conv::Group(g));
            (Conv::Group(g), users[((h >> 32) % users.len() as u64) as usize], None)
        } else {
            let p = (h % u64::from(self.pairs.max(1))) as u32;
            let (a, b) = (2 * p as usize, 2 * p as usize + 1);
            let (from, to) = if (h >> 32) & 1 == 0 { (a, b) } else { (b, a) };
            (Conv::Pair(p), from, Some(self.id_of(to)))
        };
        let devices = &self.devices_of_user[sender];
        let device = devices[((h >> 40) % devices.len() as u64) as usize];
        (conv, device, to)
    }

    /// The user id that sends message `n`.
    pub(crate) fn sender_id(&self, n: u64) -> u64 {
        self.user_id(self.route(n).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_devices_and_routes() {
        let t = Topology::new(100, 3, 2, 4);
        assert_eq!(t.user_count(), 14);
        // Users 0, 3, 6, 9, 12 have two devices.
        assert_eq!(t.device_count(), 19);
        assert_eq!(t.devices_in(Conv::Pair(0)), [0, 1, 2]);
        assert_eq!(t.group_members(1), [110, 111, 112, 113]);
        assert_eq!(t.user_id(t.group_creator(1)), 110);
        let mut groups = 0;
        for n in 0..400 {
            let (conv, dev, to) = t.route(n);
            let sender = t.user_id(dev);
            assert!(t.devices_in(conv).contains(&dev), "the sender takes part");
            match conv {
                Conv::Pair(p) => {
                    let to = to.unwrap();
                    assert!(sender != to && (sender - 100) / 2 == u64::from(p) && (to - 100) / 2 == u64::from(p));
                }
                Conv::Group(_) => {
                    groups += 1;
                    assert!(to.is_none());
                }
            }
        }
        assert_eq!(groups, 100);
    }
}

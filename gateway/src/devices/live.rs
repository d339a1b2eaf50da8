//! Which named devices have a live connection on this gateway now: one
//! that completed a `sync` and so receives live events (docs/PROTOCOL.md,
//! 1.6). The push worker asks it at the end of a message's grace period,
//! to notify only devices that did not get the message live.
//!
//! Why a count per `(user, device)` in a few locked shards: the cores
//! write it only when a connection's first `sync` completes, when a failed
//! sync stops its live events, and when it closes, never per message, so
//! a short lock there costs nothing on the message path. A device may hold
//! several connections (two tabs of one browser profile); it is live while
//! any one is. Unnamed connections are never counted: a push target
//! belongs to a named device.

use std::{
    collections::{hash_map::Entry, HashMap},
    hash::{BuildHasher, RandomState},
    sync::{Arc, Mutex, PoisonError},
};

use chatgw_protocol::{DeviceName, UserId};

/// Shards of the map; a power of two.
const SHARDS: usize = 16;

type Shard = Mutex<HashMap<UserId, HashMap<DeviceName, u32>>>;

/// A shared, cheap-to-clone handle on this gateway's live named devices
/// (see the module docs). Obtained from a running gateway with
/// [`ServerHandle::live_devices`](crate::ServerHandle::live_devices).
#[derive(Clone)]
pub struct LiveDevices {
    shards: Arc<[Shard; SHARDS]>,
    hasher: RandomState,
}

impl Default for LiveDevices {
    fn default() -> Self {
        LiveDevices {
            shards: Arc::new(std::array::from_fn(|_| Mutex::new(HashMap::new()))),
            hasher: RandomState::new(),
        }
    }
}

impl std::fmt::Debug for LiveDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveDevices").finish_non_exhaustive()
    }
}

impl LiveDevices {
    fn shard(&self, user: UserId) -> std::sync::MutexGuard<'_, HashMap<UserId, HashMap<DeviceName, u32>>> {
        let i = (self.hasher.hash_one(user.0) as usize) & (SHARDS - 1);
        // A panic while holding the lock leaves counts that are still
        // counts: keep using them.
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection of `device` became live.
    pub(crate) fn went_live(&self, user: UserId, device: DeviceName) {
        *self.shard(user).entry(user).or_default().entry(device).or_insert(0) += 1;
    }

    /// A live connection of `device` closed or stopped getting live events.
    pub(crate) fn went_away(&self, user: UserId, device: DeviceName) {
        let mut shard = self.shard(user);
        let Entry::Occupied(mut devices) = shard.entry(user) else { return };
        if let Entry::Occupied(mut count) = devices.get_mut().entry(device) {
            *count.get_mut() = count.get().saturating_sub(1);
            if *count.get() == 0 {
                count.remove();
            }
        }
        if devices.get().is_empty() {
            devices.remove();
        }
    }

    /// Whether `user`'s `device` has a live connection on this gateway.
    pub fn is_live(&self, user: UserId, device: DeviceName) -> bool {
        self.shard(user).get(&user).is_some_and(|d| d.contains_key(&device))
    }

    /// For each of `users`, in input order, its named devices with a live
    /// connection on this gateway, in name order (empty if none).
    pub fn of(&self, users: &[UserId]) -> Vec<(UserId, Vec<DeviceName>)> {
        users
            .iter()
            .map(|&user| {
                let mut devices: Vec<DeviceName> =
                    self.shard(user).get(&user).map(|d| d.keys().copied().collect()).unwrap_or_default();
                devices.sort_unstable();
                (user, devices)
            })
            .collect()
    }
}

/// The admin listener's `GET /live-devices?user=1&user=2`: JSON of each
/// user asked for (as a decimal string) to its live device names, e.g.
/// `{"1":["phone"],"2":[]}`. At most [`MAX_USERS_PER_ASK`] users.
pub(crate) fn answer(
    live: &LiveDevices,
    method: &str,
    query: Option<&str>,
) -> (u16, &'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" {
        return (405, "Method Not Allowed", TEXT, "only GET\n".into());
    }
    let mut users = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let user = pair.strip_prefix("user=").and_then(|v| v.parse::<u64>().ok()).filter(|&u| u != 0);
        match user {
            Some(u) => users.push(UserId(u)),
            None => {
                return (400, "Bad Request", TEXT, "each parameter must be user=<nonzero decimal user id>\n".into())
            }
        }
    }
    if users.is_empty() || users.len() > MAX_USERS_PER_ASK {
        return (400, "Bad Request", TEXT, format!("ask for 1 to {MAX_USERS_PER_ASK} users: ?user=1&user=2\n"));
    }
    let mut out = String::with_capacity(16 * users.len());
    out.push('{');
    let mut first = true;
    users.sort_unstable();
    users.dedup();
    for (user, devices) in live.of(&users) {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push_str(&format!("\"{}\":[", user.0));
        // Device names need no escaping (`DeviceName`).
        let names: Vec<String> = devices.iter().map(|d| format!("\"{d}\"")).collect();
        out.push_str(&names.join(","));
        out.push(']');
    }
    out.push_str("}\n");
    (200, "OK", "application/json", out)
}

/// Users one `/live-devices` request may ask about.
pub(crate) const MAX_USERS_PER_ASK: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(n: &str) -> DeviceName {
        DeviceName::new(n).unwrap()
    }

    #[test]
    fn a_device_is_live_while_any_of_its_connections_is() {
        let live = LiveDevices::default();
        let (alice, bob) = (UserId(1), UserId(2));
        assert_eq!(live.of(&[alice]), vec![(alice, vec![])]);
        live.went_live(alice, dev("phone"));
        live.went_live(alice, dev("phone"));
        live.went_live(alice, dev("laptop"));
        assert_eq!(live.of(&[bob, alice]), vec![(bob, vec![]), (alice, vec![dev("laptop"), dev("phone")])]);
        live.went_away(alice, dev("phone"));
        assert!(live.is_live(alice, dev("phone")), "one connection of two is left");
        live.went_away(alice, dev("phone"));
        assert!(!live.is_live(alice, dev("phone")));
        live.went_away(alice, dev("phone"));
        live.went_away(bob, dev("phone"));
        assert_eq!(live.of(&[alice]), vec![(alice, vec![dev("laptop")])], "an extra goodbye changes nothing");
        live.went_away(alice, dev("laptop"));
        assert!(live.shards.iter().all(|s| s.lock().unwrap().is_empty()), "nothing is kept for users gone");
    }

    #[test]
    fn the_admin_answer_lists_each_user_asked_for() {
        let live = LiveDevices::default();
        live.went_live(UserId(1), dev("phone"));
        let (status, _, _, body) = answer(&live, "GET", Some("user=2&user=1&user=1"));
        assert_eq!((status, body.as_str()), (200, "{\"1\":[\"phone\"],\"2\":[]}\n"));
        for bad in [None, Some(""), Some("user=0"), Some("user=x"), Some("device=phone"), Some("user=1&")] {
            let (status, ..) = answer(&live, "GET", bad);
            if bad == Some("user=1&") {
                assert_eq!(status, 200, "an empty pair is skipped");
            } else {
                assert_eq!(status, 400, "{bad:?}");
            }
        }
        let many: Vec<String> = (1..=1001).map(|u| format!("user={u}")).collect();
        assert_eq!(answer(&live, "GET", Some(&many.join("&"))).0, 400);
        assert_eq!(answer(&live, "POST", Some("user=1")).0, 405);
    }
}

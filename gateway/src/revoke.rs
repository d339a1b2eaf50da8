//! Session revocation: an operator's `POST /revoke?user=N` (admin listener)
//! closes the user's live connections on this gateway with 4004 and makes
//! every gateway on the store refuse the user's tokens issued before that
//! moment (docs/PROTOCOL.md, "Session revocation").
//!
//! Why a cache in front of the store: the check runs on the event loop at
//! every upgrade, which must not wait on a database. [`Revocations`] holds
//! every user's latest revocation time in memory; the store is the durable,
//! shared copy ([`MessageStore::revoke_sessions`]). The cache is filled at
//! start, written through by this gateway's own revocations (honoured at
//! once), and re-read every [`REFRESH`] by a thread of its own, which is how
//! a revocation made through another gateway on the same store reaches this
//! one: within [`REFRESH`] its upgrades refuse the old tokens and its live
//! connections with such tokens are closed with 4004 as well.
//!
//! Closing is an event per connection ([`CoreEvent::Revoke`]) posted to the
//! core that holds it, found in the directory, like the committer's
//! deliveries, right after the cache learns the revocation. Every
//! connection of the user then registered is closed, whatever its token:
//! connections keep no issue time (8 more bytes on every connection for a
//! rare operator action). On the gateway that records the revocation no
//! connection with a newer token can exist yet; on another gateway, a
//! device that reconnected there with a new token in the seconds before it
//! re-read the store is closed with 4004 once and reconnects with the same
//! new token, which is accepted. A connection that registers while the
//! close events are posted re-checks the cache after registering (see
//! `core::http`), so none slips between the check and the directory.
//!
//! Devices (docs/PROTOCOL.md, "Devices") work the same way one level down:
//! a token naming a device (`dev`) is also refused if that device of the
//! user was revoked after the token was issued, the cache holds every
//! `(user, device)` revocation beside the users', and closing "device D of
//! user U" closes U's connections whose 32-bit device hash
//! ([`DeviceName::hash32`]) is D's (connections keep the hash, not the
//! name). Two names of one user with the same hash would both be closed;
//! the other device reconnects with its token, which is checked against
//! the exact name and accepted.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, PoisonError, RwLock,
    },
    thread::JoinHandle,
    time::Duration,
};

use chatgw_protocol::{DeviceName, UserId};
use chatgw_router::{Directory, Mailboxes};
use chatgw_storage::{MessageStore, StoreError};

use crate::{
    auth::{AuthError, Claims},
    devices::keys_changed::KeysChanged,
    events::{CoreBatch, CoreEvent},
};

/// How stale this gateway's view of other gateways' revocations may be.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// Every revoked user's and every revoked device's latest revocation time
/// (Unix seconds).
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    at: RwLock<HashMap<u64, u64>>,
    devices: RwLock<HashMap<(u64, DeviceName), u64>>,
}

impl Revocations {
    /// Whether a token of `user` issued at `iat` is refused: the user's
    /// sessions were revoked after it was issued, or, once they were
    /// revoked at all, it does not say when it was issued. A token issued
    /// in the second of the revocation is accepted, so a token minted right
    /// after a revocation works at once.
    pub(crate) fn refuses(&self, user: UserId, iat: Option<u64>) -> bool {
        let at = self.at.read().unwrap_or_else(PoisonError::into_inner);
        match at.get(&user.0) {
            None => false,
            Some(&revoked) => iat.is_none_or(|iat| iat < revoked),
        }
    }

    /// Why a token with these claims is refused, if it is: its user's
    /// sessions or its device were revoked after it was issued (or, once
    /// they were, it does not say when it was issued).
    pub(crate) fn refusal(&self, claims: &Claims) -> Option<AuthError> {
        if self.refuses(claims.user, claims.iat) {
            return Some(AuthError::Revoked);
        }
        let device = claims.device?;
        let all = self.devices.read().unwrap_or_else(PoisonError::into_inner);
        let &revoked = all.get(&(claims.user.0, device))?;
        claims.iat.is_none_or(|iat| iat < revoked).then_some(AuthError::DeviceRevoked)
    }

    /// Raise the revocation time of `device` of `user` to `at`; true if it
    /// rose.
    pub(crate) fn note_device(&self, user: UserId, device: DeviceName, at: u64) -> bool {
        let mut all = self.devices.write().unwrap_or_else(PoisonError::into_inner);
        let e = all.entry((user.0, device)).or_insert(0);
        let rose = at > *e;
        *e = (*e).max(at);
        rose
    }

    /// Raise `user`'s revocation time to `at`; true if it rose.
    pub(crate) fn note(&self, user: UserId, at: u64) -> bool {
        let mut all = self.at.write().unwrap_or_else(PoisonError::into_inner);
        let e = all.entry(user.0).or_insert(0);
        let rose = at > *e;
        *e = (*e).max(at);
        rose
    }
}

/// What the admin listener and the refresher need to revoke.
#[derive(Clone)]
pub(crate) struct Revoker {
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    /// Tells the user's contacts when a logged-out device had keys.
    pub(crate) keys_changed: KeysChanged,
}

impl Revoker {
    /// Revoke `user`'s sessions as of `at` (Unix seconds): durably in the
    /// store first (nothing is closed if that fails, so an operator who
    /// sees the error retries), then in the cache, then close this
    /// gateway's connections. Returns how many connections were told to
    /// close.
    pub(crate) fn revoke(&self, user: UserId, at: u64) -> Result<usize, StoreError> {
        self.store.revoke_sessions(user, at)?;
        self.revocations.note(user, at);
        Ok(self.close_connections(user, None))
    }

    /// Revoke `device` of `user` as of `at`, the same way: store, cache,
    /// then close this gateway's connections of that device. Returns how
    /// many connections of the user were told to close if theirs is that
    /// device (each core compares the hash).
    pub(crate) fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<usize, StoreError> {
        self.record_device_revocation(user, device, at)?;
        Ok(self.close_device(user, device))
    }

    /// The first half of [`Revoker::revoke_device`]: the store, then the
    /// cache (upgrades with older tokens of the device are refused from
    /// now on).
    pub(crate) fn record_device_revocation(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        // First, so that a logout that is recorded never leaves pushes
        // going to the device; a failure here records nothing (retry).
        self.store.set_push_target(user, device, None)?;
        let had_keys = self.store.remove_device_keys(user, device)?;
        self.store.revoke_device(user, device, at)?;
        self.revocations.note_device(user, device, at);
        if had_keys {
            self.keys_changed.announce(self.store.as_ref(), user);
        }
        // Again, now that this gateway refuses the device: a registration
        // written meanwhile is removed here, and one written from now on
        // removes itself (`devices::push`).
        if let Err(e) = self.store.set_push_target(user, device, None) {
            tracing::warn!(error = %e, "could not remove a logged-out device's push target again");
        }
        Ok(())
    }

    /// The second half: close this gateway's connections of the device.
    pub(crate) fn close_device(&self, user: UserId, device: DeviceName) -> usize {
        self.close_connections(user, Some(device))
    }

    /// Post a close to every connection of `user` on this gateway, or to
    /// those of one device of the user.
    fn close_connections(&self, user: UserId, device: Option<DeviceName>) -> usize {
        let device = device.map_or(0, |d| d.hash32());
        let mut by_core: HashMap<u16, CoreBatch> = HashMap::new();
        self.directory
            .for_each(user.0, |to| by_core.entry(to.core).or_default().push(CoreEvent::Revoke { to, device }));
        let n = by_core.values().map(Vec::len).sum();
        for (core, batch) in by_core {
            self.mailboxes.post(usize::from(core), batch);
        }
        n
    }

    /// Read every revocation from the store into the cache; close the
    /// connections of each user whose revocation time rose (one another
    /// gateway recorded).
    pub(crate) fn refresh(&self) -> Result<(), StoreError> {
        for (user, at) in self.store.revocations()? {
            if self.revocations.note(user, at) {
                self.close_connections(user, None);
            }
        }
        for (user, device, at) in self.store.device_revocations()? {
            if self.revocations.note_device(user, device, at) {
                self.close_connections(user, Some(device));
            }
        }
        Ok(())
    }

    /// Re-read the store every [`REFRESH`] on a thread of its own.
    pub(crate) fn start_refresher(self) -> std::io::Result<Refresher> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new().name("chatgw-revocations".into()).spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(REFRESH);
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    if let Err(e) = self.refresh() {
                        tracing::warn!(error = %e, "could not re-read session revocations; trying again");
                    }
                }
            })?
        };
        Ok(Refresher { stop, thread })
    }
}

/// The running refresher thread.
pub(crate) struct Refresher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Refresher {
    /// Stop and wait for the thread (at most one store read).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// What `device=` must be, in the admin listener's 400 answer.
const BAD_DEVICE: &str = "expected &device=D with D 1 to 32 bytes of A-Z a-z 0-9 . _ -\n";

/// The admin listener's answer to `method /revoke?query`: status, reason
/// and a one-line text body (docs/PROTOCOL.md, "Session revocation" and
/// "Devices").
pub(crate) fn answer(revoker: &Revoker, method: &str, query: Option<&str>) -> (u16, &'static str, String) {
    if method != "POST" {
        return (405, "Method Not Allowed", "only POST\n".into());
    }
    let (user, device) = match params(query) {
        Ok(p) => p,
        Err(why) => return (400, "Bad Request", why.into()),
    };
    let at = crate::auth::unix_now();
    if let Some(device) = device {
        return match revoker.revoke_device(user, device, at) {
            Ok(_) => (
                200,
                "OK",
                format!("revoked device {device} of user {user} at {at}: its connections on this gateway closing with 4004\n"),
            ),
            Err(e) => (503, "Service Unavailable", format!("revocation not recorded: {e}\n")),
        };
    }
    match revoker.revoke(user, at) {
        Ok(closed) => (
            200,
            "OK",
            format!("revoked user {user} at {at}: {closed} connection(s) on this gateway closing with 4004\n"),
        ),
        Err(e) => (503, "Service Unavailable", format!("revocation not recorded: {e}\n")),
    }
}

/// The `user=N` parameter of a query and the optional `device=D` after
/// it; the 400 body if either is missing where needed, malformed,
/// repeated, or beside other parameters.
fn params(query: Option<&str>) -> Result<(UserId, Option<DeviceName>), &'static str> {
    const BAD_USER: &str = "expected ?user=N with N a numeric user id\n";
    let mut params = query.ok_or(BAD_USER)?.split('&');
    let user = params.next().and_then(user_of).ok_or(BAD_USER)?;
    let device = match params.next() {
        None => None,
        Some(p) => Some(DeviceName::new(p.strip_prefix("device=").ok_or(BAD_USER)?).ok_or(BAD_DEVICE)?),
    };
    match params.next() {
        None => Ok((user, device)),
        Some(_) if device.is_some() => Err(BAD_DEVICE),
        Some(_) => Err(BAD_USER),
    }
}

/// `user=N` with N a nonzero number.
fn user_of(param: &str) -> Option<UserId> {
    let n: u64 = param.strip_prefix("user=")?.parse().ok()?;
    (n != 0).then_some(UserId(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_parameter_is_one_nonzero_number_and_a_device_may_follow() {
        assert_eq!(params(Some("user=42")), Ok((UserId(42), None)));
        for bad in [None, Some(""), Some("user="), Some("user=x"), Some("user=0"), Some("user=1&user=2"), Some("u=1")] {
            assert_eq!(params(bad).map_err(|e| e.starts_with("expected ?user=N")), Err(true), "{bad:?}");
        }
        assert!(params(Some("user=-1")).is_err());
        let phone = DeviceName::new("phone").unwrap();
        assert_eq!(params(Some("user=42&device=phone")), Ok((UserId(42), Some(phone))));
        assert!(params(Some("user=1&dev=phone")).is_err_and(|e| e.starts_with("expected ?user=N")));
        for bad in ["user=1&device=", "user=1&device=a%20b", "user=1&device=phone&device=x"] {
            assert_eq!(params(Some(bad)), Err(BAD_DEVICE), "{bad}");
        }
        assert!(params(Some("device=phone&user=1")).is_err(), "the user comes first");
    }

    #[test]
    fn a_device_revocation_refuses_older_tokens_of_that_device_only() {
        let r = Revocations::default();
        let (phone, laptop) = (DeviceName::new("phone").unwrap(), DeviceName::new("laptop").unwrap());
        let claims = |device, iat| Claims { user: UserId(1), exp: u64::MAX, iat, device };
        assert!(r.note_device(UserId(1), phone, 100));
        assert!(!r.note_device(UserId(1), phone, 90), "never moves back");
        assert_eq!(r.refusal(&claims(Some(phone), Some(99))), Some(AuthError::DeviceRevoked));
        assert_eq!(r.refusal(&claims(Some(phone), None)), Some(AuthError::DeviceRevoked));
        assert_eq!(r.refusal(&claims(Some(phone), Some(100))), None, "issued in the second of the revocation");
        assert_eq!(r.refusal(&claims(Some(laptop), Some(1))), None, "another device");
        assert_eq!(r.refusal(&claims(None, Some(1))), None, "an unnamed connection");
        assert_eq!(r.refusal(&Claims { user: UserId(2), ..claims(Some(phone), Some(1)) }), None, "another user");
        r.note(UserId(1), 200);
        assert_eq!(r.refusal(&claims(Some(phone), Some(150))), Some(AuthError::Revoked), "the user's comes first");
    }

    #[test]
    fn refuses_older_and_undated_tokens_of_revoked_users_only() {
        let r = Revocations::default();
        assert!(!r.refuses(UserId(1), None), "no revocation: even an undated token is accepted");
        assert!(r.note(UserId(1), 100));
        assert!(!r.note(UserId(1), 90), "never moves back");
        assert!(r.refuses(UserId(1), Some(99)));
        assert!(r.refuses(UserId(1), None));
        assert!(!r.refuses(UserId(1), Some(100)), "issued in the second of the revocation");
        assert!(!r.refuses(UserId(2), Some(1)), "other users are untouched");
    }
}

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

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, PoisonError, RwLock,
    },
    thread::JoinHandle,
    time::Duration,
};

use chatgw_protocol::UserId;
use chatgw_router::{Directory, Mailboxes};
use chatgw_storage::{MessageStore, StoreError};

use crate::events::{CoreBatch, CoreEvent};

/// How stale this gateway's view of other gateways' revocations may be.
pub(crate) const REFRESH: Duration = Duration::from_secs(2);

/// Every revoked user's latest revocation time (Unix seconds).
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    at: RwLock<HashMap<u64, u64>>,
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
        Ok(self.close_connections(user))
    }

    /// Post a close to every connection of `user` on this gateway.
    fn close_connections(&self, user: UserId) -> usize {
        let mut by_core: HashMap<u16, CoreBatch> = HashMap::new();
        self.directory.for_each(user.0, |to| by_core.entry(to.core).or_default().push(CoreEvent::Revoke { to }));
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
                self.close_connections(user);
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

/// The admin listener's answer to `method /revoke?query`: status, reason
/// and a one-line text body (docs/PROTOCOL.md, "Session revocation").
pub(crate) fn answer(revoker: &Revoker, method: &str, query: Option<&str>) -> (u16, &'static str, String) {
    if method != "POST" {
        return (405, "Method Not Allowed", "only POST\n".into());
    }
    let Some(user) = user_of(query) else {
        return (400, "Bad Request", "expected ?user=N with N a numeric user id\n".into());
    };
    let at = crate::auth::unix_now();
    match revoker.revoke(user, at) {
        Ok(closed) => (
            200,
            "OK",
            format!("revoked user {user} at {at}: {closed} connection(s) on this gateway closing with 4004\n"),
        ),
        Err(e) => (503, "Service Unavailable", format!("revocation not recorded: {e}\n")),
    }
}

/// The one `user=N` parameter of a query; `None` if missing, repeated,
/// not a number, or beside other parameters.
fn user_of(query: Option<&str>) -> Option<UserId> {
    let mut params = query?.split('&');
    let (Some(first), None) = (params.next(), params.next()) else {
        return None;
    };
    let n: u64 = first.strip_prefix("user=")?.parse().ok()?;
    (n != 0).then_some(UserId(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_parameter_is_one_nonzero_number() {
        assert_eq!(user_of(Some("user=42")), Some(UserId(42)));
        for bad in [None, Some(""), Some("user="), Some("user=x"), Some("user=0"), Some("user=1&user=2"), Some("u=1")] {
            assert_eq!(user_of(bad), None, "{bad:?}");
        }
        assert_eq!(user_of(Some("user=-1")), None);
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

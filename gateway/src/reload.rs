//! SIGHUP: take new abuse limits and token keys from the configuration
//! without a restart, so a key can be rotated and a limit tuned while
//! connections stay open.
//!
//! What reloads: the limits across connections (`limits`: per source
//! address, per user) and the token keys (`[token_keys]`, `signing_key`,
//! and `secret` for tokens without `kid`). Everything else (listeners,
//! workers, store, per-connection settings) needs a restart, which a drain
//! makes painless. Open connections keep the token they were opened with;
//! the new keys decide from the next handshake on.

use std::sync::{Arc, PoisonError, RwLock};

use chatgw_auth::{AuthError, Claims, TokenKey, TokenKeys};
use chatgw_protocol::{DeviceName, UserId};

use crate::{config::Config, limits::Limits};

/// The keys the cores verify tokens with, replaced whole by a reload.
#[derive(Debug)]
pub struct KeyRing(RwLock<Arc<TokenKeys>>);

impl KeyRing {
    pub(crate) fn new(keys: TokenKeys) -> Self {
        KeyRing(RwLock::new(Arc::new(keys)))
    }

    fn current(&self) -> Arc<TokenKeys> {
        self.0.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn replace(&self, keys: TokenKeys) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// Check `token` at `now` (Unix seconds) with the key it names.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        self.current().verify(token, now)
    }

    /// The key new tokens are signed with.
    pub fn signer(&self) -> TokenKey {
        self.current().signer().clone()
    }

    /// A token for `user`, signed with the signing key.
    pub fn mint(&self, user: UserId, exp: u64) -> String {
        self.signer().mint(user, exp)
    }

    /// A token for `user` on `device`, signed with the signing key.
    pub fn mint_device(&self, user: UserId, device: DeviceName, iat: u64, exp: u64) -> String {
        self.signer().mint_device(user, device, iat, exp)
    }
}

/// The keys `config` names: `secret` for tokens without `kid`, each of
/// `token_keys` under its id, signing with `signing_key` (validated).
pub fn token_keys(config: &Config) -> TokenKeys {
    let keys = config
        .token_keys
        .iter()
        .fold(TokenKeys::single(TokenKey::new(config.secret.as_bytes())), |k, (kid, secret)| {
            k.with_key(kid, secret.as_bytes())
        });
    match &config.signing_key {
        // `Config::validate` checked the id names a key.
        Some(kid) => keys.clone().signing_with(kid).unwrap_or(keys),
        None => keys,
    }
}

/// What a reload changes in a running gateway ([`ServerHandle::reloader`](crate::ServerHandle::reloader)).
#[derive(Clone)]
pub struct Reloader {
    pub(crate) limits: Arc<Limits>,
    pub(crate) keys: Arc<KeyRing>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

impl Reloader {
    /// Take the limits and keys of `config` (already validated).
    pub fn reload(&self, config: &Config) {
        self.limits.reload(config);
        self.keys.replace(token_keys(config));
    }
}

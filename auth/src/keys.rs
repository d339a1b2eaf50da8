//! Several verification keys at once, one signing key: what rotating a
//! token secret without logging anyone out needs.
//!
//! A token names its key with `kid` in its header; one without `kid` is
//! checked against the default key (the single `secret` of older
//! configurations), so tokens minted before key ids existed keep working.
//! A `kid` the set does not hold is refused ([`AuthError::UnknownKey`]):
//! removing a key from the set retires every token signed with it.

use crate::{token::key_id, AuthError, Claims, TokenKey};

/// The keys a gateway verifies tokens with, and the one it signs with.
#[derive(Clone, Debug)]
pub struct TokenKeys {
    /// For tokens without `kid`.
    default: TokenKey,
    /// `(kid, key)`; few, so a list.
    named: Vec<(String, TokenKey)>,
    /// Index into `named` of the signing key; `None`: the default key.
    signing: Option<usize>,
}

impl TokenKeys {
    /// Only the default key, which also signs.
    pub fn single(default: TokenKey) -> Self {
        TokenKeys { default, named: Vec::new(), signing: None }
    }

    /// Verify tokens whose `kid` is `kid` with `secret` too.
    pub fn with_key(mut self, kid: &str, secret: &[u8]) -> Self {
        self.named.retain(|(k, _)| k != kid);
        self.named.push((kid.to_owned(), TokenKey::with_kid(secret, kid)));
        self
    }

    /// Sign with the key named `kid`; `None` if the set has no such key.
    pub fn signing_with(mut self, kid: &str) -> Option<Self> {
        self.signing = Some(self.named.iter().position(|(k, _)| k == kid)?);
        Some(self)
    }

    /// The key new tokens are signed with.
    pub fn signer(&self) -> &TokenKey {
        match self.signing.and_then(|i| self.named.get(i)) {
            Some((_, key)) => key,
            None => &self.default,
        }
    }

    /// Check `token` at `now` (Unix seconds) with the key its `kid` names,
    /// or the default key if it names none.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        match key_id(token)? {
            None => self.default.verify(token, now),
            Some(kid) => match self.named.iter().find(|(k, _)| *k == kid) {
                Some((_, key)) => key.verify(token, now),
                None => Err(AuthError::UnknownKey),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::UserId;

    use super::*;

    #[test]
    fn tokens_are_checked_with_the_key_their_kid_names_and_unknown_kids_are_refused() {
        let now = crate::unix_now();
        let old = TokenKeys::single(TokenKey::new(b"default")).with_key("k1", b"one");
        let rotated = old.clone().with_key("k2", b"two").signing_with("k2").unwrap();
        let by_k1 = old.clone().signing_with("k1").unwrap().signer().mint(UserId(1), now + 60);
        let by_k2 = rotated.signer().mint(UserId(2), now + 60);
        let plain = TokenKey::new(b"default").mint(UserId(3), now + 60);
        assert_eq!(rotated.verify(&by_k1, now).unwrap().user, UserId(1));
        assert_eq!(rotated.verify(&by_k2, now).unwrap().user, UserId(2));
        assert_eq!(rotated.verify(&plain, now).unwrap().user, UserId(3), "no kid: the default key");
        assert_eq!(old.verify(&by_k2, now), Err(AuthError::UnknownKey));
        let retired = TokenKeys::single(TokenKey::new(b"default")).with_key("k2", b"two");
        assert_eq!(retired.verify(&by_k1, now), Err(AuthError::UnknownKey));
        // A kid naming the wrong secret's key fails the signature.
        let forged = TokenKey::with_kid(b"guess", "k2").mint(UserId(4), now + 60);
        assert_eq!(rotated.verify(&forged, now), Err(AuthError::Signature));
        assert!(old.clone().signing_with("nope").is_none());
    }
}

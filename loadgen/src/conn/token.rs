//! Tokens minted locally with the gateway's own signing code.
//!
//! The load generator is given the gateway's `--secret` and signs one HS256
//! token per connection with `chatgw_auth::TokenKey`, the same code the
//! gateway verifies with, so the two can never disagree about the
//! format. Minting is an HMAC over ~60 bytes: a few microseconds, cheap
//! next to a TCP handshake.

use chatgw_auth::{unix_now, TokenKey};
use chatgw_protocol::UserId;

/// How long minted tokens are valid: longer than any run.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

/// Signs tokens for any user.
#[derive(Clone, Debug)]
pub(crate) struct Minter {
    key: TokenKey,
    exp: u64,
}

impl Minter {
    /// A minter for the gateway's secret.
    pub(crate) fn new(secret: &str) -> Self {
        Minter { key: TokenKey::new(secret.as_bytes()), exp: unix_now() + TOKEN_TTL_SECS }
    }

    /// A token for `user`.
    pub(crate) fn mint(&self, user: u64) -> String {
        self.key.mint(UserId(user), self.exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_accepts_what_we_mint() {
        let m = Minter::new("s");
        let t = m.mint(42);
        let claims = TokenKey::new(b"s").verify(&t, unix_now()).unwrap();
        assert_eq!(claims.user, UserId(42));
        assert!(TokenKey::new(b"other").verify(&t, unix_now()).is_err());
    }
}

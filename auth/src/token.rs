//! Connection authentication: HS256 JSON Web Tokens.
//!
//! A token's `sub` is the numeric user id (as a string, or a number), its
//! `exp` the expiry in Unix seconds, and an optional `nbf` the second it
//! becomes valid (a token issued for later is refused until then), and an
//! optional `iat` the second it was issued: after a user's sessions are
//! revoked the gateway refuses that user's tokens issued before the
//! revocation, and those without `iat` (docs/PROTOCOL.md, "Session
//! revocation"); [`TokenKey::mint`] always writes `iat`. An optional `dev`
//! names the device the token is for (1 to 32 bytes of `A-Z a-z 0-9 . _
//! -`, see [`DeviceName`]): a named device can be listed and logged out on
//! its own (docs/PROTOCOL.md, "Devices"). Only HS256 is
//! accepted: the header's
//! `alg` is checked before anything else, so `none` and algorithm-confusion
//! tokens are refused. The signature is compared in constant time.
//!
//! This is a few dozen lines on top of `hmac`/`sha2` rather than a JWT crate
//! because the gateway needs exactly one algorithm and the verification runs
//! on the event loop for every handshake. Issuers (the `chatgw token`
//! command, the load generator, tests) mint with the same code the gateway
//! verifies with, so the two cannot disagree about the format.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use chatgw_protocol::{DeviceName, UserId};

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not HS256.
    #[error("unsupported token algorithm (only HS256)")]
    Algorithm,
    /// The signature does not match the server's secret.
    #[error("bad token signature")]
    Signature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// `sub` is not a user id.
    #[error("token subject is not a numeric user id")]
    Subject,
    /// The user's sessions were revoked after this token was issued (or
    /// the token has no `iat`, so when it was issued is unknown). Not
    /// found by [`TokenKey::verify`], which knows no revocations: the
    /// gateway reports it after checking the claims against them.
    #[error("token revoked: issued before the user's sessions were revoked; get a new token")]
    Revoked,
    /// `dev` is not a device name.
    #[error("token device (`dev`) must be 1 to 32 bytes of A-Z a-z 0-9 . _ -")]
    Device,
    /// The token's device was logged out (or revoked) after the token was
    /// issued (or the token has no `iat`). Like [`AuthError::Revoked`], the
    /// gateway reports it, not [`TokenKey::verify`].
    #[error("token revoked: issued before this device was logged out; get a new token")]
    DeviceRevoked,
    /// The header's `kid` names no key the server verifies with (a key
    /// retired from the configuration, or never there).
    #[error("unknown token key id")]
    UnknownKey,
}

/// Verified claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The user.
    pub user: UserId,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// When the token was issued, Unix seconds, if it says.
    pub iat: Option<u64>,
    /// The device the token is for (`dev`), if it names one.
    pub device: Option<DeviceName>,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    /// The key id (see `keys`); `None` for the default key.
    #[serde(default, borrow)]
    kid: Option<&'a str>,
}

/// The `kid` in `token`'s header, if the header can be read and has one.
pub(crate) fn key_id(token: &str) -> Result<Option<String>, AuthError> {
    let h = token.split('.').next().ok_or(AuthError::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(h).map_err(|_| AuthError::Malformed)?;
    let header: Header<'_> = serde_json::from_slice(&json).map_err(|_| AuthError::Malformed)?;
    Ok(header.kid.map(str::to_owned))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Sub {
    Text(String),
    Number(u64),
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Sub,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    dev: Option<serde_json::Value>,
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
    /// Written into the header of the tokens this key signs (`kid`).
    kid: Option<String>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// A key from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        TokenKey { secret: secret.to_vec(), kid: None }
    }

    /// A key from a secret, named `kid`: the tokens it signs carry the
    /// name in their header, so a verifier holding several keys
    /// ([`TokenKeys`](crate::TokenKeys)) knows which to check them with.
    pub fn with_kid(secret: &[u8], kid: &str) -> Self {
        TokenKey { secret: secret.to_vec(), kid: Some(kid.to_owned()) }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// A token for `user` that expires at `exp` (Unix seconds), issued now
    /// (`iat` is the current second).
    pub fn mint(&self, user: UserId, exp: u64) -> String {
        self.mint_issued(user, unix_now(), exp)
    }

    /// A token for `user` issued at `iat` that expires at `exp` (Unix
    /// seconds).
    pub fn mint_issued(&self, user: UserId, iat: u64, exp: u64) -> String {
        self.sign(&format!(r#"{{"sub":"{user}","iat":{iat},"exp":{exp}}}"#))
    }

    /// A token for `user` on device `device`, issued at `iat`, that
    /// expires at `exp` (Unix seconds).
    pub fn mint_device(&self, user: UserId, device: DeviceName, iat: u64, exp: u64) -> String {
        self.sign(&format!(r#"{{"sub":"{user}","dev":"{device}","iat":{iat},"exp":{exp}}}"#))
    }

    /// A token carrying `claims` (a JSON object, written as given), signed
    /// with this key: for issuers that need claims `mint` does not write,
    /// such as `nbf`.
    pub fn sign(&self, claims: &str) -> String {
        let header = match &self.kid {
            None => URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            Some(kid) => URL_SAFE_NO_PAD
                .encode(serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string().as_bytes()),
        };
        let claims = URL_SAFE_NO_PAD.encode(claims);
        let signing_input = format!("{header}.{claims}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Check `token` at time `now` (Unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD.decode(h).map_err(|_| AuthError::Malformed)?;
        let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..h.len() + 1 + c.len()]);
        mac.verify_slice(&sig).map_err(|_| AuthError::Signature)?;
        let claims_json = URL_SAFE_NO_PAD.decode(c).map_err(|_| AuthError::Malformed)?;
        let claims: RawClaims = serde_json::from_slice(&claims_json).map_err(|_| AuthError::Malformed)?;
        if claims.exp <= now {
            return Err(AuthError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(AuthError::NotYetValid);
        }
        let user = match claims.sub {
            Sub::Number(n) => n,
            Sub::Text(t) => t.parse::<UserId>().map_err(|_| AuthError::Subject)?.0,
        };
        let device = match claims.dev {
            None => None,
            Some(serde_json::Value::String(d)) => Some(DeviceName::new(&d).ok_or(AuthError::Device)?),
            Some(_) => return Err(AuthError::Device),
        };
        Ok(Claims { user: UserId(user), exp: claims.exp, iat: claims.iat, device })
    }
}

/// Current Unix time in seconds.
pub fn unix_now() -> u64 {
    chatgw_protocol::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_verify_round_trip() {
        let k = TokenKey::new(b"secret");
        let t = k.mint_issued(UserId(42), 900, 2000);
        assert_eq!(k.verify(&t, 1000), Ok(Claims { user: UserId(42), exp: 2000, iat: Some(900), device: None }));
        let now = unix_now();
        let t = k.mint(UserId(42), now + 60);
        assert_eq!(k.verify(&t, now).map(|c| c.iat), Ok(Some(now)), "mint writes iat: the current second");
    }

    #[test]
    fn refuses_forged_expired_and_malformed() {
        let k = TokenKey::new(b"secret");
        let t = k.mint(UserId(42), 2000);
        assert_eq!(TokenKey::new(b"other").verify(&t, 1000), Err(AuthError::Signature));
        assert_eq!(k.verify(&t, 2000), Err(AuthError::Expired));
        assert_eq!(k.verify("a.b", 0), Err(AuthError::Malformed));
        assert_eq!(k.verify("a.b.c.d", 0), Err(AuthError::Malformed));
        assert_eq!(k.verify("!!.b.c", 0), Err(AuthError::Malformed));
        // Tampered claims with the original signature.
        let mut parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(br#"{"sub":"1","exp":9999999999}"#);
        parts[1] = &evil;
        assert_eq!(k.verify(&parts.join("."), 1000), Err(AuthError::Signature));
        // alg=none
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"1","exp":9999999999}"#)
        );
        assert_eq!(k.verify(&none, 1000), Err(AuthError::Algorithm));
    }

    #[test]
    fn a_token_is_refused_before_its_not_before_time() {
        let k = TokenKey::new(b"secret");
        let t = k.sign(r#"{"sub":"7","exp":2000,"nbf":1500}"#);
        assert_eq!(k.verify(&t, 1499), Err(AuthError::NotYetValid));
        assert_eq!(k.verify(&t, 1500), Ok(Claims { user: UserId(7), exp: 2000, iat: None, device: None }));
        // Expiry is reported first: such a token will never be valid.
        assert_eq!(k.verify(&k.sign(r#"{"sub":"7","exp":10,"nbf":20}"#), 15), Err(AuthError::Expired));
    }

    #[test]
    fn a_device_name_is_checked() {
        let k = TokenKey::new(b"secret");
        let phone = DeviceName::new("phone").unwrap();
        let t = k.mint_device(UserId(7), phone, 900, 2000);
        assert_eq!(k.verify(&t, 1000).map(|c| c.device), Ok(Some(phone)));
        let long = format!("\"{}\"", "x".repeat(33));
        for bad in ["\"\"", "\"my phone\"", "7", "[]", long.as_str()] {
            let t = k.sign(&format!(r#"{{"sub":"7","exp":2000,"dev":{bad}}}"#));
            assert_eq!(k.verify(&t, 1000), Err(AuthError::Device), "{bad}");
        }
    }

    #[test]
    fn subject_must_be_numeric() {
        let k = TokenKey::new(b"s");
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"alice","exp":99}"#);
        let input = format!("{header}.{claims}");
        let mut mac = k.mac();
        mac.update(input.as_bytes());
        let t = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        assert_eq!(k.verify(&t, 1), Err(AuthError::Subject));
    }
}

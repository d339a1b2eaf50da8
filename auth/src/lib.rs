//! How a chatgw client proves who it is: HS256 JSON Web Tokens, signed
//! ([`TokenKey::mint`]) and verified ([`TokenKey::verify`]) with one shared
//! secret, as `docs/PROTOCOL.md` section 1.2 specifies them.
//!
//! A crate of its own because the gateway (which verifies) and the load
//! generator and tests (which mint) both need it, and the load generator
//! must not depend on the gateway. It is not in `chatgw-protocol` because
//! that crate is the serde-only wire format every client and fuzz target
//! builds; tokens bring HMAC, SHA-256 and base64, which only issuers and the
//! verifier need.
//!
//! What it is not: a JWT library. One algorithm, four claims (`sub`, `exp`,
//! `nbf`, `iat`), no key rotation.

#![warn(missing_docs)]

mod keys;
mod token;

pub use keys::TokenKeys;
pub use token::{unix_now, AuthError, Claims, TokenKey};

//! Connection authentication: HS256 JSON Web Tokens, from the `chatgw-auth`
//! crate (shared with the issuers: `chatgw token`, the load generator,
//! tests). Re-exported so the gateway's callers keep one path.

pub use chatgw_auth::{unix_now, AuthError, Claims, TokenKey};

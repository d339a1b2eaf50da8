//! Decoding and verifying the compact JWS a client presented, with ring.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::signature::UnparsedPublicKey;
use serde_json::Value;

/// A verified token's header and claims.
pub(crate) struct Verified {
    pub(crate) header: Value,
    pub(crate) claims: Value,
}

/// Splits, decodes and checks the signature of `token` under `key` (algorithm fixed by the
/// key's type); the caller checks header and claims.
pub(crate) fn verify(token: &str, key: &UnparsedPublicKey<Vec<u8>>) -> Result<Verified, String> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not three dot-separated parts".into());
    };
    let decode =
        |part: &str, what: &str| URL_SAFE_NO_PAD.decode(part).map_err(|e| format!("{what}: bad base64url: {e}"));
    let json = |bytes: Vec<u8>, what: &str| {
        serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("{what}: not JSON: {e}"))
    };
    let signing_input = &token[..header.len() + 1 + claims.len()];
    key.verify(signing_input.as_bytes(), &decode(signature, "signature")?)
        .map_err(|_| "signature does not verify with the test public key".to_owned())?;
    Ok(Verified {
        header: json(decode(header, "header")?, "header")?,
        claims: json(decode(claims, "claims")?, "claims")?,
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

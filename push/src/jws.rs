//! Compact JWS (RFC 7515) signing for the two provider credentials: ES256 for APNs
//! provider tokens, RS256 for the FCM service-account assertion. The cryptography is
//! ring's; this module only encodes header and claims and loads PKCS#8 PEM keys.

use std::path::Path;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::{
    rand::SystemRandom,
    signature::{EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256},
};
use rustls_pki_types::{pem::PemObject, PrivatePkcs8KeyDer};
use serde_json::Value;

use crate::error::{invalid, ConfigError};

/// A private key able to sign one JWS algorithm.
pub(crate) enum SigningKey {
    /// ECDSA P-256 with SHA-256, as APNs `.p8` keys are.
    Es256(EcdsaKeyPair),
    /// RSASSA-PKCS1-v1_5 with SHA-256, as Google service-account keys are.
    Rs256(RsaKeyPair),
}

impl SigningKey {
    /// Loads a PKCS#8 PEM ECDSA P-256 key (an APNs `.p8` file's content).
    pub(crate) fn es256_from_pem(pem: &[u8], origin: &Path) -> Result<SigningKey, ConfigError> {
        let der = pkcs8_from_pem(pem, origin)?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der(), &SystemRandom::new())
            .map(SigningKey::Es256)
            .map_err(|e| invalid(origin, format!("not a PKCS#8 P-256 key: {e}")))
    }

    /// Loads a PKCS#8 PEM RSA key (a service account's `private_key`).
    pub(crate) fn rs256_from_pem(pem: &[u8], origin: &Path) -> Result<SigningKey, ConfigError> {
        let der = pkcs8_from_pem(pem, origin)?;
        RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map(SigningKey::Rs256)
            .map_err(|e| invalid(origin, format!("not a PKCS#8 RSA key: {e}")))
    }

    fn alg(&self) -> &'static str {
        match self {
            SigningKey::Es256(_) => "ES256",
            SigningKey::Rs256(_) => "RS256",
        }
    }

    /// `header.claims.signature`, base64url without padding. `header` gets its `alg`
    /// from the key; the caller adds `kid`/`typ` as its provider requires.
    pub(crate) fn sign(&self, mut header: serde_json::Map<String, Value>, claims: &Value) -> Result<String, String> {
        header.insert("alg".into(), Value::from(self.alg()));
        let mut input = URL_SAFE_NO_PAD.encode(Value::Object(header).to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match self {
            SigningKey::Es256(key) => key.sign(&rng, input.as_bytes()).map_err(|e| e.to_string())?.as_ref().to_vec(),
            SigningKey::Rs256(key) => {
                let mut out = vec![0; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut out).map_err(|e| e.to_string())?;
                out
            }
        };
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(input)
    }
}

fn pkcs8_from_pem(pem: &[u8], origin: &Path) -> Result<PrivatePkcs8KeyDer<'static>, ConfigError> {
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map_err(|e| invalid(origin, format!("expected a `BEGIN PRIVATE KEY` PEM block: {e}")))
}

/// Seconds since the Unix epoch, as JWT `iat`/`exp` and APNs `apns-expiration` want.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

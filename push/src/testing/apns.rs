//! The APNs stand-in. Checks, per Apple's "Sending notification requests to APNs" and
//! "Establishing a token-based connection to APNs":
//! HTTP/2 only; `POST /3/device/<hex token>`; `authorization: bearer <JWT>` whose header
//! is `{alg: ES256, kid: <key id>}` and claims `{iss: <team id>, iat}` (less than an hour
//! old), signed by the test `.p8` key; `apns-topic` = the bundle id; `apns-push-type:
//! alert`; `apns-priority` 5 or 10; numeric `apns-expiration`; `apns-collapse-id` of at
//! most 64 bytes; a JSON payload of at most 4 KiB with an `aps.alert` and no message text.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Mutex,
};

use hyper::http::{Method, Version};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde_json::{json, Value};

use super::{
    jwt::{now, verify},
    server::{Arrived, Log, Rules},
    Reply, TestServer,
};
use crate::ApnsConfig;

/// A running APNs stand-in.
pub type ApnsServer = TestServer<ApnsRules>;

const TEAM_ID: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.example.chatgw";

/// What [`ApnsServer`] checks; created by [`ApnsServer::start`].
pub struct ApnsRules {
    key_file: PathBuf,
    public_key: UnparsedPublicKey<Vec<u8>>,
    tokens: Mutex<Tokens>,
}

#[derive(Default)]
struct Tokens {
    seen: Vec<String>,
    expired: Vec<String>,
}

impl ApnsServer {
    /// Starts a server with a fresh `.p8` signing key.
    pub async fn start() -> ApnsServer {
        super::server::launch(true, |_addr: SocketAddr, dir: &Path| {
            // Test set-up: a failure is a broken environment.
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
            let key_file = dir.join(format!("AuthKey_{KEY_ID}.p8"));
            std::fs::write(&key_file, key.serialize_pem()).expect("write .p8");
            let public_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_key_raw().to_vec());
            ApnsRules { key_file, public_key, tokens: Mutex::default() }
        })
        .await
    }

    /// A client configuration for this server (default token lifetime).
    pub fn config(&self) -> ApnsConfig {
        ApnsConfig { endpoint: self.url(), ..ApnsConfig::new(TEAM_ID, KEY_ID, &self.rules.key_file, TOPIC) }
    }

    /// The same as an operator's `--push` spec string.
    pub fn spec(&self) -> String {
        format!(
            "apns:key-file={},key-id={KEY_ID},team-id={TEAM_ID},topic={TOPIC},endpoint={}",
            self.rules.key_file.display(),
            self.url()
        )
    }

    /// Distinct provider tokens (JWTs) that passed verification, in order of first use.
    pub fn provider_tokens(&self) -> Vec<String> {
        self.rules.tokens.lock().unwrap_or_else(|p| p.into_inner()).seen.clone()
    }

    /// From now on, every token seen so far is answered 403 `ExpiredProviderToken`.
    pub fn expire_provider_tokens(&self) {
        let mut tokens = self.rules.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let seen = tokens.seen.clone();
        tokens.expired.extend(seen);
    }
}

impl Rules for ApnsRules {
    fn handle(&self, request: &Arrived, log: &Log) -> Reply {
        let refuse = |problem: String, status: u16, reason: &str| log.refuse(problem, Reply::apns(status, reason));
        if request.version != Version::HTTP_2 {
            return refuse(format!("APNs needs HTTP/2, got {:?}", request.version), 400, "BadRequest");
        }
        if request.method != Method::POST {
            return refuse(format!("method {} instead of POST", request.method), 405, "MethodNotAllowed");
        }
        let Some(token) = request.path.strip_prefix("/3/device/") else {
            return refuse(format!("path {} is not /3/device/<token>", request.path), 404, "BadPath");
        };
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return refuse(format!("device token {token:?} is not hex"), 400, "BadDeviceToken");
        }
        let jwt = match request.header("authorization").and_then(|a| a.strip_prefix("bearer ")) {
            Some(jwt) => jwt,
            None => return refuse("no `authorization: bearer <jwt>`".into(), 403, "MissingProviderToken"),
        };
        if let Err(problem) = self.check_provider_token(jwt) {
            return refuse(problem, 403, "InvalidProviderToken");
        }
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            if tokens.expired.iter().any(|t| t == jwt) {
                return Reply::apns(403, "ExpiredProviderToken");
            }
            if !tokens.seen.iter().any(|t| t == jwt) {
                tokens.seen.push(jwt.to_owned());
            }
        }
        let header = |name: &str| request.header(name).unwrap_or_default();
        if header("apns-topic") != TOPIC {
            return refuse(format!("apns-topic {:?} is not {TOPIC}", header("apns-topic")), 400, "BadTopic");
        }
        if header("apns-push-type") != "alert" {
            return refuse(format!("apns-push-type {:?}", header("apns-push-type")), 400, "InvalidPushType");
        }
        if !matches!(header("apns-priority"), "5" | "10") {
            return refuse(format!("apns-priority {:?}", header("apns-priority")), 400, "BadPriority");
        }
        if header("apns-expiration").parse::<u64>().is_err() {
            return refuse(format!("apns-expiration {:?}", header("apns-expiration")), 400, "BadExpirationDate");
        }
        let collapse_id = header("apns-collapse-id");
        if collapse_id.is_empty() || collapse_id.len() > 64 {
            return refuse(format!("apns-collapse-id {collapse_id:?} (1..=64 bytes)"), 400, "BadCollapseId");
        }
        if request.body.len() > 4096 {
            return refuse(format!("payload of {} bytes", request.body.len()), 413, "PayloadTooLarge");
        }
        let payload: Value = match serde_json::from_slice(&request.body) {
            Ok(payload) => payload,
            Err(e) => return refuse(format!("payload is not JSON: {e}"), 400, "PayloadEmpty"),
        };
        if let Err(problem) = check_payload(&payload) {
            return refuse(problem, 400, "BadRequest");
        }
        let apns_id = format!("{:08X}-0000-4000-8000-000000000000", now() as u32);
        log.accept(
            request,
            token,
            payload,
            Reply { status: 200, headers: vec![("apns-id".into(), apns_id)], body: String::new() },
        )
    }
}

impl ApnsRules {
    fn check_provider_token(&self, jwt: &str) -> Result<(), String> {
        let verified = verify(jwt, &self.public_key).map_err(|e| format!("provider token: {e}"))?;
        if verified.header.get("alg") != Some(&json!("ES256")) || verified.header.get("kid") != Some(&json!(KEY_ID)) {
            return Err(format!("provider token header {} (want alg ES256, kid {KEY_ID})", verified.header));
        }
        if verified.claims.get("iss") != Some(&json!(TEAM_ID)) {
            return Err(format!("provider token claims {} (want iss {TEAM_ID})", verified.claims));
        }
        let Some(iat) = verified.claims.get("iat").and_then(Value::as_u64) else {
            return Err(format!("provider token claims {} lack a numeric iat", verified.claims));
        };
        let now = now();
        if iat + 3600 < now || iat > now + 60 {
            return Err(format!("provider token iat {iat} is outside the hour before now ({now})"));
        }
        Ok(())
    }
}

fn check_payload(payload: &Value) -> Result<(), String> {
    let aps = payload.get("aps").and_then(Value::as_object).ok_or("payload lacks an `aps` dictionary")?;
    let alert = aps.get("alert").ok_or("aps lacks an `alert` (apns-push-type alert)")?;
    if alert.get("body").is_some() || alert.is_string() {
        return Err(format!("the alert carries text: {alert}"));
    }
    if payload.get("conversation").and_then(Value::as_str).is_none() || payload.get("count").is_none() {
        return Err(format!("payload lacks conversation/count: {payload}"));
    }
    Ok(())
}

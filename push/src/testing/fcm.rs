//! The FCM stand-in, token endpoint included. Checks, per Google's "Authorize send
//! requests" (service-account OAuth2, RFC 7523) and the HTTP v1 `messages.send` reference:
//!
//! * `POST /token`, form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`,
//!   JWT header `{alg: RS256, typ: JWT, kid: private_key_id}`, claims `{iss: client_email,
//!   scope: ...firebase.messaging, aud: token_uri, iat, exp}` with `exp - iat` at most one
//!   hour, signed by the service account's key; answered `{access_token, expires_in, token_type}`.
//! * `POST /v1/projects/<project_id>/messages:send` with `authorization: Bearer <access token>`
//!   issued here and unexpired (401 `UNAUTHENTICATED` otherwise), a JSON body
//!   `{"message":{"token", "data":{string values}, "android":{"collapse_key","priority"},
//!   "apns":{"headers":{"apns-collapse-id"}}}}` without a `notification` text.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use hyper::http::Method;
use ring::signature::{KeyPair, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls_pki_types::{pem::PemObject, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

use super::{
    jwt::{now, verify},
    server::{Arrived, Log, Rules},
    Reply, TestServer,
};
use crate::{
    fcm::{GRANT_TYPE, SCOPE},
    FcmConfig,
};

/// A running FCM stand-in.
pub type FcmServer = TestServer<FcmRules>;

/// A 2048-bit RSA key made for these tests only (`openssl genpkey -algorithm RSA`).
const SERVICE_ACCOUNT_KEY: &str = include_str!("fcm_test_key.pem");
const PROJECT_ID: &str = "chatgw-test";
const CLIENT_EMAIL: &str = "push@chatgw-test.iam.gserviceaccount.com";
const PRIVATE_KEY_ID: &str = "0123456789abcdef";

/// What [`FcmServer`] checks; created by [`FcmServer::start`].
pub struct FcmRules {
    token_uri: String,
    service_account_file: PathBuf,
    public_key: UnparsedPublicKey<Vec<u8>>,
    state: Mutex<State>,
}

struct State {
    exchanges: usize,
    exchange_script: VecDeque<Reply>,
    lifetime: Duration,
    issued: Vec<(String, Instant)>,
}

impl FcmServer {
    /// Starts a server and writes a service-account JSON key whose `token_uri` points at it.
    pub async fn start() -> FcmServer {
        super::server::launch(false, |addr: SocketAddr, dir: &Path| {
            let token_uri = format!("https://{addr}/token");
            let service_account_file = dir.join("service-account.json");
            let account = json!({
                "type": "service_account",
                "project_id": PROJECT_ID,
                "private_key_id": PRIVATE_KEY_ID,
                "private_key": SERVICE_ACCOUNT_KEY,
                "client_email": CLIENT_EMAIL,
                "client_id": "100000000000000000001",
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": token_uri,
            });
            // Test set-up: failures are a broken environment.
            std::fs::write(&service_account_file, account.to_string()).expect("write service account");
            let der = PrivatePkcs8KeyDer::from_pem_slice(SERVICE_ACCOUNT_KEY.as_bytes()).expect("test key PEM");
            let key = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("test RSA key");
            let public_key = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref().to_vec());
            let state = State {
                exchanges: 0,
                exchange_script: VecDeque::new(),
                lifetime: Duration::from_secs(3599),
                issued: Vec::new(),
            };
            FcmRules { token_uri, service_account_file, public_key, state: Mutex::new(state) }
        })
        .await
    }

    /// A client configuration for this server.
    pub fn config(&self) -> FcmConfig {
        FcmConfig { endpoint: self.url(), ..FcmConfig::new(&self.rules.service_account_file) }
    }

    /// The same as an operator's `--push` spec string.
    pub fn spec(&self) -> String {
        format!("fcm:service-account={},endpoint={}", self.rules.service_account_file.display(), self.url())
    }

    /// Answers the next valid token requests with these replies (e.g. 503), in order.
    pub fn respond_to_exchanges_with(&self, replies: impl IntoIterator<Item = Reply>) {
        self.rules.state().exchange_script.extend(replies);
    }

    /// Successful token exchanges so far.
    pub fn token_exchanges(&self) -> usize {
        self.rules.state().exchanges
    }

    /// `expires_in` of access tokens issued from now on (default 3599 s).
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.rules.state().lifetime = lifetime;
    }

    /// Invalidates every access token issued so far: sends using them get 401.
    pub fn revoke_access_tokens(&self) {
        self.rules.state().issued.clear();
    }
}

impl Rules for FcmRules {
    fn handle(&self, request: &Arrived, log: &Log) -> Reply {
        if request.method != Method::POST {
            return log.refuse(format!("method {}", request.method), Reply::status(405));
        }
        if request.path == "/token" {
            return self.exchange(request, log);
        }
        let send_path = format!("/v1/projects/{PROJECT_ID}/messages:send");
        if request.path != send_path {
            let reply = Reply::fcm(404, "NOT_FOUND", None, "path not found");
            return log.refuse(format!("path {} is not {send_path}", request.path), reply);
        }
        let bearer = request.header("authorization").and_then(|a| a.strip_prefix("Bearer "));
        let known = bearer.and_then(|token| {
            self.state().issued.iter().find(|(issued, _)| issued == token).map(|(_, expiry)| *expiry)
        });
        match known {
            Some(expiry) if Instant::now() < expiry => {}
            _ => {
                return Reply::fcm(401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials.");
            }
        }
        if !request.header("content-type").unwrap_or_default().starts_with("application/json") {
            let reply = Reply::fcm(400, "INVALID_ARGUMENT", None, "content type");
            return log.refuse(format!("content-type {:?}", request.header("content-type")), reply);
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match check_message(&body) {
            Ok(token) => {
                let ok = Reply::json(200, &json!({ "name": format!("projects/{PROJECT_ID}/messages/{}", now()) }));
                log.accept(request, &token, body, ok)
            }
            Err(problem) => {
                log.refuse(problem, Reply::fcm(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), "bad message"))
            }
        }
    }
}

impl FcmRules {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn exchange(&self, request: &Arrived, log: &Log) -> Reply {
        let invalid_grant = |problem: String| {
            let body = json!({ "error": "invalid_grant", "error_description": problem });
            log.refuse(problem, Reply::json(400, &body))
        };
        if !request.header("content-type").unwrap_or_default().starts_with("application/x-www-form-urlencoded") {
            return invalid_grant(format!("token request content-type {:?}", request.header("content-type")));
        }
        let form = String::from_utf8_lossy(&request.body);
        let field = |name: &str| {
            form.split('&')
                .find_map(|pair| pair.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .map(percent_decode)
        };
        if field("grant_type").as_deref() != Some(GRANT_TYPE) {
            return invalid_grant(format!("grant_type {:?}", field("grant_type")));
        }
        let Some(assertion) = field("assertion") else { return invalid_grant("no assertion".into()) };
        let verified = match verify(&assertion, &self.public_key) {
            Ok(verified) => verified,
            Err(problem) => return invalid_grant(format!("assertion: {problem}")),
        };
        let (header, claims) = (&verified.header, &verified.claims);
        if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != PRIVATE_KEY_ID {
            return invalid_grant(format!("assertion header {header}"));
        }
        let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
        let now = now();
        let scope_ok = claims["scope"].as_str().is_some_and(|s| s.split(' ').any(|s| s == SCOPE));
        if claims["iss"] != CLIENT_EMAIL || !scope_ok || claims["aud"] != self.token_uri.as_str() {
            return invalid_grant(format!("assertion claims {claims}"));
        }
        if iat > now + 60 || iat + 300 < now || exp <= iat || exp - iat > 3600 {
            return invalid_grant(format!("assertion iat {iat} exp {exp} (now {now}, at most one hour)"));
        }
        let mut state = self.state();
        if let Some(reply) = state.exchange_script.pop_front() {
            return reply;
        }
        state.exchanges += 1;
        let token = format!("ya29.test-{}", state.exchanges);
        let lifetime = state.lifetime;
        let expiry =
            Instant::now().checked_add(lifetime).unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        state.issued.push((token.clone(), expiry));
        Reply::json(200, &json!({ "access_token": token, "expires_in": lifetime.as_secs(), "token_type": "Bearer" }))
    }
}

/// Checks the message and returns its token.
fn check_message(body: &Value) -> Result<String, String> {
    let message = &body["message"];
    let token = message["token"].as_str().filter(|t| !t.is_empty()).ok_or(format!("no message.token in {body}"))?;
    let data = message["data"].as_object().ok_or(format!("no message.data in {body}"))?;
    if let Some((key, _)) = data.iter().find(|(_, v)| !v.is_string()) {
        return Err(format!("message.data.{key} is not a string (FCM data values are strings)"));
    }
    if !data.contains_key("conversation") || !data.contains_key("count") {
        return Err(format!("message.data lacks conversation/count: {body}"));
    }
    if message.get("notification").is_some() {
        return Err(format!("message carries notification text: {body}"));
    }
    let collapse_key = message["android"]["collapse_key"].as_str().ok_or(format!("no android.collapse_key: {body}"))?;
    if !matches!(message["android"]["priority"].as_str(), Some("high" | "normal")) {
        return Err(format!("android.priority: {body}"));
    }
    if message["apns"]["headers"]["apns-collapse-id"].as_str() != Some(collapse_key) {
        return Err(format!("apns.headers.apns-collapse-id differs from the collapse key: {body}"));
    }
    Ok(token.to_owned())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

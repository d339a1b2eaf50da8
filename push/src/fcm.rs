//! Firebase Cloud Messaging HTTP v1.
//!
//! Authentication is OAuth2 for a service account: an RS256 JWT assertion (claims `iss`
//! client_email, `scope` firebase.messaging, `aud` token_uri, `iat`, `exp` one hour later)
//! is exchanged at `token_uri` for an access token, which is cached until `refresh_margin`
//! before its `expires_in` and dropped at once when a send is answered 401. One exchange
//! serves every concurrent send: the cache lock is held across the exchange.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::{
    error::{invalid, read_file},
    http::{answer, read_answer, retry_after, Answer, Attempt},
    jws::{unix_now, SigningKey},
    ConfigError, FcmConfig, Notification,
};

/// The OAuth2 scope FCM sends need.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of a JWT-bearer exchange (RFC 7523).
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

pub(crate) struct Fcm {
    client: reqwest::Client,
    config: FcmConfig,
    account: ServiceAccount,
    key: SigningKey,
    access: Mutex<Option<AccessToken>>,
}

#[derive(Clone)]
struct AccessToken {
    token: String,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

impl Fcm {
    pub(crate) fn new(config: &FcmConfig, client: reqwest::Client) -> Result<Fcm, ConfigError> {
        let path = &config.service_account_file;
        let account: ServiceAccount = serde_json::from_slice(&read_file(path)?)
            .map_err(|e| invalid(path, format!("not a service-account JSON key: {e}")))?;
        let key = SigningKey::rs256_from_pem(account.private_key.as_bytes(), path)?;
        Ok(Fcm { client, config: config.clone(), account, key, access: Mutex::new(None) })
    }

    /// A valid access token, exchanging a new assertion when none is cached or it is
    /// about to expire. `exchanged` is set when an exchange happened.
    async fn access_token(&self, exchanged: &mut bool) -> Result<String, Attempt> {
        let mut slot = self.access.lock().await;
        if let Some(token) = slot.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.token.clone());
        }
        let now = unix_now();
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), Value::from("JWT"));
        if let Some(kid) = &self.account.private_key_id {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.account.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = self.key.sign(header, &claims).map_err(Attempt::Permanent)?;
        let form = format!("grant_type={}&assertion={assertion}", GRANT_TYPE.replace(':', "%3A"));
        let response = self
            .client
            .post(&self.account.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(Attempt::from_transport)?;
        let status = response.status().as_u16();
        let wait = retry_after(response.headers());
        let body = read_answer(response).await;
        if status != 200 {
            let reason = format!("token exchange {status}: {}", String::from_utf8_lossy(&body));
            return Err(match status {
                429 | 500..=599 => Attempt::Retry { reason, retry_after: wait },
                _ => Attempt::Permanent(reason),
            });
        }
        let granted: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Attempt::Retry { reason: format!("token exchange answer: {e}"), retry_after: None })?;
        // Google grants an hour; a day bounds what a confused endpoint could make us keep.
        let lifetime = Duration::from_secs(granted.expires_in.min(24 * 3600));
        let early = self.config.refresh_margin.min(lifetime / 2);
        *slot =
            Some(AccessToken { token: granted.access_token.clone(), refresh_at: Instant::now() + lifetime - early });
        *exchanged = true;
        Ok(granted.access_token)
    }

    async fn drop_token(&self, token: &str) {
        let mut slot = self.access.lock().await;
        if slot.as_ref().is_some_and(|t| t.token == token) {
            *slot = None;
        }
    }

    pub(crate) async fn attempt(&self, n: &Notification, exchanged: &mut bool) -> Attempt {
        let token = match self.access_token(exchanged).await {
            Ok(token) => token,
            Err(attempt) => return attempt,
        };
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.config.endpoint.trim_end_matches('/'),
            self.account.project_id
        );
        let response = self
            .client
            .post(url)
            .bearer_auth(&token)
            .header("content-type", "application/json; charset=UTF-8")
            .body(message(n).to_string())
            .send()
            .await;
        let (status, wait, body) = match answer(response).await {
            Answer::Settled(attempt) => return attempt,
            Answer::Refused { status, retry_after, body } => (status, retry_after, body),
        };
        let attempt = classify(status, &body, wait);
        if matches!(attempt, Attempt::RetryNow(_)) {
            self.drop_token(&token).await;
        }
        attempt
    }
}

/// Google's "FCM error codes" table, as outcomes. `error` is the response body, e.g.
/// `{"error":{"code":404,"status":"NOT_FOUND","message":..,"details":[{"errorCode":"UNREGISTERED"}]}}`.
fn classify(status: u16, error: &Value, wait: Option<Duration>) -> Attempt {
    let error = &error["error"];
    let status_name = error["status"].as_str().unwrap_or_default();
    let message = error["message"].as_str().unwrap_or_default();
    let details = error["details"].as_array().map(Vec::as_slice).unwrap_or_default();
    let error_code = details.iter().find_map(|d| d["errorCode"].as_str()).unwrap_or(status_name);
    let names_token = message.contains("registration token")
        || details
            .iter()
            .any(|d| d["fieldViolations"].as_array().is_some_and(|v| v.iter().any(|f| f["field"] == "message.token")));
    let described = format!("FCM {status} {error_code}: {message}");
    match (status, error_code) {
        (_, "UNREGISTERED") | (404, _) => Attempt::Unregistered(error_code.to_owned()),
        (400, "INVALID_ARGUMENT") if names_token => Attempt::Unregistered(format!("INVALID_ARGUMENT: {message}")),
        (401, _) => Attempt::RetryNow(described),
        (429 | 500..=599, _) => Attempt::Retry { reason: described, retry_after: wait },
        _ => Attempt::Permanent(described),
    }
}

/// The v1 `messages:send` body: a data message (values are strings), collapsing per
/// conversation on Android and iOS, with no message text.
pub(crate) fn message(n: &Notification) -> Value {
    json!({
        "message": {
            "token": n.token,
            "data": {
                "conversation": n.conversation,
                "count": n.count.to_string(),
                "latest_event": n.latest_event,
            },
            "android": { "collapse_key": n.collapse_id, "priority": "high" },
            "apns": { "headers": { "apns-collapse-id": n.collapse_id } },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: &str, code: Option<&str>, message: &str) -> Value {
        let details =
            code.map(|c| json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}]));
        json!({"error": {"status": status, "message": message, "details": details}})
    }

    #[test]
    fn googles_answers_map_to_outcomes() {
        let unregistered = |s, v: &Value| matches!(classify(s, v, None), Attempt::Unregistered(_));
        assert!(unregistered(404, &error("NOT_FOUND", Some("UNREGISTERED"), "Requested entity was not found.")));
        assert!(unregistered(404, &error("NOT_FOUND", None, "")));
        let bad_token = error(
            "INVALID_ARGUMENT",
            Some("INVALID_ARGUMENT"),
            "The registration token is not a valid FCM registration token",
        );
        assert!(unregistered(400, &bad_token));
        let bad_payload = error("INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), "Invalid value at 'message.data'");
        assert!(matches!(classify(400, &bad_payload, None), Attempt::Permanent(_)));
        assert!(matches!(classify(401, &error("UNAUTHENTICATED", None, ""), None), Attempt::RetryNow(_)));
        for (status, name) in [(429, "QUOTA_EXCEEDED"), (500, "INTERNAL"), (503, "UNAVAILABLE")] {
            assert!(matches!(classify(status, &error(name, Some(name), ""), None), Attempt::Retry { .. }));
        }
        assert!(matches!(
            classify(403, &error("PERMISSION_DENIED", Some("SENDER_ID_MISMATCH"), ""), None),
            Attempt::Permanent(_)
        ));
        assert!(matches!(classify(500, &Value::Null, None), Attempt::Retry { .. }));
    }
}

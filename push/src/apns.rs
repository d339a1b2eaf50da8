//! Apple Push Notification service over HTTP/2 with token-based authentication.
//!
//! One ES256 provider token (header `{alg, kid}`, claims `{iss: team id, iat}`) is reused
//! for every request until `token_lifetime` passes: Apple refuses tokens older than an
//! hour and throttles refreshes (`TooManyProviderTokenUpdates`) more often than every
//! 20 minutes. A 403 `ExpiredProviderToken` drops it at once.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::{
    error::read_file,
    http::{answer, Answer, Attempt},
    jws::{unix_now, SigningKey},
    ApnsConfig, ConfigError, Notification,
};

/// The `loc-key` of the alert; the app's Localizable.strings turns it into text
/// (e.g. "%@ new messages"), with the count as its argument.
pub(crate) const ALERT_LOC_KEY: &str = "CHATGW_NEW_MESSAGES";

pub(crate) struct Apns {
    client: reqwest::Client,
    config: ApnsConfig,
    key: SigningKey,
    token: Mutex<Option<ProviderToken>>,
}

#[derive(Clone)]
struct ProviderToken {
    jwt: String,
    minted: Instant,
}

impl Apns {
    pub(crate) fn new(config: &ApnsConfig, client: reqwest::Client) -> Result<Apns, ConfigError> {
        let key = SigningKey::es256_from_pem(&read_file(&config.key_file)?, &config.key_file)?;
        Ok(Apns { client, config: config.clone(), key, token: Mutex::new(None) })
    }

    /// The current provider token, minted anew when absent or older than the lifetime.
    /// Returns whether it was minted now (for the stats).
    fn provider_token(&self) -> Result<(String, bool), String> {
        // The lock is never held across an await or a panic point, so it is not poisoned.
        let mut slot = self.token.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(token) = slot.as_ref().filter(|t| t.minted.elapsed() < self.config.token_lifetime) {
            return Ok((token.jwt.clone(), false));
        }
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), Value::from(self.config.key_id.as_str()));
        let claims = json!({ "iss": self.config.team_id, "iat": unix_now() });
        let jwt = self.key.sign(header, &claims).map_err(|e| format!("signing the provider token: {e}"))?;
        *slot = Some(ProviderToken { jwt: jwt.clone(), minted: Instant::now() });
        Ok((jwt, true))
    }

    /// Drops `jwt` if it is still the current token (another request may have replaced it).
    fn drop_token(&self, jwt: &str) {
        let mut slot = self.token.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.as_ref().is_some_and(|t| t.jwt == jwt) {
            *slot = None;
        }
    }

    pub(crate) async fn attempt(&self, n: &Notification, minted: &mut bool) -> Attempt {
        // Device tokens are hex; anything else cannot be one and must not reach the path.
        if n.token.is_empty() || !n.token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Attempt::Unregistered("BadDeviceToken (not a hex device token)".into());
        }
        let (jwt, fresh) = match self.provider_token() {
            Ok(token) => token,
            Err(reason) => return Attempt::Permanent(reason),
        };
        *minted |= fresh;
        let url = format!("{}/3/device/{}", self.config.endpoint.trim_end_matches('/'), n.token);
        let expiration = unix_now().saturating_add(self.config.expiration.as_secs());
        let response = self
            .client
            .post(url)
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", &self.config.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", &n.collapse_id)
            .header("content-type", "application/json")
            .body(payload(n).to_string())
            .send()
            .await;
        let (status, wait, body) = match answer(response).await {
            Answer::Settled(attempt) => return attempt,
            Answer::Refused { status, retry_after, body } => (status, retry_after, body),
        };
        let reason = body.get("reason").and_then(Value::as_str).unwrap_or_default();
        let attempt = classify(status, reason, wait);
        if matches!(attempt, Attempt::RetryNow(_)) {
            self.drop_token(&jwt);
        }
        attempt
    }
}

/// Apple's "Handling notification responses from APNs" table, as outcomes.
fn classify(status: u16, reason: &str, wait: Option<Duration>) -> Attempt {
    let described = format!("APNs {status} {reason}");
    match (status, reason) {
        (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
            Attempt::Unregistered(if reason.is_empty() { "Unregistered".into() } else { reason.into() })
        }
        (403, "ExpiredProviderToken") => Attempt::RetryNow(described),
        (429, _) | (500..=599, _) => Attempt::Retry { reason: described, retry_after: wait },
        _ => Attempt::Permanent(described),
    }
}

/// The JSON payload: an alert to be localized on the device, no message text.
pub(crate) fn payload(n: &Notification) -> Value {
    json!({
        "aps": {
            "alert": { "loc-key": ALERT_LOC_KEY, "loc-args": [n.count.to_string()] },
            "thread-id": n.conversation,
            "mutable-content": 1,
        },
        "conversation": n.conversation,
        "count": n.count,
        "latest_event": n.latest_event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apples_answers_map_to_outcomes() {
        let unregistered = |s, r| matches!(classify(s, r, None), Attempt::Unregistered(_));
        assert!(unregistered(410, "Unregistered"));
        assert!(unregistered(400, "BadDeviceToken"));
        assert!(unregistered(400, "DeviceTokenNotForTopic"));
        assert!(matches!(classify(403, "ExpiredProviderToken", None), Attempt::RetryNow(_)));
        assert!(matches!(classify(429, "TooManyRequests", None), Attempt::Retry { .. }));
        assert!(matches!(classify(503, "ServiceUnavailable", None), Attempt::Retry { .. }));
        assert!(matches!(classify(403, "InvalidProviderToken", None), Attempt::Permanent(_)));
        assert!(matches!(classify(413, "PayloadTooLarge", None), Attempt::Permanent(_)));
        assert!(matches!(classify(400, "BadCollapseId", None), Attempt::Permanent(_)));
    }
}

//! The signed webhook: a JSON POST whose authenticity the receiver checks with a shared
//! secret. Signature: `x-chatgw-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! where `<timestamp>` is the `x-chatgw-timestamp` header (Unix seconds); the timestamp
//! lets the receiver refuse replays older than a few minutes.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::{
    error::{invalid, read_file},
    http::{retry_after, Attempt},
    jws::unix_now,
    ConfigError, Notification, WebhookConfig,
};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-chatgw-signature";
/// The header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "x-chatgw-timestamp";

/// `v1=` and the lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`:
/// the value of [`SIGNATURE_HEADER`]. Receivers written in Rust can call it to verify
/// (and must compare in constant time).
pub fn sign_webhook(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut signature = String::from("v1=");
    for byte in mac.finalize().into_bytes() {
        signature.push_str(&format!("{byte:02x}"));
    }
    signature
}

pub(crate) struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl Webhook {
    pub(crate) fn new(config: &WebhookConfig, client: reqwest::Client) -> Result<Webhook, ConfigError> {
        let mut secret = read_file(&config.secret_file)?;
        while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            secret.pop();
        }
        if secret.is_empty() {
            return Err(invalid(&config.secret_file, "the webhook secret is empty"));
        }
        Ok(Webhook { client, url: config.url.clone(), secret })
    }

    pub(crate) async fn attempt(&self, n: &Notification) -> Attempt {
        let body = body(n).to_string();
        let timestamp = unix_now();
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, sign_webhook(&self.secret, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => classify(response.status().as_u16(), retry_after(response.headers())),
            Err(error) => Attempt::from_transport(error),
        }
    }
}

fn classify(status: u16, wait: Option<std::time::Duration>) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        410 => Attempt::Unregistered("webhook answered 410 Gone".into()),
        408 | 429 | 500..=599 => Attempt::Retry { reason: format!("webhook answered {status}"), retry_after: wait },
        _ => Attempt::Permanent(format!("webhook answered {status}")),
    }
}

/// The JSON body, version 1 (documented in docs/PUSH.md).
pub(crate) fn body(n: &Notification) -> serde_json::Value {
    json!({
        "v": 1,
        "user": n.user,
        "device": n.device,
        "token": n.token,
        "conversation": n.conversation,
        "count": n.count,
        "latest_event": n.latest_event,
        "collapse_id": n.collapse_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_computation() {
        // HMAC-SHA256("key", "1700000000.{}") as `printf "1700000000.{}" | openssl dgst -sha256 -hmac key` prints it.
        assert_eq!(
            sign_webhook(b"key", 1_700_000_000, b"{}"),
            "v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(matches!(classify(204, None), Attempt::Delivered));
        assert!(matches!(classify(410, None), Attempt::Unregistered(_)));
        assert!(matches!(classify(503, None), Attempt::Retry { .. }));
        assert!(matches!(classify(429, None), Attempt::Retry { .. }));
        assert!(matches!(classify(400, None), Attempt::Permanent(_)));
    }
}

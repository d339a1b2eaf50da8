//! What a test server answers and what it recorded.

use std::time::Instant;

use serde_json::{json, Value};

/// One scripted answer: status, extra headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// Response body (JSON for APNs and FCM errors).
    pub body: String,
}

impl Reply {
    /// A status with an empty body (webhook answers).
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: String::new() }
    }

    /// A status with a JSON body.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply { status, headers: vec![("content-type".into(), "application/json".into())], body: body.to_string() }
    }

    /// An APNs error: `{"reason": reason}` (410 also carries a `timestamp`).
    pub fn apns(status: u16, reason: &str) -> Reply {
        let mut body = json!({ "reason": reason });
        if status == 410 {
            body["timestamp"] = json!(1_700_000_000_000u64);
        }
        Reply::json(status, &body)
    }

    /// An FCM v1 error body: `{"error":{"code","message","status","details":[{"errorCode"}]}}`.
    pub fn fcm(status: u16, status_name: &str, error_code: Option<&str>, message: &str) -> Reply {
        let details = match error_code {
            Some(code) => {
                json!([{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code }])
            }
            None => json!([]),
        };
        Reply::json(
            status,
            &json!({ "error": { "code": status, "message": message, "status": status_name, "details": details } }),
        )
    }

    /// FCM's answer for a token the app no longer holds.
    pub fn fcm_unregistered() -> Reply {
        Reply::fcm(404, "NOT_FOUND", Some("UNREGISTERED"), "Requested entity was not found.")
    }

    /// Adds `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Reply {
        self.headers.push(("retry-after".into(), secs.to_string()));
        self
    }
}

/// One push that passed verification, with the answer it got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The device token it was addressed to.
    pub token: String,
    /// The request headers (names in lowercase).
    pub headers: Vec<(String, String)>,
    /// The JSON body as sent.
    pub payload: Value,
    /// The status the server answered.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// The value of request header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

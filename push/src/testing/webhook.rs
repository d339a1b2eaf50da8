//! The webhook receiver stand-in. Checks the contract of docs/PUSH.md: `POST /push`,
//! `content-type: application/json`, an `x-chatgw-timestamp` within five minutes of now,
//! `x-chatgw-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, and a body
//! `{"v":1, "user", "device", "token", "conversation", "count", "latest_event", "collapse_id"}`.

use std::{net::SocketAddr, path::Path};

use hyper::http::Method;
use serde_json::Value;

use super::{
    jwt::now,
    server::{Arrived, Log, Rules},
    Reply, TestServer,
};
use crate::{sign_webhook, WebhookConfig, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// A running webhook receiver.
pub type WebhookServer = TestServer<WebhookRules>;

const SECRET: &str = "test-webhook-secret";

/// What [`WebhookServer`] checks; created by [`WebhookServer::start`].
pub struct WebhookRules {
    secret_file: std::path::PathBuf,
}

impl WebhookServer {
    /// Starts a receiver and writes its secret file.
    pub async fn start() -> WebhookServer {
        super::server::launch(false, |_addr: SocketAddr, dir: &Path| {
            let secret_file = dir.join("webhook.secret");
            // Test set-up: a failure is a broken environment.
            std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
            WebhookRules { secret_file }
        })
        .await
    }

    /// A client configuration for this receiver.
    pub fn config(&self) -> WebhookConfig {
        WebhookConfig { url: format!("{}/push", self.url()), secret_file: self.rules.secret_file.clone() }
    }

    /// The same as an operator's `--push` spec string.
    pub fn spec(&self) -> String {
        format!("webhook:url={}/push,secret-file={}", self.url(), self.rules.secret_file.display())
    }
}

impl Rules for WebhookRules {
    fn handle(&self, request: &Arrived, log: &Log) -> Reply {
        let refuse = |problem: String| log.refuse(problem, Reply::status(400));
        if request.method != Method::POST || request.path != "/push" {
            return refuse(format!("{} {} instead of POST /push", request.method, request.path));
        }
        if request.header("content-type") != Some("application/json") {
            return refuse(format!("content-type {:?}", request.header("content-type")));
        }
        let Some(timestamp) = request.header(TIMESTAMP_HEADER).and_then(|t| t.parse::<u64>().ok()) else {
            return refuse(format!("{TIMESTAMP_HEADER} missing or not a number"));
        };
        if now().abs_diff(timestamp) > 300 {
            return refuse(format!("{TIMESTAMP_HEADER} {timestamp} is more than five minutes from now"));
        }
        let expected = sign_webhook(SECRET.as_bytes(), timestamp, &request.body);
        if request.header(SIGNATURE_HEADER) != Some(expected.as_str()) {
            return log.refuse(
                format!("{SIGNATURE_HEADER} {:?} is not {expected}", request.header(SIGNATURE_HEADER)),
                Reply::status(401),
            );
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let strings = ["user", "device", "token", "conversation", "latest_event", "collapse_id"];
        if body["v"] != 1 || !body["count"].is_u64() || strings.iter().any(|k| !body[k].is_string()) {
            return refuse(format!("body {body} does not follow webhook contract v1"));
        }
        let token = body["token"].as_str().unwrap_or_default().to_owned();
        log.accept(request, &token, body, Reply::status(204))
    }
}

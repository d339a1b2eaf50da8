//! The HTTP clients and what every provider's attempt reports back to the retry loop.

use std::time::Duration;

use reqwest::{header::HeaderMap, Certificate, Client};

use crate::{error::read_file, ConfigError, PushConfig};

/// The result of one request to a provider, before retry decisions.
#[derive(Debug)]
pub(crate) enum Attempt {
    Delivered,
    /// The token is no longer valid; the target should be removed.
    Unregistered(String),
    /// A transient failure (429, 5xx, connection error): back off, then try again.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider credentials were refused as expired and have been dropped:
    /// try again at once with fresh ones.
    RetryNow(String),
    /// Retrying cannot help.
    Permanent(String),
}

impl Attempt {
    /// Transport-level failure: the request may not have reached the provider.
    pub(crate) fn from_transport(error: reqwest::Error) -> Attempt {
        Attempt::Retry { reason: format!("request failed: {}", error_chain(&error)), retry_after: None }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A provider's answer to one send, read: settled (200, or the request
/// failed on the way), or refused with a status to classify per provider.
pub(crate) enum Answer {
    Settled(Attempt),
    Refused { status: u16, retry_after: Option<Duration>, body: serde_json::Value },
}

/// Reads a send's response the way every provider needs it: 200 is
/// delivered, a transport error is retried, anything else comes back with
/// its `Retry-After` and its JSON body (`null` when it is not JSON).
pub(crate) async fn answer(response: reqwest::Result<reqwest::Response>) -> Answer {
    let response = match response {
        Ok(response) => response,
        Err(error) => return Answer::Settled(Attempt::from_transport(error)),
    };
    let status = response.status().as_u16();
    if status == 200 {
        return Answer::Settled(Attempt::Delivered);
    }
    let retry_after = retry_after(response.headers());
    let body = serde_json::from_slice(&read_answer(response).await).unwrap_or(serde_json::Value::Null);
    Answer::Refused { status, retry_after, body }
}

/// `Retry-After` in seconds (the form APNs and Google use); dates are ignored and the
/// backoff applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|secs| Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)))
}

/// A longer `Retry-After` is read as this (a day): past any sane retry deadline, so the
/// notification fails at once instead of waiting.
const MAX_RETRY_AFTER_SECS: u64 = 24 * 3600;

/// Builds the clients: `h2_only` for APNs, which accepts nothing but HTTP/2 (ALPN `h2`);
/// the other negotiates HTTP/2 or HTTP/1.1.
pub(crate) fn build_client(config: &PushConfig, h2_only: bool) -> Result<Client, ConfigError> {
    let mut builder = Client::builder()
        .timeout(config.retry.request_timeout)
        .connect_timeout(config.retry.request_timeout)
        .user_agent(concat!("chatgw-push/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(600))
        .http2_keep_alive_interval(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none());
    if h2_only {
        builder = builder.http2_prior_knowledge();
    }
    if let Some(path) = &config.extra_ca_file {
        let pem = read_file(path)?;
        let certs = Certificate::from_pem_bundle(&pem)
            .map_err(|e| crate::error::invalid(path, format!("not a PEM certificate bundle: {e}")))?;
        if certs.is_empty() {
            return Err(crate::error::invalid(path, "no certificate in the file"));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| ConfigError::Client(error_chain(&e)))
}

/// Provider answers are small JSON documents; anything past this is not buffered.
pub(crate) const ANSWER_LIMIT: usize = 64 * 1024;

/// The answer's body, cut at [`ANSWER_LIMIT`]; what was read before an error.
pub(crate) async fn read_answer(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ANSWER_LIMIT - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ANSWER_LIMIT {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    use super::*;

    fn with_retry_after(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_takes_seconds_and_is_bounded() {
        assert_eq!(retry_after(&with_retry_after("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&with_retry_after("18446744073709551615")), Some(Duration::from_secs(86400)));
        assert_eq!(retry_after(&with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}

//! Requests to the bucket: addressing, signing and one blocking HTTP call.
//!
//! Everything S3-specific about *what* to ask lives in `api.rs`; this file
//! knows *where* (virtual-hosted or path-style) and *how* (SigV4 headers or
//! a pre-signed query string).

use std::{
    thread,
    time::{Duration, SystemTime},
};

use reqwest::{
    blocking::Client as HttpClient,
    header::{HeaderMap, HeaderName, HeaderValue},
    Method,
};

use super::{
    config::{S3Config, S3ConfigError},
    sigv4::{sha256_hex, Request, S3Credentials, Signer},
    xml,
};
use crate::MediaError;

/// How long the gateway waits for the bucket before giving up a call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The waits before retrying a call whose failure may pass (no answer,
/// or 500, 502, 503 `SlowDown`, 504), as S3 asks clients to.
const RETRY_WAITS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// A non-2xx answer, with S3's error code when the body had one.
#[derive(Debug)]
pub(crate) struct S3Failure {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl From<S3Failure> for MediaError {
    fn from(failure: S3Failure) -> MediaError {
        MediaError::Backend(format!("S3 answered {} {}: {}", failure.status, failure.code, failure.message))
    }
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// What a call came back with: an answer, S3's refusal, or no answer.
pub(crate) type Outcome = Result<Result<Answer, S3Failure>, MediaError>;

/// One bucket, signed for.
pub(crate) struct Client {
    http: HttpClient,
    signer: Signer,
    /// `scheme://host[:port]` requests go to.
    origin: String,
    /// The `Host` header (and signed host): `host` or `host:port`.
    host: String,
    /// `/bucket` for path-style addressing, empty for virtual-hosted.
    bucket_path: String,
}

impl Client {
    pub(crate) fn new(config: &S3Config, credentials: S3Credentials) -> Result<Client, S3ConfigError> {
        let (origin, bucket_path) = match &config.endpoint {
            Some(endpoint) => (endpoint.clone(), format!("/{}", config.bucket)),
            None if config.bucket.contains('.') => {
                (format!("https://s3.{}.amazonaws.com", config.region), format!("/{}", config.bucket))
            }
            None => (format!("https://{}.s3.{}.amazonaws.com", config.bucket, config.region), String::new()),
        };
        let host = origin.split_once("://").map_or(origin.as_str(), |(_, host)| host).to_owned();
        let http = HttpClient::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| S3ConfigError::Client(e.to_string()))?;
        Ok(Client { http, signer: Signer::new(credentials, &config.region, "s3"), origin, host, bucket_path })
    }

    /// The path of `key` (or of the bucket itself when `key` is empty).
    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.bucket_path)
    }

    /// A pre-signed URL for `method` on `key`, valid `expires_secs` from
    /// `now`; `headers` are signed, so the client must send them as given.
    pub(crate) fn presign(
        &self,
        method: &str,
        key: &str,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        now: SystemTime,
        expires_secs: u64,
    ) -> String {
        let path = self.path(key);
        let request = Request { method, host: &self.host, path: &path, query, headers };
        let query = self.signer.presign(&request, now, expires_secs);
        format!("{}{}?{query}", self.origin, request.encoded_path())
    }

    /// Send a header-signed request about `key` (empty: the bucket),
    /// retried after a passing failure.
    pub(crate) fn call(
        &self,
        method: Method,
        key: &str,
        query: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Outcome {
        let path = self.path(key);
        let request = Request { method: method.as_str(), host: &self.host, path: &path, query, headers };
        let signed = self.signer.authorize(&request, &sha256_hex(&body), SystemTime::now());
        let mut url = format!("{}{}", self.origin, request.encoded_path());
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(&encoded_query(&request.query));
        }
        let mut header_map = HeaderMap::new();
        for (name, value) in request.headers.iter().chain(&signed) {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| MediaError::Backend(e.to_string()))?;
            let value = HeaderValue::from_str(value).map_err(|e| MediaError::Backend(e.to_string()))?;
            header_map.insert(name, value);
        }
        let mut waits = RETRY_WAITS.iter();
        loop {
            let outcome = self.send(method.clone(), &url, header_map.clone(), body.clone());
            let passing = match &outcome {
                Err(_) => true,
                Ok(Err(failure)) => matches!(failure.status, 500 | 502 | 503 | 504),
                Ok(Ok(_)) => false,
            };
            match waits.next() {
                Some(wait) if passing => thread::sleep(*wait),
                _ => return outcome,
            }
        }
    }

    fn send(&self, method: Method, url: &str, headers: HeaderMap, body: Vec<u8>) -> Outcome {
        let response = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .map_err(|e| MediaError::Backend(format!("S3 unreachable: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().map_err(|e| MediaError::Backend(format!("S3 answer cut: {e}")))?.to_vec();
        if status.is_success() {
            return Ok(Ok(Answer { headers, body }));
        }
        let (code, message) = xml::error(&body).unwrap_or_else(|| (status.as_str().to_owned(), String::new()));
        Ok(Err(S3Failure { status: status.as_u16(), code, message }))
    }
}

fn encoded_query(query: &[(String, String)]) -> String {
    use super::sigv4::uri_encode;
    query.iter().map(|(n, v)| format!("{}={}", uri_encode(n, true), uri_encode(v, true))).collect::<Vec<_>>().join("&")
}

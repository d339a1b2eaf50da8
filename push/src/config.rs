//! What an operator configures: which providers, their credentials, retry bounds and an
//! extra trusted CA. Paths are read when the [`crate::Pusher`] is built, so a bad key
//! file fails at start-up, not at the first push.

use std::{path::PathBuf, time::Duration};

use crate::RetryPolicy;

/// APNs production endpoint.
pub const APNS_PRODUCTION: &str = "https://api.push.apple.com";
/// APNs development (sandbox) endpoint, for apps signed with a development profile.
pub const APNS_SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// FCM HTTP v1 endpoint.
pub const FCM_ENDPOINT: &str = "https://fcm.googleapis.com";

/// Every provider this process can push through. A provider left `None` answers
/// [`crate::Outcome::Failed`] (permanent) for targets naming it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushConfig {
    /// The signed HTTP webhook.
    pub webhook: Option<WebhookConfig>,
    /// Apple Push Notification service.
    pub apns: Option<ApnsConfig>,
    /// Firebase Cloud Messaging HTTP v1.
    pub fcm: Option<FcmConfig>,
    /// Retry bounds shared by every provider.
    pub retry: RetryPolicy,
    /// A PEM file of CA certificates trusted besides the built-in web roots
    /// (a TLS-intercepting proxy, or a test server).
    pub extra_ca_file: Option<PathBuf>,
}

/// The webhook contract is described in docs/PUSH.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Where notifications are POSTed (http or https).
    pub url: String,
    /// A file holding the HMAC-SHA256 secret (its bytes, trailing newline removed).
    pub secret_file: PathBuf,
}

/// APNs token-based authentication: a `.p8` signing key from the Apple developer account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsConfig {
    /// [`APNS_PRODUCTION`], [`APNS_SANDBOX`] or a test server's address.
    pub endpoint: String,
    /// The 10-character Team ID (JWT `iss`).
    pub team_id: String,
    /// The 10-character Key ID of the `.p8` key (JWT `kid`).
    pub key_id: String,
    /// The `.p8` file (PKCS#8 PEM, ECDSA P-256).
    pub key_file: PathBuf,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// How long one provider token is reused. Apple refuses tokens older than one hour
    /// and throttles refreshes more often than every 20 minutes; default 50 minutes.
    pub token_lifetime: Duration,
    /// How long APNs keeps trying to reach an offline device (`apns-expiration`).
    pub expiration: Duration,
}

impl ApnsConfig {
    /// A configuration with the production endpoint and default lifetimes.
    pub fn new(team_id: &str, key_id: &str, key_file: impl Into<PathBuf>, topic: &str) -> ApnsConfig {
        ApnsConfig {
            endpoint: APNS_PRODUCTION.into(),
            team_id: team_id.into(),
            key_id: key_id.into(),
            key_file: key_file.into(),
            topic: topic.into(),
            token_lifetime: Duration::from_secs(50 * 60),
            expiration: Duration::from_secs(24 * 3600),
        }
    }
}

/// FCM HTTP v1 with a service account's JSON key (project_id, client_email,
/// private_key, token_uri are read from it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcmConfig {
    /// The service-account JSON key file downloaded from the Firebase console.
    pub service_account_file: PathBuf,
    /// [`FCM_ENDPOINT`] or a test server's address.
    pub endpoint: String,
    /// An access token is exchanged again this long before it expires.
    pub refresh_margin: Duration,
}

impl FcmConfig {
    /// A configuration with the public endpoint.
    pub fn new(service_account_file: impl Into<PathBuf>) -> FcmConfig {
        FcmConfig {
            service_account_file: service_account_file.into(),
            endpoint: FCM_ENDPOINT.into(),
            refresh_margin: Duration::from_secs(5 * 60),
        }
    }
}

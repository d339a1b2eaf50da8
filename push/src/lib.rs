//! Delivery of push notifications to the providers a device can be reached through:
//! a signed HTTP webhook, Apple Push Notification service (APNs) and Firebase Cloud
//! Messaging (FCM HTTP v1).
//!
//! This crate answers *how* a notification reaches a provider: request shapes, provider
//! authentication (APNs ES256 provider tokens, FCM OAuth2 access tokens from a service
//! account), retries with backoff, and the mapping of each provider's documented answers
//! to an [`Outcome`]. It does not decide *when* to notify (grace periods, collapsing) nor
//! where device targets are stored: the caller removes a target when [`Outcome::Unregistered`]
//! comes back.
//!
//! Notifications carry no message text: end-to-end encrypted apps decrypt on the device,
//! so a push names only the conversation and a count.
//!
//! With the `testing` feature, [`testing`] offers local TLS HTTP/2 servers that verify each
//! request as Apple's and Google's documentation specify and answer with scripted errors.
#![warn(missing_docs, unreachable_pub)]

mod apns;
mod config;
mod error;
mod fcm;
mod http;
mod jws;
mod notification;
mod pusher;
mod retry;
mod spec;
mod stats;
mod webhook;

#[cfg(feature = "testing")]
pub mod testing;

pub use config::{ApnsConfig, FcmConfig, PushConfig, WebhookConfig, APNS_PRODUCTION, APNS_SANDBOX, FCM_ENDPOINT};
pub use error::ConfigError;
pub use notification::{collapse_id_for, Notification, Outcome, Provider};
pub use pusher::Pusher;
pub use retry::RetryPolicy;
pub use spec::parse_specs;
pub use stats::{ProviderStats, PushStats, StatsSnapshot};
pub use webhook::{sign_webhook, SIGNATURE_HEADER, TIMESTAMP_HEADER};

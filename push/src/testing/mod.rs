//! Local TLS HTTP/2 servers that stand in for APNs, FCM (with its OAuth2 token endpoint)
//! and a webhook receiver in tests. Each one **verifies** every request as Apple's and
//! Google's documentation specify (method, path, headers, JWT header, claims and signature
//! against the test key, payload shape), records what arrived, and answers either success
//! or the next reply of a script (410, 429, 500, `UNREGISTERED`, ...).
//!
//! ```no_run
//! # async fn demo() {
//! use chatgw_push::{testing::{ApnsServer, Reply}, Notification, Provider, PushConfig, Pusher};
//! let server = ApnsServer::start().await;
//! server.respond_with([Reply::apns(503, "ServiceUnavailable")]);
//! let config = PushConfig { apns: Some(server.config()), extra_ca_file: Some(server.ca_file()), ..Default::default() };
//! let pusher = Pusher::new(&config).unwrap();
//! pusher.send(&Notification::new("alice", "phone", Provider::Apns, "aa11", "g:7", 2, "e9")).await;
//! assert_eq!(server.delivered_to("aa11"), 1);
//! assert!(server.problems().is_empty());
//! # }
//! ```
//!
//! A request that breaks the documented contract is answered the way the provider would
//! (e.g. APNs 403 `InvalidProviderToken`) *and* listed in [`TestServer::problems`], which
//! every test should assert empty. All servers of a process share one test CA:
//! [`TestServer::ca_file`] / [`ca_pem`] is what the client must trust.

mod apns;
mod fcm;
mod jwt;
mod pki;
mod reply;
mod server;
mod webhook;

pub use apns::{ApnsRules, ApnsServer};
pub use fcm::{FcmRules, FcmServer};
pub use pki::ca_pem;
pub use reply::{Received, Reply};
pub use server::TestServer;
pub use webhook::{WebhookRules, WebhookServer};

//! Push notifications from this product's parts: the push worker
//! (`chatgw-push-worker`) decides who is notified and when; here it gets
//! the store's push targets ([`StoreTargets`]) and the providers of
//! `chatgw-push` ([`ProviderSender`]). `chatgw push` runs it over a Kafka
//! consumer group; `serve --push` runs it on a thread of the gateway over
//! the store's outbox ([`OutboxSource`]), with this gateway's connections
//! as liveness. See docs/EVENTS.md, "Push notifications".

mod in_serve;
mod liveness;
mod outbox_source;
mod provider_metrics;
mod sender;
mod targets;

pub(crate) use in_serve::{start_for, InServe, PushMetricsText};
pub use in_serve::{InServeError, PushSettings};
pub use outbox_source::{OutboxSource, CONSUMER};
pub use provider_metrics::render_provider_stats;
pub use sender::{ProviderSender, SenderError};
pub use targets::StoreTargets;

//! Push notifications from this product's parts: the push worker
//! (`chatgw-push-worker`) decides who is notified and when; here it gets
//! the store's push targets ([`StoreTargets`]) and the providers of
//! `chatgw-push` ([`ProviderSender`]). `chatgw push` runs it over a Kafka
//! consumer group; see docs/EVENTS.md, "Push notifications".

mod provider_metrics;
mod sender;
mod targets;

pub use provider_metrics::render_provider_stats;
pub use sender::{ProviderSender, SenderError};
pub use targets::StoreTargets;

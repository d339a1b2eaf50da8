//! The push worker: notifies each device of messages it did not get live
//! within a grace period, collapsing bursts into one notification per
//! conversation, and commits its source's positions only once every event
//! before them is decided.
//!
//! - [`record`]: event records (schema v1) read into what the worker needs;
//! - [`planner`]: pure logic: windows per (user, conversation), due times,
//!   cancel by read, and which positions they hold back ([`watermark`]);
//! - [`handoff`]: the seams to the rest of the product: liveness, push
//!   targets, the sender of notifications;
//! - `dispatch`: a due window becomes notifications (one per device with a
//!   target that is not live), retries, removal of unregistered targets;
//! - [`Worker`]: the loop over an [`EventSource`];
//! - [`kafka`]: the Kafka consumer-group source;
//! - [`gateways`]: liveness asked of gateways' admin listeners.
//!
//! Not here: the providers (webhook, APNs, FCM), the store, the gateway,
//! the outbox source of `serve --push` (all in the gateway's `push`
//! module). They plug in through the traits of [`handoff`] and
//! [`EventSource`].
//! See `docs/EVENTS.md`, "Push notifications".

#![warn(missing_docs)]

mod dispatch;
pub mod gateways;
pub mod handoff;
pub mod kafka;
mod metrics;
pub mod planner;
pub mod record;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod watermark;
mod worker;

pub use handoff::{Liveness, Notification, NotificationSender, Outcome, PushTargets};
pub use metrics::PushMetrics;
pub use worker::{Clock, EventSource, SourceItem, SystemClock, Worker, WorkerConfig};

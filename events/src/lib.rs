//! Committed events on Kafka: the record schema (v1, JSON, keyed by
//! conversation), Kafka's default partitioner, and the idempotent producer
//! the gateway's publisher sends through (docs/EVENTS.md).
//!
//! What this crate is not: it reads no store and keeps no cursor. The
//! publisher in the gateway reads the store's outbox, hands batches to
//! [`EventProducer::publish`] and moves its cursor once they are
//! acknowledged. Consumers in other processes (a push worker) decode with
//! [`decode_value`].

#![warn(missing_docs)]

mod partition;
mod producer;
mod schema;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

pub use partition::{murmur2, partition_for};
pub use producer::{EventProducer, ProducerConfig, PublishError};
pub use schema::{conversation_key, decode_value, encode_value, kind_of, DecodeError, Event, SCHEMA_VERSION};

/// The topic every event goes to: `<prefix>.events`. One topic, so that a
/// conversation's messages and receipts stay in order relative to each other.
pub fn topic_name(prefix: &str) -> String {
    format!("{prefix}.events")
}

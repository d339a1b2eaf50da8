//! The Kafka source: `<PREFIX>.events` read as a member of a consumer group.
//!
//! Auto-commit is off and offsets are stored by nobody but the
//! [`Worker`](crate::Worker), which commits each partition's watermark: the
//! offset of its lowest undecided event. A member that dies leaves its partitions
//! at their last commit, and the member that takes them over reads again
//! from there: what was in flight is repeated, nothing is skipped.
//!
//! Rebalances: librdkafka reports a revocation from inside `poll`, on the
//! worker's own thread; the source passes it on as
//! [`SourceItem::Revoked`] before any record read after it, and the worker
//! forgets the partition before its next commit. Nothing is committed for a
//! revoked partition, so its undecided events go to its next owner.

use std::{
    str::FromStr,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    message::Message,
    ClientContext, Offset, TopicPartitionList,
};

use crate::{
    watermark::Position,
    worker::{EventSource, SourceItem},
};

/// Most records taken from the client per [`EventSource::poll`].
const MAX_BATCH: usize = 1_000;

/// Where the events are: `kafka://host:port[,host:port...]/PREFIX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaEvents {
    /// The bootstrap brokers, `host:port,host:port`.
    pub brokers: String,
    /// The topic prefix: events are in `<PREFIX>.events`.
    pub prefix: String,
}

/// Why a `--events` URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum EventsUrlError {
    /// Not `kafka://`.
    #[error("the events URL must start with kafka://")]
    Scheme,
    /// No broker, or no prefix after the brokers.
    #[error("the events URL must be kafka://host:port[,host:port...]/PREFIX")]
    Shape,
}

impl FromStr for KafkaEvents {
    type Err = EventsUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("kafka://").ok_or(EventsUrlError::Scheme)?;
        let (brokers, prefix) = rest.split_once('/').ok_or(EventsUrlError::Shape)?;
        let valid_prefix = prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if brokers.is_empty() || brokers.split(',').any(str::is_empty) || prefix.is_empty() || !valid_prefix {
            return Err(EventsUrlError::Shape);
        }
        Ok(KafkaEvents { brokers: brokers.to_owned(), prefix: prefix.to_owned() })
    }
}

impl KafkaEvents {
    /// The one topic of events.
    pub fn topic(&self) -> String {
        format!("{}.events", self.prefix)
    }
}

/// Where a group with no commit yet starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    /// The oldest record kept (every retained message may notify).
    Earliest,
    /// Records produced from now on.
    Latest,
}

/// Collects revocations reported by librdkafka during `poll`.
#[derive(Default)]
pub struct GroupContext {
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
                revoked.extend(list.elements().iter().map(|e| e.partition()));
                tracing::info!(partitions = ?revoked, "partitions revoked");
            }
            Rebalance::Assign(list) => {
                let parts: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }
}

/// A consumer-group member reading `<PREFIX>.events`.
pub struct KafkaSource {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
    paused: bool,
}

impl KafkaSource {
    /// Join `group` and subscribe to the events topic.
    pub fn join(events: &KafkaEvents, group: &str, start: StartFrom) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
            .set("bootstrap.servers", &events.brokers)
            .set("group.id", group)
            .set("client.id", "chatgw-push")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Kafka answers a fetch at once when records are there, at the
            // latest after this; tansu waits it out, and a record appended
            // meanwhile waits for the next fetch: 100 ms made the median
            // notification 160 ms (librdkafka's default, 500 ms, would add
            // to each). An idle member fetches 40 times a second.
            .set("fetch.wait.max.ms", "25")
            .set(
                "auto.offset.reset",
                match start {
                    StartFrom::Earliest => "earliest",
                    StartFrom::Latest => "latest",
                },
            )
            .create_with_context(GroupContext::default())?;
        let topic = events.topic();
        consumer.subscribe(&[&topic])?;
        Ok(KafkaSource { consumer, topic, paused: false })
    }

    fn take_revoked(&self, out: &mut Vec<SourceItem>) {
        let mut revoked = self.consumer.context().revoked.lock().unwrap_or_else(PoisonError::into_inner);
        out.extend(revoked.drain(..).map(SourceItem::Revoked));
    }
}

impl EventSource for KafkaSource {
    type Error = KafkaError;

    fn poll(&mut self, timeout: Duration, out: &mut Vec<SourceItem>) -> Result<(), KafkaError> {
        if self.paused {
            // A rebalance hands out partitions unpaused: pause them again.
            self.consumer.pause(&self.consumer.assignment()?)?;
        }
        let mut wait = timeout;
        for _ in 0..MAX_BATCH {
            let polled = self.consumer.poll(wait);
            self.take_revoked(out);
            match polled {
                None => return Ok(()),
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => out.push(SourceItem::Record {
                    pos: Position { partition: m.partition(), offset: m.offset() },
                    payload: m.payload().unwrap_or_default().to_vec(),
                }),
            }
            wait = Duration::ZERO;
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in offsets {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.commit(&list, CommitMode::Sync)
    }

    fn set_paused(&mut self, paused: bool) -> Result<(), KafkaError> {
        let assigned = self.consumer.assignment()?;
        match paused {
            true => self.consumer.pause(&assigned)?,
            false => self.consumer.resume(&assigned)?,
        }
        self.paused = paused;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_urls_name_brokers_and_a_prefix() {
        let e: KafkaEvents = "kafka://a:9092,b:9092/chat".parse().unwrap();
        assert_eq!(e, KafkaEvents { brokers: "a:9092,b:9092".into(), prefix: "chat".into() });
        assert_eq!(e.topic(), "chat.events");
        for bad in ["http://a:1/x", "kafka://a:1", "kafka:///x", "kafka://a:1/", "kafka://a:1,/x", "kafka://a:1/x/y"] {
            assert!(bad.parse::<KafkaEvents>().is_err(), "{bad}");
        }
    }
}

//! The Kafka producer the publisher sends through: librdkafka's
//! idempotent producer (`enable.idempotence=true`, which implies
//! `acks=all`), keyed by conversation with the Java client's murmur2
//! partitioner.
//!
//! Why one batch at a time, all acknowledged before the next: the caller
//! moves its durable outbox cursor only past records the broker has
//! acknowledged, so after any failure it simply sends the same batch
//! again. The idempotent producer keeps its own retries from duplicating
//! or reordering records; a batch sent again after a failure may
//! duplicate records, which consumers drop by event id.
//!
//! Why a failed batch replaces the librdkafka producer: its idempotence
//! state (producer id, epoch, sequence numbers) outlives the broker's
//! knowledge of it. After a broker restart that lost that state, the old
//! producer's records kept timing out; a fresh producer asks for a new
//! producer id and goes on (`tests/producer.rs`,
//! `a_restarted_broker_gets_records_again`). Records of the failed batch
//! still queued in the old one are dropped with it: the caller sends the
//! whole batch again anyway.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Condvar, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use chatgw_storage::OutboxRecord;
use rdkafka::{
    config::ClientConfig,
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
    ClientContext,
};

use crate::schema::{conversation_key, encode_value};

/// How a producer reaches its broker.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// `host:port` pairs, comma separated.
    pub brokers: String,
    /// The topic every record goes to.
    pub topic: String,
    /// How long a record may wait for its acknowledgement (librdkafka's
    /// retries included) before the batch counts as failed.
    pub delivery_timeout: Duration,
}

/// Why a batch was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The client could not be created (a bad setting).
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    /// Records were refused or not acknowledged in time (broker down,
    /// unknown topic); the batch may be sent again.
    #[error("Kafka did not acknowledge {failed} of {sent} records: {reason}")]
    Delivery {
        /// Records sent in the batch.
        sent: usize,
        /// Records not acknowledged.
        failed: u64,
        /// The first error seen.
        reason: String,
    },
    /// The producer hit a fatal error (its idempotence state is broken):
    /// it must be dropped and a new one created.
    #[error("the Kafka producer failed fatally: {0}")]
    Fatal(String),
}

/// Counts the delivery reports of a batch (and those the broker did not
/// acknowledge), and wakes the publisher as each arrives. The reports come
/// on librdkafka's polling thread (`ThreadedProducer`), so the publisher
/// sleeps on a condition variable and wakes at the batch's last report:
/// neither a fixed poll interval (rust-rdkafka's `flush` waits in 100 ms
/// steps, which made every batch last at least that) nor a short poll loop
/// (which spins: a poll always waits out its timeout, rounded down to
/// whole milliseconds).
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    reported: Mutex<u64>,
    report_arrived: Condvar,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(PoisonError::into_inner);
            first.get_or_insert_with(|| e.to_string());
        }
        *self.reported.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.report_arrived.notify_one();
    }
}

/// An idempotent producer for one topic.
pub struct EventProducer {
    producer: ThreadedProducer<Deliveries>,
    config: ProducerConfig,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer for `config` (connects lazily).
    pub fn new(config: &ProducerConfig) -> Result<Self, PublishError> {
        Ok(EventProducer { producer: Self::client(config)?, config: config.clone() })
    }

    fn client(config: &ProducerConfig) -> Result<ThreadedProducer<Deliveries>, PublishError> {
        let timeout_ms = config.delivery_timeout.as_millis().max(1000).to_string();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", &timeout_ms)
            .set("linger.ms", "2")
            .set("log_level", "3")
            .create_with_context(Deliveries::default())
            .map_err(PublishError::Create)?;
        Ok(producer)
    }

    /// The topic records go to.
    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// Send `records` as schema v1 values keyed by conversation, and return
    /// once the broker has acknowledged every one of them (in order within
    /// each conversation), or with the reason some were not; after a
    /// failure the next call starts from a fresh librdkafka producer.
    pub fn publish(&mut self, records: &[OutboxRecord]) -> Result<(), PublishError> {
        let result = self.publish_once(records);
        if result.is_err() {
            self.producer = Self::client(&self.config)?;
        }
        result
    }

    fn publish_once(&self, records: &[OutboxRecord]) -> Result<(), PublishError> {
        let ctx = self.producer.context();
        ctx.failed.store(0, Ordering::Relaxed);
        *ctx.reported.lock().unwrap_or_else(PoisonError::into_inner) = 0;
        *ctx.first_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let deadline = Instant::now() + self.config.delivery_timeout + Duration::from_secs(5);
        for r in records {
            let key = conversation_key(&r.conversation);
            let value = encode_value(r);
            loop {
                let record = BaseRecord::to(&self.config.topic).key(&key).payload(&value);
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                        if Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(self.failure(records.len(), e.to_string())),
                }
            }
        }
        self.wait_for_reports(records.len() as u64, deadline).map_err(|reason| self.failure(records.len(), reason))?;
        if let Some(fatal) = self.fatal() {
            return Err(PublishError::Fatal(fatal));
        }
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let reason = ctx.first_error.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
            return Err(PublishError::Delivery { sent: records.len(), failed, reason });
        }
        Ok(())
    }

    /// Wait until `sent` delivery reports have arrived (acknowledged or
    /// failed), woken by each report.
    fn wait_for_reports(&self, sent: u64, deadline: Instant) -> Result<(), String> {
        let ctx = self.producer.context();
        let mut reported = ctx.reported.lock().unwrap_or_else(PoisonError::into_inner);
        while *reported < sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{} records not acknowledged in time", sent - *reported));
            }
            reported = ctx.report_arrived.wait_timeout(reported, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        Ok(())
    }

    fn fatal(&self) -> Option<String> {
        self.producer.client().fatal_error().map(|(code, reason)| format!("{code:?}: {reason}"))
    }

    fn failure(&self, sent: usize, reason: String) -> PublishError {
        match self.fatal() {
            Some(fatal) => PublishError::Fatal(fatal),
            None => PublishError::Delivery { sent, failed: sent as u64, reason },
        }
    }
}

//! The Kafka publisher: one thread that reads the store's outbox after
//! its durable cursor (`kafka`), publishes each batch through the
//! idempotent producer, waits for the broker's acknowledgement, then moves
//! the cursor (docs/EVENTS.md).
//!
//! Why a thread of its own, fed by the store: nothing on the commit path
//! ever waits for Kafka. The committer only rings [`Wake`] after a commit
//! (a non-blocking send on a one-slot channel); the publisher also polls
//! every [`POLL`] in case a ring was missed. While Kafka is slow or down,
//! `sent` and live delivery go on untouched and the backlog waits in the
//! store's outbox, never in memory: the publisher holds one batch at a
//! time. After a failed batch it backs off and sends the same batch again
//! (at least once; consumers deduplicate by event id). After a crash it
//! starts from the cursor, so nothing committed is missed.

mod metrics;
mod url;

use std::{io, sync::Arc, thread::JoinHandle, time::Duration};

use chatgw_events::{topic_name, EventProducer, ProducerConfig, PublishError};
use chatgw_protocol::now_ms;
use chatgw_storage::{MessageStore, OutboxPos, OutboxRecord};
use crossbeam_channel::{select, Receiver, Sender};

pub use self::{
    metrics::EventMetrics,
    url::{EventsUrl, DEFAULT_PREFIX},
};

/// The cursor name of this consumer of the outbox.
pub const CONSUMER: &str = "kafka";
/// Records per batch: one batch in memory at a time (about 1 MB). Each
/// batch waits for its acknowledgement, so throughput is about this many
/// per broker round trip: 500 kept up with only ~5,000 events/s against a
/// local broker, 5,000 with the 20,000 events/s of 10,000 msg/s
/// one-to-one (scripts/events-bench.sh).
const BATCH: usize = 5000;
/// How often the outbox is looked at when no commit rang.
const POLL: Duration = Duration::from_secs(1);
/// How long a batch may wait for its acknowledgement before it counts as failed.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest pause after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// Rung by the committer after each commit: cheap, never blocks, and a
/// no-op when no publisher runs.
#[derive(Clone, Default)]
pub(crate) struct Wake(Option<Sender<()>>);

impl Wake {
    pub(crate) fn notify(&self) {
        if let Some(tx) = &self.0 {
            // Full means a ring is already pending: that one is enough.
            let _ = tx.try_send(());
        }
    }
}

/// The running publisher thread.
pub(crate) struct Publisher {
    /// Dropped to stop the thread.
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// What the publisher needs.
pub(crate) struct PublisherSettings {
    pub(crate) url: EventsUrl,
    pub(crate) metrics: Arc<EventMetrics>,
}

impl Publisher {
    /// The wake the committer rings, and the publisher itself, which starts
    /// on its own thread. The store's outbox must already be enabled.
    pub(crate) fn start(store: Arc<dyn MessageStore>, settings: PublisherSettings) -> io::Result<(Wake, Publisher)> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let config = ProducerConfig {
            brokers: settings.url.brokers.clone(),
            topic: topic_name(&settings.url.prefix),
            delivery_timeout: DELIVERY_TIMEOUT,
        };
        let thread = std::thread::Builder::new().name("chatgw-events".into()).spawn(move || {
            let mut run = Run { store, config, metrics: settings.metrics, producer: None, wake: wake_rx, stopped };
            run.main();
        })?;
        Ok((Wake(Some(wake_tx)), Publisher { stop, thread }))
    }

    /// Stop the thread after the batch in flight.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

struct Run {
    store: Arc<dyn MessageStore>,
    config: ProducerConfig,
    metrics: Arc<EventMetrics>,
    producer: Option<EventProducer>,
    wake: Receiver<()>,
    stopped: Receiver<()>,
}

impl Run {
    fn main(&mut self) {
        // Connected before the first commit: a producer's first batch
        // waits ~0.5 s for metadata and its idempotent producer id, which
        // every event committed meanwhile would wait for too.
        self.producer = EventProducer::new(&self.config).ok();
        let mut backoff = BACKOFF.0;
        let mut cursor = None;
        loop {
            let pause = match self.step(&mut cursor) {
                Ok(true) => {
                    backoff = BACKOFF.0;
                    Duration::ZERO
                }
                Ok(false) => {
                    backoff = BACKOFF.0;
                    POLL
                }
                Err(()) => {
                    self.metrics.publish_errors.inc();
                    let pause = backoff;
                    backoff = (backoff * 2).min(BACKOFF.1);
                    pause
                }
            };
            if !self.wait(pause) {
                return;
            }
        }
    }

    /// Wait up to `pause` for a commit's ring; `false` once told to stop.
    fn wait(&self, pause: Duration) -> bool {
        if pause.is_zero() {
            return !matches!(self.stopped.try_recv(), Err(crossbeam_channel::TryRecvError::Disconnected));
        }
        select! {
            recv(self.stopped) -> _ => false,
            recv(self.wake) -> _ => true,
            default(pause) => true,
        }
    }

    /// Publish one batch: `Ok(true)` if there was one, `Ok(false)` if the
    /// outbox had nothing after the cursor, `Err` after a failure (logged).
    fn step(&mut self, cursor: &mut Option<OutboxPos>) -> Result<bool, ()> {
        let at = match *cursor {
            Some(c) => c,
            None => {
                let c = self.store.outbox_cursor(CONSUMER).map_err(|e| warn("read the outbox cursor", &e))?;
                *cursor = Some(c);
                c
            }
        };
        let batch = self.store.outbox_after(at, BATCH).map_err(|e| warn("read the outbox", &e))?;
        self.note_lag(at, batch.first().map(|r| r.at));
        let Some(last) = batch.last().map(|r| r.pos) else { return Ok(false) };
        if self.producer.is_none() {
            self.producer = Some(EventProducer::new(&self.config).map_err(|e| warn("create the producer", &e))?);
        }
        let producer = self.producer.as_mut().ok_or(())?;
        if let Err(e) = producer.publish(&batch) {
            if matches!(e, PublishError::Create(_)) {
                self.producer = None;
            }
            warn("publish events to Kafka", &e);
            return Err(());
        }
        self.note_published(&batch);
        *cursor = Some(last);
        self.note_lag(last, None);
        // A cursor that failed to move is moved by the next batch; after a
        // crash before that, the batch is published again (at least once).
        if let Err(e) = self.store.set_outbox_cursor(CONSUMER, last) {
            warn("move the outbox cursor", &e);
        }
        Ok(true)
    }

    /// Count an acknowledged batch and each record's time from commit to
    /// now, its acknowledgement.
    fn note_published(&self, batch: &[OutboxRecord]) {
        self.metrics.published.inc_by(batch.len() as u64);
        let acked = now_ms();
        for r in batch {
            self.metrics.publish_lag.observe(acked.saturating_sub(r.at) as f64 / 1000.0);
        }
    }

    fn note_lag(&self, cursor: OutboxPos, oldest_at: Option<u64>) {
        if let Ok(head) = self.store.outbox_head() {
            self.metrics.lag_records.set(head.0.saturating_sub(cursor.0) as i64);
        }
        let seconds = oldest_at.map_or(0, |at| now_ms().saturating_sub(at) / 1000);
        self.metrics.lag_seconds.set(seconds as i64);
    }
}

fn warn(what: &str, e: &dyn std::error::Error) {
    tracing::warn!(error = %e, "events: cannot {what}; retrying");
}

/// With `--events` or `--push`: enable the store's outbox (before any
/// commit); with `--events`, start the publisher. Without `--events`: a
/// wake that does nothing and no thread.
pub(crate) fn start_for(
    config: &crate::Config,
    store: &Arc<dyn MessageStore>,
    metrics: &crate::metrics::Metrics,
) -> Result<(Wake, Option<Publisher>), crate::StartError> {
    if config.events.is_none() && !config.push.enabled() {
        return Ok((Wake::default(), None));
    }
    // `--push` reads the outbox too, also without `--events`.
    store
        .enable_outbox(chatgw_storage::OutboxOptions { bodies: config.events_bodies, node: config.node_id })
        .map_err(|e| crate::StartError::Events(format!("{e} (docs/EVENTS.md)")))?;
    let Some(url) = config.events.clone() else { return Ok((Wake::default(), None)) };
    tracing::info!(events = %url, bodies = config.events_bodies, "publishing committed events");
    let settings = PublisherSettings { url, metrics: metrics.events.clone() };
    let (wake, publisher) = Publisher::start(store.clone(), settings)
        .map_err(|source| crate::StartError::Thread { name: "chatgw-events".into(), source })?;
    Ok((wake, Some(publisher)))
}

//! The push worker inside `chatgw serve --push`: the same worker as `chatgw
//! push`, on a thread of its own, fed by this gateway's outbox instead of
//! Kafka ([`OutboxSource`]), asking this gateway which devices are live
//! ([`LiveDevices`](crate::LiveDevices)) and the store where they take
//! pushes. A single node needs nothing else to push.
//!
//! Nothing on the commit path waits for it: the outbox is written with
//! each commit, and the worker reads it after its own cursor.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use chatgw_push_worker::{PushMetrics, SystemClock, Worker, WorkerConfig};
use chatgw_storage::{MessageStore, OutboxPos};

use super::{outbox_source::CONSUMER, render_provider_stats, OutboxSource, ProviderSender, SenderError, StoreTargets};
use crate::LiveDevices;

/// What `--push` configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushSettings {
    /// Provider specs (docs/PUSH.md); none: no worker.
    pub specs: Vec<String>,
    /// How long a window collects messages before it is due.
    pub grace: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings { specs: Vec::new(), grace: Duration::from_secs(2) }
    }
}

impl PushSettings {
    /// Whether a worker runs (some `--push` was given).
    pub fn enabled(&self) -> bool {
        !self.specs.is_empty()
    }
}

/// The running worker thread, and what it shows on `/metrics`.
pub(crate) struct InServe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The worker's metrics and the providers' counters, for `/metrics`.
#[derive(Clone)]
pub(crate) struct PushMetricsText {
    metrics: Arc<PushMetrics>,
    stats: Arc<chatgw_push::PushStats>,
}

impl PushMetricsText {
    /// Both, in the Prometheus text format, without an `# EOF` line.
    pub(crate) fn render(&self) -> String {
        let mut out = self.metrics.render(true);
        out.push_str(&render_provider_stats(&self.stats));
        out
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum InServeError {
    /// The providers could not be set up.
    #[error(transparent)]
    Sender(#[from] SenderError),
    /// The thread could not be spawned.
    #[error("starting the push worker's thread")]
    Thread(#[source] std::io::Error),
}

impl InServe {
    /// Start the worker over `store`'s outbox (already enabled).
    pub(crate) fn start(
        settings: &PushSettings,
        store: Arc<dyn MessageStore>,
        live: LiveDevices,
    ) -> Result<(InServe, PushMetricsText), InServeError> {
        let sender = ProviderSender::from_specs(&settings.specs)?;
        let metrics = Arc::new(PushMetrics::new());
        let text = PushMetricsText { metrics: metrics.clone(), stats: sender.stats() };
        let config = WorkerConfig { grace: settings.grace, ..WorkerConfig::default() };
        let source = OutboxSource::new(store.clone());
        let targets = StoreTargets::new(store);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("chatgw-push".into())
            .spawn(move || {
                let mut worker = Worker::new(source, live, targets, sender, SystemClock, metrics, config);
                worker.run(&stopping);
            })
            .map_err(InServeError::Thread)?;
        tracing::info!(grace = ?settings.grace, "push worker reading the outbox");
        Ok((InServe { stop, thread }, text))
    }

    /// Stop after the hand-off in progress, committing what is decided;
    /// windows still open are notified by the next start.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// With `--push`: start the worker and add its metrics to `/metrics`.
/// Without it, on a store whose outbox is on: release a cursor left by an
/// earlier run ([`release_cursor`]).
pub(crate) fn start_for(
    config: &crate::Config,
    store: &Arc<dyn MessageStore>,
    live: &LiveDevices,
    metrics: &crate::metrics::Metrics,
) -> Result<Option<InServe>, InServeError> {
    if !config.push.enabled() {
        if config.events.is_some() {
            release_cursor(store.as_ref());
        }
        return Ok(None);
    }
    let (worker, text) = InServe::start(&config.push, store.clone(), live.clone())?;
    let _ = metrics.push.set(text);
    Ok(Some(worker))
}

/// Without `--push` on a store whose outbox is on: a cursor left by an
/// earlier run with `--push` would hold every later record in the outbox
/// forever; move it to the head so it holds nothing back.
pub(crate) fn release_cursor(store: &dyn MessageStore) {
    let moved = store.outbox_cursor(CONSUMER).and_then(|pos| match pos {
        OutboxPos(0) => Ok(false),
        _ => store.set_outbox_cursor(CONSUMER, store.outbox_head()?).map(|()| true),
    });
    match moved {
        Ok(true) => tracing::info!("no --push: the push worker's outbox cursor moved to the head"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "releasing the push worker's outbox cursor"),
    }
}

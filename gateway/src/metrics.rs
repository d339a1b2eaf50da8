//! Prometheus metrics, served at `GET /metrics`.
//!
//! Counters are atomics shared by every thread; nothing on the message path
//! takes a lock to count.
//!
//! The store's health lives here too (`store_writable` and the cause of an
//! outage), because `/metrics` and `/healthz` report the same fact: a load
//! balancer that drains on 503 and a dashboard that alerts on the gauge must
//! never disagree. Two sources feed it: the committer, while the store
//! refuses its commits (`commit::outage`), and the liveness probe, while the
//! store does not answer (`liveness`); the store is healthy when neither
//! reports a failure, and the gauge is derived from that at each scrape.

use std::{
    fmt,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use chatgw_storage::{ErrorCause, StoreError, WriteFailure};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::{Metric, Registry},
};

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    /// WebSocket connections open now.
    pub connections_open: Gauge,
    /// TCP connections accepted.
    pub connections_accepted: Counter,
    /// Connections refused with 503 because the process was full.
    pub connections_refused: Counter,
    /// Handshakes refused with 401.
    pub auth_failures: Counter,
    /// Requests refused with 400/404/405/426 or cut off by the handshake timeout.
    pub bad_requests: Counter,
    /// Messages made durable.
    pub messages_stored: Counter,
    /// Duplicate sends answered with the original id.
    pub messages_deduplicated: Counter,
    /// Receipts made durable.
    pub receipts_stored: Counter,
    /// Edits and deletes for everyone made durable.
    pub messages_amended: Counter,
    /// Deletes for the requester only (hidden marks) made durable.
    pub messages_hidden: Counter,
    /// `keys_changed` events made durable (one per contact told).
    pub keys_changed_events: Counter,
    /// Changes of a user's keys whose `keys_changed` events were given up
    /// (the store could not be read, or the commit queue stayed full).
    pub keys_changed_dropped: Counter,
    /// Inbox events (messages, receipts) written to device connections, live or by sync.
    pub events_delivered: Counter,
    /// Requests per group commit.
    pub commit_batch_size: Histogram,
    /// Time of one group commit including fsync, seconds.
    pub commit_seconds: Histogram,
    /// Bytes handed to the store.
    pub commit_bytes: Counter,
    /// Records (rows) written to the store.
    pub commit_records: Counter,
    /// Prepared batches the committer wrote itself because the writer
    /// thread was idle (see `commit::writer`).
    pub batches_written_by_committer: Counter,
    /// Batches prepared, by commit pipeline (`pipeline` label).
    pub commit_pipeline_batches: Family<Vec<(String, String)>, Counter>,
    /// Messages held by the committer's recent-messages cache (bounded;
    /// see `commit::recent`).
    pub recent_messages: Gauge,
    /// Delivery marks held with them, over all messages (bounded likewise).
    pub recent_delivery_marks: Gauge,
    /// Message headers walked by group `read` requests (at most 1,000 per
    /// request, and none for a read at or behind the reader's mark).
    pub group_read_rows_scanned: Counter,
    /// Failed group commits, by cause (`kind` label: see [`WriteFailure`]).
    commit_errors: Family<[(&'static str, &'static str); 1], Counter>,
    /// Store errors seen by commits and by the liveness probe, by cause
    /// (`cause` label: see [`ErrorCause`]; `sqlstate_class` for `server`).
    store_errors: Family<Vec<(&'static str, String)>, Counter>,
    /// 1 while the store takes writes, 0 while it refuses them; set from
    /// `health` when rendered.
    store_writable: Gauge,
    /// What the committer and the probe know of the store.
    health: Mutex<StoreHealth>,
    /// `error` frames sent for malformed or refused frames.
    pub protocol_errors: Counter,
    /// Frames refused by the per-connection rate limit.
    pub rate_limited: Counter,
    /// Connections closed with 4000 because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Connections closed for WebSocket framing or UTF-8 violations.
    pub framing_errors: Counter,
    /// Connections closed with 1008 after too many refused frames in a row.
    pub policy_closes: Counter,
    /// Connections closed with 4002 because their token expired.
    pub tokens_expired: Counter,
    /// Connections closed with 4004 because the user's sessions, or their
    /// device, were revoked.
    pub sessions_revoked: Counter,
    /// Notes of named devices connecting written to the store.
    pub device_notes_written: Counter,
    /// Notes of named devices connecting dropped: the recorder's channel
    /// was full or the store refused the write ("last active" is late).
    pub device_notes_dropped: Counter,
    /// Connections closed with 4001 for missing pongs.
    pub timeouts: Counter,
    /// Connections refused with 429: their source already held its share.
    pub ip_connection_refusals: Counter,
    /// Connections refused with 429: their source connected too fast.
    pub ip_rate_refusals: Counter,
    /// Messages refused by the per-user send rate limit.
    pub user_rate_limited: Counter,
    /// `typing` frames dropped by the per-connection typing limit.
    pub typing_rate_limited: Counter,
    /// Typing states (and their lapses) sent to the members' devices.
    pub typing_forwarded: Counter,
    /// `presence` events sent to watching connections.
    pub presence_events: Counter,
    /// Connections cut off for not completing their HTTP request in time.
    pub handshake_timeouts: Counter,
    /// Connections closed with 4003 for sending no protocol frame in time.
    pub idle_closes: Counter,
    /// Connections closed with 1009 for a frame or message over the maximum.
    pub oversize_closes: Counter,
    /// Idempotency keys removed by the retention sweep (`retention`).
    pub idempotency_keys_expired: Counter,
    /// Idempotency keys the retention sweep looked at.
    pub idempotency_keys_swept: Counter,
    /// Retention sweep steps that failed (retried at the next pass).
    pub retention_sweep_errors: Counter,
    /// Inbox entries removed by the inbox retention sweep (`inbox_retention`).
    pub inbox_entries_expired: Counter,
    /// Inboxes the inbox retention sweep looked at.
    pub inboxes_swept: Counter,
    /// Sync requests served.
    pub syncs: Counter,
    /// Receives that found the io_uring buffer ring empty and were posted again.
    pub recv_buffers_exhausted: Counter,
    /// 1 for the I/O driver the cores run, by `driver` label.
    pub io_driver: Family<Vec<(String, String)>, Gauge>,
    /// Events waiting in a core's mailbox when the core last drained it, by
    /// `core` label.
    pub mailbox_depth: Family<Vec<(String, String)>, Gauge>,
    /// Events a full core mailbox refused (their connections are closed).
    pub mailbox_refused_events: Counter,
    /// Connections closed with 4000 because mail for them found their
    /// core's mailbox full.
    pub mailbox_overflow_closes: Counter,
    /// Entries in a core's connection timer wheel, by `core` label.
    pub timer_entries: Family<Vec<(String, String)>, Gauge>,
    /// Catch-ups from the store started, by `reason`: `gap` (a live event
    /// skipped positions), `asked` (one connection was told to), `all`
    /// (every connection of a core was).
    catch_ups: Family<[(&'static str, &'static str); 1], Counter>,
    /// Connections of a core waiting for a catch-up read or in one, by
    /// `core` label.
    pub catch_up_pending: Family<Vec<(String, String)>, Gauge>,
    /// PROXY protocol headers read, by `outcome` (see [`ProxyOutcome`]).
    proxy_headers: Family<[(&'static str, &'static str); 1], Counter>,
    /// Group messages the store refused because another gateway changed
    /// the group's membership since they were fanned out (answered
    /// `unavailable`; the resend goes to the members as they are now).
    pub stale_group_sends: Counter,
    /// The fleet layer's counters and health (`chatgw_fleet_*`).
    pub fleet: std::sync::Arc<crate::fleet::FleetMetrics>,
    /// The Kafka publisher's counters and lag (`chatgw_events_*`).
    pub events: std::sync::Arc<crate::publisher::EventMetrics>,
    /// Media requests, transfers and retention (`chatgw_media_*`).
    pub media: std::sync::Arc<crate::media::metrics::MediaMetrics>,
    /// The push worker's and providers' counters (`chatgw_push_*`), with
    /// `--push`: a registry of their own, appended to this one's text.
    pub(crate) push: std::sync::OnceLock<crate::push::PushMetricsText>,
    /// The drain's state and closes (`chatgw_draining`, `chatgw_drain_closes_total`).
    pub drain: crate::drain::DrainMetrics,
}

/// Why a connection catches up from the store (`chatgw_catch_ups_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CatchUpReason {
    /// A live event skipped positions.
    Gap,
    /// `CoreEvent::CatchUp` for this connection.
    Asked,
    /// `CoreEvent::CatchUpAll` for its core.
    All,
}

/// What became of a connection's PROXY header (`chatgw_proxy_headers_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyOutcome {
    /// A client's address: the connection is that client's.
    Proxied,
    /// LOCAL or UNKNOWN (a balancer's health check): the socket's address stands.
    Local,
    /// Not a header, or a wrong one: closed.
    Malformed,
    /// Not complete within the handshake timeout: closed.
    Timeout,
    /// From an address outside `--proxy-from`: closed unread.
    Untrusted,
}

/// A liveness probe that has not answered within this long makes the store
/// unhealthy (`timeout`) while it still waits: a hung server must not keep
/// `/healthz` at 200.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(3);

/// What the committer and the liveness probe know of the store.
#[derive(Default)]
struct StoreHealth {
    /// Set while the committer's commits are refused.
    commits: Option<StoreFailure>,
    /// Set while the liveness probe fails.
    probe: Option<StoreFailure>,
    /// When the probe in flight started.
    probing_since: Option<Instant>,
    /// Outages the committer recovered from.
    recoveries: u64,
}

/// Handed from [`Metrics::probe_started`] to [`Metrics::probe_finished`].
#[derive(Clone, Copy, Debug)]
pub struct ProbeTicket {
    recoveries: u64,
}

/// Why the store is unhealthy: what `/healthz` says after `store not writable: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreFailure {
    /// The cause, as in the `cause` label of `chatgw_store_errors_total`.
    pub cause: ErrorCause,
    /// The error, on one line.
    pub detail: String,
}

impl StoreFailure {
    fn of(error: &StoreError) -> Self {
        let mut detail = error.to_string();
        let mut next = std::error::Error::source(error);
        // `Backend` shows its source already; go on from the one below it.
        if matches!(error, StoreError::Backend { .. }) {
            next = next.and_then(std::error::Error::source);
        }
        while let Some(e) = next {
            detail.push_str(": ");
            detail.push_str(&e.to_string());
            next = e.source();
        }
        StoreFailure { cause: error.cause(), detail: detail.replace(['\n', '\r'], " ") }
    }
}

impl fmt::Display for StoreFailure {
    /// `cause: error`, e.g. `unreachable: storage engine failed during connect: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause.as_str(), self.detail)
    }
}

/// Register `metric` under `name` and hand back the handle to count with.
fn register<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("chatgw");
        let counter = |r: &mut Registry, name: &str, help: &str| register(r, name, help, Counter::default());
        Metrics {
            connections_open: register(&mut r, "connections_open", "WebSocket connections open", Gauge::default()),
            connections_accepted: counter(&mut r, "connections_accepted", "TCP connections accepted"),
            connections_refused: counter(
                &mut r,
                "connections_refused",
                "Connections refused with 503: --max-connections reached or out of descriptors",
            ),
            auth_failures: counter(&mut r, "auth_failures", "Handshakes refused with 401"),
            bad_requests: counter(&mut r, "bad_requests", "HTTP requests refused or timed out before upgrade"),
            messages_stored: counter(&mut r, "messages_stored", "Messages made durable"),
            messages_deduplicated: counter(
                &mut r,
                "messages_deduplicated",
                "Resent messages answered with their original id",
            ),
            receipts_stored: counter(&mut r, "receipts_stored", "Delivery and read receipts made durable"),
            messages_amended: counter(&mut r, "messages_amended", "Edits and deletes for everyone made durable"),
            messages_hidden: counter(
                &mut r,
                "messages_hidden",
                "Deletes for the requester only (hidden marks) made durable",
            ),
            keys_changed_events: counter(
                &mut r,
                "keys_changed_events",
                "keys_changed events made durable (one per contact told)",
            ),
            keys_changed_dropped: counter(
                &mut r,
                "keys_changed_dropped",
                "Changes of a user's keys whose keys_changed events were given up",
            ),
            events_delivered: counter(&mut r, "events_delivered", "Inbox events written to device connections"),
            commit_batch_size: register(
                &mut r,
                "commit_batch_size",
                "Requests per group commit",
                Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            ),
            commit_seconds: register(
                &mut r,
                "commit_seconds",
                "Duration of one group commit including fsync",
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            ),
            commit_bytes: counter(&mut r, "commit_bytes", "Key and value bytes written to the store"),
            commit_records: counter(&mut r, "commit_records", "Records (rows) written to the store"),
            batches_written_by_committer: counter(
                &mut r,
                "batches_written_by_committer",
                "Prepared batches the committer wrote itself, the writer thread being idle",
            ),
            commit_pipeline_batches: register(
                &mut r,
                "commit_pipeline_batches",
                "Batches prepared, by commit pipeline",
                Family::default(),
            ),
            recent_messages: register(
                &mut r,
                "recent_messages",
                "Messages held by the committer's recent-messages cache",
                Gauge::default(),
            ),
            recent_delivery_marks: register(
                &mut r,
                "recent_delivery_marks",
                "Delivery marks held by the committer's recent-messages cache",
                Gauge::default(),
            ),
            group_read_rows_scanned: counter(
                &mut r,
                "group_read_rows_scanned",
                "Message headers walked by group read requests",
            ),
            commit_errors: {
                let family =
                    register(&mut r, "commit_errors", "Group commits that failed, by cause", Family::default());
                for kind in WriteFailure::ALL {
                    let _ = family.get_or_create(&[("kind", kind.as_str())]);
                }
                family
            },
            store_errors: {
                let family = register(
                    &mut r,
                    "store_errors",
                    "Store errors seen by commits and by the liveness probe, by cause",
                    Family::default(),
                );
                for cause in ["unreachable", "connection_lost", "timeout", "schema"] {
                    let _ = family.get_or_create(&vec![("cause", cause.to_owned())]);
                }
                family
            },
            store_writable: {
                let gauge = register(
                    &mut r,
                    "store_writable",
                    "1 while the store takes writes and answers the liveness probe, 0 otherwise",
                    Gauge::default(),
                );
                gauge.set(1);
                gauge
            },
            health: Mutex::new(StoreHealth::default()),
            protocol_errors: counter(&mut r, "protocol_errors", "Error frames sent"),
            rate_limited: counter(&mut r, "rate_limited", "Frames refused by the per-connection rate limit"),
            slow_consumers: counter(
                &mut r,
                "slow_consumers",
                "Connections closed because their outbound queue was full",
            ),
            framing_errors: counter(&mut r, "framing_errors", "Connections closed for WebSocket protocol violations"),
            policy_closes: counter(&mut r, "policy_closes", "Connections closed after too many refused frames"),
            tokens_expired: counter(&mut r, "tokens_expired", "Connections closed because their token expired"),
            sessions_revoked: counter(
                &mut r,
                "sessions_revoked",
                "Connections closed because their user's sessions or their device were revoked",
            ),
            device_notes_written: counter(
                &mut r,
                "device_notes_written",
                "Named devices' connections recorded in the store (at most one a minute per device)",
            ),
            device_notes_dropped: counter(
                &mut r,
                "device_notes_dropped",
                "Named devices' connections not recorded: the recorder was full or the store refused",
            ),
            timeouts: counter(&mut r, "timeouts", "Connections closed for a missing pong"),
            ip_connection_refusals: counter(
                &mut r,
                "ip_connection_refusals",
                "Connections refused with 429 because their source address held --max-connections-per-ip",
            ),
            ip_rate_refusals: counter(
                &mut r,
                "ip_rate_refusals",
                "Connections refused with 429 because their source address passed --ip-connect-rate",
            ),
            user_rate_limited: counter(&mut r, "user_rate_limited", "Messages refused by the per-user send rate limit"),
            typing_rate_limited: counter(&mut r, "typing_rate_limited", "typing frames dropped by the typing limit"),
            typing_forwarded: counter(&mut r, "typing_forwarded", "Typing states forwarded to members' devices"),
            presence_events: counter(&mut r, "presence_events", "presence events sent to watching connections"),
            handshake_timeouts: counter(&mut r, "handshake_timeouts", "Connections cut off by the handshake timeout"),
            idle_closes: counter(&mut r, "idle_closes", "Connections closed with 4003 by the idle timeout"),
            oversize_closes: counter(&mut r, "oversize_closes", "Connections closed with 1009 for an oversized frame"),
            idempotency_keys_expired: counter(
                &mut r,
                "idempotency_keys_expired",
                "Idempotency keys removed by the retention sweep (--idempotency-retention)",
            ),
            idempotency_keys_swept: counter(
                &mut r,
                "idempotency_keys_swept",
                "Idempotency keys the retention sweep looked at",
            ),
            retention_sweep_errors: counter(
                &mut r,
                "retention_sweep_errors",
                "Retention sweep steps that failed (the pass resumes later)",
            ),
            inbox_entries_expired: counter(
                &mut r,
                "inbox_entries_expired",
                "Inbox entries removed by the retention sweep (--inbox-retention)",
            ),
            inboxes_swept: counter(&mut r, "inboxes_swept", "Inboxes the retention sweep looked at"),
            syncs: counter(&mut r, "syncs", "Sync requests served"),
            recv_buffers_exhausted: counter(
                &mut r,
                "recv_buffers_exhausted",
                "Receives that found the io_uring buffer ring empty (data waits in the socket; see --uring-buffers)",
            ),
            io_driver: register(
                &mut r,
                "io_driver",
                "I/O driver of the event loops (1 for the one in use)",
                Family::default(),
            ),
            mailbox_depth: register(
                &mut r,
                "mailbox_depth",
                "Events waiting in a core's mailbox when the core last drained it",
                Family::default(),
            ),
            mailbox_refused_events: counter(
                &mut r,
                "mailbox_refused_events",
                "Events refused by a full core mailbox (their connections are closed with 4000)",
            ),
            mailbox_overflow_closes: counter(
                &mut r,
                "mailbox_overflow_closes",
                "Connections closed with 4000 because their core's mailbox was full",
            ),
            timer_entries: register(
                &mut r,
                "timer_entries",
                "Entries in a core's connection timer wheel",
                Family::default(),
            ),
            catch_ups: register(
                &mut r,
                "catch_ups",
                "Catch-ups of a connection from the store, by reason (gap, asked, all)",
                Family::default(),
            ),
            proxy_headers: register(
                &mut r,
                "proxy_headers",
                "PROXY protocol headers by outcome (proxied, local, malformed, timeout, untrusted: closed unread)",
                Family::default(),
            ),
            catch_up_pending: register(
                &mut r,
                "catch_up_pending",
                "Connections of a core queued for a catch-up or catching up",
                Family::default(),
            ),
            stale_group_sends: counter(
                &mut r,
                "stale_group_sends",
                "Group messages refused because another gateway changed the membership meanwhile",
            ),
            fleet: std::sync::Arc::new(crate::fleet::FleetMetrics::new(&mut r)),
            events: std::sync::Arc::new(crate::publisher::EventMetrics::new(&mut r)),
            media: std::sync::Arc::new(crate::media::metrics::MediaMetrics::new(&mut r)),
            push: std::sync::OnceLock::new(),
            drain: crate::drain::DrainMetrics::new(&mut r),
            registry: r,
        }
    }

    /// Count one failed commit: by kind, and by cause unless the store only
    /// refused it for an earlier failure (already counted then).
    pub fn commit_failed(&self, error: &StoreError) {
        self.commit_errors.get_or_create(&[("kind", error.failure().as_str())]).inc();
        if !matches!(error, StoreError::Unwritable { .. }) {
            self.store_error(error);
        }
    }

    /// Count one store error by its cause.
    pub fn store_error(&self, error: &StoreError) {
        let cause = error.cause();
        let mut labels = vec![("cause", cause.as_str().to_owned())];
        if let Some(class) = cause.sqlstate_class() {
            labels.push(("sqlstate_class", class.to_owned()));
        }
        self.store_errors.get_or_create(&labels).inc();
    }

    /// The committer's commits fail because of `error`: the store refuses
    /// writes until [`Metrics::store_recovered`].
    pub fn store_failing(&self, error: &StoreError) {
        self.health().commits = Some(StoreFailure::of(error));
    }

    /// The committer's probe write succeeded: the store takes writes again.
    /// A failure the liveness probe reported is void too (a durable write
    /// is the stronger proof), and so is one from a probe still in flight.
    pub fn store_recovered(&self) {
        let mut h = self.health();
        h.commits = None;
        h.probe = None;
        h.recoveries += 1;
    }

    /// The liveness probe is about to ask the store; hand the ticket to
    /// [`Metrics::probe_finished`].
    pub fn probe_started(&self) -> ProbeTicket {
        let mut h = self.health();
        h.probing_since = Some(Instant::now());
        ProbeTicket { recoveries: h.recoveries }
    }

    /// The liveness probe's answer: `Err` makes the store unhealthy until a
    /// probe succeeds (or the committer recovers). Returns the failure now
    /// reported by the probe.
    pub fn probe_finished(&self, ticket: ProbeTicket, result: Result<(), &StoreError>) -> Option<StoreFailure> {
        if let Err(e) = result {
            self.store_error(e);
        }
        let mut h = self.health();
        h.probing_since = None;
        match result {
            Ok(()) => h.probe = None,
            // A recovery since the probe started proved more than it did.
            Err(_) if h.recoveries != ticket.recoveries => {}
            Err(e) => h.probe = Some(StoreFailure::of(e)),
        }
        h.probe.clone()
    }

    /// Why the store is unhealthy, or `None` while it takes writes and
    /// answers: the committer's cause first, then the probe's, then a probe
    /// that has not returned within [`PROBE_DEADLINE`].
    pub fn store_failure(&self) -> Option<StoreFailure> {
        let h = self.health();
        if let Some(f) = h.commits.as_ref().or(h.probe.as_ref()) {
            return Some(f.clone());
        }
        let waited = h.probing_since.map(|t| t.elapsed()).filter(|w| *w >= PROBE_DEADLINE)?;
        Some(StoreFailure {
            cause: ErrorCause::Timeout,
            detail: format!("the store has not answered the liveness probe for {} ms", waited.as_millis()),
        })
    }

    fn health(&self) -> std::sync::MutexGuard<'_, StoreHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record the I/O driver the cores run (`epoll` or `uring`).
    pub fn set_io_driver(&self, name: &str) {
        self.io_driver.get_or_create(&vec![("driver".to_owned(), name.to_owned())]).set(1);
    }

    /// Count one catch-up started for `reason`.
    pub(crate) fn catch_up(&self, reason: CatchUpReason) {
        let label = match reason {
            CatchUpReason::Gap => "gap",
            CatchUpReason::Asked => "asked",
            CatchUpReason::All => "all",
        };
        self.catch_ups.get_or_create(&[("reason", label)]).inc();
    }

    pub(crate) fn proxy_header(&self, outcome: ProxyOutcome) {
        let label = match outcome {
            ProxyOutcome::Proxied => "proxied",
            ProxyOutcome::Local => "local",
            ProxyOutcome::Malformed => "malformed",
            ProxyOutcome::Timeout => "timeout",
            ProxyOutcome::Untrusted => "untrusted",
        };
        self.proxy_headers.get_or_create(&[("outcome", label)]).inc();
    }

    /// The gauge of `family` for core `core`, to keep and set without a
    /// lookup.
    pub fn core_gauge(family: &Family<Vec<(String, String)>, Gauge>, core: u16) -> Gauge {
        family.get_or_create(&vec![("core".to_owned(), core.to_string())]).clone()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        self.store_writable.set(i64::from(self.store_failure().is_none()));
        let mut s = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        if let (Some(push), Some(body)) = (self.push.get(), s.strip_suffix("# EOF\n")) {
            s = format!("{body}{}# EOF\n", push.render());
        }
        s
    }
}

//! What a core's engine may touch beyond its own connections: a few
//! settings, and the state it shares with the other threads (the directory
//! of connected users, the limits that span cores, the counters, the token
//! key, the process-wide connection count).
//!
//! Built by the server (one clone per core) and handed to
//! [`Engine::new`](super::Engine::new); the engine never sees the
//! committer's or the readers' queues, nor the shutdown phase: requests
//! leave it as [`Action`](super::Action)s for its driver, and the driver
//! tells it when to stop (`stop_intake`, `close_all`). So the engine runs
//! in a unit test with nothing but this context (see
//! [`CoreContext::standalone`]).

use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};

use chatgw_router::Directory;

use crate::{
    config::Config,
    devices::{live::LiveDevices, recorder::DeviceNotes},
    limits::Limits,
    metrics::Metrics,
    proxy::TrustedProxies,
    revoke::Revocations,
};

/// The settings an engine reads, copied out of the [`Config`].
#[derive(Clone, Debug)]
pub(crate) struct CoreSettings {
    /// `--max-connections`, for the whole process.
    pub(crate) max_connections: usize,
    /// Cores sharing `max_connections` (sizes each core's table).
    pub(crate) workers: usize,
    pub(crate) max_frame: usize,
    pub(crate) max_outbound: usize,
    /// Frames per second per connection, and the burst above it.
    pub(crate) rate_limit: u32,
    pub(crate) rate_burst: u32,
    pub(crate) echo_endpoint: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) ping_interval: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    /// The store numbers every inbox 1, 2, 3, ... with no hole
    /// (`MessageStore::dense_positions`): a live event more than one
    /// position ahead of a connection means it missed events, and the
    /// connection catches up from the store (`catch_up`).
    pub(crate) dense_positions: bool,
    /// `--proxy-protocol`, and the balancers of `--proxy-from`.
    pub(crate) proxy_protocol: bool,
    pub(crate) proxy_from: TrustedProxies,
}

impl CoreSettings {
    pub(crate) fn of(c: &Config) -> Self {
        CoreSettings {
            max_connections: c.max_connections,
            workers: c.workers,
            max_frame: c.max_frame,
            max_outbound: c.max_outbound,
            rate_limit: c.rate_limit,
            rate_burst: c.rate_burst,
            echo_endpoint: c.echo_endpoint,
            handshake_timeout: c.handshake_timeout,
            ping_interval: c.ping_interval,
            pong_timeout: c.pong_timeout,
            idle_timeout: c.idle_timeout,
            // Set from the store by the server; off for an engine alone.
            dense_positions: false,
            proxy_protocol: c.proxy_protocol,
            proxy_from: c.proxy_from.clone(),
        }
    }
}

/// One core's handle on the gateway: see the module docs.
#[derive(Clone)]
pub(crate) struct CoreContext {
    pub(crate) settings: CoreSettings,
    /// Where each user's connections are, for the committer's fan-out.
    pub(crate) directory: Arc<Directory>,
    /// Per-source and per-user limits, shared by every core.
    pub(crate) limits: Arc<Limits>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) token_key: Arc<crate::reload::KeyRing>,
    /// Users whose sessions were revoked, checked at every upgrade.
    pub(crate) revocations: Arc<Revocations>,
    /// Where named devices' connections are noted (`devices::recorder`).
    pub(crate) device_notes: DeviceNotes,
    /// Named devices with a live connection (`devices::live`).
    pub(crate) live_devices: LiveDevices,
    /// TCP connections held by all cores, against `max_connections`.
    pub(crate) connections: Arc<AtomicUsize>,
}

impl CoreContext {
    /// A context of its own for one engine outside a gateway (the fuzzing
    /// rig, unit tests): empty directory, fresh counters and limits.
    pub(crate) fn standalone(config: &Config) -> Self {
        let metrics = Arc::new(Metrics::new());
        // No recorder: notes find the channel closed and are dropped.
        let (device_notes, _) = DeviceNotes::channel(metrics.clone());
        CoreContext {
            settings: CoreSettings::of(config),
            directory: Arc::new(Directory::with_capacity(16)),
            limits: Arc::new(Limits::new(config)),
            device_notes,
            live_devices: LiveDevices::default(),
            metrics,
            token_key: Arc::new(crate::reload::KeyRing::new(crate::reload::token_keys(config))),
            revocations: Arc::new(Revocations::default()),
            connections: Arc::new(AtomicUsize::new(0)),
        }
    }
}

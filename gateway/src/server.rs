//! Starting and stopping a gateway: store, committer, readers, cores, the
//! store's liveness probe, and the admin listener.
//!
//! This is the one module that knows every subsystem. It builds the state
//! they share and gives each a handle on only what it uses: the cores a
//! [`CoreContext`] (and their drivers a [`CoreWiring`]), the committer a
//! [`CommitContext`], the readers a [`ReaderContext`], the admin listener
//! the counters. No subsystem reaches back in here.
//!
//! What usually fails (the settings, the store, binding the listeners,
//! building the drivers) is done before the first thread starts, so such a
//! failed start leaves nothing running; it reports why as a [`StartError`].

use std::{
    io,
    net::SocketAddr,
    sync::{atomic::AtomicUsize, Arc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use chatgw_protocol::GroupId;
use chatgw_router::{Directory, Mailboxes, Wake};
use chatgw_storage::MessageStore;
use crossbeam_channel::Sender;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{
    admin::{self, Admin},
    commit::{self, AmendWindows, CommitContext, CommitQueues},
    config::{Config, ConfigError},
    core::{CoreContext, CoreSettings},
    devices::{
        keys_changed::KeysChanged,
        live::LiveDevices,
        recorder::{DeviceNotes, Recorder},
    },
    drain::{DrainPlan, DrainSwitch},
    driver::{self, CoreWiring, Dispatch, DriverError, Lifecycle, Stage, Wave},
    events::{CoreBatch, QueryRequest},
    fleet::{Fleet, FleetError, FleetSettings},
    limits::Limits,
    liveness::Liveness,
    metrics::Metrics,
    presence::{self, Hub, HubThread, PresenceSettings},
    query::{self, ReaderContext},
    reload::{KeyRing, Reloader},
    retention::Sweeper,
    revoke::{Refresher, Revocations, Revoker},
    store,
};

/// Why a gateway did not start. Nothing is left running after any of these.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store `--store` names could not be opened.
    #[error(transparent)]
    Store(#[from] store::OpenError),
    /// The public address could not be bound (in use without SO_REUSEPORT,
    /// not a local address, a privileged port).
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: io::Error,
    },
    /// Another process (often a second gateway on the same box, sharing the
    /// public port) already listens on the admin address.
    #[error("admin address {addr} in use: set --admin-listen to another address or off")]
    AdminInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The admin address could not be bound for another reason.
    #[error("binding the admin address {addr} (set --admin-listen to another address or off)")]
    AdminBind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: io::Error,
    },
    /// The I/O drivers of the cores could not be built.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Cluster mode on a store only this process can use (the embedded
    /// one): every node of a fleet must share the store.
    #[error("cluster mode needs a store every node shares (--store postgres://... or cassandra://...); the embedded store belongs to one node")]
    StoreNotShared,
    /// The node could not join its fleet (registry unreachable, node id
    /// held by another live node, link address not bindable).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// `--events` on a store without an outbox.
    #[error("--events: {0}")]
    Events(String),
    /// `--push`: a provider spec, key or file is unusable.
    #[error("--push")]
    Push(#[from] crate::push::InServeError),
    /// Media (`--media`) could not start.
    #[error(transparent)]
    Media(#[from] crate::media::MediaStartError),
    /// A thread could not be started.
    #[error("starting thread {name}")]
    Thread {
        /// The thread's name.
        name: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
}

/// Queue depth between cores and the committer / readers.
const QUEUE_DEPTH: usize = 65_536;
const LISTEN_BACKLOG: i32 = 4096;

/// Entry point for embedding a gateway (the binary and the tests use it).
#[derive(Debug)]
pub struct Server;

/// A running gateway.
pub struct ServerHandle {
    addr: SocketAddr,
    admin: Option<Admin>,
    driver: driver::ActiveDriver,
    directory: Arc<Directory>,
    metrics: Arc<Metrics>,
    mailboxes: Arc<Mailboxes<CoreBatch>>,
    lifecycle: Arc<Lifecycle>,
    commits: CommitQueues,
    query_tx: Sender<QueryRequest>,
    /// Groups whose membership another node changed, for the committer to
    /// forget; held so the channel stays open while the gateway runs.
    stale_groups: Sender<GroupId>,
    cores: Vec<JoinHandle<()>>,
    /// The commit pipelines' threads.
    committers: Vec<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
    liveness: Option<Liveness>,
    /// The idempotency-key retention sweep, unless keys are kept forever.
    sweeper: Option<Sweeper>,
    /// The Kafka publisher (`--events`).
    publisher: Option<crate::publisher::Publisher>,
    /// The push worker (`--push`).
    push: Option<crate::push::InServe>,
    fleet: Option<Fleet>,
    /// The presence thread; stopped before the fleet (it holds the links).
    presence: Option<HubThread>,
    revocations: Option<Refresher>,
    /// Notes named devices' connections in the store.
    recorder: Option<Recorder>,
    /// Named devices with a live connection here.
    live_devices: LiveDevices,
    /// Asks for a drain (SIGTERM, `POST /admin/drain`).
    drain_switch: DrainSwitch,
    /// Takes new limits and keys (SIGHUP).
    reloader: Reloader,
    /// Media: the embedded backend's listener and media retention.
    media: Option<crate::media::Running>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("admin_addr", &self.admin_addr())
            .field("driver", &self.driver)
            .finish_non_exhaustive()
    }
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    Ok(s.into())
}

impl Server {
    /// Open the store `config.store` names and start every thread. Returns
    /// once the listeners are bound, so connecting to
    /// [`ServerHandle::addr`] works at once.
    pub fn start(config: Config) -> Result<ServerHandle, StartError> {
        config.validate()?;
        if config.cluster.is_some() && config.store.scheme() == "embedded" {
            return Err(StartError::StoreNotShared);
        }
        let store = store::open(&config)?;
        Self::start_with_store(config, store)
    }

    /// Start every thread on a store the caller opened (`config.store` is
    /// not looked at): for tests and embedders that build their own.
    pub fn start_with_store(config: Config, store: Arc<dyn MessageStore>) -> Result<ServerHandle, StartError> {
        config.validate()?;
        if config.cluster.is_some() && !store.dense_positions() {
            return Err(StartError::StoreNotShared);
        }
        // One SO_REUSEPORT listener per core; port 0 is resolved by the first.
        let bind = |addr| bind_reuseport(addr).map_err(|source| StartError::Bind { addr, source });
        let first = bind(config.listen)?;
        let addr = first.local_addr().map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let mut listeners = vec![first];
        for _ in 1..config.workers {
            listeners.push(bind(addr)?);
        }
        let admin_listener = config.admin_listen.map(bind_admin).transpose()?;

        let (active, drivers) = driver::build_cores(config.io, config.workers, config.uring_buffers)?;
        let wakers: Vec<Arc<dyn Wake>> = drivers.iter().map(driver::CoreDriver::waker).collect();
        let (query_tx, query_rx) = crossbeam_channel::bounded(QUEUE_DEPTH);

        // The state the threads share, each piece behind its own `Arc`.
        let metrics = Arc::new(Metrics::new());
        metrics.set_io_driver(active.name());
        let users = config.max_connections.min(1 << 20);
        // A node of a fleet tells the registry who comes and goes.
        let directory = Arc::new(
            match config.cluster {
                Some(_) => Directory::tracking_presence(users),
                None => Directory::with_capacity(users),
            }
            .feeding_presence(),
        );
        let (presence_tx, presence_rx) = crossbeam_channel::bounded(presence::QUEUE);
        let mailboxes = Arc::new(Mailboxes::new(wakers, crate::core::MAILBOX_EVENTS));
        // Groups another node changed: the committer forgets its cached
        // members of each before its next batch (the fleet's subscription
        // sends on a clone of this end).
        let (stale_groups_tx, stale_groups_rx) = crossbeam_channel::unbounded::<GroupId>();
        let (fleet, remote) = match (&config.cluster, config.link_listen) {
            (Some(registry), Some(link_listen)) => {
                let settings = FleetSettings {
                    registry: registry.clone(),
                    node: config.node_id,
                    link_listen,
                    advertise: config.advertise,
                    lease: config.lease,
                    link_key: crate::fleet::link_key(&config)?,
                };
                let (fleet, remote) = Fleet::start(
                    &settings,
                    directory.clone(),
                    mailboxes.clone(),
                    metrics.fleet.clone(),
                    stale_groups_tx.clone(),
                    presence_tx.clone(),
                )?;
                (Some(fleet), Some(remote))
            }
            _ => (None, None),
        };
        let lifecycle = Arc::new(Lifecycle::default());
        // Revocations are loaded before the first connection is accepted,
        // so a restart honours every one the store holds.
        let revoker = Revoker {
            store: store.clone(),
            revocations: Arc::new(Revocations::default()),
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            keys_changed: KeysChanged::default(),
        };
        if let Err(e) = revoker.refresh() {
            tracing::warn!(error = %e, "could not read session revocations at start; trying again in the background");
        }
        let (device_notes, device_notes_rx) = DeviceNotes::channel(metrics.clone());
        let recorder = Recorder::start(store.clone(), metrics.clone(), device_notes_rx)
            .map_err(|source| StartError::Thread { name: "chatgw-devices".into(), source })?;
        let live_devices = LiveDevices::default();
        let limits = Arc::new(Limits::new(&config));
        let keys = Arc::new(KeyRing::new(crate::reload::token_keys(&config)));
        let reloader = Reloader { limits: limits.clone(), keys: keys.clone() };
        let mut settings = CoreSettings::of(&config);
        settings.dense_positions = store.dense_positions();
        let core_context = CoreContext {
            settings,
            directory: directory.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            token_key: keys.clone(),
            revocations: revoker.revocations.clone(),
            device_notes,
            live_devices: live_devices.clone(),
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let (events_wake, publisher) = crate::publisher::start_for(&config, &store, &metrics)?;
        let push = crate::push::start_for(&config, &store, &live_devices, &metrics)?;
        let commit_context = CommitContext {
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            metrics: metrics.clone(),
            node_id: config.node_id,
            max_group_members: config.max_group_members,
            amend_windows: AmendWindows { delete: config.delete_window, edit: config.edit_window },
            commit_batch: config.commit_batch,
            commit_window: config.commit_window,
            stale_groups: stale_groups_rx,
            remote,
            events_wake,
        };
        let pipelines = commit::pipelines_for(config.commit_pipelines, store.as_ref());
        let commit::Started { queues: commits, threads: committers, horizon } =
            commit::start(commit_context, store.clone(), pipelines, QUEUE_DEPTH)
                .map_err(|source| StartError::Thread { name: "chatgw-commit".into(), source })?;
        revoker.keys_changed.connect(commits.clone(), metrics.clone());
        let media = crate::media::start(&config.media, &config.data, metrics.media.clone())?;
        let reader_context = ReaderContext {
            media: media.as_ref().map(|m| m.media.clone()),
            horizon,
            mailboxes: mailboxes.clone(),
            metrics: metrics.clone(),
            history_max_bytes: config.max_outbound / 2,
            revoker: revoker.clone(),
            presence: presence_tx.clone(),
        };
        let hub = Hub {
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            metrics: metrics.clone(),
            settings: PresenceSettings { window: config.presence_window, typing_expiry: config.typing_expiry },
            links: fleet.as_ref().map(Fleet::links),
        }
        .start(presence_tx.clone(), presence_rx)
        .map_err(|source| StartError::Thread { name: "chatgw-presence".into(), source })?;

        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(f)
                .map_err(|source| StartError::Thread { name, source })
        };
        let liveness = Liveness::start(store.clone(), metrics.clone())
            .map_err(|source| StartError::Thread { name: "chatgw-probe".into(), source })?;
        let sweeper = match (config.idempotency_retention, config.inbox_retention) {
            (keys, inbox) if keys.is_zero() && inbox.is_zero() => None,
            (keys, inbox) => Some(
                Sweeper::start(store.clone(), metrics.clone(), keys, inbox)
                    .map_err(|source| StartError::Thread { name: "chatgw-retention".into(), source })?,
            ),
        };
        let readers = (0..config.readers)
            .map(|i| {
                let (ctx, store, rx) = (reader_context.clone(), store.clone(), query_rx.clone());
                spawn(format!("chatgw-read-{i}"), Box::new(move || query::run(ctx, store, rx)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cores = drivers
            .into_iter()
            .zip(listeners)
            .enumerate()
            .map(|(i, (driver, listener))| {
                let wiring = CoreWiring {
                    engine: core_context.clone(),
                    mailboxes: mailboxes.clone(),
                    dispatch: Dispatch::new(commits.clone(), query_tx.clone(), presence_tx.clone()),
                    lifecycle: lifecycle.clone(),
                };
                spawn(
                    format!("chatgw-core-{i}"),
                    Box::new(move || {
                        if let Err(e) = driver.run(i as u16, wiring, listener) {
                            tracing::error!(core = i, error = %e, "event loop failed");
                        }
                    }),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let drain_switch = DrainSwitch::new(metrics.clone());
        let admin = admin_listener
            .map(|l| Admin::start(l, metrics.clone(), revoker.clone(), live_devices.clone(), drain_switch.clone()))
            .transpose()
            .map_err(|source| StartError::Thread { name: "chatgw-admin".into(), source })?;
        let revocations = revoker
            .start_refresher()
            .map_err(|source| StartError::Thread { name: "chatgw-revocations".into(), source })?;
        Ok(ServerHandle {
            addr,
            admin,
            driver: active,
            directory,
            metrics,
            mailboxes,
            lifecycle,
            commits,
            query_tx,
            stale_groups: stale_groups_tx,
            cores,
            committers,
            readers,
            liveness: Some(liveness),
            sweeper,
            publisher,
            push,
            fleet,
            presence: Some(hub),
            revocations: Some(revocations),
            recorder: Some(recorder),
            live_devices,
            drain_switch,
            reloader,
            media,
        })
    }
}

fn bind_admin(addr: SocketAddr) -> Result<std::net::TcpListener, StartError> {
    admin::bind(addr).map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => StartError::AdminInUse { addr },
        _ => StartError::AdminBind { addr, source },
    })
}

impl ServerHandle {
    /// Every device connection of `user` on this gateway catches up from the
    /// store now (it may have missed events another node committed to its
    /// inbox): what it missed arrives as live events, once each, in order.
    pub fn catch_up_user(&self, user: u64) {
        crate::fleet::catch_up_users(&self.directory, &self.mailboxes, &[user]);
    }

    /// Every subscribed device connection on this gateway catches up from
    /// the store, a bounded number at a time per core.
    pub fn catch_up_all(&self) {
        crate::fleet::WholeNode::new(self.mailboxes.clone()).catch_up();
    }

    /// Where to report a group whose membership another node changed: the
    /// committer forgets its cached members of it before its next batch, so
    /// the next send reads the record again.
    pub fn stale_groups(&self) -> Sender<GroupId> {
        self.stale_groups.clone()
    }

    /// Which named devices have a live connection on this gateway now (see
    /// [`LiveDevices`]): a handle that stays valid, and cheap to ask, from
    /// any thread while the gateway runs.
    pub fn live_devices(&self) -> LiveDevices {
        self.live_devices.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound admin address (`/metrics`, `/healthz`), unless
    /// `--admin-listen off`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// The bound media address (`--media-listen`), when the embedded media
    /// backend serves.
    pub fn media_addr(&self) -> Option<SocketAddr> {
        self.media.as_ref().and_then(crate::media::Running::listen_addr)
    }

    /// The I/O driver the cores run (`--io` resolved).
    pub fn io_driver(&self) -> driver::ActiveDriver {
        self.driver
    }

    /// The cores holding `user`'s open connections (diagnostics; tests use it
    /// to put two users on different cores).
    pub fn cores_of(&self, user: u64) -> Vec<u16> {
        let mut v = Vec::new();
        self.directory.for_each(user, |ep| v.push(ep.core));
        v
    }

    /// This node's link address and epoch in its fleet (`--cluster`).
    pub fn fleet_node(&self) -> Option<(SocketAddr, u64)> {
        self.fleet.as_ref().map(|f| (f.link_addr(), f.epoch()))
    }

    /// The OpenMetrics text, as the admin listener's `/metrics` serves it.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Where a drain is asked for: [`DrainSwitch::request`] turns
    /// `/readyz` to 503 at once; whoever runs the server waits on it and
    /// then calls [`ServerHandle::drain`].
    pub fn drain_switch(&self) -> DrainSwitch {
        self.drain_switch.clone()
    }

    /// What SIGHUP changes: the abuse limits and token keys (see `reload`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Drain, then stop (see `drain`): `/readyz` answers 503, the
    /// listeners close after `plan.delay`, open connections are closed
    /// with 1012 in waves over `plan.period`, then [`ServerHandle::shutdown`]
    /// finishes the commits and closes what is left.
    ///
    /// A second request ([`DrainSwitch::request`]) while this runs skips
    /// the remaining waits: every connection is closed with 1012 at once.
    pub fn drain(self, plan: DrainPlan) {
        if !self.drain_switch.requested() {
            self.drain_switch.request();
        }
        let switch = &self.drain_switch;
        let mut hurried = switch.pause_unless_hurried(plan.delay);
        self.lifecycle.enter(Stage::Refusing);
        let started = Instant::now();
        let spread_ms = u32::try_from(plan.spread().as_millis()).unwrap_or(u32::MAX);
        for (at, share_per_mille) in plan.waves() {
            hurried = hurried || switch.pause_unless_hurried(at.saturating_sub(started.elapsed()));
            let share_per_mille = if hurried { 1000 } else { share_per_mille };
            self.lifecycle.set_wave(Wave { share_per_mille, spread_ms });
            (0..self.mailboxes.cores()).for_each(|c| self.mailboxes.wake(c));
        }
        if !hurried {
            switch.pause_unless_hurried(plan.period.saturating_sub(started.elapsed()));
        }
        self.shutdown();
    }

    /// Graceful stop: stop accepting and taking requests, commit and
    /// acknowledge everything already taken, close every connection with
    /// 1001, and return when all threads are done.
    pub fn shutdown(mut self) {
        let workers = self.cores.len();
        let wake_all = |m: &Mailboxes<CoreBatch>| (0..m.cores()).for_each(|c| m.wake(c));
        self.lifecycle.enter(Stage::Draining);
        wake_all(&self.mailboxes);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.lifecycle.intake_stopped() < workers && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Everything the cores took is in the pipelines' queues, ahead of Stop.
        self.commits.stop();
        for c in self.committers.drain(..) {
            let _ = c.join();
        }
        for _ in &self.readers {
            let _ = self.query_tx.send(QueryRequest::Stop);
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        // The committer routed its last events; links say goodbye, and the
        // node leaves the registry before its connections close.
        if let Some(hub) = self.presence.take() {
            hub.stop();
        }
        if let Some(fleet) = self.fleet.take() {
            fleet.stop();
        }
        self.lifecycle.enter(Stage::Closing);
        wake_all(&self.mailboxes);
        for c in self.cores.drain(..) {
            let _ = c.join();
        }
        if let Some(liveness) = self.liveness.take() {
            liveness.stop();
        }
        if let Some(sweeper) = self.sweeper.take() {
            sweeper.stop();
        }
        if let Some(publisher) = self.publisher.take() {
            publisher.stop();
        }
        if let Some(push) = self.push.take() {
            push.stop();
        }
        if let Some(admin) = self.admin.take() {
            admin.stop();
        }
        if let Some(revocations) = self.revocations.take() {
            revocations.stop();
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.stop();
        }
        if let Some(media) = self.media.take() {
            media.stop();
        }
    }
}

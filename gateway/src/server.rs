//! Starting and stopping a gateway: store, committer, readers, cores.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU8, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use chatgw_router::{Directory, Mailboxes, Wake};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};
use crossbeam_channel::Sender;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{
    auth::TokenKey,
    commit,
    config::Config,
    driver,
    events::{CommitRequest, CoreBatch, QueryRequest},
    limits::Limits,
    metrics::Metrics,
    query,
};

pub(crate) const PHASE_RUNNING: u8 = 0;
pub(crate) const PHASE_DRAINING: u8 = 1;
pub(crate) const PHASE_CLOSING: u8 = 2;

/// Queue depth between cores and the committer / readers.
const QUEUE_DEPTH: usize = 65_536;
const LISTEN_BACKLOG: i32 = 4096;

/// State every thread of one gateway shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) directory: Directory,
    pub(crate) mailboxes: Mailboxes<CoreBatch>,
    pub(crate) commit_tx: Sender<CommitRequest>,
    pub(crate) query_tx: Sender<QueryRequest>,
    pub(crate) metrics: Metrics,
    pub(crate) token_key: TokenKey,
    pub(crate) phase: AtomicU8,
    /// TCP connections held by all cores.
    pub(crate) connections: AtomicUsize,
    pub(crate) intake_stopped: AtomicUsize,
    /// Limits that span connections and cores.
    pub(crate) limits: Limits,
}

impl Shared {
    /// The state of a gateway about to start: everything empty, limits and
    /// the directory sized from `config`, one mailbox per waker.
    pub(crate) fn new(
        config: Config,
        wakers: Vec<Arc<dyn Wake>>,
        commit_tx: Sender<CommitRequest>,
        query_tx: Sender<QueryRequest>,
    ) -> Self {
        Shared {
            token_key: TokenKey::new(config.secret.as_bytes()),
            directory: Directory::with_capacity(config.max_connections.min(1 << 20)),
            mailboxes: Mailboxes::new(wakers, crate::core::MAILBOX_EVENTS),
            commit_tx,
            query_tx,
            metrics: Metrics::new(),
            phase: AtomicU8::new(PHASE_RUNNING),
            connections: AtomicUsize::new(0),
            intake_stopped: AtomicUsize::new(0),
            limits: Limits::new(&config),
            config,
        }
    }
}

/// Entry point for embedding a gateway (the binary and the tests use it).
#[derive(Debug)]
pub struct Server;

/// A running gateway.
pub struct ServerHandle {
    addr: SocketAddr,
    driver: driver::ActiveDriver,
    shared: Arc<Shared>,
    cores: Vec<JoinHandle<()>>,
    committer: Option<JoinHandle<()>>,
    readers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle").field("addr", &self.addr).field("driver", &self.driver).finish_non_exhaustive()
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
    /// Open the store and start every thread. Returns once the listeners
    /// are bound, so connecting to [`ServerHandle::addr`] works at once.
    pub fn start(config: Config) -> anyhow::Result<ServerHandle> {
        config.validate()?;
        let store_dir = config.data.join("store");
        let store: Arc<dyn MessageStore> = Arc::new(
            EmbeddedStore::open(
                &store_dir,
                &EmbeddedOptions { background_nice: config.store_background_nice, ..EmbeddedOptions::default() },
            )
            .with_context(|| format!("opening the store in {}", store_dir.display()))?,
        );

        // One SO_REUSEPORT listener per core; port 0 is resolved by the first.
        let first = bind_reuseport(config.listen).with_context(|| format!("binding {}", config.listen))?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..config.workers {
            listeners.push(bind_reuseport(addr).with_context(|| format!("binding {addr}"))?);
        }

        let (active, drivers) = driver::build_cores(config.io, config.workers, config.uring_buffers)?;
        let wakers: Vec<Arc<dyn Wake>> = drivers.iter().map(driver::CoreDriver::waker).collect();
        let (commit_tx, commit_rx) = crossbeam_channel::bounded(QUEUE_DEPTH);
        let (query_tx, query_rx) = crossbeam_channel::bounded(QUEUE_DEPTH);
        let shared = Arc::new(Shared::new(config, wakers, commit_tx, query_tx));
        shared.metrics.set_io_driver(active.name());

        let committer = {
            let (shared, store) = (shared.clone(), store.clone());
            std::thread::Builder::new()
                .name("chatgw-commit".into())
                .spawn(move || commit::run(shared, store, commit_rx))?
        };
        let readers = (0..shared.config.readers)
            .map(|i| {
                let (shared, store, rx) = (shared.clone(), store.clone(), query_rx.clone());
                std::thread::Builder::new()
                    .name(format!("chatgw-read-{i}"))
                    .spawn(move || query::run(shared, store, rx))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cores = drivers
            .into_iter()
            .zip(listeners)
            .enumerate()
            .map(|(i, (driver, listener))| {
                let shared = shared.clone();
                std::thread::Builder::new().name(format!("chatgw-core-{i}")).spawn(move || {
                    if let Err(e) = driver.run(i as u16, shared, listener) {
                        tracing::error!(core = i, error = %e, "event loop failed");
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerHandle { addr, driver: active, shared, cores, committer: Some(committer), readers })
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The I/O driver the cores run (`--io` resolved).
    pub fn io_driver(&self) -> driver::ActiveDriver {
        self.driver
    }

    /// The cores holding `user`'s open connections (diagnostics; tests use it
    /// to put two users on different cores).
    pub fn cores_of(&self, user: u64) -> Vec<u16> {
        let mut v = Vec::new();
        self.shared.directory.for_each(user, |ep| v.push(ep.core));
        v
    }

    /// The OpenMetrics text, as `/metrics` serves it.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }

    /// Graceful stop: stop accepting and taking requests, commit and
    /// acknowledge everything already taken, close every connection with
    /// 1001, and return when all threads are done.
    pub fn shutdown(mut self) {
        let workers = self.cores.len();
        let wake_all = |s: &Shared| (0..s.mailboxes.cores()).for_each(|c| s.mailboxes.wake(c));
        self.shared.phase.store(PHASE_DRAINING, Ordering::Release);
        wake_all(&self.shared);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.intake_stopped.load(Ordering::Acquire) < workers && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Everything the cores took is in the committer's queue, ahead of Stop.
        let _ = self.shared.commit_tx.send(CommitRequest::Stop);
        if let Some(c) = self.committer.take() {
            let _ = c.join();
        }
        for _ in &self.readers {
            let _ = self.shared.query_tx.send(QueryRequest::Stop);
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.shared.phase.store(PHASE_CLOSING, Ordering::Release);
        wake_all(&self.shared);
        for c in self.cores.drain(..) {
            let _ = c.join();
        }
    }
}

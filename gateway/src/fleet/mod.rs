//! The fleet: this gateway as one node of several that share a store.
//!
//! Each node records its users in a connection registry (Redis, or Redis
//! Cluster: `chatgw_cluster::registry`) and forwards the live events it
//! commits to the nodes where their other recipients are connected, over
//! direct node links (`chatgw_cluster::link`). Three threads and the links'
//! own:
//!
//! ```text
//!   writer ──RouteJob──▶ routing thread ──Delivery──▶ Links ══TCP══▶ peer's LinkServer
//!   (after commit)       route cache, lookups          (one queue     │
//!                                                        per peer)    ▼
//!   peer's Links ══TCP══▶ LinkServer ──▶ ToCores ──▶ directory ──▶ core mailboxes
//!   cores ──presence──▶ directory queue ──▶ upkeep thread ──▶ registry (lease,
//!                                                            placements, live nodes)
//!   registry notices ──▶ subscription thread ──▶ routing thread (forget users),
//!                                                committer (forget groups)
//! ```
//!
//! Nothing acknowledged depends on any of it: every event is durable in
//! the shared store before it is routed, and positions (dense per inbox)
//! let a core see what a connection missed and catch it up from the store
//! (`core`). This module only decides when a whole node should catch up
//! (`upkeep`, `inbound`). docs/CLUSTER.md has the picture, the keys and
//! the failure table.

mod inbound;
mod link_key;
pub(crate) mod metrics;
mod route;
mod upkeep;
mod whole_node;

use std::{
    net::SocketAddr,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use chatgw_cluster::{
    link::{LinkKey, LinkListener, LinkServer, LinkSettings, Links, PeerAddr},
    registry::{Notice, RedisTarget, Registry, RegistryConfig, RegistryError, Subscription},
};
use chatgw_protocol::GroupId;
use chatgw_router::{Directory, Fanout, Mailboxes};
use crossbeam_channel::{Sender, TrySendError};

pub(crate) use self::link_key::link_key;
pub use self::metrics::FleetMetrics;
pub(crate) use self::route::RouteJob;
pub(crate) use self::whole_node::WholeNode;
use self::{inbound::ToCores, route::Control, upkeep::Upkeep};
use crate::{
    events::{CoreBatch, CoreEvent},
    presence::{PresenceRequest, RemoteIn},
};

/// Jobs the routing thread may have queued before the writer drops them.
const ROUTE_QUEUE: usize = 65_536;
/// How long placements live in the registry without being written again.
const USER_TTL: Duration = Duration::from_secs(3600);

/// What a node of a fleet is told at start.
#[derive(Clone, Debug)]
pub(crate) struct FleetSettings {
    pub(crate) registry: String,
    pub(crate) node: u16,
    pub(crate) link_listen: SocketAddr,
    pub(crate) advertise: Option<SocketAddr>,
    pub(crate) lease: Duration,
    /// What links are authenticated with ([`link_key`]).
    pub(crate) link_key: LinkKey,
}

/// Why a node could not join its fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The registry refused or could not be reached, or another live
    /// process holds this node id.
    #[error("joining the fleet")]
    Registry(#[from] RegistryError),
    /// The link address could not be bound.
    #[error("binding the link address {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("starting the fleet's threads")]
    Thread(#[source] std::io::Error),
    /// `--link-secret-file` could not be read, or holds nothing.
    #[error("reading the link secret file {}", path.display())]
    LinkSecret {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error (`InvalidData` for an empty file).
        #[source]
        source: std::io::Error,
    },
}

/// The committer's handle: events to route to other nodes, and groups
/// whose membership changed here.
pub(crate) struct RemoteOut {
    jobs: Sender<RouteJob>,
    overflowed: Arc<AtomicBool>,
    groups: Sender<u64>,
    metrics: Arc<FleetMetrics>,
}

impl RemoteOut {
    /// Route one committed event to other nodes, without waiting. A full
    /// queue drops it and makes the routing thread ask every peer to
    /// catch up.
    pub(crate) fn route(&self, job: RouteJob) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.jobs.try_send(job) {
            self.metrics.unrouted_events.inc();
            self.overflowed.store(true, Ordering::Release);
        }
    }

    /// Tell the other nodes to forget what they cached of `group`.
    pub(crate) fn group_changed(&self, group: GroupId) {
        let _ = self.groups.send(group.0);
    }
}

/// A running node's fleet threads.
pub(crate) struct Fleet {
    links: Arc<Links>,
    link_server: LinkServer,
    subscription: Subscription,
    route_control: Sender<Control>,
    router: JoinHandle<()>,
    stop_upkeep: Sender<()>,
    upkeep: JoinHandle<()>,
    epoch: u64,
    link_addr: SocketAddr,
}

impl Fleet {
    /// Join the registry (a clear error for an unreachable registry or a
    /// node id another live process holds), listen for links, and start the
    /// threads. `stale_groups` is the committer's: groups changed on other
    /// nodes.
    pub(crate) fn start(
        settings: &FleetSettings,
        directory: Arc<Directory>,
        mailboxes: Arc<Mailboxes<CoreBatch>>,
        metrics: Arc<FleetMetrics>,
        stale_groups: Sender<GroupId>,
        presence: Sender<PresenceRequest>,
    ) -> Result<(Fleet, RemoteOut), FleetError> {
        let target = RedisTarget::from_str(&settings.registry)?;
        let listener = LinkListener::bind(settings.link_listen)
            .map_err(|source| FleetError::Bind { addr: settings.link_listen, source })?;
        let link_addr = settings.advertise.unwrap_or_else(|| listener.local_addr());
        let mut config = RegistryConfig::new(settings.registry.clone(), settings.node, link_addr);
        config.lease = settings.lease;
        config.user_ttl = USER_TTL;
        let registry = Registry::join(config)?;
        let reader = registry.reader()?;
        let epoch = registry.epoch();
        tracing::info!(node = settings.node, epoch, link = %link_addr, "joined the fleet");

        let links = Arc::new(Links::new(settings.node, epoch, settings.link_key.clone(), LinkSettings::default()));
        let whole = Arc::new(WholeNode::new(mailboxes.clone()));
        let to_cores = ToCores {
            directory: directory.clone(),
            mailboxes: mailboxes.clone(),
            whole: whole.clone(),
            metrics: metrics.clone(),
            presence: RemoteIn { hub: presence, directory: directory.clone(), mailboxes: mailboxes.clone() },
        };
        let link_server = listener
            .start(settings.node, epoch, settings.link_key.clone(), Arc::new(to_cores))
            .map_err(FleetError::Thread)?;

        let (route_control, control_rx) = crossbeam_channel::unbounded();
        // The live nodes before the first event is routed: until the routing
        // thread has them, every placement would look like a ghost.
        let mut registry = registry;
        let nodes = registry.live_nodes()?;
        let peers: Vec<PeerAddr> = nodes
            .iter()
            .filter(|n| n.node != settings.node)
            .map(|n| PeerAddr { node: n.node, epoch: n.epoch, addr: n.link })
            .collect();
        links.set_peers(&peers);
        let _ = route_control.send(Control::Live(nodes.iter().map(|n| (n.node, n.epoch)).collect()));
        metrics.live_nodes.set(nodes.len() as i64);
        let live = nodes.iter().map(|n| (n.node, n.epoch)).collect();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(ROUTE_QUEUE);
        let (groups_tx, groups_rx) = crossbeam_channel::unbounded();
        let overflowed = Arc::new(AtomicBool::new(false));

        let notices = route_control.clone();
        let subscription = Subscription::start(&target, move |notice| {
            if let Notice::Groups(groups) = &notice {
                groups.iter().for_each(|g| {
                    let _ = stale_groups.send(GroupId(*g));
                });
            }
            let _ = notices.send(Control::Notice(notice));
        })?;

        let router = route::Router {
            me: settings.node,
            registry: reader,
            links: links.clone(),
            metrics: metrics.clone(),
            overflowed: overflowed.clone(),
        };
        let router = std::thread::Builder::new()
            .name("chatgw-route".into())
            .spawn(move || router.run(jobs_rx, control_rx))
            .map_err(FleetError::Thread)?;
        let upkeep = Upkeep {
            registry,
            directory,
            mailboxes,
            whole,
            links: links.clone(),
            metrics: metrics.clone(),
            route: route_control.clone(),
            groups: groups_rx,
            lease: settings.lease,
            user_ttl: USER_TTL,
        };
        let (stop_upkeep, stop_rx) = crossbeam_channel::bounded(1);
        let upkeep = std::thread::Builder::new()
            .name("chatgw-registry".into())
            .spawn(move || upkeep.run(live, stop_rx))
            .map_err(FleetError::Thread)?;
        let out = RemoteOut { jobs: jobs_tx, overflowed, groups: groups_tx, metrics };
        Ok((
            Fleet { links, link_server, subscription, route_control, router, stop_upkeep, upkeep, epoch, link_addr },
            out,
        ))
    }

    /// The links to the other nodes (the presence thread tells them its
    /// users' presence and forwards typing); give it back before
    /// [`Fleet::stop`].
    pub(crate) fn links(&self) -> Arc<Links> {
        self.links.clone()
    }

    /// This run's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The link address other nodes dial.
    pub(crate) fn link_addr(&self) -> SocketAddr {
        self.link_addr
    }

    /// After the committer is done: route what it queued, say goodbye on
    /// every link, leave the registry.
    pub(crate) fn stop(self) {
        let _ = self.route_control.send(Control::Stop);
        let _ = self.router.join();
        let _ = self.stop_upkeep.send(());
        let _ = self.upkeep.join();
        self.subscription.stop();
        match Arc::try_unwrap(self.links) {
            Ok(links) => links.shutdown(Duration::from_secs(1)),
            Err(_) => tracing::warn!("node links still shared at shutdown; not saying goodbye"),
        }
        self.link_server.stop();
    }
}

/// The connections of `users` catch up from the store.
pub(crate) fn catch_up_users(directory: &Directory, mailboxes: &Mailboxes<CoreBatch>, users: &[u64]) {
    let mut fanout = Fanout::new(mailboxes.cores());
    for user in users {
        directory.for_each(*user, |to| fanout.push(usize::from(to.core), CoreEvent::CatchUp { to }));
    }
    fanout.flush(mailboxes);
}

//! The connection registry: which nodes are alive, and which nodes each
//! user has connections on, kept in Redis (or a Redis Cluster).
//!
//! Each run of a node joins under a new epoch and holds a lease (a key with
//! a TTL it renews); a placement `user -> (node, epoch)` counts only while
//! that node's lease holds that epoch, so a killed or restarted node's
//! entries become ghosts the moment its lease lapses, without anyone
//! cleaning up. Placement changes are announced on a pub/sub channel so
//! other nodes can drop what they cached ([`Subscription`]).
//!
//! Everything is blocking, on its own connection per [`Registry`] handle
//! (the gateway's registry thread owns one, its routing thread a
//! [`Registry::reader`]), with a timeout on every read and write: a dead
//! Redis is an error to retry, never a hang. Nothing here is needed for a
//! message's durability; it decides only whether a live event is forwarded
//! or caught up from the store later. docs/CLUSTER.md lists the keys.

mod conn;
mod error;
mod keys;
mod lease;
mod placements;
mod reply;
mod scripts;
mod subscription;
mod target;

use std::{net::SocketAddr, time::Duration};

use self::conn::Conn;
pub use self::{
    error::RegistryError,
    subscription::{Notice, Subscription},
    target::RedisTarget,
};

/// How a node joins the registry.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// `redis://host:port[/db]` or `redis+cluster://host:port,...`.
    pub url: String,
    /// This node's id, unique in the fleet.
    pub node: u16,
    /// The link address other nodes dial to reach this one.
    pub link: SocketAddr,
    /// How long the lease lives without renewal (renew every third of it).
    /// A killed node's users stop being routed to after at most this long.
    pub lease: Duration,
    /// How long a user's placements live without being written again.
    pub user_ttl: Duration,
}

impl RegistryConfig {
    /// Lease 10 s, placements 1 h.
    pub fn new(url: String, node: u16, link: SocketAddr) -> RegistryConfig {
        RegistryConfig { url, node, link, lease: Duration::from_secs(10), user_ttl: Duration::from_secs(3600) }
    }
}

/// A live node: its lease holds this epoch and link address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveNode {
    /// The node id.
    pub node: u16,
    /// Its current run's epoch.
    pub epoch: u64,
    /// Where its link listener is reached.
    pub link: SocketAddr,
}

/// One node where a user has connections, under the epoch that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    /// The node id.
    pub node: u16,
    /// The run that wrote the placement.
    pub epoch: u64,
}

/// Whether a user has connections on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// The user's first connection here opened.
    Online,
    /// The user's last connection here closed.
    Offline,
}

/// What [`Registry::renew`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease held this run's epoch and was extended.
    Held,
    /// The lease had lapsed (this process was frozen, or Redis lost its
    /// data) and was taken again: peers may have stopped routing here
    /// meanwhile, so the caller republishes its users and catches up.
    Regained,
}

/// A node's handle on the registry: one connection, this run's identity.
pub struct Registry {
    conn: Conn,
    target: RedisTarget,
    config: RegistryConfig,
    epoch: u64,
    /// The lease's value for this run, `<epoch> <link>`.
    lease_value: String,
    /// False for a reader, which never takes or gives up the lease.
    owner: bool,
}

impl Registry {
    /// This node's id.
    pub fn node(&self) -> u16 {
        self.config.node
    }

    /// This run's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Where the registry is.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// Commands this handle has sent (each command of a pipeline counts),
    /// failed ones included.
    pub fn commands_sent(&self) -> u64 {
        self.conn.sent()
    }

    /// A second handle with this run's identity on its own connection, for
    /// lookups from another thread. It never renews, takes or gives up the
    /// lease.
    pub fn reader(&self) -> Result<Registry, RegistryError> {
        Ok(Registry {
            conn: Conn::connect(&self.target)?,
            target: self.target.clone(),
            config: self.config.clone(),
            epoch: self.epoch,
            lease_value: self.lease_value.clone(),
            owner: false,
        })
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("target", &self.target.to_string())
            .field("node", &self.config.node)
            .field("epoch", &self.epoch)
            .field("owner", &self.owner)
            .finish()
    }
}

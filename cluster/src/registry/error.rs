//! What can go wrong with the registry, in words an operator can act on.
//!
//! Every variant says which operation failed and against what; a Redis
//! failure keeps the driver's error as its source (and repeats its text, so
//! a log line that shows only the top error still says why).

use std::{io, net::SocketAddr};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry URL is not `redis://host:port[/db]` nor
    /// `redis+cluster://host:port,host:port,...`.
    #[error("bad connection registry url {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis could not be reached, or a command failed (a timeout, a closed
    /// connection, an error reply).
    #[error("connection registry {target}: {op} failed: {source}")]
    Redis {
        /// The registry, as its URL.
        target: String,
        /// What was being done, e.g. `connecting` or `renewing the lease`.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// Another live process holds this node id: its lease kept being
    /// renewed while this one waited for it to lapse.
    #[error(
        "node id {node} is taken: another live node holds its registry lease (epoch {epoch}, link {link}); \
         give this node another --node-id or stop the other one"
    )]
    NodeIdTaken {
        /// The node id asked for.
        node: u16,
        /// The epoch of the run that holds it.
        epoch: u64,
        /// That run's link address.
        link: SocketAddr,
    },
    /// This node's lease is held by another epoch: a newer run with the same
    /// node id took over, so this run must stop acting as the node.
    #[error(
        "node {node}'s registry lease was taken by another run (epoch {epoch}): this run is no longer node {node}"
    )]
    LeaseTaken {
        /// This node's id.
        node: u16,
        /// The epoch that holds the lease now.
        epoch: u64,
    },
    /// Redis answered with something of an unexpected shape.
    #[error("connection registry {target}: unexpected reply to {op}: {detail}")]
    Reply {
        /// The registry, as its URL.
        target: String,
        /// What was being done.
        op: &'static str,
        /// What came back.
        detail: String,
    },
    /// The operation takes or gives up the lease, which a reader handle
    /// (see `Registry::reader`) never owns.
    #[error("{op} needs the node's own registry handle; this one is a reader")]
    Reader {
        /// What was asked.
        op: &'static str,
    },
    /// A thread (the subscription's) could not be started.
    #[error("starting the registry subscription thread: {0}")]
    Thread(#[source] io::Error),
}

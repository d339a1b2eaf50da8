//! The fleet layer: how gateways on several nodes find each other's users
//! and hand each other live events.
//!
//! Two parts, neither of which knows WebSockets, protocol frames or the
//! store:
//! - [`registry`]: the connection registry in Redis (or Redis Cluster).
//!   Each node holds a lease (a key with a TTL it renews) under a new
//!   epoch on every start, records `user -> (node, epoch)` for the users it
//!   serves, looks up where other users are, and hears invalidations on a
//!   pub/sub channel. Entries of a node whose lease lapsed or whose epoch
//!   changed are ghosts: never routed to.
//! - [`link`]: persistent TCP connections between nodes, opened on
//!   demand, with a small binary framing, batching (everything queued for a
//!   node goes out in one write), bounded queues, reconnection with backoff
//!   and a catch-up notice when frames were dropped.
//!
//! Correctness never depends on either: a message is durable in the shared
//! store before anyone is told `sent`, and a device that missed a live
//! event gets it by catching up from the store. The gateway (`chatgw`)
//! decides when to catch up; this crate reports what it saw.

#![warn(missing_docs)]

#[doc(hidden)]
pub mod fuzzing;
pub mod link;
pub mod registry;

/// Real services for tests of this crate and of the gateway: a
/// `redis-server` (or a Redis Cluster of several) started on free ports,
/// and a TCP proxy that can cut and restore a link. Never for production
/// builds.
#[cfg(feature = "testing")]
pub mod testing;

//! The chatgw gateway: WebSocket connections on thread-per-core event loops,
//! durable messaging through a group committer, and replay by `sync`.
//!
//! A tour of the modules, in the order a message travels:
//! - [`driver`]: the I/O driver of one core (io_uring, or epoll through
//!   mio): accepts, receives into the core's shared buffers, writes queued
//!   bytes;
//! - `core`: the per-core engine, independent of the driver: HTTP upgrade,
//!   WebSocket frames, protocol frames, per-connection state and limits.
//!   It does no I/O and holds no channel: requests for the committer and
//!   the readers leave it as actions the driver hands on, so it is unit
//!   tested without sockets or threads;
//! - [`proxy`]: the PROXY protocol header an L4 balancer puts before a
//!   client's bytes, and the balancers trusted to send it;
//! - `limits`: abuse limits that span connections and cores (per source
//!   address, per user);
//! - `commit`: the group committer and writer threads: ids, idempotency,
//!   one fsync per group of batches, then `sent` acks and live delivery
//!   through the router;
//! - `query`: reader threads for `sync` and `history`, so no event loop
//!   ever waits on disk;
//! - [`store`]: the one place `--store` becomes a [`MessageStore`](chatgw_storage::MessageStore);
//! - `admin`: `/metrics`, `/healthz`, `/revoke` and `/live-devices` on the
//!   admin address, on a thread of their own, never on an event loop;
//! - `devices`: named devices (activity notes, logout, push targets) and
//!   which are live now ([`LiveDevices`], for a push worker);
//! - [`fleet`]: this gateway as one node of several sharing a store: the
//!   connection registry (Redis), node links, and when devices catch up;
//! - `presence`: presence and typing, never stored: one thread that
//!   keeps subscriptions and coalesces changes, fed by the directory;
//! - [`push`]: the push worker's collaborators here: the store's push
//!   targets and the providers;
//! - [`drain`]: readiness (`/readyz`) and the paced drain of SIGTERM;
//! - [`reload`]: SIGHUP's new abuse limits and token keys;
//! - [`media`]: media by signed URL: the three media frames (on the
//!   readers), the embedded backend's HTTP listener and media retention;
//! - `liveness`: a thread that asks the store a cheap question every
//!   second, so `/healthz` turns 503 when an idle gateway's store goes away;
//! - [`Server`]: starts and stops all of it. It is the one module that
//!   knows every subsystem: each gets a narrow handle (the engine a core
//!   context, the committer and the readers theirs) built there, and none
//!   imports it back.
//!
//! See `docs/ARCHITECTURE.md` for the picture.

#![warn(missing_docs)]

mod admin;
pub mod affinity;
pub mod auth;
mod commit;
pub mod config;
mod conversation_list;
mod core;
mod devices;
pub mod drain;
pub mod driver;
mod events;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
mod hidden_reads;
mod inbox_retention;
mod limits;
mod liveness;
pub mod media;
pub mod metrics;
mod presence;
pub mod proxy;
pub mod publisher;
pub mod push;
mod query;
pub mod reload;
mod retention;
mod revoke;
mod server;
pub mod store;
mod sys;
pub mod ws;

/// The commit path without the network, for benchmarks.
#[doc(hidden)]
pub use commit::bench_support as commit_bench;
pub use config::{Config, ConfigError};
pub use devices::live::LiveDevices;
pub use server::{Server, ServerHandle, StartError};

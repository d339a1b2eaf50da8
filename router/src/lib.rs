//! The routing core: which connections a user has open, on which core, and
//! how work moves between cores.
//!
//! Two parts, both free of locks on the message path:
//! - [`Directory`] maps a user to the [`Endpoint`]s (core, slot, generation)
//!   of their open connections. It is a lock-free hash map (papaya): lookups
//!   never block, and a device connecting or leaving only touches that
//!   user's entry.
//! - [`Mailboxes`] gives each core a bounded lock-free queue (crossbeam
//!   `SegQueue` and a depth counter) and a [`Wake`] handle. A producer posts
//!   a batch and wakes the core only if it was not already woken, so a
//!   burst of posts costs one wake-up. A full mailbox refuses the batch and
//!   tells the core which connections it addressed ([`Mail::Overflowed`]),
//!   so they are closed rather than skip an event. [`Fanout`] collects
//!   items per destination core so a sender posts one batch per core per
//!   turn, not one per item.
//!
//! - [`RemoteRoutes`] is the fleet's half: which other nodes a user has
//!   connections on, as the registry said, cached by the one thread that
//!   routes events to other nodes.
//!
//! The router knows nothing about WebSockets, protocol frames or storage:
//! the item type is the caller's, naming its endpoints ([`Addressed`]).
//!
//! Built with `--cfg loom`, the mailboxes use loom's atomics and the loom
//! models of the wake protocol run (see `.ci/run`).

#![warn(missing_docs)]

mod directory;
mod mailbox;
mod remote;
mod sync;

pub use directory::{Directory, Endpoint};
pub use mailbox::{Addressed, Fanout, Mail, Mailboxes, Posted, Wake};
pub use remote::{NodeRef, Placements, RemoteRoutes};

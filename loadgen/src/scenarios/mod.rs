//! Scenarios: what each subcommand does with its connections, and the
//! skeleton they share.
//!
//! Each `loadgen` subcommand that talks to a gateway has a file here that
//! checks its arguments, runs the shared skeleton ([`scenario`]: set up,
//! load, wind down, join) and prints its report, and, for the messaging
//! ones, a `*_traffic` file with one thread's share of the traffic and the
//! checks that nothing was lost or duplicated. The reconnect storm and
//! the soak are made of the same reconnecting [`device`] with its
//! [`outbox`].

pub(crate) mod connect;
pub(crate) mod ctx;
pub(crate) mod device;
pub(crate) mod failover;
pub(crate) mod failover_kill;
pub(crate) mod ghost;
pub(crate) mod group;
pub(crate) mod group_traffic;
pub(crate) mod messages;
pub(crate) mod one_to_one;
pub(crate) mod one_to_one_reconnect;
pub(crate) mod outbox;
pub(crate) mod placement;
pub(crate) mod run;
pub(crate) mod scenario;
pub(crate) mod schedule;
pub(crate) mod soak;
pub(crate) mod soak_ledger;
pub(crate) mod soak_plan;
pub(crate) mod soak_traffic;
pub(crate) mod storm;
pub(crate) mod storm_traffic;
pub(crate) mod traffic;

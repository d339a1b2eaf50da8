//! The per-core engine: everything a core does with its connections except
//! the system calls.
//!
//! The I/O driver (see [`crate::driver`]) owns the sockets' readiness and
//! the read buffer; it hands the engine bytes that arrived
//! ([`Engine::on_bytes`]), end of stream, mailbox batches and clock ticks,
//! and asks it which connections have bytes to write. The engine never
//! calls `read` or `write`, so an io_uring driver drives the same engine.
//! Nor does it hold the committer's or the readers' queues: what it asks of
//! them it returns as [`Action`]s, which the driver hands on once per loop
//! turn (see `action`). All it sees of the rest of the gateway is its
//! [`CoreContext`]. A test therefore drives it as a driver would, turn by
//! turn, over a fake socket (`harness`).
//!
//! Files: `context` is what the engine may touch outside itself; `action`
//! its requests to other threads and their refusals; `conn` is one
//! connection's state; `proxy_intake` a balancer's PROXY header before
//! the request; `http` the request before the
//! upgrade; `frames` the WebSocket frame layer; `app` the protocol frames;
//! `engine` the table of connections, `named` the device each names and
//! whether it is live, `ephemeral` presence and typing
//! frames (and the typing limit), mailbox events, timers and flushing;
//! `paging` the pages of a sync or a catch-up; `catch_up` reading missed
//! live events from the store (a gap in dense positions, or when asked);
//! `mailbox` draining the core's mailbox and its bound; `timers` the wheel
//! of connection deadlines and `ticks` what the engine does when one comes;
//! `drain` a drain's waves of 1012 closes.
//! Under test: `harness` drives one engine over a fake socket; `sync_tests`,
//! `catch_up_tests`, `named_tests` and `action_tests` pin the sync/live-cursor rules and the answers to
//! refused actions.

mod action;
#[cfg(test)]
mod action_tests;
mod app;
mod catch_up;
#[cfg(test)]
mod catch_up_tests;
mod conn;
mod context;
mod drain;
mod engine;
mod ephemeral;
mod frames;
#[cfg(test)]
pub(crate) mod harness;
mod http;
mod mailbox;
mod named;
#[cfg(test)]
mod named_tests;
mod own_events;
mod paging;
mod proxy_intake;
mod revoked;
#[cfg(test)]
mod sync_tests;
mod ticks;
mod timers;
mod unread;

pub(crate) use action::{Action, Refused};
pub(crate) use conn::Phase;
pub(crate) use context::{CoreContext, CoreSettings};
pub(crate) use engine::{Engine, Wrote};
pub(crate) use mailbox::MAILBOX_EVENTS;

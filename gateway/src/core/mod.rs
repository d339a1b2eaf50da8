//! The per-core engine: everything a core does with its connections except
//! the system calls.
//!
//! The I/O driver (see [`crate::driver`]) owns the sockets' readiness and
//! the read buffer; it hands the engine bytes that arrived
//! ([`Engine::on_bytes`]), end of stream, mailbox batches and clock ticks,
//! and asks it which connections have bytes to write. The engine never
//! calls `read` or `write`, so an io_uring driver drives the same engine.
//!
//! Files: `conn` is one connection's state; `http` the request before the
//! upgrade; `frames` the WebSocket frame layer; `app` the protocol frames;
//! `engine` the table of connections, mailbox events, timers and flushing;
//! `mailbox` draining the core's mailbox and its bound; `timers` the wheel
//! of connection deadlines and `ticks` what the engine does when one comes.

mod action;
#[cfg(test)]
mod action_tests;
mod app;
mod conn;
mod context;
mod engine;
mod frames;
#[cfg(test)]
pub(crate) mod harness;
mod http;
mod mailbox;
#[cfg(test)]
mod sync_tests;
mod ticks;
mod timers;

pub(crate) use action::{Action, Refused};
pub(crate) use conn::Phase;
pub(crate) use context::{CoreContext, CoreSettings};
pub(crate) use engine::Engine;
pub(crate) use mailbox::MAILBOX_EVENTS;

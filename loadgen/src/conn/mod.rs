//! Connections: everything between a scenario and the socket.
//!
//! Sockets and source addresses, the descriptor limit, the HTTP upgrade and
//! its token, WebSocket framing, one connection's state machine, the mio
//! event loop that drives thousands of them per thread, and the ramp that
//! opens them at a fixed rate. Nothing here knows what a scenario measures:
//! a scenario sees connections only through [`connection::Handler`] and
//! [`driver::Driver`].

pub(crate) mod connection;
pub(crate) mod driver;
pub(crate) mod event;
pub(crate) mod limits;
pub(crate) mod net;
pub(crate) mod ramp;
pub(crate) mod token;
pub(crate) mod upgrade;
pub(crate) mod ws;

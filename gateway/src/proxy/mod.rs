//! The PROXY protocol (versions 1 and 2) on the public listener, for a
//! fleet behind an L4 load balancer (docs/DEPLOY.md).
//!
//! Behind a TCP balancer every connection comes from the balancer's
//! address, so per-address limits, logs and metrics would all see one
//! client. With `--proxy-protocol` the balancer (one of `--proxy-from`)
//! writes a header with the client's address before the client's bytes;
//! the engine reads it before the HTTP request (`core::proxy_intake`) and
//! from then on the connection is the client's.
//!
//! `header` parses the header from bytes with no I/O, so every malformed
//! case is a unit test and a fuzz target; `trusted` is the list of
//! balancers allowed to send one.

mod header;
#[cfg(test)]
mod header_tests;
mod trusted;

pub use self::{
    header::{parse, Header, Malformed, MAX_HEADER, MAX_V1_LINE},
    trusted::{Cidr, TrustedProxies},
};

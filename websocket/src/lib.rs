//! The WebSocket codec (RFC 6455) of chatgw, both sides of it.
//!
//! The gateway decodes masked client frames and writes unmasked server
//! frames ([`frame`]); the load generator and tests do the opposite
//! ([`client`]); both compute the handshake's accept value ([`handshake`]).
//! One crate, so the two sides are tested against each other and the load
//! generator needs nothing of the gateway (its store, its io_uring driver).
//!
//! It is written for a memory model where the caller owns the bytes: it
//! works on slices, decodes headers from whatever a read returned, unmasks
//! in place, and appends frames to the caller's buffer. tungstenite keeps a
//! read and a write buffer per connection; with hundreds of thousands of
//! mostly idle connections that is most of a process's memory.
//!
//! What it is not: a WebSocket connection. No I/O, no HTTP parsing, no
//! fragmentation or close-handshake state; the gateway's event loop and the
//! load generator's connection keep that. Conformance of the gateway's use
//! of it is checked with the Autobahn testsuite (`scripts/autobahn.sh`), and
//! the decoder is fuzzed as the gateway feeds it (`docs/FUZZING.md`).

#![warn(missing_docs)]

pub mod client;
pub mod frame;
pub mod handshake;

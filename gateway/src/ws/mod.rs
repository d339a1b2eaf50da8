//! The WebSocket layer (RFC 6455) as the gateway uses it.
//!
//! The frame codec is the `chatgw-websocket` crate, shared with the load
//! generator and re-exported here as [`frame`]; this module adds the HTTP
//! side of the upgrade. The event loop reads into one buffer per core,
//! decodes and unmasks frames in place, and keeps bytes for a connection
//! only while a frame is incomplete. Conformance is checked with the
//! Autobahn testsuite (`scripts/autobahn.sh`), and the decoder is fuzzed as
//! the engine feeds it (`crate::fuzzing`, `docs/FUZZING.md`).

pub use chatgw_websocket::frame;
pub(crate) mod handshake;

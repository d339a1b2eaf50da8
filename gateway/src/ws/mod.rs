//! The WebSocket layer (RFC 6455), written for the gateway's memory model.
//!
//! tungstenite keeps a read buffer and a write buffer in every connection;
//! with hundreds of thousands of mostly idle connections that is most of
//! the process's memory. This codec instead works on byte slices owned by
//! the caller: the event loop reads into one buffer per core, decodes and
//! unmasks frames in place, and keeps bytes for a connection only while a
//! frame is incomplete. Conformance is checked with the Autobahn testsuite
//! (`scripts/autobahn.sh`), and the decoder is fuzzed as the engine feeds
//! it (`crate::fuzzing`, `docs/FUZZING.md`).

pub mod frame;
pub(crate) mod handshake;

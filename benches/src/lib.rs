//! Benchmarks for chatgw.
//!
//! - `cargo bench -p chatgw-benches` runs the criterion micro-benchmarks:
//!   WebSocket frame decode/encode, protocol JSON parse/serialise, router
//!   lookup and cross-core hand-off, store append throughput with group
//!   commit.
//! - `baseline-relay` is the comparison point for the load generator: the
//!   way a Rust developer would usually write this relay (tokio, a task per
//!   connection, channels, tokio-tungstenite), in memory only, with no
//!   durability. It speaks the subset of protocol v1 the load scenarios use.
//!   It is a yardstick, not a product.
//! - `e2ee` (criterion) and `e2ee-sizes`: client CPU per encrypted message
//!   and envelope bytes against plaintext; `key-fetch`: key bundles a
//!   gateway serves per second (BENCHMARKS.md, "End-to-end encryption").

pub mod e2ee_devices;

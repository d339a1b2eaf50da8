//! I/O drivers: what turns readiness or completions into calls on a core's
//! engine.
//!
//! A driver owns one core's poller, listener, waker and read buffer. It
//! calls the engine with bytes, hang-ups, mailbox batches and ticks, writes
//! what the engine queued, and closes the sockets the engine removed. Everything above it (HTTP upgrade,
//! WebSocket frames, protocol, routing, storage) is shared by every driver.
//!
//! - [`epoll`]: readiness-based, through mio; the portable default.

pub mod epoll;
mod intake;

use std::time::Duration;

/// Size of each core's shared read buffer.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long shutdown waits for goodbyes to drain.
pub(crate) const CLOSE_DEADLINE: Duration = Duration::from_secs(3);

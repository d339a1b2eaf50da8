//! Node links: persistent TCP connections that carry live events from the
//! node that committed them to the nodes where their users are connected.
//!
//! Each direction is its own connection: [`Links`] dials every peer and
//! writes, a [`LinkServer`] accepts and reads. Plain threads and blocking
//! sockets: a fleet has a handful of nodes, so a thread per peer (and per
//! accepted session) is cheap, and it keeps every wait bounded by a socket
//! timeout rather than by an executor's scheduling.
//!
//! ```text
//!   send() ──▶ peer queue (bounded) ──▶ writer thread ══TCP══▶ session reader ──▶ Inbound
//!              (events, bytes,           one write per          (one callback per
//!               owed CatchUpAll)         batch; Ping/Pong        read's deliveries)
//! ```
//!
//! Nothing here is needed for correctness: whenever a frame may have been
//! lost (a full queue, a failed write, a session that ended without a
//! Goodbye) the receiving side is told to catch up from the store, and the
//! gateway decides what that means. [`frame`] is the wire format, pure.
//!
//! Every session opens with a [`handshake`] under the fleet's [`LinkKey`]:
//! a peer without the key is closed before anything it sends is acted on.

pub mod frame;
pub mod handshake;
mod key;
mod sender;
mod server;
mod settings;
mod stats;

use std::{net::SocketAddr, sync::Arc};

pub use self::{
    key::LinkKey,
    sender::{Links, PeerAddr, Sent},
    server::{LinkListener, LinkServer},
    settings::LinkSettings,
    stats::{LinkStats, ServerStats},
};

/// One live event for some users of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The event's id (its message id).
    pub event: u64,
    /// The event as the gateway encoded it for its devices, sent as is.
    pub payload: Arc<[u8]>,
    /// `(user, position in that user's inbox)` for every target user on
    /// the destination node.
    pub targets: Vec<(u64, u64)>,
}

/// One user's presence on the node that sends it (docs/CLUSTER.md,
/// "Presence and typing").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceEntry {
    /// The user.
    pub user: u64,
    /// [`PresenceEntry::ONLINE`] and [`PresenceEntry::HIDDEN`] bits.
    pub flags: u8,
    /// When the user's last connection on the sender closed, Unix
    /// milliseconds (0: never, or online).
    pub last_seen: u64,
}

impl PresenceEntry {
    /// The user has a connection on the sending node.
    pub const ONLINE: u8 = 1;
    /// The user turned presence off.
    pub const HIDDEN: u8 = 2;
}

/// What a [`LinkServer`] hands the node: called on the session's reader
/// thread, in the order the frames arrived.
pub trait Inbound: Send + Sync + 'static {
    /// Every delivery decoded from one read of `from`'s session, in order.
    fn deliver(&self, from: u16, deliveries: Vec<Delivery>);
    /// `from` may have failed to deliver events to `users` (`None`: to
    /// anyone on this node).
    fn catch_up(&self, from: u16, users: Option<Vec<u64>>);
    /// `from`'s session ended, once per session that said Hello. `clean`
    /// only when a Goodbye came first: otherwise frames may have been lost.
    fn session_ended(&self, from: u16, clean: bool);
    /// `payload` for the devices of `users` on this node, never stored.
    fn ephemeral(&self, from: u16, payload: Arc<[u8]>, users: Vec<u64>) {
        let _ = (from, payload, users);
    }
    /// Presence of `from`'s users.
    fn presence(&self, from: u16, entries: Vec<PresenceEntry>) {
        let _ = (from, entries);
    }
    /// A connection from `addr` was refused at the handshake (a wrong or
    /// missing MAC, another protocol version): nothing it sent was acted
    /// on.
    fn refused(&self, addr: SocketAddr) {
        let _ = addr;
    }
    /// A connection from `addr` was closed on accept: too many were still
    /// in their handshake (`LinkSettings::pending_handshakes*`).
    fn shed(&self, addr: SocketAddr) {
        let _ = addr;
    }
}

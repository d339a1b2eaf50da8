//! A connection's socket as the io_uring driver keeps it: the descriptor
//! and what the kernel is doing with it.
//!
//! The engine owns these while the connection lives (it is the engine's
//! socket type). When the engine removes a connection, the driver keeps the
//! socket in [`Closing`] until its receive is cancelled and its last send
//! completed, and only then closes the descriptor: closing it earlier would
//! neither stop those operations nor free the connection.

use std::{
    collections::HashMap,
    os::fd::{AsRawFd, OwnedFd, RawFd},
    time::Instant,
};

use super::token::ConnId;

/// One connection's descriptor and operations in flight.
pub(crate) struct UringSock {
    fd: OwnedFd,
    pub(crate) id: ConnId,
    /// A multishot receive is posted.
    pub(crate) recv_armed: bool,
    /// A send is posted (its buffer lives in the driver's send table).
    pub(crate) sending: bool,
}

impl UringSock {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        UringSock { fd, id: ConnId { slot: 0, generation: 0 }, recv_armed: false, sending: false }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Nothing of this socket is in flight: it may be closed.
    pub(crate) fn idle(&self) -> bool {
        !self.recv_armed && !self.sending
    }
}

/// Sockets of removed connections whose operations are still in flight.
#[derive(Default)]
pub(crate) struct Closing {
    socks: HashMap<ConnId, (UringSock, Instant)>,
}

impl Closing {
    /// Keep `sock` until it is idle; close it now if it already is.
    pub(crate) fn hold(&mut self, sock: UringSock, now: Instant) {
        if !sock.idle() {
            self.socks.insert(sock.id, (sock, now));
        }
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut UringSock> {
        self.socks.get_mut(&id).map(|(s, _)| s)
    }

    /// Close `id`'s socket if nothing of it is in flight any more.
    pub(crate) fn release_if_idle(&mut self, id: ConnId) {
        if self.socks.get(&id).is_some_and(|(s, _)| s.idle()) {
            self.socks.remove(&id);
        }
    }

    /// Sockets held since before `deadline` that still have a send posted
    /// (a peer that stopped reading its goodbye).
    pub(crate) fn stuck_sends(&self, deadline: Instant) -> impl Iterator<Item = ConnId> + '_ {
        self.socks.values().filter(move |(s, since)| s.sending && *since < deadline).map(|(s, _)| s.id)
    }

    /// Whether `id` was removed before `deadline`.
    pub(crate) fn held_since_before(&self, id: ConnId, deadline: Instant) -> bool {
        self.socks.get(&id).is_some_and(|(_, since)| *since < deadline)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }
}

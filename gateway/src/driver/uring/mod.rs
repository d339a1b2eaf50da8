//! The io_uring driver: completion-based, one ring per core.
//!
//! Where the epoll driver waits for readiness and then reads and writes,
//! this one posts the operations and is told when they are done: one
//! multishot accept on the core's listener, one multishot receive per
//! connection into a ring of buffers the core shares (no receive buffer per
//! connection), one send at a time per connection, and one read of the
//! waker's eventfd. All of a turn's submissions go to the kernel in one
//! system call. The engine is the same as under epoll; only the way bytes
//! reach it and leave it differs.
//!
//! Files: `support` decides whether the kernel allows io_uring; `ring`
//! sizes the ring and queues submissions; `buf_ring` is the shared receive
//! buffers; `token` names operations in `user_data`; `sock` is a
//! connection's descriptor and what is in flight on it; `waker` the
//! cross-core wake-up; `event_loop` (with `accept` and `recv_send`) maps
//! completions to engine calls.

mod buf_ring;
mod event_loop;
mod ring;
mod sock;
mod support;
mod token;
mod waker;

use std::{io, net::TcpListener, sync::Arc};

use chatgw_router::Wake;
use io_uring::IoUring;

#[cfg(test)]
pub(crate) use self::support::check_sysctl;
use self::{buf_ring::BufRing, event_loop::CoreLoop};
pub use self::{
    support::{check, Unavailable},
    waker::UringWake,
};
use crate::driver::CoreWiring;

/// The buffer group of each core's receive buffers (each ring has its own).
const BUFFER_GROUP: u16 = 0;

/// One core's ring, receive buffers and waker, made before the core's
/// thread starts so that the waker can be handed to the router and a
/// failure can still fall back to epoll.
pub struct UringCore {
    wake: Arc<UringWake>,
    /// Taken by `run`.
    parts: Option<(IoUring, BufRing)>,
}

impl UringCore {
    /// A ring with `buffers` receive buffers registered, and a waker.
    pub fn new(buffers: u16) -> Result<Self, Unavailable> {
        let ring = ring::build().map_err(Unavailable::setup)?;
        support::check_ring(&ring)?;
        let mut bufs = BufRing::new(buffers, BUFFER_GROUP)
            .map_err(|source| Unavailable::Setup { reason: "allocating receive buffers", source })?;
        bufs.register(&ring.submitter()).map_err(|source| Unavailable::Setup {
            reason: "registering the provided-buffer ring (kernel 5.19 or later)",
            source,
        })?;
        let wake = UringWake::new().map_err(|source| Unavailable::Setup { reason: "creating an eventfd", source })?;
        Ok(UringCore { wake: Arc::new(wake), parts: Some((ring, bufs)) })
    }

    /// The handle other threads use to wake this core.
    pub fn waker(&self) -> Arc<dyn Wake> {
        self.wake.clone()
    }

    /// Run the core until shutdown completes.
    pub(crate) fn run(mut self, core: u16, wiring: CoreWiring, listener: TcpListener) -> io::Result<()> {
        // Non-blocking, so refusing a backlog by hand (out of descriptors)
        // stops when it is empty.
        listener.set_nonblocking(true)?;
        let Some((ring, bufs)) = self.parts.take() else {
            return Err(io::Error::other("the core already ran"));
        };
        CoreLoop::new(ring, bufs, self.wake.clone(), listener).run(core, wiring)
    }
}

impl Drop for UringCore {
    fn drop(&mut self) {
        // A core that never ran: nothing is in flight, the buffers can go.
        if let Some((ring, bufs)) = self.parts.as_mut() {
            let _ = bufs.unregister(&ring.submitter());
        }
    }
}

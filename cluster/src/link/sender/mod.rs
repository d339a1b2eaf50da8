//! The sending side of node links: one bounded queue and one writer thread
//! per peer, kept in step with the live-node table.
//!
//! [`Links::send`] never blocks: it pushes onto the peer's queue or refuses
//! (unknown peer, full queue), and a refusal is remembered as a CatchUpAll
//! the peer gets before anything queued later. The writer thread does the
//! dialling, batching and keepalive (`peer`).

mod peer;
mod queue;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError, RwLock},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use self::{peer::Peer, queue::Queue};
use super::{
    frame::Frame,
    stats::{add, SendCounters},
    Delivery, LinkKey, LinkSettings, LinkStats,
};

/// Where a peer's link listener is, for this run of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    /// The peer's node id.
    pub node: u16,
    /// The peer's current epoch: a new one means a new run, and a fresh
    /// link.
    pub epoch: u64,
    /// The address to dial.
    pub addr: SocketAddr,
}

/// What became of a frame handed to [`Links`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// On the peer's queue; it goes out with the next write.
    Queued,
    /// Refused: the peer is unknown, its queue is full or the frame is too
    /// large. A known peer is sent a CatchUpAll once there is room.
    Dropped,
}

/// A running writer thread and its queue.
struct PeerHandle {
    addr: PeerAddr,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
}

impl PeerHandle {
    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Outgoing links to every peer of the fleet.
pub struct Links {
    me: u16,
    epoch: u64,
    key: LinkKey,
    settings: LinkSettings,
    peers: RwLock<HashMap<u16, PeerHandle>>,
    /// Writer threads told to stop (peer gone or replaced), joined later.
    retired: Mutex<Vec<PeerHandle>>,
    counters: Arc<SendCounters>,
}

impl Links {
    /// No peers yet: this node (`node`, in its run `epoch`) links to those
    /// [`Links::set_peers`] lists, proving with `key` that it is of their
    /// fleet (and checking that they are).
    pub fn new(node: u16, epoch: u64, key: LinkKey, settings: LinkSettings) -> Links {
        Links {
            me: node,
            epoch,
            key,
            settings,
            peers: RwLock::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            counters: Arc::new(SendCounters::default()),
        }
    }

    /// The peers to link to from now on. A new peer gets a writer thread;
    /// a peer whose epoch or address changed gets a fresh one (what was
    /// queued for its previous run is dropped); a peer no longer listed is
    /// stopped. Never waits for a thread.
    pub fn set_peers(&self, peers: &[PeerAddr]) {
        let mut map = self.peers.write().unwrap_or_else(PoisonError::into_inner);
        let mut retired = Vec::new();
        map.retain(|node, handle| {
            let keep = peers.iter().any(|p| p.node == *node && *p == handle.addr);
            if !keep {
                handle.queue.stop();
                retired.push(PeerHandle {
                    addr: handle.addr,
                    queue: handle.queue.clone(),
                    thread: handle.thread.take(),
                });
            }
            keep
        });
        for p in peers {
            if map.contains_key(&p.node) {
                continue;
            }
            let queue = Arc::new(Queue::new(&self.settings));
            let peer = Peer {
                me: self.me,
                epoch: self.epoch,
                node: p.node,
                addr: p.addr,
                key: self.key.clone(),
                settings: self.settings.clone(),
                queue: queue.clone(),
                counters: self.counters.clone(),
            };
            match peer.spawn() {
                Ok(thread) => {
                    tracing::debug!(peer = p.node, epoch = p.epoch, addr = %p.addr, "linking to a peer");
                    map.insert(p.node, PeerHandle { addr: *p, queue, thread: Some(thread) });
                }
                Err(e) => {
                    tracing::warn!(peer = p.node, error = %e, "could not start a link thread; retried with the next peer list")
                }
            }
        }
        drop(map);
        let mut old = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        old.retain_mut(|h| {
            let running = h.thread.as_ref().is_some_and(|t| !t.is_finished());
            if !running {
                h.join();
            }
            running
        });
        old.extend(retired);
    }

    /// Queue `d` for `node`, without waiting.
    pub fn send(&self, node: u16, d: Delivery) -> Sent {
        self.push(node, Frame::Deliver(d))
    }

    /// Tell `node` that `users` (`None`: anyone there) may have missed
    /// events. A CatchUpAll takes no queue room and goes out before
    /// anything queued later.
    pub fn catch_up(&self, node: u16, users: Option<Vec<u64>>) -> Sent {
        match users {
            Some(users) => self.push(node, Frame::CatchUp(users)),
            None => match self.peers.read().unwrap_or_else(PoisonError::into_inner).get(&node) {
                Some(peer) => {
                    peer.queue.owe_all();
                    Sent::Queued
                }
                None => Sent::Dropped,
            },
        }
    }

    /// Queue a frame that may be lost (typing, presence) for `node`: a
    /// refusal is counted but owes the peer no catch-up, since nothing
    /// stored is missing.
    pub fn send_lossy(&self, node: u16, frame: Frame) -> Sent {
        let sent = match self.peers.read().unwrap_or_else(PoisonError::into_inner).get(&node) {
            Some(peer) => peer.queue.push_lossy(frame),
            None => Sent::Dropped,
        };
        if sent == Sent::Dropped {
            add(&self.counters.dropped, 1);
        }
        sent
    }

    fn push(&self, node: u16, frame: Frame) -> Sent {
        let sent = match self.peers.read().unwrap_or_else(PoisonError::into_inner).get(&node) {
            Some(peer) => peer.queue.push(frame),
            None => Sent::Dropped,
        };
        if sent == Sent::Dropped {
            add(&self.counters.dropped, 1);
        }
        sent
    }

    /// The peers linked to now.
    pub fn peers(&self) -> Vec<PeerAddr> {
        self.peers.read().unwrap_or_else(PoisonError::into_inner).values().map(|h| h.addr).collect()
    }

    /// What the links did so far.
    pub fn stats(&self) -> LinkStats {
        self.counters.snapshot()
    }

    /// Write what is queued for every peer, then a Goodbye, then close;
    /// whatever is not done within `timeout` is stopped without one.
    pub fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let map = self.peers.read().unwrap_or_else(PoisonError::into_inner);
        map.values().for_each(|p| p.queue.close());
        for p in map.values() {
            if !p.queue.wait_finished(deadline) {
                tracing::warn!(peer = p.addr.node, "a node link did not finish in time; closing it without a goodbye");
            }
        }
        // Drop stops whatever is left and joins every thread.
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        let peers = self.peers.get_mut().unwrap_or_else(PoisonError::into_inner);
        let retired = self.retired.get_mut().unwrap_or_else(PoisonError::into_inner);
        let all: Vec<&mut PeerHandle> = peers.values_mut().chain(retired.iter_mut()).collect();
        all.iter().for_each(|p| p.queue.stop());
        for p in all {
            p.join();
        }
    }
}

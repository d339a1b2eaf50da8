//! The receiving side of node links: a listener whose accept thread starts
//! one reader thread per session (`session`), which opens with the
//! handshake and acts on nothing before it is through. Connections still in
//! their handshake are bounded per address and in all (`pending`).
//!
//! Stopping is prompt whatever the sessions are doing: the accept thread is
//! woken by a connection to itself, every session's socket is shut down,
//! and every thread is joined.

mod deadline;
mod pending;
mod refusals;
mod session;

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    thread::JoinHandle,
    time::Duration,
};

use self::{
    pending::{Pending, PendingSlot},
    refusals::RefusalLog,
    session::Session,
};
use super::{
    stats::{add, ServerCounters},
    Inbound, LinkKey, LinkSettings, ServerStats,
};

/// A bound link address, not yet accepting.
pub struct LinkListener {
    listener: TcpListener,
    addr: SocketAddr,
    settings: LinkSettings,
}

impl LinkListener {
    /// Bind `addr` (port 0 picks a free port).
    pub fn bind(addr: SocketAddr) -> io::Result<LinkListener> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        Ok(LinkListener { listener, addr, settings: LinkSettings::default() })
    }

    /// Use `settings` (the frame limit and the dead-session timeout).
    pub fn with_settings(mut self, settings: LinkSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Accept sessions as node `node` in its run `epoch`, from peers that
    /// hold `key`, handing what they bring to `inbound`.
    pub fn start(self, node: u16, epoch: u64, key: LinkKey, inbound: Arc<dyn Inbound>) -> io::Result<LinkServer> {
        let shared = Arc::new(Shared {
            node,
            epoch,
            key,
            refusals: Mutex::new(RefusalLog::default()),
            pending: Arc::new(Mutex::new(Pending::new(
                self.settings.pending_handshakes_per_address,
                self.settings.pending_handshakes,
            ))),
            settings: self.settings,
            inbound,
            stopping: AtomicBool::new(false),
            sessions: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            counters: ServerCounters::default(),
        });
        let listener = self.listener;
        let accepting = shared.clone();
        let accept = std::thread::Builder::new()
            .name("chatgw-link-accept".into())
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(LinkServer { addr: self.addr, shared, accept: Some(accept) })
    }
}

/// A running link listener and its sessions.
pub struct LinkServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// What the accept thread and the sessions share.
pub(super) struct Shared {
    pub(super) node: u16,
    pub(super) epoch: u64,
    pub(super) key: LinkKey,
    /// Which refused handshakes were logged lately, per address.
    refusals: Mutex<RefusalLog>,
    /// Connections still in their handshake.
    pending: Arc<Mutex<Pending>>,
    pub(super) settings: LinkSettings,
    pub(super) inbound: Arc<dyn Inbound>,
    pub(super) stopping: AtomicBool,
    /// Every open session's socket, to shut down at stop.
    sessions: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
    pub(super) counters: ServerCounters,
}

impl Shared {
    fn sessions(&self) -> MutexGuard<'_, HashMap<u64, TcpStream>> {
        // Plain map of sockets: consistent even after a panic elsewhere.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn threads(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn forget(&self, id: u64) {
        self.sessions().remove(&id);
    }

    /// Whether to log a refused handshake from `ip` now: `Some(n)` with
    /// the refusals from it left unlogged since its last line.
    pub(super) fn log_refusal(&self, ip: IpAddr) -> Option<u64> {
        self.refusals.lock().unwrap_or_else(PoisonError::into_inner).note(ip, std::time::Instant::now())
    }
}

impl LinkServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the sessions did so far.
    pub fn stats(&self) -> ServerStats {
        self.shared.counters.snapshot()
    }

    /// Stop accepting, end every session (without calling
    /// [`Inbound::session_ended`]: the node is going away) and join every
    /// thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; it sees `stopping` and exits.
        let wake = SocketAddr::new(loopback_for(self.addr.ip()), self.addr.port());
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = accept.join();
        for stream in self.shared.sessions().values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = self.shared.threads().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for LinkServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Where to connect to reach a listener bound to `ip` (a wildcard address
/// is reached on loopback).
fn loopback_for(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather
                // than spin; the listener stays.
                tracing::warn!(error = %e, "accepting a node link failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(slot) = PendingSlot::take(&shared.pending, peer.ip()) else {
            drop(stream);
            add(&shared.counters.handshakes_shed, 1);
            shared.inbound.shed(peer);
            if let Some(unlogged) = shared.log_refusal(peer.ip()) {
                tracing::warn!(
                    addr = %peer, unlogged,
                    "closed a node link on accept: too many connections are still in their handshake (from this address, or in all); further refusals from this address are logged at most once a minute",
                );
            }
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let clone = match stream.try_clone() {
            Ok(clone) => clone,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "could not keep a node link");
                continue;
            }
        };
        shared.sessions().insert(id, clone);
        let session = Session { id, stream, peer, shared: shared.clone(), pending: Some(slot) };
        let spawned = std::thread::Builder::new().name(format!("chatgw-link-from-{peer}")).spawn(move || session.run());
        let mut threads = shared.threads();
        threads.retain(|t| !t.is_finished());
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::warn!(error = %e, %peer, "could not start a node link session");
                shared.forget(id);
            }
        }
    }
}

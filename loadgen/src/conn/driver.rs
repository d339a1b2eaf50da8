//! The event loop of one loadgen thread: a mio poller over all of the
//! thread's connections.
//!
//! One thread can hold ~19,000 sockets because a connection costs a file
//! descriptor, a `Conn` of ~130 bytes and the kernel's socket buffers, and
//! the loop only touches sockets the kernel reports ready. Sockets are
//! registered edge-triggered for both directions once: a ready socket is
//! read until it would block and its pending output written, so no interest
//! ever has to be re-armed.
//!
//! The driver owns connection setup (connect, upgrade, welcome, sync), the
//! handshake timeout and the close at the end; a scenario only sees the text
//! frames of up connections, through [`Handler`], and sends with
//! [`Driver::send_text`]. A scenario that reconnects learns which
//! connections ended from [`Driver::take_ended`] and opens new ones with
//! [`Driver::reopen`] from the cursor it kept. Several gateways (a fleet's
//! nodes, `--url a,b,c`) are targets by index: the scenario says which node
//! each connection goes to, a reconnection goes back to the same node
//! unless [`Driver::redirect`] moved that node's reconnections elsewhere.

use std::{collections::VecDeque, io, net::IpAddr, sync::Arc, time::Duration};

use mio::{Events, Interest, Poll, Token};

use crate::{
    conn::{
        connection::{Conn, ConnStats, Cx, End, Handler, Phase},
        net::{self, Target},
        token::Minter,
    },
    report::shared::{Clock, Live},
};

/// Bytes read from a socket at a time (one buffer per thread).
const READ_BUFFER: usize = 256 * 1024;

/// Connection setup settings.
#[derive(Clone, Debug)]
pub(crate) struct DriverConfig {
    /// The gateways (the fleet's nodes), by node index.
    pub(crate) targets: Vec<Target>,
    /// Source addresses, used round-robin; empty lets the kernel choose.
    pub(crate) sources: Vec<IpAddr>,
    /// Time allowed from connect start to `synced`.
    pub(crate) handshake_timeout: Duration,
}

/// A scenario that ignores every frame (the connect test).
pub(crate) struct Ignore;

impl Handler for Ignore {
    fn on_text(&mut self, _: usize, _: &crate::conn::event::ServerFrame<'_>, _: u64, _: &mut String) {}
}

/// One thread's connections and poller.
pub(crate) struct Driver {
    poll: Poll,
    events: Events,
    ready: Vec<usize>,
    conns: Vec<Conn>,
    rbuf: Vec<u8>,
    reply: String,
    config: DriverConfig,
    next_source: usize,
    minter: Minter,
    deadlines: VecDeque<(u64, usize)>,
    clock: Clock,
    live: Arc<Live>,
    seed: u64,
    /// Connections that ended other than by our close or kill, since the
    /// last [`Driver::take_ended`].
    ended: Vec<usize>,
    /// The node each connection went to, by connection id.
    node_of: Vec<u16>,
    /// Where a reconnection to each node goes instead (itself unless
    /// [`Driver::redirect`]ed).
    redirects: Vec<usize>,
    /// Outcomes so far.
    pub(crate) stats: ConnStats,
}

impl Driver {
    /// A driver with no connections yet.
    pub(crate) fn new(
        config: DriverConfig,
        minter: Minter,
        clock: Clock,
        live: Arc<Live>,
        seed: u64,
    ) -> io::Result<Self> {
        let redirects = (0..config.targets.len()).collect();
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            ready: Vec::with_capacity(4096),
            conns: Vec::new(),
            rbuf: vec![0; READ_BUFFER],
            reply: String::new(),
            config,
            next_source: 0,
            minter,
            deadlines: VecDeque::new(),
            clock,
            live,
            seed,
            ended: Vec::new(),
            node_of: Vec::new(),
            redirects,
            stats: ConnStats::default(),
        })
    }

    /// Start connecting as `user` to node `node` (an index into the
    /// targets, taken modulo their number), to `sync` from cursor `after`
    /// (0: from the start); returns the connection's id. A connection that
    /// fails at once is counted, stays Closed and is reported by
    /// `take_ended`.
    pub(crate) fn open(&mut self, node: usize, user: u64, after: u64) -> usize {
        self.open_conn(node, user, after, false)
    }

    /// Like [`Driver::open`], for a device coming back after its connection
    /// `previous` ended: to the same node, or where that node is
    /// [`redirect`](Driver::redirect)ed. Its handshake is kept out of the
    /// first-connection figures (`established`, handshake latencies), since
    /// the scenario measures reconnections itself.
    pub(crate) fn reopen(&mut self, previous: usize, user: u64, after: u64) -> usize {
        let node = self.redirects.get(self.node_of(previous)).copied().unwrap_or(0);
        self.open_conn(node, user, after, true)
    }

    /// Like [`Driver::reopen`], to the node after the one `previous` went
    /// to (round the list): a client given several addresses tries them in
    /// turn, so a drained node's devices come back on the others.
    pub(crate) fn reopen_next(&mut self, previous: usize, user: u64, after: u64) -> usize {
        let node = self.node_of(previous) + 1;
        self.open_conn(node, user, after, true)
    }

    /// The server's `retry_after_ms` hint (in ns) from the close of
    /// connection `id`, if it ended with 1012 and gave one.
    pub(crate) fn retry_hint_ns(&self, id: usize) -> Option<u64> {
        self.conns.get(id)?.retry_hint_ms().map(|ms| u64::from(ms) * 1_000_000)
    }

    /// From now on, reconnections of connections to node `from` go to node
    /// `to` (as a client told that a node is gone would).
    pub(crate) fn redirect(&mut self, from: usize, to: usize) {
        if let Some(r) = self.redirects.get_mut(from) {
            *r = to % self.config.targets.len().max(1);
        }
    }

    /// The node connection `id` went to (0 for an unknown id).
    pub(crate) fn node_of(&self, id: usize) -> usize {
        self.node_of.get(id).map_or(0, |&n| usize::from(n))
    }

    /// How many nodes (gateway URLs) the run has.
    pub(crate) fn nodes(&self) -> usize {
        self.config.targets.len()
    }

    fn open_conn(&mut self, node: usize, user: u64, after: u64, reconnect: bool) -> usize {
        let id = self.conns.len();
        let node = node % self.config.targets.len().max(1);
        // Node indexes come from the URL list, which `--url` parsing keeps
        // far below u16::MAX.
        self.node_of.push(u16::try_from(node).unwrap_or(u16::MAX));
        let Some(target) = self.config.targets.get(node) else {
            self.conns.push(Conn::failed());
            self.stats.failed.add("no gateway URL (connecting)");
            Live::bump(&self.live.failed);
            self.ended.push(id);
            return id;
        };
        let (addr, host) = (target.addr, target.host.clone());
        let now = self.clock.now_ns();
        self.stats.opened += 1;
        let source = if self.config.sources.is_empty() {
            None
        } else {
            let s = self.config.sources[self.next_source % self.config.sources.len()];
            self.next_source = self.next_source.wrapping_add(1);
            Some(s)
        };
        let mut stream = match net::start_connect(addr, source) {
            Ok(s) => s,
            Err((what, e)) => {
                self.conns.push(Conn::failed());
                self.stats.failed.add(&format!("{what}: {} (connecting)", net::error_name(&e)));
                Live::bump(&self.live.failed);
                self.ended.push(id);
                return id;
            }
        };
        if let Err(e) = self.poll.registry().register(&mut stream, Token(id), Interest::READABLE | Interest::WRITABLE) {
            self.conns.push(Conn::failed());
            self.stats.failed.add(&format!("register: {} (connecting)", net::error_name(&e)));
            Live::bump(&self.live.failed);
            self.ended.push(id);
            return id;
        }
        let token = self.minter.mint(user);
        let seed = self.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.conns.push(Conn::new(stream, &host, &token, now, seed, (after, reconnect)));
        let timeout = u64::try_from(self.config.handshake_timeout.as_nanos()).unwrap_or(u64::MAX);
        self.deadlines.push_back((now.saturating_add(timeout), id));
        id
    }

    /// Connections started and not yet up or failed.
    pub(crate) fn unresolved(&self) -> u64 {
        self.stats.opened.saturating_sub(self.stats.established + self.stats.failed.total())
    }

    /// Send a text frame on an up connection; false if it is not up (or
    /// broke while writing, which is counted as a drop).
    pub(crate) fn send_text(&mut self, id: usize, text: &str) -> bool {
        let Some(conn) = self.conns.get_mut(id) else {
            return false;
        };
        if conn.phase != Phase::Up {
            return false;
        }
        match conn.send_text(text) {
            Ok(()) => true,
            Err(end) => {
                conn.finish(end, &mut self.stats, &self.live);
                self.ended.push(id);
                false
            }
        }
    }

    /// The clock's time now.
    pub(crate) fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Whether connection `id` is up (synced and open).
    pub(crate) fn is_up(&self, id: usize) -> bool {
        self.conns.get(id).is_some_and(|c| c.phase == Phase::Up)
    }

    /// Close connection `id` abruptly (see [`Conn::kill`]); returns whether
    /// it was up. It is not reported by `take_ended`.
    pub(crate) fn kill(&mut self, id: usize) -> bool {
        match self.conns.get_mut(id) {
            Some(conn) => conn.kill(&mut self.stats, &self.live),
            None => false,
        }
    }

    /// The connections that ended (failed, dropped, refused) since the last
    /// call, other than by our close or kill.
    pub(crate) fn take_ended(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.ended)
    }

    /// Wait up to `timeout` for socket events and handle them all, then
    /// expire handshakes that took too long.
    pub(crate) fn poll(&mut self, timeout: Duration, handler: &mut dyn Handler) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|e| e.token().0));
        let now_ns = self.clock.now_ns();
        for i in 0..self.ready.len() {
            let id = self.ready[i];
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            let mut cx = Cx {
                id,
                now_ns,
                stats: &mut self.stats,
                live: &self.live,
                handler: &mut *handler,
                reply: &mut self.reply,
            };
            if let Err(end) = conn.on_ready(&mut self.rbuf, &mut cx) {
                if conn.phase != Phase::Closing && conn.phase != Phase::Closed {
                    self.ended.push(id);
                }
                conn.finish(end, &mut self.stats, &self.live);
            }
        }
        self.expire_handshakes(self.clock.now_ns());
        Ok(())
    }

    fn expire_handshakes(&mut self, now_ns: u64) {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now_ns {
                break;
            }
            self.deadlines.pop_front();
            if let Some(conn) = self.conns.get_mut(id) {
                if conn.handshaking() {
                    conn.finish(End::Error("handshake timeout".into()), &mut self.stats, &self.live);
                    self.ended.push(id);
                }
            }
        }
    }

    /// Close every connection: a close frame to each open one, then wait up
    /// to `grace` for the server to answer and hang up; what is left is
    /// dropped.
    pub(crate) fn close_all(&mut self, grace: Duration, handler: &mut dyn Handler) {
        for conn in &mut self.conns {
            match conn.start_close() {
                Ok(true) => {
                    Live::unbump(&self.live.up);
                }
                Ok(false) => {}
                Err(end) => conn.finish(end, &mut self.stats, &self.live),
            }
        }
        let deadline = self.clock.now_ns().saturating_add(grace.as_nanos() as u64);
        while self.conns.iter().any(|c| c.phase == Phase::Closing) {
            let now = self.clock.now_ns();
            if now >= deadline {
                break;
            }
            let wait = Duration::from_nanos(deadline - now).min(Duration::from_millis(100));
            if self.poll(wait, handler).is_err() {
                break;
            }
        }
        for conn in &mut self.conns {
            if let Some(s) = conn.stream_mut() {
                let _ = self.poll.registry().deregister(s);
            }
            if conn.phase == Phase::Closing {
                // The close was sent; the server just did not hang up in time.
                conn.finish(End::Clean, &mut self.stats, &self.live);
            } else if conn.phase != Phase::Closed {
                conn.finish(End::Error("still open at the end".into()), &mut self.stats, &self.live);
            }
        }
    }
}

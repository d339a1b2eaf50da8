//! What the link tests share: an [`Inbound`] that records what it is
//! told, short timers, free ports and deliveries to compare.

#![allow(dead_code, unreachable_pub)]

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use chatgw_cluster::link::{handshake, Delivery, Inbound, LinkKey, LinkListener, LinkServer, LinkSettings};

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a [`Recorder`] was told, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Deliver(u16, Vec<Delivery>),
    CatchUp(u16, Option<Vec<u64>>),
    Ended(u16, bool),
    Refused(SocketAddr),
    Shed(SocketAddr),
}

/// Records every call, and wakes waiters.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
    changed: Condvar,
}

impl Inbound for Recorder {
    fn deliver(&self, from: u16, deliveries: Vec<Delivery>) {
        self.push(Seen::Deliver(from, deliveries));
    }

    fn catch_up(&self, from: u16, users: Option<Vec<u64>>) {
        self.push(Seen::CatchUp(from, users));
    }

    fn session_ended(&self, from: u16, clean: bool) {
        self.push(Seen::Ended(from, clean));
    }

    fn refused(&self, addr: SocketAddr) {
        self.push(Seen::Refused(addr));
    }

    fn shed(&self, addr: SocketAddr) {
        self.push(Seen::Shed(addr));
    }
}

impl Recorder {
    fn push(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
        self.changed.notify_all();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `done` holds for what was seen; panics after [`WAIT`].
    pub fn wait(&self, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + WAIT;
        let mut seen = self.seen.lock().unwrap();
        while !done(&seen) {
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for {what}; seen: {:?}", *seen);
            seen = self.changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
        seen.clone()
    }

    /// The event ids delivered so far, in order.
    pub fn events(&self) -> Vec<u64> {
        events(&self.seen())
    }

    /// Wait until `n` events were delivered; their ids in order.
    pub fn wait_events(&self, n: usize) -> Vec<u64> {
        events(&self.wait(&format!("{n} events"), |s| events(s).len() >= n))
    }

    pub fn wait_ended(&self, from: u16, clean: bool) {
        self.wait(&format!("session of {from} ended (clean: {clean})"), |s| s.contains(&Seen::Ended(from, clean)));
    }
}

pub fn events(seen: &[Seen]) -> Vec<u64> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Deliver(_, ds) => Some(ds.iter().map(|d| d.event)),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Quick timers so failures are noticed within a test's patience.
pub fn short() -> LinkSettings {
    LinkSettings {
        ping_after: Duration::from_millis(100),
        dead_after: Duration::from_millis(500),
        redial_min: Duration::from_millis(10),
        redial_max: Duration::from_millis(100),
        connect_timeout: Duration::from_millis(500),
        ..LinkSettings::default()
    }
}

/// A loopback address nobody listens on now (bound, then released).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// The link key of the tests' fleet.
pub fn key() -> LinkKey {
    LinkKey::derive(b"link tests")
}

/// A link server on `addr` as node `node` (epoch 1, [`key`]), recording
/// into a new recorder.
pub fn serve(addr: SocketAddr, node: u16, settings: LinkSettings) -> (LinkServer, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let server = LinkListener::bind(addr).unwrap().with_settings(settings).start(node, 1, key(), rec.clone()).unwrap();
    (server, rec)
}

/// A raw session to the server of node `server` at `addr`, past the
/// handshake as node `node` of the tests' fleet: what is written next is
/// the session's.
pub fn open(addr: SocketAddr, node: u16, server: u16) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    handshake::dial(&mut s, node, 1, server, &key()).unwrap();
    s
}

/// Delivery `event` for two users, its payload naming it.
pub fn delivery(event: u64) -> Delivery {
    Delivery {
        event,
        payload: Arc::from(format!("{{\"event\":{event}}}").into_bytes()),
        targets: vec![(event * 10, event), (event * 10 + 1, event + 1)],
    }
}

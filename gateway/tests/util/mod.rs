//! Helpers shared by the gateway's integration tests: a gateway on a free
//! port (and its admin listener on another) with its store in a temp dir or
//! a fresh PostgreSQL database, tokens, clients, raw sockets, and
//! [`each_driver!`] / [`each_store!`], which run a test once per I/O driver
//! and store.
//!
//! PostgreSQL: one server per test binary ([`TestPostgres`], started by the
//! first test that needs it and stopped when the binary exits), and a new
//! database per gateway, prepared as `chatgw store init` does. Tests stay
//! parallel and see nothing of each other; the server's start (an
//! `initdb`) is paid once per binary, a `CREATE DATABASE` once per test.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use chatgw_client::{Client, Event, GroupId, MessageEvent, MessageId, MessageKind, UserId};
pub use chatgw_gateway::config::IoDriver;
use chatgw_gateway::{auth::TokenKey, store::StoreUrl, Config, Server, ServerHandle};
use chatgw_storage::conformance::TestPostgres;

pub mod amend;
pub mod capture;
pub mod chat_proc;
pub mod child;
pub mod fleet;
pub mod haproxy;
pub mod keys;
pub mod ledger;
pub mod media;
pub mod presence;
pub mod push;
pub mod search;
pub mod served;

/// Run the test function `name(io: IoDriver)` once per I/O driver, as the
/// tests `name::epoll` and `name::uring`. Written just above the function,
/// like an attribute; a function it does not name is dead code, which the
/// lints refuse, so no test silently runs on one driver only.
// A test binary uses `each_driver!`, `each_store!` or both.
#[allow(unused_macros)]
macro_rules! each_driver {
    ($name:ident) => {
        mod $name {
            #[test]
            fn epoll() {
                super::$name(chatgw_gateway::config::IoDriver::Epoll)
            }

            #[test]
            fn uring() {
                super::$name(chatgw_gateway::config::IoDriver::Uring)
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use each_driver;

/// Run the test function `name(on: Setup)` once per I/O driver on the
/// embedded store and once on PostgreSQL, as the tests `name::epoll`,
/// `name::uring` and `name::epoll_postgres`. The store is independent of
/// the I/O driver (only the committer and readers touch it), so PostgreSQL
/// runs on one driver rather than doubling the suite's time.
#[allow(unused_macros)]
macro_rules! each_store {
    ($name:ident) => {
        mod $name {
            use chatgw_gateway::config::IoDriver;

            use crate::util::{Setup, TestStore};

            #[test]
            fn epoll() {
                super::$name(Setup { io: IoDriver::Epoll, store: TestStore::Embedded })
            }

            #[test]
            fn uring() {
                super::$name(Setup { io: IoDriver::Uring, store: TestStore::Embedded })
            }

            #[test]
            fn epoll_postgres() {
                super::$name(Setup { io: IoDriver::Epoll, store: TestStore::Postgres })
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use each_store;

/// The store a test gateway runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    /// The embedded store, in the gateway's temporary data directory.
    Embedded,
    /// A fresh database on this test binary's PostgreSQL server.
    Postgres,
}

/// What a test runs on: an I/O driver and a store. An [`IoDriver`] alone
/// means the embedded store.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub io: IoDriver,
    pub store: TestStore,
}

impl From<IoDriver> for Setup {
    fn from(io: IoDriver) -> Self {
        Setup { io, store: TestStore::Embedded }
    }
}

impl Setup {
    /// The `--store` value for this setup: `embedded`, or a new prepared
    /// database.
    pub fn store_url(&self) -> StoreUrl {
        match self.store {
            TestStore::Embedded => StoreUrl::default(),
            TestStore::Postgres => fresh_postgres_store(),
        }
    }
}

/// This binary's PostgreSQL server, once a test asked for it.
static POSTGRES: Mutex<Option<TestPostgres>> = Mutex::new(None);

/// A new database on this binary's PostgreSQL server (started on first
/// use), with the schema in place, as `chatgw store init` leaves it.
pub fn fresh_postgres_store() -> StoreUrl {
    let url = {
        let mut server = POSTGRES.lock().unwrap_or_else(PoisonError::into_inner);
        let pg = server.get_or_insert_with(|| {
            // SAFETY: `stop_postgres` is a plain function that never
            // unwinds; atexit only stores its address.
            let registered = unsafe { libc::atexit(stop_postgres) };
            assert_eq!(registered, 0, "atexit");
            TestPostgres::start()
        });
        pg.url(&pg.create_database())
    };
    let url: StoreUrl = url.parse().expect("a postgres URL");
    chatgw_gateway::store::init(&url).expect("store init");
    url
}

/// At exit: stop the server (dropping it runs `pg_ctl stop`), so no test
/// binary leaves one behind.
extern "C" fn stop_postgres() {
    if let Ok(mut server) = POSTGRES.try_lock() {
        drop(server.take());
    }
}

pub const SECRET: &str = "test-secret";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestGateway {
    pub handle: Option<ServerHandle>,
    /// The store it runs on (`embedded`: under `dir`).
    pub store: StoreUrl,
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`), unless a test turned it off.
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub key: TokenKey,
}

impl TestGateway {
    pub fn start(on: impl Into<Setup>, workers: usize) -> Self {
        Self::start_with(on, workers, |_| {})
    }

    /// A gateway on `on.io` (`Uring` must really get io_uring: no
    /// fallback) and `on.store`, with its admin listener on a free loopback
    /// port.
    pub fn start_with(on: impl Into<Setup>, workers: usize, tune: impl FnOnce(&mut Config)) -> Self {
        let on = on.into();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf(), SECRET.into());
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        config.workers = workers;
        config.io = on.io;
        config.store = on.store_url();
        tune(&mut config);
        let store = config.store.clone();
        let handle = Server::start(config).expect("gateway starts");
        let (addr, admin) = (handle.addr(), handle.admin_addr());
        TestGateway { handle: Some(handle), store, addr, admin, dir, key: TokenKey::new(SECRET.as_bytes()) }
    }

    /// The admin address (the test must not have turned it off).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("the admin listener is on")
    }

    /// `GET path` on the admin listener; the whole response.
    pub fn admin_get(&self, path: &str) -> String {
        raw_exchange(self.admin_addr(), format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn token(&self, user: u64) -> String {
        self.key.mint(UserId(user), chatgw_gateway::auth::unix_now() + 3600)
    }

    pub fn connect(&self, user: u64) -> Client {
        Client::connect(self.addr, &self.token(user)).expect("client connects")
    }

    /// Connect and sync to the present (the usual start of a device session).
    pub fn online(&self, user: u64) -> Client {
        let mut c = self.connect(user);
        c.sync().unwrap();
        c.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();
        c
    }

    /// A metric's value, rendered in process (no socket).
    pub fn metric(&self, name: &str) -> f64 {
        metric_value(&self.handle().metrics_text(), name)
    }

    /// The body of `/metrics` from the admin listener.
    pub fn scrape(&self) -> String {
        let resp = self.admin_get("/metrics");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        resp.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).expect("a body")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
    }
}

pub fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
}

pub fn sent_id(c: &mut Client, client_id: &str) -> (MessageId, bool) {
    c.wait_for(WAIT, "sent", |e| match e {
        Event::Sent { client_id: cid, id, duplicate } if cid == client_id => Some((*id, *duplicate)),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

pub fn next_message(c: &mut Client) -> MessageEvent {
    c.wait_for(WAIT, "message", |e| match e {
        Event::Message(m) => Some(m.clone()),
        _ => None,
    })
    .unwrap()
}

pub fn next_error(c: &mut Client) -> (String, Option<String>) {
    c.wait_for(WAIT, "error", |e| match e {
        Event::Error { code, reference, .. } => Some((code.clone(), reference.clone())),
        _ => None,
    })
    .unwrap()
}

pub fn next_close(c: &mut Client) -> u16 {
    c.wait_for(WAIT, "close", |e| match e {
        Event::Closed { code, .. } => Some(*code),
        _ => None,
    })
    .unwrap()
}

/// Sync from the client's cursor; everything until `synced`.
pub fn sync_all(c: &mut Client) -> Vec<Event> {
    c.sync().unwrap();
    let mut out = Vec::new();
    loop {
        match c.next_event(WAIT).unwrap() {
            Some(Event::Synced { .. }) => return out,
            Some(e) => out.push(e),
            None => panic!("sync did not finish; got {out:?}"),
        }
    }
}

/// A raw HTTP exchange: send bytes, read until the server closes.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client frame with the given opcode byte and payload, masked.
pub fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    chatgw_gateway::ws::frame::client_frame(first_byte, payload, [0x11, 0x22, 0x33, 0x44])
}

/// Open a WebSocket by hand and return the socket positioned after the
/// 101 response and the welcome frame.
pub fn raw_ws(addr: SocketAddr, token: &str) -> TcpStream {
    raw_ws_welcome(addr, token).0
}

/// [`raw_ws`], with the welcome frame's text.
pub fn raw_ws_welcome(addr: SocketAddr, token: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let (_, payload) = read_server_frame(&mut s);
    assert!(payload.starts_with(br#"{"type":"welcome""#));
    (s, String::from_utf8(payload).expect("a text frame"))
}

/// Read one unmasked server frame: (opcode, payload).
pub fn read_server_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0F, p)
}

/// Read frames until a close frame; its code.
pub fn read_close_code(s: &mut TcpStream) -> u16 {
    loop {
        let (op, p) = read_server_frame(s);
        if op == 0x8 {
            return u16::from_be_bytes([p[0], p[1]]);
        }
    }
}

/// A pair that must keep working while something else misbehaves.
pub struct Healthy {
    pub a: Client,
    pub b: Client,
    n: u32,
}

impl Healthy {
    pub fn new(gw: &TestGateway) -> Self {
        Healthy { a: gw.online(1001), b: gw.online(1002), n: 0 }
    }

    /// One message from `a` to `b`: acked, then delivered.
    pub fn check(&mut self) {
        self.n += 1;
        let cid = format!("healthy-{}", self.n);
        self.a.send_message(UserId(1002), &cid, chatgw_client::MessageKind::Text, "still here").unwrap();
        let (id, _) = sent_id(&mut self.a, &cid);
        assert_eq!(next_message(&mut self.b).id, id);
    }
}

/// A TCP connection to `addr` from the source address `from` (any address
/// in 127.0.0.0/8 works on loopback).
pub fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect(&addr.into())?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(WAIT))?;
    Ok(s)
}

/// Send an HTTP request on `s` and read until the server closes.
pub fn http_on(mut s: TcpStream, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The id of the group the next `group` answer describes; an `error`
/// answer fails the test.
pub fn group_id(c: &mut Client) -> GroupId {
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, .. } => Some(*id),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap()
}

/// The next message that is not a system message.
pub fn next_chat(c: &mut Client) -> MessageEvent {
    c.wait_for(WAIT, "message", |e| match e {
        Event::Message(m) if m.kind != MessageKind::System => Some(m.clone()),
        _ => None,
    })
    .unwrap()
}

/// Bodies of the direct messages from `from` among `events`.
pub fn bodies_from(events: &[Event], from: u64) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.from == UserId(from) && m.group.is_none() => Some(m.body.clone()),
            _ => None,
        })
        .collect()
}

//! A TCP proxy that tests put between two nodes to break their link on
//! purpose: cut it (every connection closed, new ones refused until
//! restored) or stall it (bytes held, connections open, until restored).
//!
//! Real sockets, so the code under test sees exactly what a network
//! failure looks like to it: a reset or end of stream, or silence. It also
//! keeps the first bytes each client sent, for tests that replay them.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

/// How long the proxy waits to reach its target for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes kept of what each client sent first ([`FaultProxy::sent`]).
const CAPTURE: usize = 4096;

/// A proxy from a free loopback port to a target address.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    target: SocketAddr,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    cut: bool,
    stalled: bool,
    stopping: bool,
    /// Both sockets of every live connection, to close at a cut, and how
    /// many of its two pumps still run.
    conns: HashMap<u64, (TcpStream, TcpStream, u8)>,
    next_id: u64,
    pumps: Vec<JoinHandle<()>>,
    /// The first bytes each client sent, one entry per connection.
    sent: Vec<Vec<u8>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn close_all(st: &mut State) {
        for (_, (a, b, _)) in st.conns.drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

impl FaultProxy {
    /// Listen on a free loopback port and forward every connection to
    /// `target` (dialled when the connection arrives, so the target may
    /// start later). Panics if no loopback port can be bound: a test
    /// cannot run without one.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port for the proxy");
        let addr = listener.local_addr().expect("the proxy's bound address");
        let shared = Arc::new(Shared { target, state: Mutex::new(State::default()), changed: Condvar::new() });
        let accepting = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accept_loop(&listener, &accepting))
            .expect("the proxy's thread starts");
        FaultProxy { addr, shared, accept: Some(accept) }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Close every connection, and close new ones at once, until
    /// [`FaultProxy::restore`].
    pub fn cut(&self) {
        let mut st = self.shared.lock();
        st.cut = true;
        Shared::close_all(&mut st);
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Stop forwarding bytes (both directions, every connection, new ones
    /// too) without closing anything, until [`FaultProxy::restore`].
    pub fn stall(&self) {
        self.shared.lock().stalled = true;
        self.shared.changed.notify_all();
    }

    /// What each connection's client sent first (up to 4 KiB each), in
    /// the order the connections came: a capture of the wire to replay.
    pub fn sent(&self) -> Vec<Vec<u8>> {
        self.shared.lock().sent.clone()
    }

    /// Undo [`FaultProxy::cut`] and [`FaultProxy::stall`]: held bytes
    /// flow again and new connections are forwarded.
    pub fn restore(&self) {
        let mut st = self.shared.lock();
        st.cut = false;
        st.stalled = false;
        drop(st);
        self.shared.changed.notify_all();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.stopping = true;
        Shared::close_all(&mut st);
        drop(st);
        self.shared.changed.notify_all();
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let pumps: Vec<JoinHandle<()>> = self.shared.lock().pumps.drain(..).collect();
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        let st = shared.lock();
        if st.stopping {
            return;
        }
        let cut = st.cut;
        drop(st);
        let Ok(client) = client else { continue };
        if cut {
            drop(client);
            continue;
        }
        if let Err(e) = forward(client, shared) {
            tracing::debug!(error = %e, "the proxy could not forward a connection");
        }
    }
}

/// Dial the target for `client` and start a pump each way.
fn forward(client: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    let server = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT)?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pumps = [(client.try_clone()?, server.try_clone()?), (server.try_clone()?, client.try_clone()?)];
    let mut st = shared.lock();
    if st.cut || st.stopping {
        return Ok(());
    }
    let id = st.next_id;
    st.next_id += 1;
    st.conns.insert(id, (client, server, 2));
    st.sent.push(Vec::new());
    let captured = st.sent.len() - 1;
    st.pumps.retain(|p| !p.is_finished());
    for ((from, to), capture) in pumps.into_iter().zip([Some(captured), None]) {
        let shared = shared.clone();
        let pump = move || {
            pump(from, to, &shared, capture);
            let mut st = shared.lock();
            if let Some((_, _, running)) = st.conns.get_mut(&id) {
                *running -= 1;
                if *running == 0 {
                    st.conns.remove(&id);
                }
            }
        };
        st.pumps.push(std::thread::Builder::new().name("fault-proxy-pump".into()).spawn(pump)?);
    }
    Ok(())
}

/// Copy `from` to `to` until either ends, holding bytes while stalled;
/// keep the first bytes in `sent[capture]`.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Shared, capture: Option<usize>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut st = shared.lock();
        if let Some(kept) = capture.and_then(|i| st.sent.get_mut(i)) {
            let room = CAPTURE.saturating_sub(kept.len()).min(n);
            kept.extend_from_slice(buf.get(..room).unwrap_or_default());
        }
        while st.stalled && !st.cut && !st.stopping {
            st = shared.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if st.cut || st.stopping {
            break;
        }
        drop(st);
        if to.write_all(buf.get(..n).unwrap_or_default()).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

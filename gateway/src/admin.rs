//! The admin listener: `GET /metrics`, `GET /healthz`, `GET /readyz`,
//! `POST /admin/drain` (see `drain`) and `POST /revoke?user=N` (session revocation, see `revoke`) on their own address
//! (`--admin-listen`, loopback by default), on their own thread.
//!
//! Why apart from the public listener: `/metrics` has no authentication and
//! tells anyone who can reach it how loaded the gateway is, so it belongs
//! on an address only operators reach; and rendering it walks every metric
//! family, work no event loop should do while connections wait. `/healthz`
//! is served here too (and stays on the public port for load balancers).
//! `/revoke` closes a user's connections and refuses their tokens: an
//! operator's action, so it is only here, never on the public port.
//! `GET /live-devices?user=N&...` says which named devices of those users
//! have a live connection here (`devices::live`), for a push worker that
//! asks every gateway of a fleet.
//!
//! The listener is deliberately small and blocking: one thread, one
//! connection at a time, one request per connection (`Connection: close`).
//! Each connection gets [`REQUEST_DEADLINE`] to deliver a request head of at
//! most [`MAX_REQUEST_HEAD`] bytes; a slow or silent client is cut off at
//! the deadline, so it delays scrapes queued behind it by at most that
//! long and cannot stop the thread. Nothing here touches the event loops.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};

use crate::{devices::live::LiveDevices, drain::DrainSwitch, metrics::Metrics, revoke::Revoker, ws::handshake};

/// Time one admin connection has to send its request head.
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Largest admin request head accepted.
pub(crate) const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Connections the kernel queues while one is being served.
const BACKLOG: i32 = 16;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Bind the admin address. Unlike the public port there is no
/// SO_REUSEPORT: two gateways on one box must not share an admin address,
/// or a scrape would reach either at random.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// The running admin thread.
pub(crate) struct Admin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// A second handle on the listening socket, to wake the blocked accept.
    waker: Socket,
    thread: JoinHandle<()>,
}

impl Admin {
    /// Serve `listener` on a new thread until [`Admin::stop`].
    pub(crate) fn start(
        listener: TcpListener,
        metrics: Arc<Metrics>,
        revoker: Revoker,
        live: LiveDevices,
        drain: DrainSwitch,
    ) -> io::Result<Admin> {
        let addr = listener.local_addr()?;
        let waker = Socket::from(listener.try_clone()?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("chatgw-admin".into())
                .spawn(move || serve(&listener, &Handles { metrics, revoker, live, drain }, &stop))?
        };
        Ok(Admin { addr, stop, waker, thread })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting and wait for the thread (at most one request's
    /// deadline, if a client is being served).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        // On Linux, shutting a listening socket down fails the accept that
        // is blocked on it, which then sees `stop`.
        let _ = self.waker.shutdown(Shutdown::Both);
        let _ = self.thread.join();
    }
}

/// What the admin endpoints act on.
struct Handles {
    metrics: Arc<Metrics>,
    revoker: Revoker,
    live: LiveDevices,
    drain: DrainSwitch,
}

fn serve(listener: &TcpListener, handles: &Handles, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => answer(stream, handles),
            Err(_) if stop.load(Ordering::Acquire) => return,
            Err(e) => {
                // Out of descriptors and the like: the next accept may work.
                tracing::warn!(error = %e, "admin listener: accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Read one request from `stream` within the deadline and answer it.
fn answer(mut stream: TcpStream, handles: &Handles) {
    let Handles { metrics, revoker, live, drain } = handles;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let (status, reason, content_type, body) = loop {
        match handshake::parse(&head) {
            Ok(Some(req)) if req.path == "/revoke" => {
                let (status, reason, body) = crate::revoke::answer(revoker, req.method, req.query);
                break (status, reason, TEXT, body.into_bytes());
            }
            Ok(Some(req)) if req.path == "/live-devices" => {
                let (status, reason, content_type, body) = crate::devices::live::answer(live, req.method, req.query);
                break (status, reason, content_type, body.into_bytes());
            }
            Ok(Some(req)) if req.path == "/admin/drain" => break drain_answer(req.method, drain),
            Ok(Some(req)) => break route(req.method, req.path, metrics),
            Ok(None) if head.len() > MAX_REQUEST_HEAD => {
                break (431, "Request Header Fields Too Large", TEXT, b"request head too large\n".to_vec())
            }
            Ok(None) => {}
            Err(bad) => break (400, "Bad Request", TEXT, format!("{}\n", bad.0).into_bytes()),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break (408, "Request Timeout", TEXT, b"request timeout\n".to_vec());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                break (408, "Request Timeout", TEXT, b"request timeout\n".to_vec())
            }
            Err(_) => return,
        }
    };
    let mut out = Vec::with_capacity(160 + body.len());
    handshake::respond(&mut out, status, reason, content_type, &body);
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(Shutdown::Write);
}

/// `POST /admin/drain`: start a drain, as SIGTERM does (`drain`); 202, the
/// process exits once the drain is done.
fn drain_answer(method: &str, drain: &DrainSwitch) -> (u16, &'static str, &'static str, Vec<u8>) {
    if method != "POST" {
        return (405, "Method Not Allowed", TEXT, b"only POST\n".to_vec());
    }
    drain.request();
    (202, "Accepted", TEXT, b"draining\n".to_vec())
}

fn route(method: &str, path: &str, metrics: &Metrics) -> (u16, &'static str, &'static str, Vec<u8>) {
    match (method, path) {
        ("GET", "/metrics") => (200, "OK", OPENMETRICS, metrics.render().into_bytes()),
        ("GET", "/healthz") => match (metrics.store_failure(), metrics.fleet.degraded()) {
            (None, None) => (200, "OK", TEXT, b"ok\n".to_vec()),
            // The node still serves its own users; cross-node events wait
            // for the registry (docs/CLUSTER.md), so it stays in rotation.
            (None, Some(cause)) => {
                (200, "OK", TEXT, format!("degraded: connection registry unreachable: {cause}\n").into_bytes())
            }
            (Some(cause), _) => {
                (503, "Service Unavailable", TEXT, format!("store not writable: {cause}\n").into_bytes())
            }
        },
        ("GET", "/readyz") => {
            let (status, reason, body) = crate::drain::readiness(metrics);
            (status, reason, TEXT, body.into_bytes())
        }
        (_, "/metrics" | "/healthz" | "/readyz") => (405, "Method Not Allowed", TEXT, b"only GET\n".to_vec()),
        _ => (
            404,
            "Not Found",
            TEXT,
            b"not found: the admin listener serves /metrics, /healthz, /readyz, /revoke, /live-devices and /admin/drain\n".to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: &str, path: &str) -> (u16, String) {
        let m = Metrics::new();
        let (status, _, _, body) = route(method, path, &m);
        (status, String::from_utf8(body).unwrap())
    }

    #[test]
    fn routes_metrics_and_health_and_refuses_the_rest() {
        let (status, body) = get("GET", "/metrics");
        assert_eq!(status, 200);
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get("GET", "/healthz"), (200, "ok\n".into()));
        assert_eq!(get("POST", "/metrics").0, 405);
        assert_eq!(get("GET", "/ws").0, 404);
        assert_eq!(get("GET", "/metrics/").0, 404);
    }
}

//! The TLS HTTP/2 accept loop shared by the test servers, and what every test server
//! offers: script, record, wait.

use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    body::Bytes,
    http::{HeaderMap, Method, Version},
    Response,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::{
    rustls::{
        crypto::ring::default_provider,
        pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
        ServerConfig,
    },
    TlsAcceptor,
};

use super::{pki::pki, Received, Reply};

/// One request as the rules see it, body read in full.
pub(crate) struct Arrived {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Arrived {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A provider's rules: check a request, answer it through the [`Log`].
pub(crate) trait Rules: Send + Sync + 'static {
    fn handle(&self, request: &Arrived, log: &Log) -> Reply;
}

/// What arrived, what was wrong, and what to answer next.
#[derive(Default)]
pub(crate) struct Log {
    connections: AtomicUsize,
    received: Mutex<Vec<Received>>,
    problems: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Reply>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Log {
    /// A request broke the contract: remember why and answer as the provider would.
    pub(crate) fn refuse(&self, problem: String, reply: Reply) -> Reply {
        lock(&self.problems).push(problem);
        reply
    }

    /// A valid push: answer with the next scripted reply, or `ok`, and record it.
    pub(crate) fn accept(&self, request: &Arrived, token: &str, payload: Value, ok: Reply) -> Reply {
        let reply = lock(&self.script).pop_front().unwrap_or(ok);
        let headers = request
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        lock(&self.received).push(Received {
            token: token.to_owned(),
            headers,
            payload,
            status: reply.status,
            at: Instant::now(),
        });
        reply
    }
}

/// A running test server; the alias names ([`super::ApnsServer`], [`super::FcmServer`],
/// [`super::WebhookServer`]) add what is particular to each provider. Stops accepting
/// when dropped.
pub struct TestServer<R> {
    pub(crate) addr: SocketAddr,
    pub(crate) rules: Arc<R>,
    log: Arc<Log>,
    pub(crate) dir: tempfile::TempDir,
    accept: JoinHandle<()>,
}

impl<R> Drop for TestServer<R> {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Binds 127.0.0.1:0, then builds the rules (which may write key files into `dir`
/// and need the address), then serves. `h2_only` offers ALPN `h2` alone (APNs).
pub(crate) async fn launch<R: Rules>(h2_only: bool, make: impl FnOnce(SocketAddr, &Path) -> R) -> TestServer<R> {
    // Test set-up: failures here are a broken environment, not peer input.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("ca.pem"), &pki().ca_pem).expect("write CA file");
    let rules = Arc::new(make(addr, dir.path()));
    let log = Arc::new(Log::default());
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(h2_only)));
    let accept = tokio::spawn(accept_loop(listener, acceptor, h2_only, Arc::clone(&rules), Arc::clone(&log)));
    TestServer { addr, rules, log, dir, accept }
}

impl<R> TestServer<R> {
    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The test CA to trust ([`crate::PushConfig::extra_ca_file`], `tls:ca-file=`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Answers the next valid pushes with these replies, in order; then success again.
    pub fn respond_with(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.log.script).extend(replies);
    }

    /// Every valid push so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.log.received).clone()
    }

    /// Valid pushes to `token`, whatever they were answered.
    pub fn attempts_to(&self, token: &str) -> usize {
        lock(&self.log.received).iter().filter(|r| r.token == token).count()
    }

    /// Pushes to `token` answered with success.
    pub fn delivered_to(&self, token: &str) -> usize {
        lock(&self.log.received).iter().filter(|r| r.token == token && (200..300).contains(&r.status)).count()
    }

    /// Waits until `token` got `count` successful pushes; false on timeout.
    pub async fn wait_for_delivered(&self, token: &str, count: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.delivered_to(token) < count {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// TLS connections accepted so far (clients should reuse one).
    pub fn connections(&self) -> usize {
        self.log.connections.load(Ordering::Relaxed)
    }

    /// Requests that broke the documented contract, with the reason. Assert it empty.
    pub fn problems(&self) -> Vec<String> {
        lock(&self.log.problems).clone()
    }
}

fn tls_config(h2_only: bool) -> ServerConfig {
    let pki = pki();
    let chain = vec![CertificateDer::from(pki.leaf_der.clone())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.leaf_key_der.clone()));
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .expect("test server TLS configuration");
    config.alpn_protocols = if h2_only { vec![b"h2".to_vec()] } else { vec![b"h2".to_vec(), b"http/1.1".to_vec()] };
    config
}

async fn accept_loop<R: Rules>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    h2_only: bool,
    rules: Arc<R>,
    log: Arc<Log>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (acceptor, rules, log) = (acceptor.clone(), Arc::clone(&rules), Arc::clone(&log));
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            log.connections.fetch_add(1, Ordering::Relaxed);
            let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (rules, log) = (Arc::clone(&rules), Arc::clone(&log));
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let arrived = Arrived {
                        method: parts.method,
                        path: parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
                        version: parts.version,
                        headers: parts.headers,
                        body,
                    };
                    let reply = rules.handle(&arrived, &log);
                    Ok::<_, Infallible>(into_response(reply))
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if h2_only {
                builder = builder.http2_only();
            }
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn into_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) =
            (hyper::http::HeaderName::from_bytes(name.as_bytes()), hyper::http::HeaderValue::from_str(&value))
        {
            response.headers_mut().append(name, value);
        }
    }
    response
}

//! The media listener (`--media-listen`): the embedded backend's part
//! `PUT`s and object `GET`s over plain HTTP/1.1.
//!
//! Unlike the admin listener, transfers are long (a 256 MiB video) and
//! many at once, so one thread accepts and a fixed pool of
//! `--media-transfers` threads serves, one transfer each. A connection
//! that finds every thread busy and the hand-off queue full is answered
//! 503 `busy` at once rather than left waiting. Each transfer holds one
//! 64 KiB buffer, so memory stays bounded whatever the sizes; a peer that
//! sends or reads nothing for [`IDLE`] is cut off.

use std::{
    io,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use chatgw_media::embedded::{EmbeddedBackend, Method, Refusal};
use crossbeam_channel::{Receiver, TrySendError};
use socket2::{Domain, Protocol, Socket, Type};

use super::metrics::MediaMetrics;

/// A transfer that moves no byte for this long is cut off.
pub(crate) const IDLE: Duration = Duration::from_secs(30);
const BACKLOG: i32 = 1024;

/// Bind the media address.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(BACKLOG)?;
    Ok(s.into())
}

/// The running listener and its transfer threads.
pub(crate) struct MediaListener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Socket,
    accept: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

impl MediaListener {
    /// Serve `listener` with `transfers` threads until [`MediaListener::stop`].
    pub(crate) fn start(
        listener: TcpListener,
        backend: Arc<EmbeddedBackend>,
        metrics: Arc<MediaMetrics>,
        transfers: usize,
    ) -> io::Result<MediaListener> {
        let addr = listener.local_addr()?;
        let waker = Socket::from(listener.try_clone()?);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(transfers);
        let mut workers = Vec::with_capacity(transfers);
        for i in 0..transfers {
            let (rx, backend, metrics) = (rx.clone(), backend.clone(), metrics.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("chatgw-media-{i}"))
                    .spawn(move || transfer_loop(&rx, &backend, &metrics))?,
            );
        }
        let accept = {
            let stop = stop.clone();
            std::thread::Builder::new().name("chatgw-media-accept".into()).spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_read_timeout(Some(IDLE));
                            let _ = stream.set_write_timeout(Some(IDLE));
                            let _ = stream.set_nodelay(true);
                            match tx.try_send(stream) {
                                Ok(()) => {}
                                Err(TrySendError::Full(mut stream) | TrySendError::Disconnected(mut stream)) => {
                                    metrics.refused("busy");
                                    busy(&mut stream);
                                }
                            }
                        }
                        Err(_) if stop.load(Ordering::Acquire) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "media listener: accept failed");
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })?
        };
        Ok(MediaListener { addr, stop, waker, accept, workers })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting; transfers in progress finish (or time out).
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.shutdown(Shutdown::Both);
        let _ = self.accept.join();
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn busy(stream: &mut TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let body = Refusal::Busy.body();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = io::Write::write_all(stream, format!("{head}{body}").as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

fn transfer_loop(rx: &Receiver<TcpStream>, backend: &EmbeddedBackend, metrics: &MediaMetrics) {
    while let Ok(mut stream) = rx.recv() {
        let served = backend.serve(&mut stream, SystemTime::now());
        metrics.bytes_in.inc_by(served.bytes_in);
        metrics.bytes_out.inc_by(served.bytes_out);
        match (served.refused, served.method) {
            (Some(reason), _) => metrics.refused(reason),
            (None, Some(Method::Put)) => {
                metrics.transfers.get_or_create(&[("method", "put")]).inc();
            }
            (None, _) => {
                metrics.transfers.get_or_create(&[("method", "get")]).inc();
            }
        }
    }
}

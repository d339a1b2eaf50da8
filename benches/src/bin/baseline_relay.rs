//! The baseline relay: chatgw's protocol subset written the usual way.
//!
//! tokio multi-threaded runtime, one task per connection reading and one
//! task writing (fed by a bounded channel), a `DashMap` from user to the
//! senders of their open connections, tokio-tungstenite for the WebSocket.
//! Messages live only in memory and are forwarded immediately: there is no
//! store, no fsync, no sync replay. `sent` is acknowledged on receipt.
//!
//! Tuned as a careful engineer would: a 4 KiB read buffer instead of
//! tungstenite's 128 KiB default (which costs ~137 KB per idle connection
//! once touched), no write buffering beyond one frame, TCP_NODELAY, and the
//! writer flushes only when its channel is empty so bursts share syscalls.
//!
//! Speaks: token auth (`?token=`, HS256, same secret), `welcome`, `sync`
//! (answered with an empty `synced`), `send` -> `sent` + `message` to every
//! device of the recipient and the sender's other devices, `delivered` ->
//! `receipt` to the sender's devices.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use chatgw_auth::{unix_now, TokenKey};
use chatgw_protocol::now_ms;
use clap::Parser;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    handshake::server::{ErrorResponse, Request, Response},
    http,
    protocol::WebSocketConfig,
    Message,
};

#[derive(Parser, Debug)]
#[command(
    name = "baseline-relay",
    about = "Baseline: an in-memory tokio + tokio-tungstenite relay of chatgw's protocol subset (no durability)."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// HS256 secret for tokens (the same as the gateway's).
    #[arg(long)]
    secret: String,
    /// Runtime worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Frames queued per connection before the sender waits.
    #[arg(long, default_value_t = 1024)]
    queue: usize,
}

type Outbox = mpsc::Sender<Message>;

struct State {
    key: TokenKey,
    conns: DashMap<u64, Vec<(u64, Outbox)>>,
    next_conn: AtomicU64,
    next_msg: AtomicU64,
    queue: usize,
}

impl State {
    fn add(&self, user: u64, conn: u64, tx: Outbox) {
        self.conns.entry(user).or_default().push((conn, tx));
    }

    fn remove(&self, user: u64, conn: u64) {
        if let dashmap::Entry::Occupied(mut e) = self.conns.entry(user) {
            e.get_mut().retain(|(c, _)| *c != conn);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    /// The user's connections, except `skip`.
    fn targets(&self, user: u64, skip: u64) -> Vec<Outbox> {
        self.conns
            .get(&user)
            .map(|v| v.iter().filter(|(c, _)| *c != skip).map(|(_, tx)| tx.clone()).collect())
            .unwrap_or_default()
    }
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(|x| x.as_str())
}

// The handshake callback's error type is tungstenite's `ErrorResponse`; its size is not ours to choose.
#[allow(clippy::result_large_err)]
async fn connection(state: Arc<State>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut user = None;
    let now = unix_now();
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let token = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        match token.and_then(|t| state.key.verify(t, now).ok()) {
            Some(claims) => {
                user = Some(claims.user.0);
                Ok(resp)
            }
            None => {
                let mut r = http::Response::new(Some("unauthorized".to_owned()));
                *r.status_mut() = http::StatusCode::UNAUTHORIZED;
                Err(r)
            }
        }
    };
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else { return };
    let Some(me) = user else { return };
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(state.queue);
    state.add(me, conn, tx.clone());

    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    let _ = tx.send(Message::text(format!(r#"{{"type":"welcome","protocol":1,"user":"{me}"}}"#))).await;

    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
        match field(&v, "type") {
            Some("sync") => {
                let _ = tx.send(Message::text(r#"{"type":"synced","cursor":"0"}"#)).await;
            }
            Some("send") => {
                let (Some(cid), Some(to)) = (field(&v, "id"), field(&v, "to").and_then(|t| t.parse::<u64>().ok()))
                else {
                    continue;
                };
                let id = state.next_msg.fetch_add(1, Ordering::Relaxed) + 1;
                let ts = now_ms();
                let cid_json = serde_json::to_string(cid).unwrap_or_default();
                let body = v.get("body").map(|b| b.to_string()).unwrap_or_else(|| "\"\"".into());
                let _ = tx
                    .send(Message::text(format!(
                        r#"{{"type":"sent","id":{cid_json},"msg":"{id}","ts":{ts},"duplicate":false}}"#
                    )))
                    .await;
                let frame = format!(
                    r#"{{"type":"message","event":"{id}","msg":"{id}","from":"{me}","to":"{to}","kind":"text","ts":{ts},"cid":{cid_json},"body":{body}}}"#
                );
                let mut targets = state.targets(to, u64::MAX);
                if to != me {
                    targets.extend(state.targets(me, conn));
                }
                for t in targets {
                    let _ = t.send(Message::text(frame.clone())).await;
                }
            }
            Some("delivered") => {
                let Some(peer) = field(&v, "peer").and_then(|p| p.parse::<u64>().ok()) else { continue };
                let ids = v.get("ids").map(|i| i.to_string()).unwrap_or_else(|| "[]".into());
                let event = state.next_msg.fetch_add(1, Ordering::Relaxed) + 1;
                let frame = format!(
                    r#"{{"type":"receipt","event":"{event}","status":"delivered","by":"{me}","peer":"{me}","ids":{ids},"at":{}}}"#,
                    now_ms()
                );
                for t in state.targets(peer, u64::MAX) {
                    let _ = t.send(Message::text(frame.clone())).await;
                }
            }
            _ => {}
        }
    }
    state.remove(me, conn);
    drop(tx);
    let _ = writer.await;
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n);
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("baseline-relay listening on ws://{}/ws (in memory, no durability)", listener.local_addr()?);
        let state = Arc::new(State {
            key: TokenKey::new(args.secret.as_bytes()),
            conns: DashMap::new(),
            next_conn: AtomicU64::new(0),
            next_msg: AtomicU64::new(0),
            queue: args.queue,
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(connection(state.clone(), stream));
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
            }
        }
    })
}

//! Hearing the registry's notices: a thread subscribed to `cgw:notices`
//! that hands each one, parsed, to a callback.
//!
//! Pub/sub is fire and forget: while the subscription is down, notices are
//! lost. So after every successful subscribe (the first included) the
//! callback gets [`Notice::Resubscribed`], and the caller forgets whatever
//! it cached from the registry. A lost connection is retried with backoff
//! (100 ms doubling to 2 s), on the next seed for a Redis Cluster (any node
//! of a cluster hears a classic `PUBLISH` made on any other). A quiet
//! connection is pinged, so a frozen Redis is noticed too.

use std::{
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use super::{conn::IO_TIMEOUT, keys::NOTICES, RedisTarget, RegistryError};

/// What the registry announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// These users' placements changed: forget where they are.
    Users(Vec<u64>),
    /// These groups' membership changed: forget who is in them.
    Groups(Vec<u64>),
    /// The subscription is (again) in place; notices may have been missed
    /// before it: forget everything cached from the registry.
    Resubscribed,
}

/// How often the thread wakes to see whether it should stop.
const POLL: Duration = Duration::from_millis(200);
/// Silence after which the connection is pinged.
const PING_AFTER: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The running subscription thread. [`Subscription::stop`] ends it; so
/// does dropping it (without waiting).
#[derive(Debug)]
pub struct Subscription {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Subscription {
    /// Start the thread. It may return before the first subscribe is done
    /// (and keeps trying while Redis is unreachable): the first
    /// [`Notice::Resubscribed`] says when notices flow.
    pub fn start(
        target: &RedisTarget,
        callback: impl FnMut(Notice) + Send + 'static,
    ) -> Result<Subscription, RegistryError> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let target = target.clone();
        let thread = thread::Builder::new()
            .name("chatgw-notices".into())
            .spawn(move || run(&target, callback, &stopped))
            .map_err(RegistryError::Thread)?;
        Ok(Subscription { stop, thread })
    }

    /// Stop the thread and wait for it (well under a second).
    pub fn stop(self) {
        let _ = self.stop.try_send(());
        drop(self.stop);
        if self.thread.join().is_err() {
            tracing::warn!("the registry subscription thread panicked");
        }
    }
}

/// Why a session ended.
enum End {
    Stop,
    Failed { error: redis::RedisError, subscribed: bool },
}

fn run(target: &RedisTarget, mut callback: impl FnMut(Notice), stopped: &Receiver<()>) {
    let seeds = target.seeds();
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0usize;
    loop {
        let Some(seed) = seeds.get(attempt % seeds.len().max(1)) else { return };
        let url = target.node_url(seed);
        match session(&url, &mut callback, stopped) {
            End::Stop => return,
            End::Failed { error, subscribed } => {
                if subscribed {
                    backoff = BACKOFF_MIN;
                    tracing::warn!(%error, redis = %seed, "registry subscription lost; resubscribing");
                } else {
                    tracing::debug!(%error, redis = %seed, retry_in = ?backoff, "registry subscription failed");
                }
            }
        }
        attempt = attempt.wrapping_add(1);
        match stopped.recv_timeout(backoff) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: subscribe, then hand over notices until it
/// fails or the thread is told to stop.
fn session(url: &str, callback: &mut impl FnMut(Notice), stopped: &Receiver<()>) -> End {
    let failed = |error| End::Failed { error, subscribed: false };
    let mut conn = match redis::Client::open(url).and_then(|c| c.get_connection_with_timeout(IO_TIMEOUT)) {
        Ok(conn) => conn,
        Err(e) => return failed(e),
    };
    if let Err(e) = conn.set_write_timeout(Some(IO_TIMEOUT)) {
        return failed(e);
    }
    let mut pubsub = conn.as_pubsub();
    if let Err(e) = pubsub.set_read_timeout(Some(IO_TIMEOUT)).and_then(|()| pubsub.subscribe(NOTICES)) {
        return failed(e);
    }
    if let Err(e) = pubsub.set_read_timeout(Some(POLL)) {
        return failed(e);
    }
    callback(Notice::Resubscribed);
    let failed = |error| End::Failed { error, subscribed: true };
    let mut heard = Instant::now();
    loop {
        match pubsub.get_message() {
            Ok(msg) => {
                // A busy fleet publishes more often than the read times
                // out: look for stop on every message too.
                if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                    return End::Stop;
                }
                heard = Instant::now();
                match parse(msg.get_payload_bytes()) {
                    Some(notice) => callback(notice),
                    None => tracing::debug!(
                        payload = %String::from_utf8_lossy(msg.get_payload_bytes()),
                        "ignoring a malformed registry notice"
                    ),
                }
            }
            Err(e) if e.is_timeout() => {
                if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                    return End::Stop;
                }
                if heard.elapsed() >= PING_AFTER {
                    let ping = pubsub
                        .set_read_timeout(Some(IO_TIMEOUT))
                        .and_then(|()| pubsub.ping::<redis::Value>())
                        .and_then(|_| pubsub.set_read_timeout(Some(POLL)));
                    if let Err(e) = ping {
                        return failed(e);
                    }
                    heard = Instant::now();
                }
            }
            Err(e) => return failed(e),
        }
    }
}

/// `u <id> <id> ...` or `g <id> ...`; ids that are not numbers are
/// skipped, and a message with no id or another kind is `None`.
fn parse(payload: &[u8]) -> Option<Notice> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.split_ascii_whitespace();
    let kind = words.next()?;
    let ids: Vec<u64> = words.filter_map(|w| w.parse().ok()).collect();
    if ids.is_empty() {
        return None;
    }
    match kind {
        "u" => Some(Notice::Users(ids)),
        "g" => Some(Notice::Groups(ids)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_parse_and_garbage_does_not() {
        assert_eq!(parse(b"u 1 2 3"), Some(Notice::Users(vec![1, 2, 3])));
        assert_eq!(parse(b"g 7"), Some(Notice::Groups(vec![7])));
        assert_eq!(parse(b"u 1 x 3"), Some(Notice::Users(vec![1, 3])));
        for garbage in [&b""[..], b"u", b"x 1 2", b"\xff\xfe", b"u -1", b"hello world"] {
            assert_eq!(parse(garbage), None, "{garbage:?}");
        }
    }
}

//! Noting that named devices connected, off the event loop.
//!
//! Why a thread of its own: the note is a store write and an upgrade runs
//! on an event loop, which must not wait on a disk or a database. Cores
//! post a [`DeviceNote`] into a bounded channel ([`DeviceNotes::note`]); a
//! full channel drops the note and counts it (`device_notes_dropped`),
//! since a lost note only leaves a "last active" time older than it could
//! be. The recorder writes what arrived once a [`FLUSH`], in one
//! [`MessageStore::note_devices`] call, and each device at most once a
//! [`THROTTLE`]: a device that reconnects every few seconds costs one
//! write a minute, so "last active" is true to within a minute. A note
//! with a newer token than the last one written is written at once (the
//! device reconnected after being logged out: it must stop being listed
//! as logged out).

use std::{
    collections::HashMap,
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use chatgw_protocol::{DeviceName, UserId};
use chatgw_storage::{DeviceNote, MessageStore};
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::metrics::Metrics;

/// Notes waiting for the recorder at most; more are dropped.
pub(crate) const CAPACITY: usize = 4096;
/// How often the recorder writes what arrived.
pub(crate) const FLUSH: Duration = Duration::from_secs(1);
/// Shortest time between two writes of one device (unless its token is
/// newer).
pub(crate) const THROTTLE: u64 = 60;

/// The cores' end of the recorder's channel.
#[derive(Clone)]
pub(crate) struct DeviceNotes {
    tx: Sender<DeviceNote>,
    metrics: Arc<Metrics>,
}

impl DeviceNotes {
    /// A channel of [`CAPACITY`] and its receiving end.
    pub(crate) fn channel(metrics: Arc<Metrics>) -> (DeviceNotes, Receiver<DeviceNote>) {
        let (tx, rx) = crossbeam_channel::bounded(CAPACITY);
        (DeviceNotes { tx, metrics }, rx)
    }

    /// Post a note; never blocks. A full channel drops it (counted).
    pub(crate) fn note(&self, note: DeviceNote) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(note) {
            self.metrics.device_notes_dropped.inc();
        }
    }
}

/// Which notes to write now: per device, the last written time and token
/// issue time, forgotten once older than [`THROTTLE`].
#[derive(Default)]
struct Throttle {
    written: HashMap<(UserId, DeviceName), (u64, u64)>,
}

impl Throttle {
    /// The notes of `pending` due for a write at `now` (Unix seconds), one
    /// per device, the latest of each.
    fn due(&mut self, pending: &mut Vec<DeviceNote>, now: u64) -> Vec<DeviceNote> {
        self.written.retain(|_, (at, _)| at.saturating_add(THROTTLE) > now);
        let mut out: Vec<DeviceNote> = Vec::new();
        for n in pending.drain(..) {
            let key = (n.user, n.device);
            let due = match self.written.get(&key) {
                None => true,
                Some(&(at, iat)) => n.at >= at.saturating_add(THROTTLE) || n.token_iat > iat,
            };
            if due {
                self.written.insert(key, (n.at, n.token_iat));
                out.retain(|o| (o.user, o.device) != key);
                out.push(n);
            }
        }
        out
    }
}

/// The running recorder thread.
pub(crate) struct Recorder {
    /// Dropped to stop the thread (it wakes at once).
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Recorder {
    /// Record the notes of `rx` into `store` on a new thread.
    pub(crate) fn start(
        store: Arc<dyn MessageStore>,
        metrics: Arc<Metrics>,
        rx: Receiver<DeviceNote>,
    ) -> std::io::Result<Recorder> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let thread = std::thread::Builder::new()
            .name("chatgw-devices".into())
            .spawn(move || run(store.as_ref(), &metrics, &rx, &stopped))?;
        Ok(Recorder { stop, thread })
    }

    /// Write what is pending, then stop.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

fn run(store: &dyn MessageStore, metrics: &Metrics, rx: &Receiver<DeviceNote>, stopped: &Receiver<()>) {
    let mut throttle = Throttle::default();
    let mut pending = Vec::new();
    let mut next_flush = Instant::now() + FLUSH;
    loop {
        let wait = next_flush.saturating_duration_since(Instant::now());
        let stopping = crossbeam_channel::select! {
            recv(rx) -> note => match note {
                Ok(n) => {
                    pending.push(n);
                    false
                }
                Err(_) => true,
            },
            recv(stopped) -> _ => true,
            default(wait) => false,
        };
        pending.extend(rx.try_iter().take(CAPACITY));
        if stopping || Instant::now() >= next_flush {
            flush(store, metrics, &mut throttle, &mut pending);
            next_flush = Instant::now() + FLUSH;
        }
        if stopping {
            return;
        }
    }
}

fn flush(store: &dyn MessageStore, metrics: &Metrics, throttle: &mut Throttle, pending: &mut Vec<DeviceNote>) {
    if pending.is_empty() {
        return;
    }
    let due = throttle.due(pending, crate::auth::unix_now());
    if due.is_empty() {
        return;
    }
    match store.note_devices(&due) {
        Ok(()) => {
            metrics.device_notes_written.inc_by(due.len() as u64);
        }
        Err(e) => {
            // Only "last active" is late; the next connection notes it again.
            metrics.device_notes_dropped.inc_by(due.len() as u64);
            tracing::warn!(error = %e, notes = due.len(), "could not record device activity");
        }
    }
}

#[cfg(test)]
mod tests {
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

    use super::*;

    #[test]
    fn a_note_is_written_and_stopping_writes_what_is_pending_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MessageStore> =
            Arc::new(EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (notes, rx) = DeviceNotes::channel(metrics.clone());
        let recorder = Recorder::start(store.clone(), metrics.clone(), rx).unwrap();
        let now = crate::auth::unix_now();
        notes.note(note("phone", now, now));
        let started = Instant::now();
        recorder.stop();
        assert!(started.elapsed() < FLUSH / 2, "stopped after {:?}", started.elapsed());
        let listed = store.devices(UserId(1)).unwrap();
        assert_eq!(listed.iter().map(|d| d.device.as_str()).collect::<Vec<_>>(), ["phone"]);
        assert_eq!(metrics.device_notes_written.get(), 1);
        // With the recorder gone, a note is dropped without blocking.
        notes.note(note("phone", now, now));
    }

    fn note(device: &str, at: u64, token_iat: u64) -> DeviceNote {
        DeviceNote { user: UserId(1), device: DeviceName::new(device).unwrap(), at, token_iat }
    }

    #[test]
    fn a_device_is_written_once_a_minute_unless_its_token_is_newer() {
        let mut t = Throttle::default();
        let mut p = vec![note("phone", 100, 90), note("phone", 101, 90), note("laptop", 101, 5)];
        assert_eq!(t.due(&mut p, 101), vec![note("phone", 100, 90), note("laptop", 101, 5)]);
        assert!(p.is_empty(), "every pending note is taken");
        let mut p = vec![note("phone", 130, 90)];
        assert_eq!(t.due(&mut p, 130), vec![], "within the minute");
        let mut p = vec![note("phone", 131, 131)];
        assert_eq!(t.due(&mut p, 131), vec![note("phone", 131, 131)], "a newer token is written at once");
        let mut p = vec![note("phone", 200, 131), note("laptop", 200, 5)];
        assert_eq!(t.due(&mut p, 200), vec![note("phone", 200, 131), note("laptop", 200, 5)], "a minute later");
    }
}

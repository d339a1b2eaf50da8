//! Real in-memory collaborators for tests: a clock moved by hand, live
//! devices and push targets held in tables, a sender that records what it
//! was handed (answering as scripted), a partitioned log with a consumer
//! group's commits, and event records in schema v1.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use chatgw_protocol::{DeviceName, UserId};

use crate::{
    handoff::{Liveness, Notification, NotificationSender, Outcome, PushTargets},
    watermark::Position,
    worker::{Clock, EventSource, SourceItem},
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A device name from a test literal.
pub fn device(name: &str) -> DeviceName {
    DeviceName::new(name).expect("a valid device name in a test")
}

/// A clock that moves only when told.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }
    /// Move it on.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Live devices, by user.
#[derive(Clone, Debug, Default)]
pub struct LiveTable(Arc<Mutex<HashMap<UserId, Vec<DeviceName>>>>);

impl LiveTable {
    /// `device` of `user` is connected (or not).
    pub fn set(&self, user: UserId, device: DeviceName, live: bool) {
        let mut t = lock(&self.0);
        let devices = t.entry(user).or_default();
        devices.retain(|d| *d != device);
        if live {
            devices.push(device);
        }
    }
}

impl Liveness for LiveTable {
    fn live_devices(&self, users: &[UserId]) -> HashMap<UserId, Vec<DeviceName>> {
        let t = lock(&self.0);
        users.iter().filter_map(|u| t.get(u).map(|d| (*u, d.clone()))).collect()
    }
}

/// Push targets (a string per device), with a switch that makes lookups fail.
#[derive(Clone, Debug, Default)]
pub struct TargetTable {
    rows: Arc<Mutex<Vec<(UserId, DeviceName, String)>>>,
    down: Arc<AtomicBool>,
}

impl TargetTable {
    /// Register `target` for the device.
    pub fn register(&self, user: UserId, device: DeviceName, target: &str) {
        let mut rows = lock(&self.rows);
        rows.retain(|(u, d, _)| !(*u == user && *d == device));
        rows.push((user, device, target.to_owned()));
    }
    /// Every registered target.
    pub fn rows(&self) -> Vec<(UserId, DeviceName, String)> {
        lock(&self.rows).clone()
    }
    /// Make lookups fail (or work again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl PushTargets for TargetTable {
    type Target = String;
    type Error = String;

    fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, String)>, String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("store unreachable".into());
        }
        Ok(lock(&self.rows).iter().filter(|(u, _, _)| users.contains(u)).cloned().collect())
    }

    fn remove_push_target_if(&self, user: UserId, device: DeviceName, target: &String) -> Result<(), String> {
        lock(&self.rows).retain(|(u, d, t)| !(*u == user && *d == device && t == target));
        Ok(())
    }
}

/// Records every notification handed to it; answers `Delivered` unless a
/// target has answers scripted.
#[derive(Clone, Debug, Default)]
pub struct RecordingSender {
    sent: Arc<Mutex<Vec<Notification<String>>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<Outcome>>>>,
}

impl RecordingSender {
    /// The next hand-offs to `target` answer these, in order.
    pub fn script(&self, target: &str, outcomes: &[Outcome]) {
        lock(&self.script).entry(target.to_owned()).or_default().extend(outcomes);
    }
    /// Everything handed off so far (failed attempts included).
    pub fn sent(&self) -> Vec<Notification<String>> {
        lock(&self.sent).clone()
    }
}

impl NotificationSender<String> for RecordingSender {
    fn send(&self, n: &Notification<String>) -> Outcome {
        lock(&self.sent).push(n.clone());
        lock(&self.script).get_mut(&n.target).and_then(VecDeque::pop_front).unwrap_or(Outcome::Delivered)
    }
}

/// A partitioned log and one consumer group's commits: what Kafka keeps,
/// in memory, so restarting a reader can be tested without a broker.
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    partitions: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
    commits: Arc<Mutex<HashMap<i32, i64>>>,
}

impl MemoryLog {
    /// A log of `n` partitions.
    pub fn new(n: usize) -> Self {
        MemoryLog { partitions: Arc::new(Mutex::new(vec![Vec::new(); n])), ..MemoryLog::default() }
    }
    /// Append a record to `partition`.
    pub fn append(&self, partition: usize, record: String) {
        lock(&self.partitions)[partition].push(record.into_bytes());
    }
    /// The group's committed offset of `partition`.
    pub fn committed(&self, partition: i32) -> i64 {
        lock(&self.commits).get(&partition).copied().unwrap_or(0)
    }
    /// A reader that starts at the group's commits.
    pub fn reader(&self) -> MemoryReader {
        let n = lock(&self.partitions).len();
        let next = (0..n).map(|p| self.committed(p as i32)).collect();
        MemoryReader { log: self.clone(), next, paused: false }
    }
}

/// Reads a [`MemoryLog`] from the group's commits on.
#[derive(Debug)]
pub struct MemoryReader {
    log: MemoryLog,
    next: Vec<i64>,
    paused: bool,
}

impl EventSource for MemoryReader {
    type Error = String;

    fn poll(&mut self, _timeout: Duration, out: &mut Vec<SourceItem>) -> Result<(), String> {
        if self.paused {
            return Ok(());
        }
        let parts = lock(&self.log.partitions);
        for (p, records) in parts.iter().enumerate() {
            let from = usize::try_from(self.next[p]).unwrap_or(0);
            for (i, payload) in records.iter().enumerate().skip(from) {
                out.push(SourceItem::Record {
                    pos: Position { partition: p as i32, offset: i as i64 },
                    payload: payload.clone(),
                });
            }
            self.next[p] = records.len() as i64;
        }
        Ok(())
    }

    fn commit(&mut self, offsets: &[(i32, i64)]) -> Result<(), String> {
        lock(&self.log.commits).extend(offsets.iter().copied());
        Ok(())
    }

    fn set_paused(&mut self, paused: bool) -> Result<(), String> {
        self.paused = paused;
        Ok(())
    }
}

/// A message record (schema v1) of kind `text`.
pub fn message(event: &str, conversation: &str, from: u64, recipients: &[u64], at_ms: u64) -> String {
    message_of_kind(event, conversation, from, recipients, at_ms, "text")
}

/// A message record (schema v1) of `msg_kind`.
pub fn message_of_kind(
    event: &str,
    conversation: &str,
    from: u64,
    recipients: &[u64],
    at_ms: u64,
    msg_kind: &str,
) -> String {
    let recipients: Vec<String> = recipients.iter().map(u64::to_string).collect();
    serde_json::json!({
        "v": 1, "event": event, "kind": "message", "conversation": conversation, "from": from.to_string(),
        "recipients": recipients, "at": at_ms, "id": event, "msg_kind": msg_kind, "body": "not for pushes",
    })
    .to_string()
}

/// A receipt record (schema v1): `by` marked `conversation` `status`.
pub fn receipt(event: &str, conversation: &str, by: u64, senders: &[u64], at_ms: u64, status: &str) -> String {
    let senders: Vec<String> = senders.iter().map(u64::to_string).collect();
    serde_json::json!({
        "v": 1, "event": event, "kind": "receipt", "conversation": conversation, "from": by.to_string(),
        "recipients": senders, "at": at_ms, "status": status, "ids": ["1"],
    })
    .to_string()
}

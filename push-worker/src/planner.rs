//! The planner: which (user, conversation) windows are open, when each
//! falls due, and which source positions they hold back.
//!
//! Pure logic: it reads no clock (every call takes `now_ms`), does no I/O
//! and never blocks, so its tests drive time by hand. The worker feeds it
//! events, asks it what is due, does the I/O (liveness, targets, sending)
//! and tells it how each hand-off ended.
//!
//! Rules:
//! - a message opens, for each recipient, a window on (recipient,
//!   conversation) due at its commit time plus the grace period; later
//!   messages to that pair while the window is open only raise its count
//!   (a burst collapses into one notification);
//! - a `read` receipt by the user for the conversation closes their open
//!   window without a notification (they read it on another device);
//! - events that never notify (system messages, the sender's own, other
//!   receipts, edits, hidden marks) are decided as soon as they are read.
//!
//! Commit times come from the records, so collapsing does not depend on how
//! fast the worker reads: replaying a backlog groups the same messages as
//! reading them live. A commit time in the future (a skewed clock, a bad
//! record) counts as the time the event was read, so a window is never due
//! later than `grace` after it was opened.

use std::collections::{BTreeSet, HashMap};

use chatgw_protocol::{DeviceName, UserId};

use crate::{
    record::Event,
    watermark::{Position, Watermarks},
};

/// A window handed out by [`Planner::due`], to be settled with
/// [`Planner::resolve`] or [`Planner::retry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

/// A window whose grace period is over: notify `user`'s devices that are
/// not live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// Settle it with this.
    pub ticket: Ticket,
    /// Who is notified.
    pub user: UserId,
    /// Of which conversation.
    pub conversation: String,
    /// How many messages the window collapsed.
    pub count: u32,
    /// The id of the newest of them.
    pub latest_event: String,
    /// Commit time of the first of them, unix milliseconds.
    pub first_at_ms: u64,
    /// A retry names the devices whose hand-off failed; only they are
    /// tried again. `None`: every device of the user.
    pub only: Option<Vec<DeviceName>>,
    /// Hand-offs tried before this one.
    pub attempt: u32,
}

/// How many times a failed hand-off is tried, in all.
pub const MAX_SEND_ATTEMPTS: u32 = 6;
/// The first pause before a retry; doubled for each further attempt.
pub const FIRST_RETRY_MS: u64 = 1_000;
/// The longest pause before a retry.
pub const MAX_RETRY_MS: u64 = 30_000;

/// What [`Planner::retry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Queued again, due at this time.
    At(u64),
    /// Out of attempts: the window is settled without a notification.
    GaveUp,
}

#[derive(Debug)]
struct Window {
    user: UserId,
    conversation: String,
    count: u32,
    latest_event: String,
    first_at_ms: u64,
    due_ms: u64,
    /// The events whose fate this window decides.
    holds: Vec<Position>,
    only: Option<Vec<DeviceName>>,
    attempt: u32,
}

/// Open windows, windows handed out, and the commit watermarks.
#[derive(Debug)]
pub struct Planner {
    grace_ms: u64,
    next_ticket: u64,
    windows: HashMap<Ticket, Window>,
    /// Windows still collecting messages, by (user, conversation).
    open: HashMap<(UserId, String), Ticket>,
    /// Windows waiting for their time (open ones and queued retries).
    queue: BTreeSet<(u64, Ticket)>,
    marks: Watermarks,
}

/// What reading one event did, for the worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// Windows opened.
    pub opened: u32,
    /// Messages folded into an open window.
    pub collapsed: u32,
    /// Windows closed by a read receipt.
    pub cancelled: u32,
}

impl Planner {
    /// A planner whose windows last `grace_ms`.
    pub fn new(grace_ms: u64) -> Self {
        Planner {
            grace_ms,
            next_ticket: 0,
            windows: HashMap::new(),
            open: HashMap::new(),
            queue: BTreeSet::new(),
            marks: Watermarks::default(),
        }
    }

    /// Read the event at `pos`.
    pub fn on_event(&mut self, pos: Position, event: Event, now_ms: u64) -> Effect {
        let mut effect = Effect::default();
        match event {
            Event::Message { event, conversation, recipients, at_ms, .. } => {
                let mut holds = 0;
                for user in recipients {
                    let key = (user, conversation.clone());
                    if let Some(w) = self.open.get(&key).and_then(|t| self.windows.get_mut(t)) {
                        w.count += 1;
                        w.latest_event.clone_from(&event);
                        w.holds.push(pos);
                        effect.collapsed += 1;
                    } else {
                        let ticket = self.ticket();
                        let first_at_ms = at_ms.min(now_ms);
                        let due_ms = first_at_ms + self.grace_ms;
                        self.windows.insert(
                            ticket,
                            Window {
                                user,
                                conversation: key.1.clone(),
                                count: 1,
                                latest_event: event.clone(),
                                first_at_ms,
                                due_ms,
                                holds: vec![pos],
                                only: None,
                                attempt: 0,
                            },
                        );
                        self.open.insert(key, ticket);
                        self.queue.insert((due_ms, ticket));
                        effect.opened += 1;
                    }
                    holds += 1;
                }
                self.marks.seen(pos, holds);
            }
            Event::Read { conversation, by } => {
                self.marks.seen(pos, 0);
                if let Some(ticket) = self.open.remove(&(by, conversation)) {
                    if let Some(w) = self.windows.get(&ticket) {
                        self.queue.remove(&(w.due_ms, ticket));
                    }
                    self.settle(ticket);
                    effect.cancelled += 1;
                }
            }
            Event::Ignored => self.marks.seen(pos, 0),
        }
        effect
    }

    /// An event that could not be read: decided (skipped) at once.
    pub fn on_skipped(&mut self, pos: Position) {
        self.marks.seen(pos, 0);
    }

    /// Windows due at `now_ms`, closed to further messages and handed out.
    pub fn due(&mut self, now_ms: u64) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some(&(due_ms, ticket)) = self.queue.first() {
            if due_ms > now_ms {
                break;
            }
            self.queue.pop_first();
            let Some(w) = self.windows.get(&ticket) else { continue };
            let key = (w.user, w.conversation.clone());
            if self.open.get(&key) == Some(&ticket) {
                self.open.remove(&key);
            }
            out.push(Due {
                ticket,
                user: w.user,
                conversation: w.conversation.clone(),
                count: w.count,
                latest_event: w.latest_event.clone(),
                first_at_ms: w.first_at_ms,
                only: w.only.clone(),
                attempt: w.attempt,
            });
        }
        out
    }

    /// When the next window falls due, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.queue.first().map(|&(due, _)| due)
    }

    /// The window was handed off (or needed no notification): its events
    /// are decided.
    pub fn resolve(&mut self, ticket: Ticket) {
        self.settle(ticket);
    }

    /// The hand-off to `devices` failed: try them again later, with
    /// backoff, unless the window is out of attempts. `count_attempt:
    /// false` retries without using up an attempt (the store of targets was
    /// unreachable: nothing was tried, and giving up would lose the
    /// notification for an outage that is no one device's fault).
    pub fn retry(
        &mut self,
        ticket: Ticket,
        devices: Option<Vec<DeviceName>>,
        count_attempt: bool,
        now_ms: u64,
    ) -> Retry {
        let Some(w) = self.windows.get_mut(&ticket) else { return Retry::GaveUp };
        if count_attempt {
            w.attempt += 1;
            if w.attempt >= MAX_SEND_ATTEMPTS {
                self.settle(ticket);
                return Retry::GaveUp;
            }
        }
        let pause = FIRST_RETRY_MS.saturating_mul(1 << w.attempt.saturating_sub(1).min(16)).min(MAX_RETRY_MS);
        w.due_ms = now_ms + pause;
        w.only = devices;
        self.queue.insert((w.due_ms, ticket));
        Retry::At(w.due_ms)
    }

    /// The source gave `partition` to another reader: forget what was read
    /// from it. Its undecided events are not committed, so the next reader
    /// reads them again and notifies for them; a window that also holds
    /// events of other partitions stays, for those.
    pub fn revoke(&mut self, partition: i32) {
        self.marks.forget(partition);
        let mut emptied = Vec::new();
        for (&ticket, w) in &mut self.windows {
            w.holds.retain(|p| p.partition != partition);
            if w.holds.is_empty() {
                emptied.push(ticket);
            }
        }
        for ticket in emptied {
            if let Some(w) = self.windows.remove(&ticket) {
                self.queue.remove(&(w.due_ms, ticket));
                let key = (w.user, w.conversation);
                if self.open.get(&key) == Some(&ticket) {
                    self.open.remove(&key);
                }
            }
        }
    }

    /// Offsets that may be committed now, by partition.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        self.marks.to_commit()
    }

    /// The source committed `offset` for `partition`.
    pub fn committed(&mut self, partition: i32, offset: i64) {
        self.marks.committed(partition, offset);
    }

    /// Windows not yet settled (open, being handed off, or waiting to be
    /// retried).
    pub fn pending(&self) -> usize {
        self.windows.len()
    }

    /// Events read and not committable yet: what a crash now would repeat.
    pub fn in_flight(&self) -> u64 {
        self.marks.in_flight()
    }

    /// Events read and not yet committed.
    pub fn commit_lag(&self) -> u64 {
        self.marks.commit_lag()
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Drop the window and release its events.
    fn settle(&mut self, ticket: Ticket) {
        if let Some(w) = self.windows.remove(&ticket) {
            for pos in w.holds {
                self.marks.release(pos);
            }
        }
    }
}

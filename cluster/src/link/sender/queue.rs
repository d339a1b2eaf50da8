//! One peer's queue: the frames waiting for its writer thread, the bounds
//! that refuse more, the CatchUpAll it is owed, and the state of its
//! current session that other threads need (to stop it, or to say the
//! peer answered).
//!
//! Everything is behind one mutex and one condvar: the routing thread
//! pushes, the writer thread takes the whole queue at once, and the pong
//! reader and the owner wake the writer. Holding the lock never spans I/O.

use std::{
    collections::VecDeque,
    mem,
    net::{Shutdown, TcpStream},
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use super::Sent;
use crate::link::{
    frame::{self, Frame},
    LinkSettings,
};

/// What the writer thread should do next.
#[derive(Debug)]
pub(super) enum Next {
    /// Write these frames, a CatchUpAll first when `owe_all`.
    Batch { owe_all: bool, frames: Vec<Frame> },
    /// Nothing queued until the deadline: time to check the keepalive.
    Tick,
    /// Everything is written and the owner wants a Goodbye.
    Close,
    /// The peer closed the session or its reader failed.
    Dead,
    /// Stop now, without a Goodbye.
    Stop,
}

pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    max_events: usize,
    max_bytes: usize,
    max_frame: usize,
}

struct State {
    frames: VecDeque<Frame>,
    events: usize,
    bytes: usize,
    /// A frame for this peer was refused or lost: it gets a CatchUpAll
    /// before anything queued later.
    owe_all: bool,
    stop: bool,
    closing: bool,
    finished: bool,
    /// The current session's socket, so `stop` can unblock a write.
    stream: Option<TcpStream>,
    /// When the current session last read a byte from the peer.
    heard: Instant,
    /// The current session's peer has sent something (its first Pong).
    answered: bool,
    /// The current session's reader saw the end of the stream or an error.
    dead: bool,
}

impl Queue {
    pub(super) fn new(settings: &LinkSettings) -> Queue {
        Queue {
            state: Mutex::new(State {
                frames: VecDeque::new(),
                events: 0,
                bytes: 0,
                owe_all: false,
                stop: false,
                closing: false,
                finished: false,
                stream: None,
                heard: Instant::now(),
                answered: false,
                dead: false,
            }),
            wake: Condvar::new(),
            max_events: settings.queue_events,
            max_bytes: settings.queue_bytes,
            max_frame: settings.max_frame,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind;
        // carrying on with them is safe.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queue `frame` (a Deliver or a CatchUp) unless the queue is full or
    /// the frame too large; a refused frame makes the peer owed a
    /// CatchUpAll.
    pub(super) fn push(&self, frame: Frame) -> Sent {
        let size = frame::encoded_len(&frame);
        let mut st = self.lock();
        let too_large = size - frame::LEN_BYTES > self.max_frame;
        if too_large || st.events >= self.max_events || st.bytes + size > self.max_bytes || st.stop {
            st.owe_all = true;
            return Sent::Dropped;
        }
        st.frames.push_back(frame);
        st.events += 1;
        st.bytes += size;
        drop(st);
        self.wake.notify_all();
        Sent::Queued
    }

    /// Like [`Queue::push`], but a refusal owes the peer nothing.
    pub(super) fn push_lossy(&self, frame: Frame) -> Sent {
        let size = frame::encoded_len(&frame);
        let mut st = self.lock();
        let too_large = size - frame::LEN_BYTES > self.max_frame;
        if too_large || st.events >= self.max_events || st.bytes + size > self.max_bytes || st.stop {
            return Sent::Dropped;
        }
        st.frames.push_back(frame);
        st.events += 1;
        st.bytes += size;
        drop(st);
        self.wake.notify_all();
        Sent::Queued
    }

    /// The peer gets a CatchUpAll before anything queued from now on.
    pub(super) fn owe_all(&self) {
        self.lock().owe_all = true;
        self.wake.notify_all();
    }

    /// Wait until there is something to do, or until `deadline`.
    pub(super) fn next(&self, deadline: Instant) -> Next {
        let mut st = self.lock();
        loop {
            if st.stop {
                return Next::Stop;
            }
            if st.dead {
                return Next::Dead;
            }
            if !st.frames.is_empty() || st.owe_all {
                let frames = Vec::from(mem::take(&mut st.frames));
                st.events = 0;
                st.bytes = 0;
                return Next::Batch { owe_all: mem::take(&mut st.owe_all), frames };
            }
            if st.closing {
                return Next::Close;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Tick;
            }
            st = self.wake.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Whether the writer should give up dialling: stopped, or closing with
    /// nothing left to say.
    pub(super) fn done(&self) -> bool {
        let st = self.lock();
        st.stop || (st.closing && st.frames.is_empty() && !st.owe_all)
    }

    /// Sleep `wait` (the redial backoff) unless stopped or closing
    /// meanwhile; true when the writer should exit.
    pub(super) fn pause(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        loop {
            if st.stop || (st.closing && st.frames.is_empty() && !st.owe_all) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.wake.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// A session starts on `stream` (a clone of the writer's); false when
    /// the queue was stopped meanwhile.
    pub(super) fn begin_session(&self, stream: TcpStream) -> bool {
        let mut st = self.lock();
        if st.stop {
            return false;
        }
        st.stream = Some(stream);
        st.heard = Instant::now();
        st.answered = false;
        st.dead = false;
        true
    }

    pub(super) fn end_session(&self) {
        self.lock().stream = None;
    }

    /// The peer sent bytes.
    pub(super) fn heard(&self) {
        let mut st = self.lock();
        st.heard = Instant::now();
        if !st.answered {
            st.answered = true;
            drop(st);
            self.wake.notify_all();
        }
    }

    /// Wait until the peer answers for the first time in this session:
    /// `None` once it has, else why not (`Stop`, `Dead`, or `Tick` at
    /// `deadline`).
    pub(super) fn wait_answer(&self, deadline: Instant) -> Option<Next> {
        let mut st = self.lock();
        loop {
            if st.stop {
                return Some(Next::Stop);
            }
            if st.answered {
                return None;
            }
            if st.dead {
                return Some(Next::Dead);
            }
            let now = Instant::now();
            if now >= deadline {
                return Some(Next::Tick);
            }
            st = self.wake.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    pub(super) fn heard_at(&self) -> Instant {
        self.lock().heard
    }

    /// The session's reader ended (EOF or error).
    pub(super) fn reader_ended(&self) {
        self.lock().dead = true;
        self.wake.notify_all();
    }

    /// After a Goodbye: wait for the peer to close its side, until
    /// `deadline` or a stop.
    pub(super) fn wait_dead(&self, deadline: Instant) {
        let mut st = self.lock();
        while !st.dead && !st.stop {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self.wake.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Write what is queued, then a Goodbye, then exit.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_all();
    }

    /// Exit now: refuse sends, unblock a write in progress.
    pub(super) fn stop(&self) {
        let mut st = self.lock();
        st.stop = true;
        if let Some(stream) = &st.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        drop(st);
        self.wake.notify_all();
    }

    /// The writer thread is about to exit.
    pub(super) fn finish(&self) {
        self.lock().finished = true;
        self.wake.notify_all();
    }

    /// Wait until the writer thread finished, or `deadline`.
    pub(super) fn wait_finished(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        while !st.finished {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.wake.wait_timeout(st, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

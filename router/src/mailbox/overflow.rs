//! The endpoints whose mail a full mailbox refused, kept for the core to
//! close.
//!
//! A refused batch is gone, so each connection it addressed has missed
//! something and must be closed (4000: the device reconnects and syncs from
//! its cursor) before the core hands it anything posted later; otherwise its
//! cursor would move past the refused event. The set is deduplicated, so it
//! holds at most one entry per endpoint: the core's connections at its last
//! drain plus the few it accepted since (only the core itself opens
//! connections, between two drains of its loop). A lock is fine here: this
//! is the overflow path, never the message path, which only reads `pending`.

use std::{collections::HashSet, sync::atomic::Ordering, sync::PoisonError};

use super::Addressed;
use crate::{
    sync::{AtomicBool, AtomicUsize, Mutex},
    Endpoint,
};

pub(crate) struct Overflow {
    /// Whether `endpoints` may hold something; written under the lock.
    pending: AtomicBool,
    endpoints: Mutex<HashSet<Endpoint>>,
    /// Events refused since the last [`Overflow::take_refused`].
    refused: AtomicUsize,
}

impl Overflow {
    pub(crate) fn new() -> Self {
        Overflow {
            pending: AtomicBool::new(false),
            endpoints: Mutex::new(HashSet::new()),
            refused: AtomicUsize::new(0),
        }
    }

    /// Remember every endpoint `item` addresses. Done before the producer
    /// posts anything later, so the core sees this record before it pops
    /// that later item.
    pub(crate) fn record(&self, item: &impl Addressed) {
        let mut set = self.endpoints.lock().unwrap_or_else(PoisonError::into_inner);
        item.for_each_endpoint(&mut |e| {
            set.insert(e);
        });
        self.refused.fetch_add(item.weight(), Ordering::Relaxed);
        // Release: a consumer that reads `true` sees the set as of now.
        self.pending.store(true, Ordering::Release);
    }

    /// Hand every recorded endpoint to `f` and forget them.
    pub(crate) fn take(&self, mut f: impl FnMut(Endpoint)) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let taken = {
            let mut set = self.endpoints.lock().unwrap_or_else(PoisonError::into_inner);
            self.pending.store(false, Ordering::Relaxed);
            std::mem::take(&mut *set)
        };
        taken.into_iter().for_each(&mut f);
    }

    /// Events refused since the last call.
    pub(crate) fn take_refused(&self) -> usize {
        // Read first: the common answer, 0, writes nothing to a line the
        // producers use.
        match self.refused.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.refused.swap(0, Ordering::Relaxed),
        }
    }
}

//! One core's mailbox: the post/drain/wake protocol and the bound.
//!
//! Generic over the queue so the loom models run this exact code over a
//! queue made of loom atomics.

use std::{
    marker::PhantomData,
    sync::{atomic::Ordering, Arc},
};

use super::{overflow::Overflow, queue::Queue, wake_flag::WakeFlag, Addressed, Mail, Posted, Wake};
use crate::sync::AtomicUsize;

pub(crate) struct Mailbox<T, Q> {
    queue: Q,
    /// Weight (events) queued and not yet drained.
    depth: AtomicUsize,
    /// Refuse a batch that would take `depth` past this, unless the mailbox
    /// is empty (so one batch larger than the cap still goes through).
    cap: usize,
    woken: WakeFlag,
    overflow: Overflow,
    waker: Arc<dyn Wake>,
    items: PhantomData<fn(T) -> T>,
}

impl<T: Addressed, Q: Queue<T>> Mailbox<T, Q> {
    pub(crate) fn new(queue: Q, cap: usize, woken: WakeFlag, waker: Arc<dyn Wake>) -> Self {
        Mailbox { queue, depth: AtomicUsize::new(0), cap, woken, overflow: Overflow::new(), waker, items: PhantomData }
    }

    /// Queue `item`, or record its endpoints if the mailbox is full; either
    /// way wake the core unless a wake is already pending.
    pub(crate) fn post(&self, item: T) -> Posted {
        let weight = item.weight();
        // Relaxed: the depth is a bound, not a synchronisation point; two
        // producers racing past it overshoot by at most one batch each.
        let before = self.depth.fetch_add(weight, Ordering::Relaxed);
        let posted = if before > 0 && before.saturating_add(weight) > self.cap {
            self.depth.fetch_sub(weight, Ordering::Relaxed);
            self.overflow.record(&item);
            Posted::Refused
        } else {
            self.queue.push(item);
            Posted::Queued
        };
        if self.woken.raise() {
            self.waker.wake();
        }
        posted
    }

    /// Raise the flag and wake the core, with nothing posted.
    pub(crate) fn wake(&self) {
        self.woken.raise();
        self.waker.wake();
    }

    /// Hand the core everything queued, in order, each item preceded by the
    /// endpoints refused before it was posted. Returns the items handed.
    pub(crate) fn drain(&self, mut f: impl FnMut(Mail<T>)) -> usize {
        self.woken.lower();
        let mut n = 0;
        loop {
            let item = self.queue.pop();
            // After the pop: a refusal recorded before `item` was pushed is
            // seen here, so its endpoints close before `item` reaches them.
            self.overflow.take(|e| f(Mail::Overflowed(e)));
            let Some(item) = item else {
                return n;
            };
            self.depth.fetch_sub(item.weight(), Ordering::Relaxed);
            f(Mail::Item(item));
            n += 1;
        }
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    pub(crate) fn take_refused(&self) -> usize {
        self.overflow.take_refused()
    }
}

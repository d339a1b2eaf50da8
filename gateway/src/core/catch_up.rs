//! Catching a connection up from the store when live delivery may have
//! missed events.
//!
//! With several nodes on one store, events for one inbox are committed by
//! any node, and reach this core over links that may reorder, repeat or
//! lose them. On a store whose inbox positions are dense
//! (`MessageStore::dense_positions`), a connection knows exactly what it
//! has: the position of the last event it was written. A live event at or
//! below it is a repeat (dropped), the next position is delivered, and one
//! further ahead means events in between were missed: the connection then
//! reads the inbox from its position, through the same reader path and
//! paging rules as a `sync` (`paging`), and the device gets the events as
//! ordinary live events, once each, in position order, with no `synced` at
//! the end. Live events that arrive meanwhile are held back and make it
//! read one more page, exactly as during a sync.
//!
//! Catch-ups are also asked for: `CoreEvent::CatchUp` for one connection,
//! `CoreEvent::CatchUpAll` for every connection of a core (the fleet posts
//! it when a link to another node was lost). So that a core with 100,000
//! connections does not flood the readers, at most [`CATCH_UP_READS`]
//! connections of a core read at a time; the others wait in a queue,
//! holding their live events back, and start as reads finish.

use std::collections::VecDeque;

use prometheus_client::metrics::gauge::Gauge;

use super::{
    conn::{CatchUp, Phase},
    engine::Engine,
};
use crate::metrics::CatchUpReason;

/// Connections of one core catching up at once (a page request in flight
/// or a page being written out each); the rest wait in the queue.
pub(crate) const CATCH_UP_READS: usize = 64;

/// One core's catch-ups: the connections waiting for their turn and how
/// many are reading.
pub(crate) struct CatchUps {
    /// `(slot, generation)` of connections waiting, oldest first. An entry
    /// whose connection is gone or no longer waiting is skipped.
    queue: VecDeque<(usize, u32)>,
    /// Connections in [`CatchUp::Reading`].
    reading: usize,
    /// This core's `catch_up_pending` gauge.
    pending: Gauge,
}

impl CatchUps {
    pub(crate) fn new(pending: Gauge) -> Self {
        CatchUps { queue: VecDeque::new(), reading: 0, pending }
    }

    fn report(&self) {
        self.pending.set(i64::try_from(self.queue.len() + self.reading).unwrap_or(i64::MAX));
    }

    /// Connections reading now.
    #[cfg(test)]
    pub(crate) fn reading(&self) -> usize {
        self.reading
    }
}

impl<S> Engine<S> {
    /// `slot` catches up from its position, now or when a read is free.
    /// A connection already paging (a sync or a catch-up) reads one more
    /// page instead; one that is not subscribed has nothing to catch up.
    pub(super) fn start_catch_up(&mut self, slot: usize, reason: CatchUpReason) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.phase != Phase::Open || !c.subscribed {
            return;
        }
        if c.syncing {
            c.sync_missed = true;
            return;
        }
        self.ctx.metrics.catch_up(reason);
        // Live events wait for the catch-up, as they wait for a sync.
        (c.syncing, c.sync_missed, c.sync_paused) = (true, false, false);
        c.catch_up = CatchUp::Queued;
        let generation = c.generation;
        self.catch_ups.queue.push_back((slot, generation));
        self.pump_catch_ups();
    }

    /// Every subscribed connection of this core catches up.
    pub(super) fn catch_up_all(&mut self) {
        let slots: Vec<usize> =
            self.conns.iter().filter(|(_, c)| c.phase == Phase::Open && c.subscribed).map(|(s, _)| s).collect();
        for slot in slots {
            self.start_catch_up(slot, CatchUpReason::All);
        }
    }

    /// Start waiting catch-ups while fewer than [`CATCH_UP_READS`] read.
    fn pump_catch_ups(&mut self) {
        while self.catch_ups.reading < CATCH_UP_READS {
            let Some((slot, generation)) = self.catch_ups.queue.pop_front() else { break };
            let Some(c) = self.conns.get_mut(slot) else { continue };
            if c.generation != generation || c.catch_up != CatchUp::Queued {
                continue;
            }
            c.catch_up = CatchUp::Reading;
            self.catch_ups.reading += 1;
            self.request_sync_page(slot);
        }
        self.catch_ups.report();
    }

    /// The catch-up of `slot` read its last page: live events flow again,
    /// and the next waiting connection may read.
    pub(super) fn finish_catch_up(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            c.syncing = false;
        }
        self.own_events.forget(slot);
        self.leave_catch_up(slot);
    }

    /// `slot` stops catching up (done, gone, failed, or the device sent
    /// `sync`, which takes over): its read no longer counts, and a queued
    /// entry of it is skipped.
    pub(super) fn leave_catch_up(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        let was = std::mem::replace(&mut c.catch_up, CatchUp::Idle);
        match was {
            CatchUp::Idle => {}
            CatchUp::Queued => self.catch_ups.report(),
            CatchUp::Reading => {
                self.catch_ups.reading = self.catch_ups.reading.saturating_sub(1);
                self.pump_catch_ups();
            }
        }
    }
}

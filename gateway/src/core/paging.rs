//! Paging an inbox out to one connection: the pages of a `sync`, and of a
//! catch-up (`catch_up`), which are the same reads and the same rules.
//!
//! A page goes out only as far as half the outbound bound, and the next is
//! asked for once the socket drains, so a long backlog never trips the
//! slow-consumer limit. Live events that arrive while pages are being read
//! are held back (`sync_missed`) and make one more page be read, so the
//! device sees every event once, in position order. A sync ends with
//! `synced`; a catch-up ends silently.

use chatgw_protocol::server;
use chatgw_storage::InboxPos;

use super::{
    action::Action,
    conn::{CatchUp, PageRead, Phase, SyncCursor},
    engine::Engine,
};
use crate::{
    events::{PagedEvent, QueryRequest, SyncFrom},
    ws::frame::Opcode,
};

impl<S> Engine<S> {
    /// Ask a reader for the next sync page of `slot`: from its cursor for
    /// the first page, from its position after that. If the readers refuse
    /// it, `on_action_refused` ends the sync.
    pub(crate) fn request_sync_page(&mut self, slot: usize) {
        let Some(origin) = self.endpoint(slot) else { return };
        let Some(c) = self.conns.get(slot) else { return };
        let after = match c.sync_cursor {
            SyncCursor::Resolving => SyncFrom::Cursor(c.cursor),
            SyncCursor::Resolved | SyncCursor::Truncated => SyncFrom::Position(c.pos),
        };
        let req = QueryRequest::Sync { origin, user: c.user, after, limit: usize::from(c.sync_limit) };
        if let Some(c) = self.conns.get_mut(slot) {
            c.page = PageRead::Asked;
        }
        self.actions.push(Action::Query(req));
    }

    /// A sync page read after position `after`. The first page of a sync
    /// also tells the connection where its cursor stands in the inbox, and
    /// whether events after it were removed by retention (`truncated`).
    pub(super) fn on_sync_page(
        &mut self,
        slot: usize,
        after: InboxPos,
        events: Vec<PagedEvent>,
        full: bool,
        truncated: bool,
    ) {
        if let Some(c) = self.conns.get_mut(slot) {
            if c.sync_cursor == SyncCursor::Resolving {
                c.pos = after;
                c.sync_cursor = if truncated { SyncCursor::Truncated } else { SyncCursor::Resolved };
            }
        }
        // A page goes out only as far as half the outbound bound; the rest
        // is read again once the socket drains, so a long backlog never
        // trips the slow-consumer limit.
        let half = self.ctx.settings.max_outbound / 2;
        let mut stopped_early = false;
        for (pos, id, payload) in events {
            let Some(c) = self.conns.get_mut(slot) else {
                return;
            };
            if pos <= c.pos {
                continue;
            }
            if self.own_events.take(slot, c.generation, pos) {
                // Made by this connection, which has it (`own_events`).
                (c.cursor, c.pos) = (id, pos);
                continue;
            }
            if c.pending_out() > 0 && c.pending_out() + payload.len() > half {
                stopped_early = true;
                break;
            }
            (c.cursor, c.pos) = (id, pos);
            self.ctx.metrics.events_delivered.inc();
            self.queue_frame(slot, Opcode::Text, &payload);
        }
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        if stopped_early {
            c.sync_paused = true;
            return;
        }
        if full || c.sync_missed {
            c.sync_missed = false;
            if c.pending_out() < half {
                self.request_sync_page(slot);
            } else {
                c.sync_paused = true;
            }
        } else if c.catch_up == CatchUp::Reading {
            // A catch-up ends without `synced`: its events went out as
            // live events, and the device asked for nothing.
            self.finish_catch_up(slot);
        } else {
            c.syncing = false;
            self.own_events.forget(slot);
            let mut p = Vec::with_capacity(64);
            match std::mem::replace(&mut c.sync_cursor, SyncCursor::Resolved) {
                SyncCursor::Truncated => server::synced_truncated(&mut p, c.cursor),
                SyncCursor::Resolving | SyncCursor::Resolved => server::synced(&mut p, c.cursor),
            }
            self.queue_frame(slot, Opcode::Text, &p);
            self.now_live(slot);
        }
    }
}

//! A core's table of connections, its mailbox handling, timers and flushing.

use std::{collections::HashMap, io, mem, net::IpAddr, time::Instant};

use chatgw_protocol::{close, now_ms, MessageId};
use chatgw_router::Endpoint;
use chatgw_storage::InboxPos;
use slab::Slab;

use super::{
    action::Action,
    catch_up::CatchUps,
    conn::{Conn, PageRead, Phase},
    context::CoreContext,
    ephemeral::TypingLimits,
    timers::TimerWheel,
};
use crate::{
    events::{CoreBatch, CoreEvent},
    limits::Refusal,
    metrics::{CatchUpReason, Metrics, ProxyOutcome},
    ws::frame::{self, Opcode},
};

/// Output buffers a core keeps for reuse, at most: connections that went
/// idle give theirs back, the next one to queue a frame takes one, so a
/// delivery does not allocate and free its buffer. 128 of at most
/// [`SPARE_OUT_CAPACITY`] bytes is at most 512 KiB a core; idle
/// connections still hold none.
const SPARE_OUT_BUFFERS: usize = 128;
/// Larger buffers (a sync page, a slow reader's backlog) are freed rather
/// than kept.
const SPARE_OUT_CAPACITY: usize = 4096;

/// What a driver's write did with a connection's queued bytes (see
/// [`Engine::flush_with`]).
pub(crate) enum Wrote {
    /// Everything it could: the queue's offset moved, or the driver took
    /// the whole queue (leaving it empty).
    Progress,
    /// Nothing more now: the socket is full or a send is in flight. The
    /// rest waits for [`Engine::on_writable`].
    Blocked,
    /// The socket failed: the connection is dropped.
    Dead,
}

/// One core's connections and the logic that runs them.
pub(crate) struct Engine<S> {
    pub(crate) core: u16,
    pub(crate) ctx: CoreContext,
    pub(crate) conns: Slab<Conn<S>>,
    next_generation: u32,
    flush_queue: Vec<usize>,
    /// Requests for the committer and the readers, in the order they were
    /// made, until the driver takes them (see `action`).
    pub(super) actions: Vec<Action>,
    /// Sockets of removed connections, for the driver to close (see
    /// [`Engine::closed_sockets`]).
    closed: Vec<S>,
    started: Instant,
    /// Seconds since the core started.
    pub(crate) now: u32,
    /// Unix milliseconds, refreshed once per loop turn.
    pub(crate) now_ms: u64,
    /// Intake stopped for shutdown: protocol requests are refused.
    pub(crate) draining: bool,
    /// Not accepting (a drain or a shutdown): upgrades are refused with 503.
    pub(crate) refusing: bool,
    /// This core's share of a drain's waves (see `drain`).
    pub(super) drain: super::drain::DrainProgress,
    /// This core's `mailbox_depth` gauge.
    pub(crate) mailbox_depth: prometheus_client::metrics::gauge::Gauge,
    /// Each connection's next deadline (see `ticks`).
    pub(crate) timers: TimerWheel,
    /// This core's `timer_entries` gauge.
    pub(crate) timer_entries: prometheus_client::metrics::gauge::Gauge,
    /// Connections waiting for a catch-up read and the reads in flight
    /// (see `catch_up`).
    pub(super) catch_ups: CatchUps,
    /// Slot to device of the open connections whose token names a device,
    /// and whether each is live (`named`); unnamed ones are not here.
    /// Beside the slab rather than in each record, which has no room to
    /// spare (see `conn`'s size test): what closing one device compares
    /// (`revoke`).
    pub(crate) devices: HashMap<usize, super::named::NamedConn>,
    /// The typing limit of each connection that typed (see `ephemeral`).
    pub(super) typing_limits: TypingLimits,
    /// Events paging connections made themselves (see `own_events`).
    pub(super) own_events: super::own_events::OwnEvents,
    /// Empty output buffers for reuse (see [`SPARE_OUT_BUFFERS`]).
    spare_out: Vec<Vec<u8>>,
}

impl<S> Engine<S> {
    pub(crate) fn new(core: u16, ctx: CoreContext) -> Self {
        let share = ctx.settings.max_connections.div_ceil(ctx.settings.workers.max(1)).min(1 << 20);
        let mailbox_depth = Metrics::core_gauge(&ctx.metrics.mailbox_depth, core);
        let timer_entries = Metrics::core_gauge(&ctx.metrics.timer_entries, core);
        let catch_ups = CatchUps::new(Metrics::core_gauge(&ctx.metrics.catch_up_pending, core));
        Engine {
            core,
            ctx,
            // Sized for this core's share of --max-connections up front:
            // growing a slab copies every connection record, a pause in the
            // middle of a connection storm. Untouched capacity costs no RSS.
            conns: Slab::with_capacity(share),
            next_generation: 0,
            flush_queue: Vec::new(),
            actions: Vec::new(),
            closed: Vec::new(),
            started: Instant::now(),
            now: 0,
            now_ms: now_ms(),
            draining: false,
            refusing: false,
            drain: Default::default(),
            mailbox_depth,
            timers: TimerWheel::new(),
            timer_entries,
            catch_ups,
            devices: HashMap::new(),
            typing_limits: TypingLimits::default(),
            own_events: Default::default(),
            spare_out: Vec::new(),
        }
    }

    /// Give an output buffer back for reuse (a driver returns the ones it
    /// took in [`Engine::flush_with`] once the kernel is done with them).
    pub(crate) fn recycle_out(&mut self, buf: Vec<u8>) {
        keep_spare(&mut self.spare_out, buf);
    }

    /// Refresh the clock; the driver calls this once per loop turn.
    pub(crate) fn update_clock(&mut self) {
        self.now = self.started.elapsed().as_secs() as u32;
        self.now_ms = now_ms();
    }

    /// Whether a new connection from `peer` may be taken: the process has
    /// room (`--max-connections` counts every core's connections, in any
    /// phase) and the source is within its limits. On `Ok` the source is
    /// charged: follow with [`Engine::accept`], or [`Engine::unadmit`] if
    /// the driver fails to take the socket after all. On `Err` write
    /// [`Refusal::response`] and close; the refusal is counted here.
    ///
    /// Under `--proxy-protocol` a trusted balancer's connection is charged
    /// nothing yet (its client is known once the header is read, see
    /// `proxy_intake`), and any other is refused with no bytes.
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<(), Refusal> {
        let proxied = self.ctx.settings.proxy_protocol;
        if proxied && !self.ctx.settings.proxy_from.trusts(peer) {
            self.ctx.metrics.proxy_header(ProxyOutcome::Untrusted);
            return Err(Refusal::Untrusted);
        }
        if self.ctx.connections.load(std::sync::atomic::Ordering::Relaxed) >= self.ctx.settings.max_connections {
            self.ctx.metrics.connections_refused.inc();
            return Err(Refusal::Full);
        }
        match proxied {
            true => Ok(()),
            false => self.charge_source(peer),
        }
    }

    /// Charge `peer` against the per-source limits (on `Ok`); a refusal is
    /// counted. Also for a proxied connection once its header names the
    /// client: it already holds its place in `--max-connections`.
    pub(super) fn charge_source(&self, peer: IpAddr) -> Result<(), Refusal> {
        let verdict = self.ctx.limits.sources.admit(peer, self.now_ms);
        match verdict {
            Err(Refusal::IpConnections) => {
                self.ctx.metrics.ip_connection_refusals.inc();
            }
            Err(Refusal::IpRate) => {
                self.ctx.metrics.ip_rate_refusals.inc();
            }
            Ok(()) | Err(Refusal::Full | Refusal::Untrusted) => {}
        }
        verdict
    }

    /// Undo [`Engine::admit`] for a socket the driver could not take.
    pub(crate) fn unadmit(&self, peer: IpAddr) {
        if !self.ctx.settings.proxy_protocol {
            self.ctx.limits.sources.release(peer);
        }
    }

    /// A new TCP connection from `peer`, admitted; returns its slot.
    pub(crate) fn accept(&mut self, sock: S, peer: IpAddr) -> usize {
        self.ctx.metrics.connections_accepted.inc();
        self.ctx.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.next_generation = self.next_generation.wrapping_add(1);
        let burst = self.ctx.settings.rate_burst;
        let mut conn = Conn::new(sock, peer, self.next_generation, self.now, burst, self.now_ms);
        if self.ctx.settings.proxy_protocol {
            conn.phase = Phase::ProxyHeader;
        }
        let slot = self.conns.insert(conn);
        self.arm_timer(slot);
        slot
    }

    /// The socket of `slot`, for the driver's system calls.
    pub(crate) fn sock_mut(&mut self, slot: usize) -> Option<&mut S> {
        self.conns.get_mut(slot).map(|c| &mut c.sock)
    }

    pub(crate) fn endpoint(&self, slot: usize) -> Option<Endpoint> {
        self.conns.get(slot).map(|c| Endpoint { core: self.core, slot: slot as u32, generation: c.generation })
    }

    /// Bytes that arrived on `slot`. The engine may modify them (unmasking).
    pub(crate) fn on_bytes(&mut self, slot: usize, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.last_heard = self.now;
        match conn.phase {
            Phase::ProxyHeader => {
                self.on_proxy_header_bytes(slot, data);
                self.arm_timer(slot);
            }
            Phase::Handshake => {
                self.on_handshake_bytes(slot, data);
                // Responding or open now: the next deadline may be earlier.
                self.arm_timer(slot);
            }
            Phase::Open => self.on_frame_bytes(slot, data),
            // Input after a response or a close is read and dropped.
            Phase::Responding | Phase::Refused | Phase::Closing => {}
        }
    }

    /// The peer closed its side or the socket failed.
    pub(crate) fn on_hangup(&mut self, slot: usize) {
        self.drop_conn(slot);
    }

    /// The socket of `slot` can take bytes again.
    pub(crate) fn on_writable(&mut self, slot: usize) {
        self.schedule_flush(slot);
    }

    /// Remove a connection now, without a goodbye. Its socket is not closed
    /// here: it waits in [`Engine::closed_sockets`] for the driver.
    pub(crate) fn drop_conn(&mut self, slot: usize) {
        self.leave_catch_up(slot);
        self.typing_limits.forget(slot);
        self.own_events.forget(slot);
        let Some(conn) = self.conns.try_remove(slot) else {
            return;
        };
        if let Some(d) = self.devices.remove(&slot).filter(|d| d.live) {
            self.ctx.live_devices.went_away(conn.user, d.device);
        }
        self.ctx.connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if conn.phase.charged_its_source() {
            self.ctx.limits.sources.release(conn.peer);
        }
        if conn.registered {
            let ep = Endpoint { core: self.core, slot: slot as u32, generation: conn.generation };
            self.ctx.directory.unregister(conn.user.0, ep);
            self.ctx.metrics.connections_open.dec();
        }
        self.closed.push(conn.sock);
    }

    /// Sockets of connections removed since the last call. The driver closes
    /// them: a readiness driver at once, a completion driver once the
    /// kernel holds no operation on them (their slot may already belong to
    /// a new connection, so only the driver knows what is still in flight).
    pub(crate) fn closed_sockets(&mut self) -> std::vec::Drain<'_, S> {
        self.closed.drain(..)
    }

    /// Connections held, in any phase.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn schedule_flush(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            if !c.queued_for_flush {
                c.queued_for_flush = true;
                self.flush_queue.push(slot);
            }
        }
    }

    /// Queue one server frame; a connection whose queue would pass the
    /// bound is closed as a slow consumer instead.
    pub(crate) fn queue_frame(&mut self, slot: usize, opcode: Opcode, payload: &[u8]) {
        let max = self.ctx.settings.max_outbound;
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.phase != Phase::Open {
            return;
        }
        if c.pending_out() + payload.len() + 10 > max {
            self.ctx.metrics.slow_consumers.inc();
            tracing::debug!(slot, user = %c.user, "closing slow consumer");
            self.close_with(slot, close::SLOW_CONSUMER, "slow consumer: outbound queue full; reconnect and sync");
            return;
        }
        take_spare(&mut self.spare_out, &mut c.outbuf);
        frame::put_frame(&mut c.outbuf, opcode, payload);
        self.schedule_flush(slot);
    }

    /// Queue raw bytes (HTTP responses) regardless of phase.
    pub(crate) fn queue_raw(&mut self, slot: usize, bytes: &[u8]) {
        if let Some(c) = self.conns.get_mut(slot) {
            take_spare(&mut self.spare_out, &mut c.outbuf);
            c.outbuf.extend_from_slice(bytes);
            self.schedule_flush(slot);
        }
    }

    /// Send a close frame and close once it is written.
    pub(crate) fn close_with(&mut self, slot: usize, code: u16, reason: &str) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.phase == Phase::Closing {
            return;
        }
        // A closing connection gets no more live events.
        self.not_live(slot);
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        frame::put_close(&mut c.outbuf, code, reason);
        c.phase = Phase::Closing;
        c.opened_at = self.now;
        c.inbuf = Vec::new();
        c.frag = Vec::new();
        self.schedule_flush(slot);
        self.arm_timer(slot);
    }

    /// Write queued bytes through `write`, then close connections that are
    /// done. `write` returns like `std::io::Write::write`.
    pub(crate) fn flush(&mut self, mut write: impl FnMut(&mut S, &[u8]) -> io::Result<usize>) {
        self.flush_with(|sock, buf, pos| {
            while *pos < buf.len() {
                match write(sock, &buf[*pos..]) {
                    Ok(0) => return Wrote::Dead,
                    Ok(n) => *pos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Wrote::Blocked,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Wrote::Dead,
                }
            }
            Wrote::Progress
        });
    }

    /// Hand each connection's queued bytes to `write`, then close the
    /// connections that are done. `write` gets the queue and the offset of
    /// its first unwritten byte; it moves the offset past what it wrote, or
    /// takes the whole queue with `mem::take` (and sets the offset to 0)
    /// when it keeps the bytes until the kernel is done with them, as
    /// io_uring does; it gives the buffer back with [`Engine::recycle_out`].
    pub(crate) fn flush_with(&mut self, mut write: impl FnMut(&mut S, &mut Vec<u8>, &mut usize) -> Wrote) {
        let queue = mem::take(&mut self.flush_queue);
        for &slot in &queue {
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            c.queued_for_flush = false;
            if c.out_pos < c.outbuf.len() && matches!(write(&mut c.sock, &mut c.outbuf, &mut c.out_pos), Wrote::Dead) {
                self.drop_conn(slot);
                continue;
            }
            if c.out_pos >= c.outbuf.len() {
                // Idle again: hold no buffer; its allocation is kept for
                // the next connection that writes.
                let buf = mem::take(&mut c.outbuf);
                c.out_pos = 0;
                keep_spare(&mut self.spare_out, buf);
                if matches!(c.phase, Phase::Closing | Phase::Responding | Phase::Refused) {
                    self.drop_conn(slot);
                    continue;
                }
            } else if c.out_pos > c.outbuf.len() / 2 {
                c.outbuf.drain(..c.out_pos);
                c.out_pos = 0;
            }
            let Some(c) = self.conns.get_mut(slot) else { continue };
            let resume = c.sync_paused && c.pending_out() < self.ctx.settings.max_outbound / 2;
            if resume {
                c.sync_paused = false;
                self.request_sync_page(slot);
            }
        }
        // Keep the allocation for the next turn.
        let mut queue = queue;
        queue.clear();
        if self.flush_queue.is_empty() {
            self.flush_queue = queue;
        }
    }

    /// Everything another thread posted to this core.
    pub(crate) fn on_mailbox(&mut self, batch: CoreBatch) {
        for ev in batch {
            // For every connection of the core, not one: no slot to check.
            if let CoreEvent::CatchUpAll { .. } = ev {
                self.catch_up_all();
                continue;
            }
            let to = ev.endpoint();
            let slot = to.slot as usize;
            match self.conns.get(slot) {
                Some(c) if c.generation == to.generation && c.phase == Phase::Open => {}
                // The connection is gone; a device that comes back syncs.
                _ => continue,
            }
            if let CoreEvent::SyncPage { .. } | CoreEvent::SyncFailed { .. } = ev {
                if self.page_answered(slot) {
                    continue;
                }
            }
            match ev {
                CoreEvent::Reply { payload, .. } => self.queue_frame(slot, Opcode::Text, &payload),
                CoreEvent::Ephemeral { payload, .. } => self.queue_frame(slot, Opcode::Text, &payload),
                CoreEvent::Deliver { event, pos, payload, .. } => {
                    if self.take_live(slot, event, pos) {
                        self.ctx.metrics.events_delivered.inc();
                        self.queue_frame(slot, Opcode::Text, &payload);
                    }
                }
                // The connection made the event: it only moves past it.
                CoreEvent::Seen { event, pos, .. } => {
                    if !self.take_live(slot, event, pos) {
                        self.note_own_while_paging(slot, pos);
                    }
                }
                CoreEvent::SyncPage { after, events, full, truncated, .. } => {
                    self.on_sync_page(slot, after, events, full, truncated)
                }
                CoreEvent::SyncFailed { payload, .. } => {
                    // No live events until the device syncs again, so its
                    // cursor never jumps over what the failed page held.
                    self.leave_catch_up(slot);
                    self.not_live(slot);
                    self.own_events.forget(slot);
                    if let Some(c) = self.conns.get_mut(slot) {
                        c.syncing = false;
                        c.subscribed = false;
                    }
                    self.queue_frame(slot, Opcode::Text, &payload);
                }
                CoreEvent::CatchUp { .. } => {
                    if self.conns.get(slot).is_some_and(|c| c.subscribed) {
                        self.start_catch_up(slot, CatchUpReason::Asked);
                    }
                }
                CoreEvent::Revoke { device: 0, .. } => self.revoked(slot),
                CoreEvent::Revoke { device, .. } => {
                    if self.device_of(slot) == device {
                        self.device_revoked(slot);
                    }
                }
                // Handled above, before the slot check.
                CoreEvent::CatchUpAll { .. } => {}
            }
        }
    }

    /// A page (or its failure) came for `slot`. True when it answers a
    /// request the device has replaced with a new `sync`: it is dropped,
    /// and the new sync's first page is asked for now.
    fn page_answered(&mut self, slot: usize) -> bool {
        let Some(c) = self.conns.get_mut(slot) else { return false };
        let stale = c.page == PageRead::Stale;
        c.page = PageRead::Idle;
        if stale {
            self.request_sync_page(slot);
        }
        stale
    }

    /// Whether the live event at `pos` is the next one for the connection in
    /// `slot`; if so its cursor and position move to it. A duplicate (at or
    /// below the position) is not; nor is anything while a sync or catch-up
    /// runs (it reads one more page instead). With dense positions, a jump
    /// means events this connection missed (committed by another node): it
    /// catches up from the store, which brings this event too.
    fn take_live(&mut self, slot: usize, event: MessageId, pos: InboxPos) -> bool {
        let Some(c) = self.conns.get_mut(slot) else { return false };
        if !c.subscribed || pos <= c.pos {
            return false;
        }
        if c.syncing {
            c.sync_missed = true;
            return false;
        }
        if self.ctx.settings.dense_positions && pos.0 > c.pos.0.saturating_add(1) {
            self.start_catch_up(slot, CatchUpReason::Gap);
            return false;
        }
        (c.cursor, c.pos) = (event, pos);
        true
    }

    /// The connection made the event at `pos` but is paging (or just began
    /// to, at a gap): the page that holds it moves past it silently.
    fn note_own_while_paging(&mut self, slot: usize, pos: InboxPos) {
        let Some(c) = self.conns.get(slot) else { return };
        if c.subscribed && c.syncing && pos > c.pos {
            self.own_events.note(slot, c.generation, pos);
        }
    }

    /// Shutdown, step one: refuse new requests (they get `shutting_down`).
    pub(crate) fn stop_intake(&mut self) {
        self.draining = true;
        self.refusing = true;
    }

    /// Shutdown, step two: close every connection with 1001.
    pub(crate) fn close_all(&mut self) {
        let slots: Vec<(usize, Phase)> = self.conns.iter().map(|(s, c)| (s, c.phase)).collect();
        for (slot, phase) in slots {
            match phase {
                Phase::Open => self.close_with(slot, close::GOING_AWAY, "server shutting down"),
                Phase::ProxyHeader | Phase::Handshake => self.drop_conn(slot),
                Phase::Responding | Phase::Refused | Phase::Closing => {}
            }
        }
    }
}

/// Keep `buf`, emptied, for reuse if it is worth keeping and there is room.
fn keep_spare(spare: &mut Vec<Vec<u8>>, mut buf: Vec<u8>) {
    let cap = buf.capacity();
    if cap > 0 && cap <= SPARE_OUT_CAPACITY && spare.len() < SPARE_OUT_BUFFERS {
        buf.clear();
        spare.push(buf);
    }
}

/// Give `out` a spare buffer if it has none, so queuing a frame does not
/// allocate.
fn take_spare(spare: &mut Vec<Vec<u8>>, out: &mut Vec<u8>) {
    if out.capacity() == 0 {
        if let Some(buf) = spare.pop() {
            *out = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, path::PathBuf};

    use super::*;
    use crate::config::Config;

    fn open_engine() -> (Engine<()>, usize) {
        let config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "t".into());
        let mut engine: Engine<()> = Engine::new(0, CoreContext::standalone(&config));
        let slot = engine.accept((), IpAddr::from([127, 0, 0, 1]));
        engine.conns.get_mut(slot).unwrap().phase = Phase::Open;
        (engine, slot)
    }

    #[test]
    fn a_written_queue_leaves_no_buffer_on_the_connection_and_its_allocation_is_reused() {
        let (mut engine, slot) = open_engine();
        engine.queue_frame(slot, Opcode::Text, b"first");
        let mut written = Vec::new();
        engine.flush(|_, b| {
            written.extend_from_slice(b);
            Ok(b.len())
        });
        assert!(written.ends_with(b"first"));
        assert_eq!(engine.conns[slot].outbuf.capacity(), 0, "an idle connection holds no buffer");
        assert_eq!(engine.spare_out.len(), 1);
        let kept = engine.spare_out[0].as_ptr();

        engine.queue_frame(slot, Opcode::Text, b"second");
        assert!(engine.spare_out.is_empty());
        assert_eq!(engine.conns[slot].outbuf.as_ptr(), kept, "the spare buffer was taken, not a new one");
    }

    #[test]
    fn a_driver_that_takes_the_queue_gives_the_buffer_back_when_done() {
        let (mut engine, slot) = open_engine();
        engine.queue_frame(slot, Opcode::Text, b"taken");
        let mut in_flight = Vec::new();
        engine.flush_with(|_, queue, pos| {
            in_flight = mem::take(queue);
            *pos = 0;
            Wrote::Progress
        });
        assert!(in_flight.ends_with(b"taken"));
        assert_eq!(engine.conns[slot].outbuf.capacity(), 0);
        assert!(engine.spare_out.is_empty(), "the kernel still reads it");

        // Frames queued while the send is in flight go to a buffer of their own.
        engine.queue_frame(slot, Opcode::Text, b"later");
        engine.flush_with(|_, _, _| Wrote::Blocked);
        assert!(engine.conns[slot].outbuf.ends_with(b"later"));
        assert!(in_flight.ends_with(b"taken"), "untouched while in flight");

        engine.recycle_out(in_flight);
        assert_eq!(engine.spare_out.len(), 1);
        // A buffer too large to keep is freed instead.
        engine.recycle_out(Vec::with_capacity(SPARE_OUT_CAPACITY + 1));
        assert_eq!(engine.spare_out.len(), 1);
    }
}

//! What a core does once a second: expire its timer wheel and act on each
//! connection whose deadline came (handshake timeout, close grace, keepalive
//! ping, pong timeout, idle timeout, token expiry), then arm it again at its
//! next deadline. Work per tick follows the connections due, not the
//! connections held (see `timers`).

use std::num::NonZeroU32;

use chatgw_protocol::close;

use super::{
    conn::{Conn, Phase},
    context::CoreSettings,
    engine::Engine,
    timers::Entry,
};
use crate::{metrics::ProxyOutcome, ws::frame::Opcode};

/// Seconds a closing connection may take to drain its last bytes.
const CLOSE_GRACE_SECS: u32 = 2;
/// How often core 0 drops limiter state that no longer limits anything.
const SWEEP_EVERY_SECS: u32 = 10;

/// The configured timeouts, in whole seconds of the core's clock.
struct Timeouts {
    handshake: u32,
    ping_every: u32,
    pong_wait: u32,
    /// 0: no idle timeout.
    idle_after: u32,
}

impl Timeouts {
    fn of(cfg: &CoreSettings) -> Self {
        Timeouts {
            handshake: cfg.handshake_timeout.as_secs().max(1) as u32,
            ping_every: cfg.ping_interval.as_secs().max(1) as u32,
            pong_wait: cfg.pong_timeout.as_secs().max(1) as u32,
            idle_after: cfg.idle_timeout.as_secs().min(u64::from(u32::MAX)) as u32,
        }
    }

    /// The second of `c`'s next deadline; `now` and `unix_now` place the
    /// token's expiry (Unix seconds) on the core's clock.
    fn next(&self, c: &Conn<impl Sized>, now: u32, unix_now: u64) -> u32 {
        match c.phase {
            Phase::ProxyHeader | Phase::Handshake => c.opened_at.saturating_add(self.handshake),
            Phase::Responding | Phase::Refused | Phase::Closing => c.opened_at.saturating_add(CLOSE_GRACE_SECS),
            Phase::Open if c.awaiting_auth() => c.opened_at.saturating_add(self.handshake),
            Phase::Open => {
                let mut at = match c.ping_sent {
                    Some(t) => t.get().saturating_add(self.pong_wait),
                    None => c.last_heard.saturating_add(self.ping_every),
                };
                if self.idle_after > 0 {
                    at = at.min(c.last_frame.saturating_add(self.idle_after));
                }
                if c.token_exp != 0 {
                    let left = u64::from(c.token_exp).saturating_sub(unix_now).min(u64::from(u32::MAX)) as u32;
                    at = at.min(now.saturating_add(left));
                }
                at
            }
        }
    }
}

impl<S> Engine<S> {
    /// Once a second: the deadlines that came, and limiter upkeep on core 0.
    pub(crate) fn on_tick(&mut self) {
        let now = self.now;
        if self.core == 0 && now % SWEEP_EVERY_SECS == 0 {
            self.ctx.limits.sweep(self.now_ms);
        }
        let mut due = Vec::new();
        self.timers.expire(now, |entry, second| due.push((entry, second)));
        for (entry, second) in due {
            let slot = entry.slot as usize;
            match self.conns.get(slot) {
                // Not a closed connection's entry, nor one superseded by an
                // earlier deadline.
                Some(c) if c.generation == entry.generation && c.armed_at == second => self.on_deadline(slot),
                _ => {}
            }
        }
        self.timer_entries.set(self.timers.len() as i64);
    }

    /// Act on `slot`'s deadline if it has come, then arm its next one.
    fn on_deadline(&mut self, slot: usize) {
        let t = Timeouts::of(&self.ctx.settings);
        let (now, unix_now) = (self.now, self.now_ms / 1000);
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        c.armed_at = u32::MAX;
        match c.phase {
            Phase::Open if c.awaiting_auth() && now.saturating_sub(c.opened_at) >= t.handshake => {
                self.ctx.metrics.handshake_timeouts.inc();
                return self.unauthenticated(slot, "no auth frame within the handshake timeout");
            }
            Phase::Open if c.awaiting_auth() => {}
            Phase::Open if c.token_exp != 0 && unix_now >= u64::from(c.token_exp) => {
                self.ctx.metrics.tokens_expired.inc();
                self.close_with(slot, close::TOKEN_EXPIRED, "token expired; reconnect with a fresh token");
            }
            Phase::Open if t.idle_after > 0 && now.saturating_sub(c.last_frame) >= t.idle_after => {
                self.ctx.metrics.idle_closes.inc();
                self.close_with(slot, close::IDLE, "no protocol frame within the idle timeout");
            }
            Phase::ProxyHeader if now.saturating_sub(c.opened_at) >= t.handshake => {
                self.ctx.metrics.proxy_header(ProxyOutcome::Timeout);
                return self.drop_conn(slot);
            }
            Phase::Handshake if now.saturating_sub(c.opened_at) >= t.handshake => {
                self.ctx.metrics.bad_requests.inc();
                self.ctx.metrics.handshake_timeouts.inc();
                return self.drop_conn(slot);
            }
            Phase::Responding | Phase::Refused | Phase::Closing
                if now.saturating_sub(c.opened_at) >= CLOSE_GRACE_SECS =>
            {
                return self.drop_conn(slot);
            }
            Phase::Open => match c.ping_sent {
                Some(sent) if now.saturating_sub(sent.get()) >= t.pong_wait => {
                    self.ctx.metrics.timeouts.inc();
                    self.close_with(slot, close::TIMEOUT, "no pong within the keepalive deadline");
                }
                None if now.saturating_sub(c.last_heard) >= t.ping_every => {
                    // `now` is at least `ping_every` (one second or more)
                    // past `last_heard`, so it is never zero.
                    c.ping_sent = NonZeroU32::new(now);
                    self.queue_frame(slot, Opcode::Ping, b"");
                }
                _ => {}
            },
            _ => {}
        }
        self.arm_timer(slot);
    }

    /// Make sure `slot`'s wheel entry fires no later than its next deadline.
    /// Called when a connection starts and when its phase changes; a
    /// deadline moving later needs nothing (the entry fires early and is
    /// armed again).
    pub(crate) fn arm_timer(&mut self, slot: usize) {
        let t = Timeouts::of(&self.ctx.settings);
        let (now, unix_now) = (self.now, self.now_ms / 1000);
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let fires = self.timers.fires_at(t.next(c, now, unix_now));
        if fires >= c.armed_at {
            return;
        }
        c.armed_at = self.timers.arm(Entry { slot: slot as u32, generation: c.generation }, fires);
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, path::PathBuf};

    use super::*;
    use crate::{config::Config, core::CoreContext};

    fn engine() -> Engine<()> {
        let config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "t".into());
        Engine::new(0, CoreContext::standalone(&config))
    }

    fn tick_at(e: &mut Engine<()>, now: u32) {
        e.now = now;
        e.on_tick();
    }

    #[test]
    fn deadlines_fire_from_the_wheel_at_the_second_the_walk_found_them() {
        let mut e = engine();
        let peer = std::net::IpAddr::from([127, 0, 0, 1]);
        let handshaking = e.accept((), peer);
        let open = e.accept((), peer);
        // An open echo connection: authenticated connections and echo ones
        // share keepalive; one awaiting its `auth` frame has its own deadline.
        let c = e.conns.get_mut(open).unwrap();
        (c.phase, c.echo) = (Phase::Open, true);
        e.arm_timer(open);
        // Defaults: handshake 10 s, ping every 30 s, pong within 30 s.
        tick_at(&mut e, 9);
        assert!(e.conns.contains(handshaking));
        tick_at(&mut e, 10);
        assert!(!e.conns.contains(handshaking), "handshake timeout at 10 s");
        assert_eq!(e.ctx.metrics.handshake_timeouts.get(), 1);
        tick_at(&mut e, 29);
        assert_eq!(e.conns[open].ping_sent, None);
        // A late tick still finds the ping deadline it skipped over.
        tick_at(&mut e, 31);
        assert_eq!(e.conns[open].ping_sent.map(NonZeroU32::get), Some(31));
        assert_eq!(e.conns[open].pending_out(), 2, "one empty ping frame queued");
        tick_at(&mut e, 60);
        assert_eq!(e.conns[open].phase, Phase::Open);
        tick_at(&mut e, 61);
        assert_eq!((e.conns[open].phase, e.ctx.metrics.timeouts.get()), (Phase::Closing, 1));
        tick_at(&mut e, 62);
        assert!(e.conns.contains(open), "close grace is 2 s");
        tick_at(&mut e, 63);
        assert!(!e.conns.contains(open));
    }

    #[test]
    fn a_tick_touches_only_the_connections_due() {
        let mut e = engine();
        let peer = std::net::IpAddr::from([127, 0, 0, 1]);
        for i in 0..1_000u32 {
            e.now = i % 20;
            let slot = e.accept((), peer);
            let c = e.conns.get_mut(slot).unwrap();
            (c.phase, c.echo) = (Phase::Open, true);
        }
        // One entry each (the handshake deadline), nothing armed twice.
        assert_eq!(e.timers.len(), 1_000);
        // At 10 s the 50 connections accepted at 0 s come due (handshake
        // deadline, now open: armed again for their ping); the rest wait.
        tick_at(&mut e, 10);
        assert_eq!(e.timers.len(), 1_000);
        assert_eq!(e.timer_entries.get(), 1_000);
        let pinged = |e: &Engine<()>| e.conns.iter().filter(|(_, c)| c.ping_sent.is_some()).count();
        tick_at(&mut e, 30);
        assert_eq!(pinged(&e), 50, "only the connections heard at 0 s are pinged at 30 s");
    }

    #[test]
    fn a_connection_awaiting_its_auth_frame_gets_the_handshake_timeout_again() {
        let mut e = engine();
        let slot = e.accept((), std::net::IpAddr::from([127, 0, 0, 1]));
        tick_at(&mut e, 5);
        // Upgraded at 5 s without a token: 10 s more for the `auth` frame.
        let c = e.conns.get_mut(slot).unwrap();
        (c.phase, c.opened_at) = (Phase::Open, 5);
        assert!(c.awaiting_auth());
        tick_at(&mut e, 10);
        assert_eq!(e.conns[slot].phase, Phase::Open, "the handshake deadline no longer applies");
        tick_at(&mut e, 14);
        assert_eq!(e.conns[slot].phase, Phase::Open);
        tick_at(&mut e, 15);
        assert_eq!(e.conns[slot].phase, Phase::Closing);
        assert_eq!((e.ctx.metrics.handshake_timeouts.get(), e.ctx.metrics.auth_failures.get()), (1, 1));
    }
}

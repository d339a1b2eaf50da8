//! A connection's first bytes under `--proxy-protocol`: the balancer's
//! PROXY header, read before the HTTP request (see [`crate::proxy`]).
//!
//! A connection from a trusted balancer is taken in [`Phase::ProxyHeader`]
//! without charging any source: the balancer's address is not the client's.
//! Once the header is complete the client's address is charged against the
//! per-source limits (refused with the usual 429 when over them) and
//! becomes the connection's `peer`; a LOCAL or UNKNOWN header charges the
//! balancer's own address. The bytes that came after the header go on to
//! the HTTP request. A malformed header closes the connection at once;
//! one that is not complete within the handshake timeout closes it then
//! (`ticks`). The header is at most [`MAX_HEADER`] bytes, so what waits in
//! `inbuf` meanwhile is bounded too.

use crate::{
    metrics::ProxyOutcome,
    proxy::{self, Header, MAX_HEADER},
};

use super::{conn::Phase, unread::Unread, Engine};

impl<S> Engine<S> {
    pub(super) fn on_proxy_header_bytes(&mut self, slot: usize, data: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let mut unread = Unread::join(&mut conn.inbuf, data);
        let view = unread.bytes();
        let (header, used) = match proxy::parse(view) {
            Ok(Some(done)) => done,
            Ok(None) => {
                // The parser refuses anything longer than MAX_HEADER before
                // it is complete, so this keeps at most that much.
                debug_assert!(view.len() <= MAX_HEADER);
                let keep = unread.keep();
                if let Some(c) = self.conns.get_mut(slot) {
                    c.inbuf = keep;
                }
                return;
            }
            Err(why) => {
                self.ctx.metrics.proxy_header(ProxyOutcome::Malformed);
                let balancer = self.conns.get(slot).map(|c| c.peer);
                tracing::debug!(?balancer, reason = %why, "malformed PROXY header: connection closed");
                return self.drop_conn(slot);
            }
        };
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let client = match header {
            Header::Proxied { source, .. } => {
                self.ctx.metrics.proxy_header(ProxyOutcome::Proxied);
                tracing::debug!(client = %source, balancer = %conn.peer, "PROXY header");
                source.ip()
            }
            Header::Local => {
                self.ctx.metrics.proxy_header(ProxyOutcome::Local);
                conn.peer
            }
        };
        if let Err(refusal) = self.charge_source(client) {
            self.queue_raw(slot, refusal.response());
            if let Some(c) = self.conns.get_mut(slot) {
                c.phase = Phase::Refused;
                c.opened_at = self.now;
            }
            return;
        }
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        conn.peer = client;
        conn.phase = Phase::Handshake;
        let start = used.min(view.len());
        let rest = &mut view[start..];
        if !rest.is_empty() {
            self.on_handshake_bytes(slot, rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, SocketAddr},
        path::PathBuf,
    };

    use super::*;
    use crate::{config::Config, core::CoreContext, limits::Refusal};

    const BALANCER: [u8; 4] = [10, 0, 0, 2];

    /// An engine under `--proxy-protocol` trusting 10.0.0.2, one connection
    /// per client address, at most `max` in all.
    fn engine(max: usize) -> Engine<()> {
        let mut config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "t".into());
        config.proxy_protocol = true;
        config.proxy_from = crate::proxy::TrustedProxies(vec!["10.0.0.2".parse().unwrap()]);
        config.max_connections_per_ip = 1;
        config.max_connections = max;
        Engine::new(0, CoreContext::standalone(&config))
    }

    /// A connection from the balancer, admitted as a driver would.
    fn from_balancer(e: &mut Engine<()>) -> usize {
        e.admit(IpAddr::from(BALANCER)).expect("the balancer is trusted");
        e.accept((), IpAddr::from(BALANCER))
    }

    fn send(e: &mut Engine<()>, slot: usize, bytes: &[u8]) {
        e.on_bytes(slot, &mut bytes.to_vec());
    }

    fn written(e: &Engine<()>, slot: usize) -> String {
        e.conns.get(slot).map(|c| String::from_utf8_lossy(&c.outbuf).into_owned()).unwrap_or_default()
    }

    const CLIENT: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 5000 8080\r\n";
    const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn the_client_is_charged_once_the_header_names_it_and_released_once() {
        let mut e = engine(100);
        // The balancer's own address is never charged: many wait for headers.
        let slots: Vec<usize> = (0..3).map(|_| from_balancer(&mut e)).collect();
        assert!(slots.iter().all(|&s| e.conns[s].phase == Phase::ProxyHeader));
        // The header in two pieces, the request right after it.
        send(&mut e, slots[0], &CLIENT[..9]);
        send(&mut e, slots[0], &[&CLIENT[9..], HEALTHZ].concat());
        assert_eq!(e.conns[slots[0]].peer, IpAddr::from([192, 0, 2, 7]));
        assert!(written(&e, slots[0]).starts_with("HTTP/1.1 200"), "{}", written(&e, slots[0]));
        // The same client again: over its one connection, 429, not charged.
        send(&mut e, slots[1], &[CLIENT, HEALTHZ].concat());
        assert_eq!(e.conns[slots[1]].phase, Phase::Refused);
        assert!(written(&e, slots[1]).starts_with("HTTP/1.1 429"));
        e.drop_conn(slots[1]);
        // A LOCAL header keeps the balancer's address, charged now.
        send(&mut e, slots[2], b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
        assert_eq!((e.conns[slots[2]].peer, e.conns[slots[2]].phase), (IpAddr::from(BALANCER), Phase::Handshake));
        // The first connection goes: the client has its place back, once.
        e.drop_conn(slots[0]);
        let again = from_balancer(&mut e);
        send(&mut e, again, &[CLIENT, HEALTHZ].concat());
        assert!(written(&e, again).starts_with("HTTP/1.1 200"));
        let over = from_balancer(&mut e);
        send(&mut e, over, &[CLIENT, HEALTHZ].concat());
        assert!(written(&e, over).starts_with("HTTP/1.1 429"), "released once, not twice");
    }

    #[test]
    fn the_last_place_in_max_connections_is_not_refused_after_its_header() {
        let mut e = engine(1);
        let slot = from_balancer(&mut e);
        assert_eq!(e.admit(IpAddr::from(BALANCER)), Err(Refusal::Full));
        send(&mut e, slot, &[CLIENT, HEALTHZ].concat());
        assert!(written(&e, slot).starts_with("HTTP/1.1 200"), "{}", written(&e, slot));
    }

    #[test]
    fn untrusted_malformed_and_late_headers_close_the_connection() {
        let mut e = engine(100);
        assert_eq!(e.admit(IpAddr::from([10, 0, 0, 3])), Err(Refusal::Untrusted));
        assert!(Refusal::Untrusted.response().is_empty(), "closed without a byte");
        let plain = from_balancer(&mut e);
        send(&mut e, plain, HEALTHZ);
        assert!(!e.conns.contains(plain), "a request without a header");
        let slow = from_balancer(&mut e);
        send(&mut e, slow, b"PROXY TCP4 192.0.2.7");
        e.now = 9;
        e.on_tick();
        assert!(e.conns.contains(slow));
        e.now = 10;
        e.on_tick();
        assert!(!e.conns.contains(slow), "the handshake timeout covers the header");
    }
}

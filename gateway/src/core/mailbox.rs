//! What a core does with its mailbox: hand each event to its connection,
//! and close the connections a full mailbox refused mail for.
//!
//! The mailbox is bounded ([`MAILBOX_EVENTS`]). A refused batch is never
//! silently dropped: every connection it addressed has missed an event (a
//! delivery, a `sent` acknowledgement, a sync page), so it is closed with
//! 4000 before anything posted later reaches it. Its cursor therefore never
//! moves past the refused event: the device reconnects and syncs from its
//! cursor, and resends unacknowledged messages with their client ids, which
//! the server deduplicates.

use chatgw_protocol::close;
use chatgw_router::{Addressed, Endpoint, Mail, Mailboxes};

use super::{conn::Phase, engine::Engine};
use crate::events::{CoreBatch, CoreEvent};

/// Events one core's mailbox holds before it refuses batches. About one
/// second of the whole gateway's measured saturation rate (40,000 to
/// 60,000 delivered events per second, BENCHMARKS.md), so only a core
/// stalled for a second or more trips it, never a burst; and at most about
/// 10 MB of queued events per core (~150 bytes each with a reply payload).
pub(crate) const MAILBOX_EVENTS: usize = 65_536;

impl Addressed for CoreEvent {
    fn weight(&self) -> usize {
        1
    }

    fn for_each_endpoint(&self, f: &mut dyn FnMut(Endpoint)) {
        f(self.endpoint())
    }
}

impl<S> Engine<S> {
    /// Take everything posted to this core; the driver calls this once per
    /// loop turn, after its poll returns.
    pub(crate) fn drain_mailbox(&mut self, mailboxes: &Mailboxes<CoreBatch>) {
        let core = usize::from(self.core);
        self.mailbox_depth.set(mailboxes.depth(core) as i64);
        let mut overflowed = false;
        mailboxes.drain(core, |mail| match mail {
            Mail::Item(batch) => self.on_mailbox(batch),
            Mail::Overflowed(to) => {
                overflowed = true;
                self.on_overflowed(to);
            }
        });
        if overflowed {
            self.ctx.metrics.mailbox_refused_events.inc_by(mailboxes.take_refused(core) as u64);
        }
    }

    /// Mail for `to` was refused: close it unless it is already gone.
    fn on_overflowed(&mut self, to: Endpoint) {
        let slot = to.slot as usize;
        match self.conns.get(slot) {
            Some(c) if to.core == self.core && c.generation == to.generation && c.phase == Phase::Open => {}
            _ => return,
        }
        self.ctx.metrics.mailbox_overflow_closes.inc();
        tracing::debug!(slot, "closing a connection whose mail found the core's mailbox full");
        self.close_with(slot, close::SLOW_CONSUMER, "slow consumer: outbound queue full; reconnect and sync");
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, path::PathBuf, sync::Arc};

    use chatgw_protocol::MessageId;
    use chatgw_router::{Posted, Wake};

    use super::*;
    use crate::{config::Config, core::CoreContext};

    struct NoWake;
    impl Wake for NoWake {
        fn wake(&self) {}
    }

    fn deliver(to: Endpoint, event: u64) -> CoreEvent {
        CoreEvent::Deliver {
            to,
            event: MessageId(event),
            pos: chatgw_storage::InboxPos(event),
            payload: format!("event-{event}").into_bytes().into(),
        }
    }

    #[test]
    fn mailbox_overflow_closes_the_connection_before_a_later_event_moves_its_cursor() {
        let config = Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), PathBuf::from("unused"), "t".into());
        let wakers = || vec![Arc::new(NoWake) as Arc<dyn Wake>];
        let ctx = CoreContext::standalone(&config);
        let metrics = ctx.metrics.clone();
        let mut engine: Engine<()> = Engine::new(0, ctx);
        let slot = engine.accept((), std::net::IpAddr::from([127, 0, 0, 1]));
        let c = engine.conns.get_mut(slot).unwrap();
        (c.phase, c.subscribed) = (Phase::Open, true);
        let to = engine.endpoint(slot).unwrap();

        // A mailbox of two events: the second batch does not fit and is
        // refused; the third fits again.
        let mailboxes: Mailboxes<CoreBatch> = Mailboxes::new(wakers(), 2);
        assert_eq!(mailboxes.post(0, vec![deliver(to, 5)]), Posted::Queued);
        let reply = CoreEvent::Reply { to, payload: b"sent".to_vec() };
        assert_eq!(mailboxes.post(0, vec![deliver(to, 6), reply]), Posted::Refused);
        assert_eq!(mailboxes.post(0, vec![deliver(to, 7)]), Posted::Queued);
        engine.drain_mailbox(&mailboxes);

        let mut written = Vec::new();
        engine.flush(|_, b| {
            written.extend_from_slice(b);
            Ok(b.len())
        });
        let text = String::from_utf8_lossy(&written);
        assert!(!text.contains("event-7"), "a later event passed the refused one: {text:?}");
        // A close frame (0x88) with code 4000 (0x0fa0).
        assert!(written.windows(4).any(|w| w[0] == 0x88 && w[2..4] == [0x0f, 0xa0]), "{written:?}");
        assert!(engine.conns.get(slot).is_none_or(|c| c.cursor < MessageId(6)));
        assert_eq!(metrics.mailbox_overflow_closes.get(), 1);
        assert_eq!(metrics.mailbox_refused_events.get(), 2);
        assert_eq!(mailboxes.depth(0), 0);
    }
}

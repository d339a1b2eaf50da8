//! One thread's share of a one-to-one run: its pairs, what they sent,
//! and what came back.
//!
//! A message's three latencies are all measured from its *intended* send
//! time (see [`schedule`](crate::scenarios::schedule)): to the sender's `sent` ack (the
//! message is durable), to the recipient's `message` (delivered live), and
//! to the sender's delivery `receipt` (the recipient's `delivered` ack made
//! durable and routed back). The intended time travels inside the client id
//! (`<run tag>.<n>.<ns>`), which the gateway echoes in `sent` and forwards
//! as `cid` in `message`, so neither side needs a lookup table to compute
//! its latency; the run tag keeps messages of earlier runs (replayed by
//! `sync`, or late) out of the figures, and makes client ids unique across
//! runs so the gateway's idempotency never mistakes a new message for a
//! resend.
//!
//! A pair's sender and recipient are always on the same thread, so the
//! checks at the end (acked but never delivered = lost; delivered twice =
//! duplicate) need nothing from other threads.

use std::sync::Arc;

use crate::{
    conn::{
        connection::Handler,
        driver::Driver,
        event::{parse_id, ServerFrame},
    },
    report::shared::Live,
    scenarios::{
        messages::{self, Ledger, MsgStats, Roles},
        one_to_one::PairLoad,
        scenario::Load,
    },
};

#[derive(Default)]
struct Pair {
    sender: usize,
    recipient_user: u64,
    ledger: Ledger,
}

#[derive(Clone, Copy)]
enum Role {
    Sender(usize),
    Recipient(usize),
}

/// One thread's pairs; the [`Handler`] for their connections.
pub(crate) struct Traffic {
    tag: String,
    body: String,
    pairs: Vec<Pair>,
    roles: Roles<Role>,
    live: Arc<Live>,
    outstanding: u64,
    text: String,
    /// Figures so far (all of them are what every messaging scenario counts).
    pub(crate) stats: MsgStats,
}

impl Traffic {
    /// No pairs yet; `tag` marks this run's client ids.
    pub(crate) fn new(tag: String, body_bytes: usize, live: Arc<Live>) -> Self {
        Traffic {
            tag,
            body: chatgw_protocol::client::body_literal(&"x".repeat(body_bytes)),
            pairs: Vec::new(),
            roles: Roles::default(),
            live,
            outstanding: 0,
            text: String::new(),
            stats: MsgStats::default(),
        }
    }

    fn on_sent(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64) {
        let Some((_, intended, msg)) = messages::ours(&self.tag, f.id.as_ref(), f.msg.as_ref()) else {
            self.stats.foreign += 1;
            return;
        };
        let Some(pair) = self.pairs.get_mut(local) else {
            return;
        };
        self.outstanding = self.outstanding.saturating_sub(1);
        self.stats.record_ack(&self.live, intended, now_ns);
        if f.duplicate == Some(true) {
            self.stats.duplicate_acks += 1;
        }
        pair.ledger.ack(msg, intended, &mut self.stats, &self.live);
    }

    fn on_receipt(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64) {
        if let Some(pair) = self.pairs.get_mut(local) {
            pair.ledger.receipt(f, now_ns, false, &mut self.stats, &self.live);
        }
    }

    fn on_message(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        let (Some((_, intended, msg)), Some(from)) =
            (messages::ours(&self.tag, f.cid.as_ref(), f.msg.as_ref()), parse_id(f.from.as_ref()))
        else {
            self.stats.foreign += 1;
            return;
        };
        let Some(pair) = self.pairs.get_mut(local) else {
            return;
        };
        if !pair.ledger.seen.insert(msg) {
            self.stats.duplicates += 1;
        } else {
            let latency = self.stats.record_delivery(&self.live, intended, now_ns);
            self.live.sample_ns(latency);
        }
        messages::write_delivered(reply, messages::peer(from), &[msg]);
    }

    fn on_error(&mut self, f: &ServerFrame<'_>) {
        if self.stats.record_error(&self.live, f, &self.tag) {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
    }
}

impl Handler for Traffic {
    fn on_text(&mut self, id: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        let Some(role) = self.roles.get(id) else {
            return;
        };
        match (role, &*f.ty) {
            (_, "error") => self.on_error(f),
            (Role::Sender(p), "sent") => self.on_sent(p, f, now_ns),
            (Role::Sender(p), "receipt") => self.on_receipt(p, f, now_ns),
            (Role::Recipient(p), "message") => self.on_message(p, f, now_ns, reply),
            _ => self.stats.foreign += 1,
        }
    }
}

impl PairLoad for Traffic {
    fn add_pair(&mut self, _pair: u64, (_, sender): (u64, usize), (recipient_user, recipient): (u64, usize)) {
        let local = self.pairs.len();
        self.pairs.push(Pair { sender, recipient_user, ..Pair::default() });
        self.roles.set(sender, Role::Sender(local));
        self.roles.set(recipient, Role::Recipient(local));
    }

    fn send(&mut self, driver: &mut Driver, local: usize, n: u64, intended_ns: u64, now_ns: u64) {
        self.stats.scheduled += 1;
        let Some(pair) = self.pairs.get(local) else {
            return;
        };
        self.text.clear();
        messages::write_send(
            &mut self.text,
            &self.tag,
            (n, intended_ns),
            messages::peer(pair.recipient_user),
            &self.body,
        );
        if driver.send_text(pair.sender, &self.text) {
            self.outstanding += 1;
            self.stats.record_send(&self.live, intended_ns, now_ns);
        } else {
            self.stats.skipped += 1;
        }
    }
}

impl Load for Traffic {
    type Stats = MsgStats;

    /// Every send answered and every acked message receipted.
    fn settled(&self) -> bool {
        self.outstanding == 0 && self.pairs.iter().all(|p| p.ledger.receipted())
    }

    fn finish(mut self) -> MsgStats {
        for p in &self.pairs {
            p.ledger.tally(&mut self.stats);
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_delivery_receipt_and_loss_accounting() {
        let live = Arc::new(Live::default());
        let mut t = Traffic::new("lgt".into(), 4, Arc::clone(&live));
        t.add_pair(0, (1, 0), (2, 1));
        t.outstanding = 3;
        fn f(s: &str) -> ServerFrame<'_> {
            ServerFrame::parse(s).unwrap()
        }
        let mut reply = String::new();
        // Message 100 acked, delivered (twice), receipted.
        t.on_text(0, &f(r#"{"type":"sent","id":"lgt.0.1000","msg":"100","duplicate":false}"#), 3000, &mut reply);
        t.on_text(
            1,
            &f(r#"{"type":"message","msg":"100","from":"1","cid":"lgt.0.1000","body":"x"}"#),
            5000,
            &mut reply,
        );
        assert_eq!(reply, r#"{"type":"delivered","peer":"1","ids":["100"]}"#);
        reply.clear();
        t.on_text(
            1,
            &f(r#"{"type":"message","msg":"100","from":"1","cid":"lgt.0.1000","body":"x"}"#),
            6000,
            &mut reply,
        );
        reply.clear();
        t.on_text(0, &f(r#"{"type":"receipt","status":"delivered","ids":["100"]}"#), 9000, &mut reply);
        // Message 101: receipt overtakes the ack.
        t.on_text(0, &f(r#"{"type":"receipt","status":"delivered","ids":["101"]}"#), 9500, &mut reply);
        t.on_text(
            1,
            &f(r#"{"type":"message","msg":"101","from":"1","cid":"lgt.1.2000","body":"x"}"#),
            9100,
            &mut reply,
        );
        reply.clear();
        t.on_text(0, &f(r#"{"type":"sent","id":"lgt.1.2000","msg":"101","duplicate":false}"#), 9600, &mut reply);
        // Message 102: acked, never delivered.
        t.on_text(0, &f(r#"{"type":"sent","id":"lgt.2.3000","msg":"102","duplicate":false}"#), 9700, &mut reply);
        // A message of another run is ignored and not acknowledged.
        t.on_text(1, &f(r#"{"type":"message","msg":"7","from":"1","cid":"old.0.1","body":"x"}"#), 9800, &mut reply);
        assert!(reply.is_empty());
        assert!(!t.settled(), "102 has no receipt");
        assert_eq!(t.outstanding, 0);
        let s = t.finish();
        assert_eq!((s.acked, s.delivered, s.duplicates, s.receipts), (3, 2, 1, 2));
        assert_eq!((s.lost, s.missing_receipts, s.delivered_unacked, s.foreign), (1, 0, 0, 1));
        assert_eq!(s.to_ack.count(), 3);
        assert_eq!(s.to_receipt.summary().max_ms, 0.008);
    }
}

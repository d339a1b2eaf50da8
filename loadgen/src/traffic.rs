//! One thread's share of a one-to-one run: its pairs, what they sent,
//! and what came back.
//!
//! A message's three latencies are all measured from its *intended* send
//! time (see [`schedule`](crate::schedule)): to the sender's `sent` ack (the
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

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    sync::Arc,
};

use serde::{Deserialize, Serialize};

use crate::{
    conn::Handler,
    driver::Driver,
    event::{parse_id, ServerFrame},
    shared::Live,
    stats::{Latency, Reasons},
};

/// The run's figures from one thread (merged across threads at the end).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TrafficStats {
    /// Messages due by the schedule.
    pub(crate) scheduled: u64,
    /// `send` frames written.
    pub(crate) sent: u64,
    /// Due but not sent: the sender's connection was down.
    pub(crate) skipped: u64,
    /// `sent` acks.
    pub(crate) acked: u64,
    /// `sent` acks flagged `duplicate` (should never happen: ids are unique).
    pub(crate) duplicate_acks: u64,
    /// First deliveries at recipients.
    pub(crate) delivered: u64,
    /// Second and later deliveries of the same message to the same connection.
    pub(crate) duplicates: u64,
    /// Delivery receipts matched to a message.
    pub(crate) receipts: u64,
    /// `error` frames by code.
    pub(crate) errors: Reasons,
    /// `error` frames that refused one of our sends.
    pub(crate) refused_sends: u64,
    /// Acked, never delivered by the end of the drain.
    pub(crate) lost: u64,
    /// Delivered but never acked to the sender.
    pub(crate) delivered_unacked: u64,
    /// Acked and delivered, but no receipt by the end of the drain.
    pub(crate) missing_receipts: u64,
    /// Frames from other runs or of unexpected types.
    pub(crate) foreign: u64,
    /// Actual send time minus intended send time.
    pub(crate) send_lag: Latency,
    /// Intended send time to `sent`.
    pub(crate) to_ack: Latency,
    /// Intended send time to `message` at the recipient.
    pub(crate) to_delivery: Latency,
    /// Intended send time to the delivery `receipt`.
    pub(crate) to_receipt: Latency,
    /// Clock time of the last first delivery.
    pub(crate) last_delivery_ns: u64,
}

impl TrafficStats {
    /// Add another thread's figures.
    pub(crate) fn merge(&mut self, o: &TrafficStats) {
        self.scheduled += o.scheduled;
        self.sent += o.sent;
        self.skipped += o.skipped;
        self.acked += o.acked;
        self.duplicate_acks += o.duplicate_acks;
        self.delivered += o.delivered;
        self.duplicates += o.duplicates;
        self.receipts += o.receipts;
        self.errors.merge(&o.errors);
        self.refused_sends += o.refused_sends;
        self.lost += o.lost;
        self.delivered_unacked += o.delivered_unacked;
        self.missing_receipts += o.missing_receipts;
        self.foreign += o.foreign;
        self.send_lag.merge(&o.send_lag);
        self.to_ack.merge(&o.to_ack);
        self.to_delivery.merge(&o.to_delivery);
        self.to_receipt.merge(&o.to_receipt);
        self.last_delivery_ns = self.last_delivery_ns.max(o.last_delivery_ns);
    }
}

#[derive(Default)]
struct Pair {
    sender: usize,
    recipient_user: u64,
    /// Acked message id -> intended send time, until its receipt.
    awaiting_receipt: HashMap<u64, u64>,
    /// Receipts that overtook their `sent` ack: message id -> arrival time.
    early_receipts: HashMap<u64, u64>,
    /// Every acked message id.
    acked: Vec<u64>,
    /// Every message id the recipient connection received.
    seen: HashSet<u64>,
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
    roles: Vec<Option<Role>>,
    live: Arc<Live>,
    outstanding: u64,
    text: String,
    /// Figures so far.
    pub(crate) stats: TrafficStats,
}

/// `<tag>.<n>.<intended ns>` -> (n, intended ns), if the id is this run's.
pub(crate) fn parse_client_id(cid: &str, tag: &str) -> Option<(u64, u64)> {
    let rest = cid.strip_prefix(tag)?.strip_prefix('.')?;
    let (n, at) = rest.split_once('.')?;
    Some((n.parse().ok()?, at.parse().ok()?))
}

impl Traffic {
    /// No pairs yet; `tag` marks this run's client ids.
    pub(crate) fn new(tag: String, body_bytes: usize, live: Arc<Live>) -> Self {
        Traffic {
            tag,
            body: "x".repeat(body_bytes),
            pairs: Vec::new(),
            roles: Vec::new(),
            live,
            outstanding: 0,
            text: String::new(),
            stats: TrafficStats::default(),
        }
    }

    /// Add a pair whose connections are `sender` and `recipient` (driver
    /// ids); returns its local index.
    pub(crate) fn add_pair(&mut self, sender: usize, recipient: usize, recipient_user: u64) -> usize {
        let local = self.pairs.len();
        self.pairs.push(Pair { sender, recipient_user, ..Pair::default() });
        for (id, role) in [(sender, Role::Sender(local)), (recipient, Role::Recipient(local))] {
            if self.roles.len() <= id {
                self.roles.resize(id + 1, None);
            }
            self.roles[id] = Some(role);
        }
        local
    }

    /// Send message `n` of the schedule from local pair `local`.
    pub(crate) fn send(&mut self, driver: &mut Driver, local: usize, n: u64, intended_ns: u64, now_ns: u64) {
        self.stats.scheduled += 1;
        let Some(pair) = self.pairs.get(local) else {
            return;
        };
        self.text.clear();
        let _ = write!(
            self.text,
            r#"{{"type":"send","id":"{}.{n}.{intended_ns}","to":"{}","body":"{}"}}"#,
            self.tag, pair.recipient_user, self.body
        );
        if driver.send_text(pair.sender, &self.text) {
            self.stats.sent += 1;
            self.outstanding += 1;
            self.stats.send_lag.record_ns(now_ns.saturating_sub(intended_ns));
            Live::bump(&self.live.sent);
        } else {
            self.stats.skipped += 1;
        }
    }

    /// Every send answered and every acked message receipted.
    pub(crate) fn settled(&self) -> bool {
        self.outstanding == 0 && self.pairs.iter().all(|p| p.awaiting_receipt.is_empty())
    }

    /// Count what never arrived; call once at the end.
    pub(crate) fn finish(&mut self) {
        for p in &self.pairs {
            let acked: HashSet<u64> = p.acked.iter().copied().collect();
            self.stats.lost += acked.iter().filter(|id| !p.seen.contains(id)).count() as u64;
            self.stats.delivered_unacked += p.seen.iter().filter(|id| !acked.contains(id)).count() as u64;
            self.stats.missing_receipts += p.awaiting_receipt.keys().filter(|id| p.seen.contains(id)).count() as u64;
        }
    }

    fn on_sent(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64) {
        let parsed = f.id.as_deref().and_then(|cid| parse_client_id(cid, &self.tag));
        let (Some((_, intended)), Some(msg)) = (parsed, parse_id(f.msg.as_ref())) else {
            self.stats.foreign += 1;
            return;
        };
        let Some(pair) = self.pairs.get_mut(local) else {
            return;
        };
        self.outstanding = self.outstanding.saturating_sub(1);
        self.stats.acked += 1;
        Live::bump(&self.live.acked);
        if f.duplicate == Some(true) {
            self.stats.duplicate_acks += 1;
        }
        self.stats.to_ack.record_ns(now_ns.saturating_sub(intended));
        pair.acked.push(msg);
        match pair.early_receipts.remove(&msg) {
            Some(at) => {
                self.stats.receipts += 1;
                Live::bump(&self.live.receipts);
                self.stats.to_receipt.record_ns(at.saturating_sub(intended));
            }
            None => {
                pair.awaiting_receipt.insert(msg, intended);
            }
        }
    }

    fn on_receipt(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64) {
        if f.status.as_deref() != Some("delivered") {
            return;
        }
        let Some(pair) = self.pairs.get_mut(local) else {
            return;
        };
        for id in f.ids.iter().flatten().filter_map(|s| s.parse::<u64>().ok()) {
            match pair.awaiting_receipt.remove(&id) {
                Some(intended) => {
                    self.stats.receipts += 1;
                    Live::bump(&self.live.receipts);
                    self.stats.to_receipt.record_ns(now_ns.saturating_sub(intended));
                }
                None => {
                    pair.early_receipts.insert(id, now_ns);
                }
            }
        }
    }

    fn on_message(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        let parsed = f.cid.as_deref().and_then(|cid| parse_client_id(cid, &self.tag));
        let (Some((_, intended)), Some(msg), Some(from)) =
            (parsed, parse_id(f.msg.as_ref()), parse_id(f.from.as_ref()))
        else {
            self.stats.foreign += 1;
            return;
        };
        let Some(pair) = self.pairs.get_mut(local) else {
            return;
        };
        if !pair.seen.insert(msg) {
            self.stats.duplicates += 1;
        } else {
            self.stats.delivered += 1;
            self.stats.last_delivery_ns = now_ns;
            Live::bump(&self.live.delivered);
            let latency = now_ns.saturating_sub(intended);
            self.stats.to_delivery.record_ns(latency);
            self.live.sample_ns(latency);
        }
        let _ = write!(reply, r#"{{"type":"delivered","peer":"{from}","ids":["{msg}"]}}"#);
    }

    fn on_error(&mut self, f: &ServerFrame<'_>) {
        self.stats.errors.add(f.code.as_deref().unwrap_or("(no code)"));
        Live::bump(&self.live.errors);
        let ours = f.reference.as_deref().is_some_and(|r| parse_client_id(r, &self.tag).is_some());
        if ours {
            self.stats.refused_sends += 1;
            self.outstanding = self.outstanding.saturating_sub(1);
        }
    }
}

impl Handler for Traffic {
    fn on_text(&mut self, id: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        let Some(role) = self.roles.get(id).copied().flatten() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_carry_the_intended_time_and_the_run() {
        assert_eq!(parse_client_id("lgab.17.123456", "lgab"), Some((17, 123456)));
        assert_eq!(parse_client_id("lgzz.17.123456", "lgab"), None);
        assert_eq!(parse_client_id("lgab17.1", "lgab"), None);
        assert_eq!(parse_client_id("lgab.x.1", "lgab"), None);
    }

    #[test]
    fn ack_delivery_receipt_and_loss_accounting() {
        let live = Arc::new(Live::default());
        let mut t = Traffic::new("lgt".into(), 4, Arc::clone(&live));
        t.add_pair(0, 1, 2);
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
        t.finish();
        let s = &t.stats;
        assert_eq!((s.acked, s.delivered, s.duplicates, s.receipts), (3, 2, 1, 2));
        assert_eq!((s.lost, s.missing_receipts, s.delivered_unacked, s.foreign), (1, 0, 0, 1));
        assert_eq!(s.to_ack.count(), 3);
        assert_eq!(s.to_receipt.summary().max_ms, 0.008);
        assert_eq!(t.outstanding, 0);
    }
}

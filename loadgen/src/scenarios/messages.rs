//! What the traffic of the three messaging scenarios (one-to-one, group,
//! reconnect-storm) writes, reads and counts the same way, kept in one place
//! so that a message is identified, sent, acked, delivered and receipted by
//! the same rules in each: the client ids that carry a message's intended
//! send time, the `send` and `delivered` frames, the figures every one of
//! them keeps ([`MsgStats`]) and how each event adds to them, the
//! connection-to-role table, and (for the one-to-one pairs of `one-to-one`
//! and `reconnect-storm`) the [`Ledger`] that tells lost, duplicated and
//! unreceipted messages apart. Each scenario's own module keeps what
//! differs.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
};

use chatgw_protocol::{client, ConversationRef, GroupId, MessageId, MessageKind, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    conn::event::{parse_id, ServerFrame, Str},
    report::{
        cpu::CpuFigures,
        shared::Live,
        stats::{merge_fields, Latency, Reasons, Summary},
    },
    scenarios::{ctx::RunCtx, scenario::Loaded},
};

/// `<tag>.<n>.<intended ns>` -> (n, intended ns), if the id is this run's.
pub(crate) fn parse_client_id(cid: &str, tag: &str) -> Option<(u64, u64)> {
    let rest = cid.strip_prefix(tag)?.strip_prefix('.')?;
    let (n, at) = rest.split_once('.')?;
    Some((n.parse().ok()?, at.parse().ok()?))
}

/// A `sent` (its `id`) or a `message` (its `cid`) of this run, with its
/// server message id: (n, intended ns, message id).
pub(crate) fn ours(tag: &str, cid: Option<&Str<'_>>, msg: Option<&Str<'_>>) -> Option<(u64, u64, u64)> {
    let (n, intended) = cid.and_then(|cid| parse_client_id(cid, tag))?;
    Some((n, intended, parse_id(msg)?))
}

/// The direct conversation with user `peer`.
pub(crate) fn peer(peer: u64) -> ConversationRef {
    ConversationRef::Peer(UserId(peer))
}

/// The conversation of group `group`.
pub(crate) fn group(group: u64) -> ConversationRef {
    ConversationRef::Group(GroupId(group))
}

/// Append the `send` of message `n` (intended at `intended_ns`) to `to`;
/// `body` is the raw JSON string literal ([`client::body_literal`]), made
/// once per run rather than per message.
pub(crate) fn write_send(out: &mut String, tag: &str, (n, intended_ns): (u64, u64), to: ConversationRef, body: &str) {
    let mut cid = String::with_capacity(tag.len() + 32);
    let _ = write!(cid, "{tag}.{n}.{intended_ns}");
    client::send(out, &cid, to, MessageKind::Text, body);
}

/// Append a `delivered` acknowledging `ids` of `conversation`.
pub(crate) fn write_delivered(out: &mut String, conversation: ConversationRef, ids: &[u64]) {
    client::delivered(out, conversation, ids.iter().map(|&i| MessageId(i)));
}

/// Append the `create_group` of `request_id` named `name` with `members`.
pub(crate) fn write_create_group(out: &mut String, request_id: &str, name: &str, members: &[u64]) {
    client::create_group(out, request_id, name, members.iter().map(|&u| UserId(u)));
}

/// The message figures every messaging report has (flattened into it,
/// so they are top-level `--json` fields like the scenario's own).
#[derive(Serialize)]
pub(crate) struct MsgFigures<'a> {
    pub(crate) scheduled: u64,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) delivered_unacked: u64,
    pub(crate) missing_receipts: u64,
    pub(crate) refused_sends: u64,
    pub(crate) errors_total: u64,
    pub(crate) errors: &'a Reasons,
    pub(crate) foreign_frames: u64,
    pub(crate) achieved_send_rate: f64,
    pub(crate) send_lag_ms: Summary,
    pub(crate) ack_ms: Summary,
    pub(crate) delivery_ms: Summary,
    pub(crate) receipt_ms: Summary,
    /// Over the load phases, per message scheduled (None: nothing was sent).
    pub(crate) cpu: Option<CpuFigures>,
    pub(crate) processes: usize,
    pub(crate) source_addresses: usize,
}

impl<'a> MsgFigures<'a> {
    /// The figures of `m`, sent over `secs`, in the run of `ctx`.
    pub(crate) fn new(m: &'a MsgStats, secs: f64, loaded: Option<&Loaded>, ctx: &RunCtx) -> Self {
        MsgFigures {
            scheduled: m.scheduled,
            sent: m.sent,
            acked: m.acked,
            delivered: m.delivered,
            lost: m.lost,
            duplicated: m.duplicates,
            delivered_unacked: m.delivered_unacked,
            missing_receipts: m.missing_receipts,
            refused_sends: m.refused_sends,
            errors_total: m.errors.total(),
            errors: &m.errors,
            foreign_frames: m.foreign,
            achieved_send_rate: m.sent as f64 / secs,
            send_lag_ms: m.send_lag.summary(),
            ack_ms: m.to_ack.summary(),
            delivery_ms: m.to_delivery.summary(),
            receipt_ms: m.to_receipt.summary(),
            cpu: loaded.map(|l| l.cpu(m.scheduled)),
            processes: ctx.share.count,
            source_addresses: ctx.sources.len(),
        }
    }
}

/// How far past `end_ns` the last first delivery came, in ms (0 when
/// before it, or when sending never started).
pub(crate) fn ms_after_end(last_delivery_ns: u64, end_ns: u64) -> f64 {
    if last_delivery_ns > end_ns && end_ns > 0 {
        (last_delivery_ns - end_ns) as f64 / 1e6
    } else {
        0.0
    }
}

/// The scenario's role of each driver connection, by connection id.
pub(crate) struct Roles<T>(Vec<Option<T>>);

impl<T> Default for Roles<T> {
    fn default() -> Self {
        Roles(Vec::new())
    }
}

impl<T: Copy> Roles<T> {
    /// Connection `conn` plays `role`.
    pub(crate) fn set(&mut self, conn: usize, role: T) {
        if self.0.len() <= conn {
            self.0.resize_with(conn + 1, || None);
        }
        self.0[conn] = Some(role);
    }

    /// The role of connection `conn`, if it has one.
    pub(crate) fn get(&self, conn: usize) -> Option<T> {
        self.0.get(conn).copied().flatten()
    }

    /// Connection `conn` no longer plays a role.
    pub(crate) fn clear(&mut self, conn: usize) {
        if let Some(r) = self.0.get_mut(conn) {
            *r = None;
        }
    }
}

/// The figures every messaging scenario keeps, from one thread (merged
/// across threads and processes); each scenario's stats add their own.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct MsgStats {
    /// Messages due by the schedule.
    pub(crate) scheduled: u64,
    /// Messages written (a reconnect-storm resend is not counted again).
    pub(crate) sent: u64,
    /// Due but not sent: the sender was down (or, for groups, its group
    /// not created); reconnect-storm queues them instead.
    pub(crate) skipped: u64,
    /// `sent` acks (the first per message).
    pub(crate) acked: u64,
    /// `sent` acks flagged `duplicate` for a message sent only once (should
    /// never happen: client ids are unique), or a second `sent`.
    pub(crate) duplicate_acks: u64,
    /// First deliveries (to a recipient connection, a member, a device).
    pub(crate) delivered: u64,
    /// A message delivered again to the same recipient.
    pub(crate) duplicates: u64,
    /// Delivery receipts matched to a message (for groups: receipt items,
    /// one per member).
    pub(crate) receipts: u64,
    /// Acked, never delivered by the end of the drain (for groups: per
    /// member).
    pub(crate) lost: u64,
    /// Delivered but never acked to the sender.
    pub(crate) delivered_unacked: u64,
    /// Delivered, but no receipt by the end of the drain.
    pub(crate) missing_receipts: u64,
    /// `error` frames by code.
    pub(crate) errors: Reasons,
    /// `error` frames that refused one of our sends.
    pub(crate) refused_sends: u64,
    /// Frames from other runs or of unexpected types.
    pub(crate) foreign: u64,
    /// Actual send time minus intended send time (first writes).
    pub(crate) send_lag: Latency,
    /// Intended send time to the (first) `sent`.
    pub(crate) to_ack: Latency,
    /// Intended send time to each first delivery.
    pub(crate) to_delivery: Latency,
    /// Intended send time to each delivery receipt.
    pub(crate) to_receipt: Latency,
    /// Clock time of the last first delivery.
    pub(crate) last_delivery_ns: u64,
}

merge_fields!(
    MsgStats:
    scheduled, sent, skipped, acked, duplicate_acks, delivered, duplicates, receipts, lost,
    delivered_unacked, missing_receipts, errors, refused_sends, foreign, send_lag, to_ack,
    to_delivery, to_receipt; max: last_delivery_ns
);

impl MsgStats {
    /// Nothing lost, duplicated, refused, left unsent, unacked or
    /// unreceipted (what one-to-one and group require of a run).
    pub(crate) fn all_through(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.errors.total() == 0
            && self.skipped == 0
            && self.sent == self.acked
            && self.missing_receipts == 0
    }

    /// The latencies every messaging scenario names so for `--hist` and
    /// `--check`.
    pub(crate) fn latencies(&self) -> [(&'static str, &Latency); 4] {
        [("lag", &self.send_lag), ("ack", &self.to_ack), ("deliver", &self.to_delivery), ("receipt", &self.to_receipt)]
    }

    /// A message intended at `intended` was written at `now`.
    pub(crate) fn record_send(&mut self, live: &Live, intended: u64, now: u64) {
        self.sent += 1;
        self.send_lag.record_ns(now.saturating_sub(intended));
        Live::bump(&live.sent);
    }

    /// A message's (first) `sent` arrived at `now`.
    pub(crate) fn record_ack(&mut self, live: &Live, intended: u64, now: u64) {
        self.acked += 1;
        Live::bump(&live.acked);
        self.to_ack.record_ns(now.saturating_sub(intended));
    }

    /// A message's first delivery to a recipient arrived at `now`; returns
    /// its latency.
    pub(crate) fn record_delivery(&mut self, live: &Live, intended: u64, now: u64) -> u64 {
        self.delivered += 1;
        self.last_delivery_ns = now;
        Live::bump(&live.delivered);
        let latency = now.saturating_sub(intended);
        self.to_delivery.record_ns(latency);
        latency
    }

    /// A delivery receipt for a message arrived at `at`.
    pub(crate) fn record_receipt(&mut self, live: &Live, intended: u64, at: u64) {
        self.receipts += 1;
        Live::bump(&live.receipts);
        self.to_receipt.record_ns(at.saturating_sub(intended));
    }

    /// An `error` frame; returns whether it refused one of this run's sends.
    pub(crate) fn record_error(&mut self, live: &Live, f: &ServerFrame<'_>, tag: &str) -> bool {
        self.errors.add(f.code.as_deref().unwrap_or("(no code)"));
        Live::bump(&live.errors);
        let ours = f.reference.as_deref().is_some_and(|r| parse_client_id(r, tag).is_some());
        if ours {
            self.refused_sends += 1;
        }
        ours
    }
}

/// One sender/recipient pair's messages: which were acked to the sender,
/// which the recipient received, and the delivery receipts, which may
/// overtake their ack.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Every acked message id.
    pub(crate) acked: HashSet<u64>,
    /// Every message id the recipient received.
    pub(crate) seen: HashSet<u64>,
    /// Acked message id -> intended send time, until its receipt.
    awaiting_receipt: HashMap<u64, u64>,
    /// Receipts that overtook their `sent` ack: message id -> arrival time.
    early_receipts: HashMap<u64, u64>,
}

impl Ledger {
    /// Message `msg`, intended at `intended`, was acked (its receipt may
    /// already have come).
    pub(crate) fn ack(&mut self, msg: u64, intended: u64, stats: &mut MsgStats, live: &Live) {
        self.acked.insert(msg);
        match self.early_receipts.remove(&msg) {
            Some(at) => stats.record_receipt(live, intended, at),
            None => {
                self.awaiting_receipt.insert(msg, intended);
            }
        }
    }

    /// A `receipt` frame for the sender. A receipt for a message not
    /// awaiting one is kept for its ack, unless `drop_repeats` and the
    /// message was acked already (a repeat, after a resend).
    pub(crate) fn receipt(
        &mut self,
        f: &ServerFrame<'_>,
        now: u64,
        drop_repeats: bool,
        stats: &mut MsgStats,
        live: &Live,
    ) {
        if f.status.as_deref() != Some("delivered") {
            return;
        }
        for id in f.ids.iter().flatten().filter_map(|s| s.parse::<u64>().ok()) {
            match self.awaiting_receipt.remove(&id) {
                Some(intended) => stats.record_receipt(live, intended, now),
                None if drop_repeats && self.acked.contains(&id) => {}
                None => {
                    self.early_receipts.insert(id, now);
                }
            }
        }
    }

    /// No acked message waits for its receipt.
    pub(crate) fn receipted(&self) -> bool {
        self.awaiting_receipt.is_empty()
    }

    /// Every acked message reached the recipient.
    pub(crate) fn all_delivered(&self) -> bool {
        self.acked.iter().all(|id| self.seen.contains(id))
    }

    /// Count what never arrived; once, at the end.
    pub(crate) fn tally(&self, stats: &mut MsgStats) {
        stats.lost += self.acked.iter().filter(|id| !self.seen.contains(id)).count() as u64;
        stats.delivered_unacked += self.seen.iter().filter(|id| !self.acked.contains(id)).count() as u64;
        stats.missing_receipts += self.awaiting_receipt.keys().filter(|id| self.seen.contains(id)).count() as u64;
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
    fn frames_as_the_gateway_expects_them() {
        let mut out = String::new();
        write_send(&mut out, "lgt", (3, 1000), peer(7), &client::body_literal("xx"));
        assert_eq!(out, r#"{"type":"send","id":"lgt.3.1000","to":"7","kind":"text","body":"xx"}"#);
        out.clear();
        write_delivered(&mut out, group(500), &[900, 901]);
        assert_eq!(out, r#"{"type":"delivered","group":"500","ids":["900","901"]}"#);
        out.clear();
        write_create_group(&mut out, "lgt.g1", "loadgen 1", &[2, 3]);
        assert_eq!(out, r#"{"type":"create_group","id":"lgt.g1","name":"loadgen 1","members":["2","3"]}"#);
    }
}

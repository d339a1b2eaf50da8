//! The devices of a soak run, across gateway restarts: each is a
//! [`device`](super::device) (a cursor every new connection `sync`s from,
//! reconnection after an exponential backoff with jitter, for as long as
//! the run lasts, whether the gateway was killed, refused the upgrade while
//! restarting, or refused the connect), and keeps besides:
//!
//! - An outbox: a message stays in it until its `sent` arrives. It is
//!   written when due if its device is up (and, for a group, the group
//!   exists), otherwise as soon as it is; after a reconnect, and whenever a
//!   write has gone unanswered for `RESEND_AFTER`, it is written again with
//!   the same client id, so the gateway answers with the original message
//!   id (`duplicate: true`) if it had stored it. What is still in an
//!   outbox at the end is counted as unacknowledged, never as lost.
//!
//! Every `message` of this run is handed to the [`SoakLedger`], live or
//! replayed alike, which judges losses, duplicates and order at the end,
//! and acknowledged with `delivered` when another user sent it (so delivery
//! marks and receipt events are written, and checked by `chatgw check`,
//! through the kills too).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{
    conn::{
        connection::Handler,
        driver::Driver,
        event::{parse_id, ServerFrame},
    },
    report::stats::{Latency, Reasons},
    scenarios::{
        device::Devices,
        messages,
        outbox::{Outbox, Write},
        placement,
        soak_ledger::{Conv, SoakLedger},
        soak_plan::Topology,
    },
};

/// An unanswered write is repeated after this long (ns).
const RESEND_AFTER_NS: u64 = 3_000_000_000;

/// What the devices counted (the verdict is the ledger's).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SoakStats {
    /// Messages due by the schedule.
    pub(crate) scheduled: u64,
    /// Messages written at least once.
    pub(crate) written: u64,
    /// Writes repeated with the same client id.
    pub(crate) resent: u64,
    /// Messages written and still unanswered when their connection ended
    /// (each is written again on the next connection).
    pub(crate) unacked_at_drop: u64,
    /// `sent` answers flagged `duplicate: true` (the first write had been stored).
    pub(crate) acked_as_duplicate: u64,
    /// A second `sent` for a client id with a different message id (an
    /// idempotency failure).
    pub(crate) idempotency_mismatches: u64,
    /// Received messages whose sender is not the one the client id says.
    pub(crate) misrouted: u64,
    /// Connections that ended by themselves (each followed by a reconnect).
    pub(crate) connection_ends: u64,
    /// Connections reopened.
    pub(crate) reconnects: u64,
    /// `delivered` acknowledgements written (one per message received from another user).
    pub(crate) delivered_acks: u64,
    /// Groups created (their `group` reply arrived).
    pub(crate) groups_created: u64,
    /// `error` frames by code.
    pub(crate) errors: Reasons,
    /// Frames not of this run.
    pub(crate) foreign: u64,
    /// Intended send time to the first `sent`, kills and resends included.
    pub(crate) to_ack: Latency,
}

/// What a soak device keeps besides the [`Device`](super::device::Device) model.
#[derive(Default)]
struct Finale {
    /// The final `sync` came back (`synced`), or the device reconnected after it was asked.
    synced: bool,
}

/// Where a message of the outbox goes, and from which device.
struct Route {
    device: usize,
    conv: Conv,
    to: Option<u64>,
}

/// The devices, their outboxes, and the ledger; the [`Handler`] of every connection.
pub(crate) struct SoakTraffic {
    tag: String,
    body: String,
    topo: Topology,
    /// Indexed as the topology numbers devices (opened in that order).
    devices: Devices<Finale>,
    /// Every device's unanswered messages.
    outbox: Outbox<Route>,
    /// Message number -> the message id of its first `sent`.
    acked_ids: HashMap<u64, u64>,
    /// Group index -> the gateway's group id, once created.
    group_ids: Vec<Option<u64>>,
    /// Group index -> when `create_group` was last written.
    group_asked: Vec<Option<u64>>,
    /// The final sync has been asked for.
    final_phase: bool,
    text: String,
    /// What happens to the messages.
    pub(crate) ledger: SoakLedger,
    /// Counters.
    pub(crate) stats: SoakStats,
}

impl SoakTraffic {
    /// The run's devices, none connected yet ([`open_all`](Self::open_all) opens them).
    pub(crate) fn new(tag: String, body_bytes: usize, topo: Topology) -> Self {
        let groups = topo.group_count() as usize;
        SoakTraffic {
            tag,
            body: chatgw_protocol::client::body_literal(&"x".repeat(body_bytes)),
            topo,
            devices: Devices::default(),
            outbox: Outbox::default(),
            acked_ids: HashMap::new(),
            group_ids: vec![None; groups],
            group_asked: vec![None; groups],
            final_phase: false,
            text: String::new(),
            ledger: SoakLedger::default(),
            stats: SoakStats::default(),
        }
    }

    /// The run's topology.
    pub(crate) fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Open every device's first connection, device `d` to node `d % nodes`.
    pub(crate) fn open_all(&mut self, driver: &mut Driver) {
        for d in self.devices.len()..self.topo.device_count() {
            let node = placement::user_node(d as u64, driver.nodes());
            self.devices.open(driver, node, self.topo.user_id(d), Finale::default());
        }
    }

    /// Devices up now.
    pub(crate) fn devices_up(&self, driver: &Driver) -> usize {
        self.devices.up(driver)
    }

    /// Every group has its gateway id.
    pub(crate) fn groups_created(&self) -> bool {
        self.group_ids.iter().all(Option::is_some)
    }

    /// Messages still waiting for their `sent`.
    pub(crate) fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Message `n`, intended at `intended`, is due.
    pub(crate) fn due(&mut self, driver: &mut Driver, n: u64, intended: u64, now: u64) {
        self.stats.scheduled += 1;
        let (conv, device, to) = self.topo.route(n);
        self.outbox.due(n, intended, Route { device, conv, to });
        self.write(driver, n, now);
    }

    /// Write message `n` if its device is up and its conversation exists.
    fn write(&mut self, driver: &mut Driver, n: u64, now: u64) {
        let Some(p) = self.outbox.get(n) else { return };
        let conn = self.devices.get(p.more.device).conn;
        let target = match (p.more.conv, p.more.to) {
            (_, Some(user)) => messages::peer(user),
            (Conv::Group(g), None) => match self.group_ids.get(g as usize).copied().flatten() {
                Some(id) => messages::group(id),
                None => return,
            },
            (Conv::Pair(_), None) => return,
        };
        if !driver.is_up(conn) {
            return;
        }
        self.text.clear();
        messages::write_send(&mut self.text, &self.tag, (n, p.intended), target, &self.body);
        if driver.send_text(conn, &self.text) {
            match self.outbox.wrote(n, now) {
                Some(Write::First) => self.stats.written += 1,
                Some(Write::Again) => self.stats.resent += 1,
                None => {}
            }
        }
    }

    /// Everything time-driven: reconnect devices whose backoff is over,
    /// create missing groups, (re)write outbox messages that are due.
    pub(crate) fn tick(&mut self, driver: &mut Driver, now: u64) {
        self.handle_ended(driver, now);
        for d in self.devices.reconnect_due(driver, now) {
            self.reconnected(d);
        }
        self.create_groups(driver, now);
        for n in self.outbox.to_write(now, RESEND_AFTER_NS) {
            self.write(driver, n, now);
        }
    }

    fn create_groups(&mut self, driver: &mut Driver, now: u64) {
        for g in 0..self.group_ids.len() {
            if self.group_ids[g].is_some()
                || self.group_asked[g].is_some_and(|at| now.saturating_sub(at) < RESEND_AFTER_NS)
            {
                continue;
            }
            let creator = self.topo.group_creator(g as u32);
            let conn = self.devices.get(creator).conn;
            if !driver.is_up(conn) {
                continue;
            }
            let members = self.topo.group_members(g as u32);
            self.text.clear();
            let request_id = format!("{}.g{g}", self.tag);
            let name = format!("soak {g}");
            messages::write_create_group(&mut self.text, &request_id, &name, members.get(1..).unwrap_or_default());
            if driver.send_text(conn, &self.text) {
                self.group_asked[g] = Some(now);
            }
        }
    }

    /// Schedule a reconnect, after a backoff, for every device whose connection ended.
    fn handle_ended(&mut self, driver: &mut Driver, now: u64) {
        for (d, _) in self.devices.take_ended(driver, now) {
            self.stats.connection_ends += 1;
            self.devices.retry_later(d, now);
        }
    }

    /// Device `d` has a new connection: its unanswered writes went with the
    /// old one, so they are written again once it is up.
    fn reconnected(&mut self, d: usize) {
        self.stats.reconnects += 1;
        self.stats.unacked_at_drop += self.outbox.connection_lost(|r| r.device == d);
    }

    /// Bring every device to the present: drop its connection and open a
    /// new one that `sync`s from the cursor (a device that is down does so
    /// when it reconnects). A second `sync` on the open connection would
    /// not do: frames already on their way to it, above the cursor, would
    /// be replayed again, the repeat docs/PROTOCOL.md (1.7, rule 4) tells
    /// clients to deduplicate; dropping the connection discards them unread.
    pub(crate) fn start_final_sync(&mut self, driver: &mut Driver) {
        self.final_phase = true;
        let now = driver.now_ns();
        for d in 0..self.devices.len() {
            if !self.devices.get(d).waiting() {
                self.devices.cut_and_reconnect(driver, d, now);
                self.reconnected(d);
            }
        }
    }

    /// Devices whose final sync has come back.
    pub(crate) fn final_synced(&self) -> usize {
        self.devices.iter().filter(|d| d.more.synced).count()
    }

    fn on_sent(&mut self, f: &ServerFrame<'_>, now: u64) {
        let Some((n, intended, msg)) = messages::ours(&self.tag, f.id.as_ref(), f.msg.as_ref()) else {
            self.stats.foreign += 1;
            return;
        };
        if f.duplicate == Some(true) {
            self.stats.acked_as_duplicate += 1;
        }
        if let Some(&first) = self.acked_ids.get(&n) {
            if first != msg {
                self.stats.idempotency_mismatches += 1;
            }
            return;
        }
        self.acked_ids.insert(n, msg);
        if let Some(p) = self.outbox.answered(n) {
            self.ledger.ack(msg, p.more.conv, p.more.device);
            self.stats.to_ack.record_ns(now.saturating_sub(intended));
        }
    }

    /// A `message`: into the ledger, and acknowledged with `delivered`
    /// (in `reply`) when another user sent it, so receipts and delivery
    /// marks go through the kills too.
    fn on_message(&mut self, d: usize, f: &ServerFrame<'_>, replayed: bool, reply: &mut String) {
        if f.kind.as_deref() == Some("system") {
            return;
        }
        let (Some((n, _, msg)), Some(from)) =
            (messages::ours(&self.tag, f.cid.as_ref(), f.msg.as_ref()), parse_id(f.from.as_ref()))
        else {
            self.stats.foreign += 1;
            return;
        };
        let (conv, _, _) = self.topo.route(n);
        if from != self.topo.sender_id(n) {
            self.stats.misrouted += 1;
        }
        self.ledger.receive(d, conv, msg, replayed);
        if from != self.devices.get(d).user && reply.is_empty() {
            let name = match (conv, parse_id(f.group.as_ref())) {
                (Conv::Group(_), Some(g)) => messages::group(g),
                _ => messages::peer(from),
            };
            messages::write_delivered(reply, name, &[msg]);
            self.stats.delivered_acks += 1;
        }
    }

    fn on_group(&mut self, f: &ServerFrame<'_>) {
        let Some(g) = f
            .reference
            .as_deref()
            .and_then(|r| r.strip_prefix(self.tag.as_str()))
            .and_then(|r| r.strip_prefix(".g"))
            .and_then(|g| g.parse::<usize>().ok())
        else {
            return;
        };
        if let (Some(slot), Some(id)) = (self.group_ids.get_mut(g), parse_id(f.group.as_ref())) {
            if slot.is_none() {
                self.stats.groups_created += 1;
            }
            *slot = Some(id);
        }
    }

    fn frame(&mut self, d: usize, f: &ServerFrame<'_>, (now, replayed): (u64, bool), reply: &mut String) {
        if let Some(e) = parse_id(f.event.as_ref()) {
            self.devices.get_mut(d).saw_event(e);
        }
        match &*f.ty {
            "message" => self.on_message(d, f, replayed, reply),
            "sent" => self.on_sent(f, now),
            "group" => self.on_group(f),
            "synced" => self.on_synced_frame(d, f),
            "error" => self.stats.errors.add(f.code.as_deref().unwrap_or("(no code)")),
            "receipt" => {}
            _ => self.stats.foreign += 1,
        }
    }

    fn on_synced_frame(&mut self, d: usize, f: &ServerFrame<'_>) {
        let dev = self.devices.get_mut(d);
        if let Some(c) = parse_id(f.cursor.as_ref()) {
            dev.saw_event(c);
        }
        if self.final_phase {
            dev.more.synced = true;
        }
    }
}

impl Handler for SoakTraffic {
    fn on_text(&mut self, id: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        if let Some(d) = self.devices.of_conn(id) {
            self.frame(d, f, (now_ns, false), reply);
        }
    }

    fn on_replay(&mut self, id: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) -> bool {
        let Some(d) = self.devices.of_conn(id) else { return false };
        self.frame(d, f, (now_ns, true), reply);
        true
    }

    fn on_synced(&mut self, id: usize, cursor: Option<u64>, _now_ns: u64, _reply: &mut String) {
        let Some(d) = self.devices.of_conn(id) else { return };
        let dev = self.devices.get_mut(d);
        dev.synced(cursor);
        if self.final_phase {
            dev.more.synced = true;
        }
    }
}

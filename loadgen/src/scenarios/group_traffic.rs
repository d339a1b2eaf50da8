//! One thread's share of a group run: its groups, their creation, the
//! messages sent to them and every member's copy of each.
//!
//! Like one-to-one, every latency is measured from the message's intended
//! send time, which travels in the client id (`<run tag>.<n>.<ns>`) and
//! comes back in `sent` and in each member's `message` (`cid`). Per message
//! the thread keeps one bit per member for "delivered" (and one for
//! "receipted" with `--ack`): a second delivery to the same member is a
//! duplicate, a member without the bit at the end is a loss, and the
//! delivery that sets the last bit completes the fan-out. A group and all
//! of its members live in one thread (see [`share`](crate::procs::share)), so none
//! of this needs another thread.
//!
//! The group is created by its first member with `create_group` listing
//! the others (up to 256; more with `add_members`), once every member is up:
//! members only receive live events after their `sync`, and a member added
//! before it connected would see the `created` message only by replay.

use std::{collections::HashMap, sync::Arc};

use chatgw_protocol::{client, GroupChange, GroupId, UserId};
use serde::{Deserialize, Serialize};

use crate::{
    conn::{
        connection::Handler,
        driver::Driver,
        event::{parse_id, ServerFrame},
    },
    report::{
        shared::Live,
        stats::{merge_fields, Latency, Reasons},
    },
    scenarios::{
        messages::{self, MsgStats, Roles},
        scenario::Load,
    },
};

/// Most users one `create_group` or `add_members` may list.
const USERS_PER_REQUEST: usize = 256;

/// The run's figures from one thread (merged across threads and processes).
/// In `common`, `receipts` counts receipt items (member, message), and
/// `lost` and `missing_receipts` count (message, member) pairs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupStats {
    /// What every messaging scenario counts.
    pub(crate) common: MsgStats,
    /// Groups this thread was to create.
    pub(crate) groups_planned: u64,
    /// Groups created with every member.
    pub(crate) groups_created: u64,
    /// Why groups were not created.
    pub(crate) group_errors: Reasons,
    /// Messages delivered to every member.
    pub(crate) fanouts_complete: u64,
    /// `delivered` frames members sent (`--ack`).
    pub(crate) acks_sent: u64,
    /// Receipt items for a (message, member) already receipted.
    pub(crate) duplicate_receipt_items: u64,
    /// Receipt frames (batches) that reached senders.
    pub(crate) receipt_frames: u64,
    /// Messages receipted by every member.
    pub(crate) receipts_complete: u64,
    /// System messages (group creation) seen by members.
    pub(crate) system_messages: u64,
    /// Intended send time to the last member's `message`.
    pub(crate) to_fanout: Latency,
    /// Intended send time to the last member's receipt item.
    pub(crate) to_receipt_all: Latency,
}

merge_fields!(
    GroupStats:
    common, groups_planned, groups_created, group_errors, fanouts_complete, acks_sent,
    duplicate_receipt_items, receipt_frames, receipts_complete, system_messages, to_fanout,
    to_receipt_all
);

/// One bit per member.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    /// `n` clear bits.
    pub(crate) fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    /// Set bit `i`; false if it was already set (or out of range).
    pub(crate) fn set(&mut self, i: usize) -> bool {
        let Some(word) = self.0.get_mut(i / 64) else {
            return false;
        };
        let mask = 1u64 << (i % 64);
        let was = *word & mask != 0;
        *word |= mask;
        !was
    }
}

/// Where a group is in its creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Creation {
    /// Waiting for every member to be up.
    Waiting,
    /// `create_group` (and `add_members`) sent; this many replies to go.
    Pending(usize),
    /// Every member is in.
    Created,
    /// It will not be created.
    Failed,
}

struct Group {
    /// The global group index (its create request id).
    index: u64,
    /// Driver connection of each member, by member index.
    conns: Vec<usize>,
    /// User id of each member.
    users: Vec<u64>,
    id: Option<u64>,
    creation: Creation,
}

/// One message sent to a group.
struct Msg {
    group: usize,
    sender: usize,
    intended: u64,
    acked: bool,
    delivered: Bits,
    delivered_count: usize,
    receipted: Bits,
    receipt_count: usize,
    complete: bool,
}

/// One thread's groups; the [`Handler`] for their connections.
pub(crate) struct GroupTraffic {
    tag: String,
    body: String,
    size: usize,
    first_user: u64,
    ack: bool,
    groups: Vec<Group>,
    /// Driver connection -> (local group, member).
    roles: Roles<(usize, usize)>,
    msgs: HashMap<u64, Msg>,
    /// Message id -> message number.
    by_id: HashMap<u64, u64>,
    live: Arc<Live>,
    outstanding: u64,
    complete: u64,
    /// Frames to send that do not fit the one-reply-per-frame rule.
    pending: Vec<(usize, String)>,
    text: String,
    /// Figures so far.
    pub(crate) stats: GroupStats,
}

impl GroupTraffic {
    /// No groups yet. Group `g`'s member `m` is user `first_user + g * size + m`.
    pub(crate) fn new(tag: String, body_bytes: usize, size: u64, first_user: u64, ack: bool, live: Arc<Live>) -> Self {
        GroupTraffic {
            tag,
            body: chatgw_protocol::client::body_literal(&"x".repeat(body_bytes)),
            size: size as usize,
            first_user,
            ack,
            groups: Vec::new(),
            roles: Roles::default(),
            msgs: HashMap::new(),
            by_id: HashMap::new(),
            live,
            outstanding: 0,
            complete: 0,
            pending: Vec::new(),
            text: String::new(),
            stats: GroupStats::default(),
        }
    }

    /// Member `member` of global group `index` (local index `local`) is
    /// connection `conn`.
    pub(crate) fn add_member(&mut self, local: usize, index: u64, member: usize, conn: usize) {
        while self.groups.len() <= local {
            self.groups.push(Group {
                index,
                conns: vec![usize::MAX; self.size],
                users: vec![0; self.size],
                id: None,
                creation: Creation::Waiting,
            });
            self.stats.groups_planned += 1;
        }
        if let Some(g) = self.groups.get_mut(local) {
            g.index = index;
            if let Some(slot) = g.conns.get_mut(member) {
                *slot = conn;
            }
            if let Some(slot) = g.users.get_mut(member) {
                *slot = self.first_user + index * self.size as u64 + member as u64;
            }
        }
        self.roles.set(conn, (local, member));
    }

    /// Send `create_group` for every group whose members are all up, and
    /// fail the others. Call once, when the connections are settled.
    pub(crate) fn create_groups(&mut self, driver: &mut Driver) {
        for g in &mut self.groups {
            if g.creation != Creation::Waiting {
                continue;
            }
            if !g.conns.iter().all(|&c| driver.is_up(c)) {
                g.creation = Creation::Failed;
                self.stats.group_errors.add("a member did not come up");
                Live::bump(&self.live.setup_errors);
                continue;
            }
            let others: Vec<u64> = g.users.iter().skip(1).copied().collect();
            let first = others.len().min(USERS_PER_REQUEST);
            self.text.clear();
            let request_id = format!("{}.g{}", self.tag, g.index);
            let name = format!("loadgen {}", g.index);
            messages::write_create_group(&mut self.text, &request_id, &name, &others[..first]);
            let chunks = others[first..].chunks(USERS_PER_REQUEST).count();
            if driver.send_text(g.conns[0], &self.text) {
                g.creation = Creation::Pending(1 + chunks);
            } else {
                g.creation = Creation::Failed;
                self.stats.group_errors.add("the creator's connection broke");
                Live::bump(&self.live.setup_errors);
            }
        }
    }

    /// Every group is created or has failed.
    pub(crate) fn groups_settled(&self) -> bool {
        self.groups.iter().all(|g| matches!(g.creation, Creation::Created | Creation::Failed))
    }

    /// Send what handlers queued (the `add_members` of big groups).
    pub(crate) fn flush(&mut self, driver: &mut Driver) {
        for (conn, text) in std::mem::take(&mut self.pending) {
            // A broken connection shows up as a group that never completes.
            driver.send_text(conn, &text);
        }
    }

    /// Send message `n` from member `member` of local group `local`.
    pub(crate) fn send(
        &mut self,
        driver: &mut Driver,
        local: usize,
        member: usize,
        n: u64,
        intended_ns: u64,
        now_ns: u64,
    ) {
        self.stats.common.scheduled += 1;
        let Some(g) = self.groups.get(local) else {
            self.stats.common.skipped += 1;
            return;
        };
        let (Some(gid), Some(&conn)) = (g.id.filter(|_| g.creation == Creation::Created), g.conns.get(member)) else {
            self.stats.common.skipped += 1;
            return;
        };
        self.text.clear();
        messages::write_send(&mut self.text, &self.tag, (n, intended_ns), messages::group(gid), &self.body);
        if driver.send_text(conn, &self.text) {
            self.outstanding += 1;
            self.stats.common.record_send(&self.live, intended_ns, now_ns);
            self.msgs.insert(
                n,
                Msg {
                    group: local,
                    sender: member,
                    intended: intended_ns,
                    acked: false,
                    delivered: Bits::new(self.size),
                    delivered_count: 0,
                    receipted: Bits::new(self.size),
                    receipt_count: 0,
                    complete: false,
                },
            );
        } else {
            self.stats.common.skipped += 1;
        }
    }

    /// Mark message `n` complete if it now is.
    fn check_complete(&mut self, n: u64) {
        let others = self.size.saturating_sub(1);
        let ack = self.ack;
        if let Some(m) = self.msgs.get_mut(&n) {
            if !m.complete && m.acked && m.delivered_count >= others && (!ack || m.receipt_count >= others) {
                m.complete = true;
                self.complete += 1;
            }
        }
    }

    fn on_group(&mut self, local: usize, f: &ServerFrame<'_>) {
        let Some(g) = self.groups.get_mut(local) else { return };
        let Creation::Pending(left) = g.creation else {
            self.stats.common.foreign += 1;
            return;
        };
        if let Some(r) = f.reference.as_deref() {
            if r != format!("{}.g{}", self.tag, g.index) {
                self.stats.common.foreign += 1;
                return;
            }
            let Some(gid) = parse_id(f.group.as_ref()) else {
                self.stats.common.foreign += 1;
                return;
            };
            g.id = Some(gid);
            let others: Vec<u64> = g.users.iter().skip(1 + USERS_PER_REQUEST).copied().collect();
            for chunk in others.chunks(USERS_PER_REQUEST) {
                let mut text = String::new();
                let users = chunk.iter().map(|&u| UserId(u)).collect();
                client::change_group(&mut text, GroupId(gid), &GroupChange::Add(users));
                self.pending.push((g.conns[0], text));
            }
        }
        let left = left.saturating_sub(1);
        g.creation = if left == 0 && g.id.is_some() { Creation::Created } else { Creation::Pending(left) };
        if g.creation == Creation::Created {
            self.stats.groups_created += 1;
        }
    }

    fn on_sent(&mut self, f: &ServerFrame<'_>, now_ns: u64) {
        let Some((n, intended, msg)) = messages::ours(&self.tag, f.id.as_ref(), f.msg.as_ref()) else {
            self.stats.common.foreign += 1;
            return;
        };
        let Some(m) = self.msgs.get_mut(&n) else {
            self.stats.common.foreign += 1;
            return;
        };
        if m.acked {
            self.stats.common.duplicate_acks += 1;
            return;
        }
        m.acked = true;
        self.outstanding = self.outstanding.saturating_sub(1);
        self.stats.common.record_ack(&self.live, intended, now_ns);
        if f.duplicate == Some(true) {
            self.stats.common.duplicate_acks += 1;
        }
        self.by_id.insert(msg, n);
        self.check_complete(n);
    }

    fn on_message(&mut self, local: usize, member: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        if f.kind.as_deref() == Some("system") {
            self.stats.system_messages += 1;
            return;
        }
        let Some((n, intended, msg)) = messages::ours(&self.tag, f.cid.as_ref(), f.msg.as_ref()) else {
            self.stats.common.foreign += 1;
            return;
        };
        let others = self.size.saturating_sub(1);
        let Some(m) = self.msgs.get_mut(&n).filter(|m| m.group == local && m.sender != member) else {
            self.stats.common.foreign += 1;
            return;
        };
        self.by_id.insert(msg, n);
        if !m.delivered.set(member) {
            self.stats.common.duplicates += 1;
            return;
        }
        m.delivered_count += 1;
        self.stats.common.record_delivery(&self.live, intended, now_ns);
        if m.delivered_count == others {
            self.stats.fanouts_complete += 1;
            self.stats.to_fanout.record_ns(now_ns.saturating_sub(m.intended));
            self.live.sample_ns(now_ns.saturating_sub(m.intended));
        }
        if self.ack {
            if let Some(gid) = self.groups.get(local).and_then(|g| g.id) {
                messages::write_delivered(reply, messages::group(gid), &[msg]);
                self.stats.acks_sent += 1;
            }
        }
        self.check_complete(n);
    }

    fn on_receipt(&mut self, local: usize, f: &ServerFrame<'_>, now_ns: u64) {
        if f.status.as_deref() != Some("delivered") {
            return;
        }
        let Some(items) = f.items.as_ref() else {
            self.stats.common.foreign += 1;
            return;
        };
        let Some(g) = self.groups.get(local) else { return };
        let base = self.first_user + g.index * self.size as u64;
        let others = self.size.saturating_sub(1);
        self.stats.receipt_frames += 1;
        for item in items {
            let Some(member) = item.by.parse::<u64>().ok().and_then(|u| u.checked_sub(base)).map(|m| m as usize) else {
                self.stats.common.foreign += 1;
                continue;
            };
            for id in item.ids.iter().filter_map(|s| s.parse::<u64>().ok()) {
                let Some(&n) = self.by_id.get(&id) else {
                    self.stats.common.foreign += 1;
                    continue;
                };
                let Some(m) = self.msgs.get_mut(&n) else { continue };
                if !m.receipted.set(member) {
                    self.stats.duplicate_receipt_items += 1;
                    continue;
                }
                m.receipt_count += 1;
                self.stats.common.record_receipt(&self.live, m.intended, now_ns);
                if m.receipt_count == others {
                    self.stats.receipts_complete += 1;
                    self.stats.to_receipt_all.record_ns(now_ns.saturating_sub(m.intended));
                }
                self.check_complete(n);
            }
        }
    }

    fn on_error(&mut self, local: usize, f: &ServerFrame<'_>) {
        if self.stats.common.record_error(&self.live, f, &self.tag) {
            self.outstanding = self.outstanding.saturating_sub(1);
            return;
        }
        let Some(r) = f.reference.as_deref() else { return };
        let code = f.code.as_deref().unwrap_or("(no code)");
        if let Some(g) = self.groups.get_mut(local) {
            if r == format!("{}.g{}", self.tag, g.index) && matches!(g.creation, Creation::Pending(_)) {
                g.creation = Creation::Failed;
                self.stats.group_errors.add(&format!("create_group refused: {code}"));
                Live::bump(&self.live.setup_errors);
            }
        }
    }
}

impl Handler for GroupTraffic {
    fn on_text(&mut self, id: usize, f: &ServerFrame<'_>, now_ns: u64, reply: &mut String) {
        let Some((local, member)) = self.roles.get(id) else {
            return;
        };
        match &*f.ty {
            "error" => self.on_error(local, f),
            "group" if member == 0 => self.on_group(local, f),
            "sent" => self.on_sent(f, now_ns),
            "message" => self.on_message(local, member, f, now_ns, reply),
            "receipt" => self.on_receipt(local, f, now_ns),
            _ => self.stats.common.foreign += 1,
        }
    }
}

impl Load for GroupTraffic {
    type Stats = GroupStats;

    /// Every send answered, every acked message delivered to every member
    /// (and receipted by every member, with `--ack`).
    fn settled(&self) -> bool {
        self.outstanding == 0 && self.complete == self.stats.common.acked
    }

    fn finish(mut self) -> GroupStats {
        let others = self.size.saturating_sub(1);
        let s = &mut self.stats.common;
        for m in self.msgs.values() {
            if m.acked {
                s.lost += others.saturating_sub(m.delivered_count) as u64;
                if self.ack {
                    s.missing_receipts += m.delivered_count.saturating_sub(m.receipt_count) as u64;
                }
            } else if m.delivered_count > 0 {
                s.delivered_unacked += 1;
            }
        }
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> ServerFrame<'_> {
        ServerFrame::parse(s).unwrap()
    }

    /// A group of 3 (users 10, 11, 12 on connections 0, 1, 2), created.
    fn three(ack: bool) -> GroupTraffic {
        let mut t = GroupTraffic::new("lgt".into(), 4, 3, 10, ack, Arc::new(Live::default()));
        for m in 0..3 {
            t.add_member(0, 0, m, m);
        }
        t.groups[0].creation = Creation::Pending(1);
        let mut reply = String::new();
        t.on_text(0, &f(r#"{"type":"group","group":"500","ref":"lgt.g0","members":[]}"#), 1, &mut reply);
        assert_eq!(t.groups[0].creation, Creation::Created);
        assert_eq!(t.stats.groups_created, 1);
        t
    }

    /// Pretend message `n` was sent by member `sender` at `intended`.
    fn sent(t: &mut GroupTraffic, n: u64, sender: usize, intended: u64) {
        t.msgs.insert(
            n,
            Msg {
                group: 0,
                sender,
                intended,
                acked: false,
                delivered: Bits::new(3),
                delivered_count: 0,
                receipted: Bits::new(3),
                receipt_count: 0,
                complete: false,
            },
        );
        t.outstanding += 1;
        t.stats.common.sent += 1;
    }

    #[test]
    fn fan_out_completes_on_the_last_member_and_duplicates_and_losses_count() {
        let mut t = three(false);
        let mut reply = String::new();
        sent(&mut t, 0, 0, 1_000_000);
        sent(&mut t, 1, 1, 2_000_000);
        // Message 0 from member 0: deliveries to 1 and 2 (2 twice), then the ack.
        let m0 = r#"{"type":"message","msg":"900","from":"10","group":"500","kind":"text","cid":"lgt.0.1000000","body":"x"}"#;
        t.on_text(1, &f(m0), 3_000_000, &mut reply);
        t.on_text(2, &f(m0), 5_000_000, &mut reply);
        t.on_text(2, &f(m0), 6_000_000, &mut reply);
        assert!(reply.is_empty(), "no acks without --ack");
        t.on_text(
            0,
            &f(r#"{"type":"sent","id":"lgt.0.1000000","msg":"900","duplicate":false}"#),
            4_000_000,
            &mut reply,
        );
        // Message 1 from member 1: acked, delivered to member 0 only.
        t.on_text(
            1,
            &f(r#"{"type":"sent","id":"lgt.1.2000000","msg":"901","duplicate":false}"#),
            4_000_000,
            &mut reply,
        );
        let m1 = r#"{"type":"message","msg":"901","from":"11","group":"500","kind":"text","cid":"lgt.1.2000000","body":"x"}"#;
        t.on_text(0, &f(m1), 7_000_000, &mut reply);
        // The creation message and a message of another run are not counted.
        t.on_text(
            1,
            &f(r#"{"type":"message","msg":"1","from":"10","group":"500","kind":"system","cid":"","body":"{}"}"#),
            1,
            &mut reply,
        );
        t.on_text(
            1,
            &f(r#"{"type":"message","msg":"2","from":"10","group":"500","kind":"text","cid":"old.1.2","body":"x"}"#),
            1,
            &mut reply,
        );
        assert!(!t.settled());
        let s = t.finish();
        let c = &s.common;
        assert_eq!((c.acked, c.delivered, c.duplicates, c.lost), (2, 3, 1, 1));
        assert_eq!((s.fanouts_complete, s.system_messages, c.foreign), (1, 1, 1));
        assert!((s.to_fanout.summary().max_ms - 4.0).abs() < 0.01);
        assert_eq!(c.to_delivery.count(), 3);
    }

    #[test]
    fn members_ack_and_the_sender_counts_receipt_items() {
        let mut t = three(true);
        let mut reply = String::new();
        sent(&mut t, 0, 0, 0);
        t.on_text(0, &f(r#"{"type":"sent","id":"lgt.0.0","msg":"900","duplicate":false}"#), 1_000, &mut reply);
        let m0 = r#"{"type":"message","msg":"900","from":"10","group":"500","kind":"text","cid":"lgt.0.0","body":"x"}"#;
        t.on_text(1, &f(m0), 2_000, &mut reply);
        assert_eq!(reply, r#"{"type":"delivered","group":"500","ids":["900"]}"#);
        reply.clear();
        t.on_text(2, &f(m0), 3_000, &mut reply);
        reply.clear();
        assert!(!t.settled(), "no receipts yet");
        let r = r#"{"type":"receipt","event":"950","status":"delivered","group":"500","items":[{"by":"11","ids":["900"]},{"by":"12","ids":["900"]}],"at":1}"#;
        t.on_text(0, &f(r), 9_000_000, &mut reply);
        t.on_text(0, &f(r), 9_500_000, &mut reply);
        assert!(t.settled());
        let s = t.finish();
        assert_eq!((s.common.receipts, s.duplicate_receipt_items, s.receipt_frames), (2, 2, 2));
        assert_eq!((s.receipts_complete, s.common.missing_receipts, s.acks_sent), (1, 0, 2));
        assert!((s.to_receipt_all.summary().max_ms - 9.0).abs() < 0.01);
    }

    #[test]
    fn refused_creation_fails_the_group() {
        let live = Arc::new(Live::default());
        let mut t = GroupTraffic::new("lgt".into(), 4, 2, 10, false, Arc::clone(&live));
        t.add_member(0, 7, 0, 0);
        t.add_member(0, 7, 1, 1);
        assert_eq!(t.groups[0].users, [24, 25]);
        t.groups[0].creation = Creation::Pending(1);
        let mut reply = String::new();
        t.on_text(0, &f(r#"{"type":"error","code":"group_full","message":"x","ref":"lgt.g7"}"#), 1, &mut reply);
        assert!(t.groups_settled());
        assert_eq!(t.stats.group_errors.total(), 1);
        assert_eq!(Live::get(&live.setup_errors), 1);
    }

    #[test]
    fn bits() {
        let mut b = Bits::new(130);
        assert!(b.set(0) && b.set(129) && !b.set(129));
        assert!(!b.set(130 + 64), "out of range");
    }
}

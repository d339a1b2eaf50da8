//! Devices that survive faults, and the ledger that checks them: every
//! message acknowledged to a sender reached its recipient's device exactly
//! once, in the order it was sent, whatever failed meanwhile.
//!
//! A [`Device`] keeps its cursor across connections, reconnects to another
//! live node when its connection fails (syncing from its cursor, as the
//! protocol tells devices to), and logs every message it is given, live
//! or by sync. A sender whose `sent` does not come resends the same client
//! id through another node. The final check waits for logs to fill by the
//! live path alone (no extra `sync`): a missed live event must be caught
//! up by the fleet itself.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, MessageId, MessageKind, UserId};

use super::fleet::TestFleet;

/// How long a sender waits for `sent` before it gives up on a node.
const ACK_WAIT: Duration = Duration::from_secs(3);

/// One device of one user.
pub struct Device {
    pub user: u64,
    pub node: usize,
    client: Option<Client>,
    cursor: MessageId,
    /// (from, id) of every message received, in arrival order.
    pub log: Vec<(u64, MessageId)>,
    seen: HashSet<MessageId>,
    /// Messages received a second time.
    pub duplicates: Vec<MessageId>,
    pub reconnects: usize,
}

impl Device {
    /// A device of `user` on node `node`, synced.
    pub fn online(fleet: &TestFleet, node: usize, user: u64) -> Device {
        let mut d = Device {
            user,
            node,
            client: None,
            cursor: MessageId(0),
            log: Vec::new(),
            seen: HashSet::new(),
            duplicates: Vec::new(),
            reconnects: 0,
        };
        d.connect(fleet, node);
        d
    }

    /// Connect to `node` and sync from the cursor.
    fn connect(&mut self, fleet: &TestFleet, node: usize) -> bool {
        let Ok(mut c) = Client::connect(fleet.nodes[node].addr, &fleet.token(self.user)) else { return false };
        c.set_cursor(self.cursor);
        if c.sync().is_err() {
            return false;
        }
        self.node = node;
        self.client = Some(c);
        true
    }

    /// Move to the next live node after the current one.
    fn fail_over(&mut self, fleet: &TestFleet, alive: &[bool]) {
        if let Some(c) = self.client.take() {
            self.cursor = self.cursor.max(c.cursor());
        }
        self.reconnects += 1;
        for step in 1..=alive.len() {
            let node = (self.node + step) % alive.len();
            if alive[node] && self.connect(fleet, node) {
                return;
            }
        }
        panic!("user {}: no live node to reconnect to", self.user);
    }

    fn record(&mut self, ev: &Event) {
        if let Event::Message(m) = ev {
            if m.kind == MessageKind::System {
                return;
            }
            if self.seen.insert(m.id) {
                self.log.push((m.from.0, m.id));
            } else {
                self.duplicates.push(m.id);
            }
        }
    }

    /// Read what has arrived (for up to `wait`); a failed connection moves
    /// to another live node.
    pub fn pump(&mut self, fleet: &TestFleet, alive: &[bool], wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let Some(c) = self.client.as_mut() else {
                self.fail_over(fleet, alive);
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            match c.next_event(left) {
                Ok(Some(Event::Closed { .. })) | Err(_) => self.fail_over(fleet, alive),
                Ok(Some(ev)) => self.record(&ev),
                Ok(None) => return,
            }
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Send to `to` with `client_id` until a node acknowledges it; the id.
    pub fn send_acked(&mut self, fleet: &TestFleet, alive: &[bool], to: u64, client_id: &str) -> MessageId {
        for _ in 0..20 {
            let Some(c) = self.client.as_mut() else {
                self.fail_over(fleet, alive);
                continue;
            };
            if c.send_message(UserId(to), client_id, MessageKind::Text, client_id).is_err() {
                self.fail_over(fleet, alive);
                continue;
            }
            let answer = c.wait_for(ACK_WAIT, "sent", |e| match e {
                Event::Sent { client_id: cid, id, .. } if cid == client_id => Some(Some(*id)),
                Event::Error { code, reference, .. }
                    if code == "unavailable" && reference.as_deref() == Some(client_id) =>
                {
                    Some(None)
                }
                Event::Closed { .. } => Some(None),
                _ => None,
            });
            match answer {
                Ok(Some(id)) => return id,
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => self.fail_over(fleet, alive),
            }
        }
        panic!("user {}: {client_id} never acknowledged", self.user);
    }
}

/// Senders 2k-1 messaging receivers 2k, each on its own device.
pub struct PairTraffic {
    pub senders: Vec<Device>,
    pub receivers: Vec<Device>,
    /// Acknowledged ids per pair, in sending order.
    pub acked: Vec<Vec<MessageId>>,
}

impl PairTraffic {
    /// `pairs` pairs; user u on node u % nodes, so every pair crosses nodes.
    pub fn start(fleet: &TestFleet, pairs: u64) -> PairTraffic {
        let n = fleet.nodes.len() as u64;
        let senders = (0..pairs).map(|k| Device::online(fleet, ((2 * k + 1) % n) as usize, 2 * k + 1)).collect();
        let receivers = (0..pairs).map(|k| Device::online(fleet, ((2 * k + 2) % n) as usize, 2 * k + 2)).collect();
        fleet.settle();
        PairTraffic { senders, receivers, acked: vec![Vec::new(); pairs as usize] }
    }

    /// Every sender sends one message (round `round`) and waits for `sent`;
    /// every receiver reads what arrived.
    pub fn round(&mut self, fleet: &TestFleet, alive: &[bool], round: usize) {
        for (k, s) in self.senders.iter_mut().enumerate() {
            let to = s.user + 1;
            let id = s.send_acked(fleet, alive, to, &format!("r{round}-u{}", s.user));
            self.acked[k].push(id);
        }
        for r in &mut self.receivers {
            r.pump(fleet, alive, Duration::from_millis(1));
        }
    }

    /// Wait (up to `within`, without asking anyone to sync) until every
    /// receiver has every acknowledged message, then check: each exactly
    /// once, in sending order.
    pub fn verify(&mut self, fleet: &TestFleet, alive: &[bool], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            for r in &mut self.receivers {
                r.pump(fleet, alive, Duration::from_millis(20));
            }
            let complete =
                self.receivers.iter().zip(&self.acked).all(|(r, acked)| acked.iter().all(|id| r.seen.contains(id)));
            if complete || Instant::now() >= deadline {
                break;
            }
        }
        for (k, (r, acked)) in self.receivers.iter().zip(&self.acked).enumerate() {
            let from = self.senders[k].user;
            let got: Vec<MessageId> = r.log.iter().filter(|(f, _)| *f == from).map(|(_, id)| *id).collect();
            let missing: Vec<_> = acked.iter().filter(|id| !r.seen.contains(id)).collect();
            assert!(missing.is_empty(), "user {} lost {} acknowledged messages: {missing:?}", r.user, missing.len());
            assert!(r.duplicates.is_empty(), "user {} got duplicates: {:?}", r.user, r.duplicates);
            assert_eq!(&got, acked, "user {}: messages from {from} out of order or unexpected", r.user);
        }
    }
}

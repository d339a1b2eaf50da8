//! The registry thread: this node's lease, its users' placements, the
//! live-node table, and what to do when any of them changes.
//!
//! Every few milliseconds it publishes the users whose first connection
//! opened or last closed here (one pipeline and one notice for all of
//! them); every third of the lease it renews the lease; every second it
//! reads the live nodes and hands them to the links and the routing thread.
//!
//! It also decides when this node's devices must catch up from the store,
//! because live events for them may have gone astray:
//! - a peer's lease lapsed or its epoch changed (it died or restarted: what
//!   it had committed but not yet forwarded is lost in transit);
//! - this node's own lease had lapsed (it was frozen, or Redis lost its
//!   data): peers stopped routing to it meanwhile, so it republishes its
//!   users and catches up;
//! - the registry came back after an outage (peers could not find users
//!   here while it was down);
//! - a peer joined, or came back under the same epoch after its lease had
//!   lapsed: events for its users were not routed while it looked dead, so
//!   it is told to catch up everyone (over its link, before anything else
//!   queued for it);
//! - a user just came online here: a peer that routed an event with the
//!   placement it had before this node's notice reached it sent it nowhere,
//!   so the user's connections catch up once the notice has had time to
//!   spread ([`SETTLE`]).
//!
//! A failing registry is retried with backoff (100 ms doubling to 2 s);
//! meanwhile presence changes accumulate (a set, so a user who came and
//! went costs one write) and `/healthz` reports the node degraded.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use chatgw_cluster::{
    link::{Links, PeerAddr},
    registry::{Presence, Registry, RegistryError, Renewal},
};
use chatgw_router::{Directory, Mailboxes};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{catch_up_users, metrics::FleetMetrics, route::Control, whole_node::WholeNode};
use crate::events::CoreBatch;

/// How often presence changes and due catch-ups are handled.
const TICK: Duration = Duration::from_millis(5);
/// How often the live nodes are read.
const NODES_EVERY: Duration = Duration::from_secs(1);
/// How long after a user's placement is published its connections catch
/// up: time for the notice to reach every routing thread of the fleet.
pub(crate) const SETTLE: Duration = Duration::from_millis(500);
/// After this node's lease was regained or the registry came back, other
/// nodes may still act on the live-node table they read before (up to a
/// second old): one may remove this node's fresh placements as ghosts, or
/// route its users nowhere. So the node republishes and catches up once
/// more, this long after.
const AGAIN_AFTER: Duration = Duration::from_secs(3);
/// Wait after a failed registry operation, doubling up to the max.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) struct Upkeep {
    pub(crate) registry: Registry,
    pub(crate) directory: Arc<Directory>,
    pub(crate) mailboxes: Arc<Mailboxes<CoreBatch>>,
    pub(crate) whole: Arc<WholeNode>,
    pub(crate) links: Arc<Links>,
    pub(crate) metrics: Arc<FleetMetrics>,
    pub(crate) route: Sender<Control>,
    /// Groups whose membership changed here, to announce.
    pub(crate) groups: Receiver<u64>,
    pub(crate) lease: Duration,
    pub(crate) user_ttl: Duration,
}

struct State {
    pending: HashSet<u64>,
    settling: VecDeque<(Instant, Vec<u64>)>,
    live: HashMap<u16, u64>,
    next_renew: Instant,
    next_nodes: Instant,
    next_republish: Instant,
    /// When to republish and catch up once more after the lease was
    /// regained or the registry came back (see [`AGAIN_AFTER`]).
    again_at: Option<Instant>,
    /// While failing: when to try again, and the next wait.
    retry_at: Option<Instant>,
    backoff: Duration,
    commands_seen: u64,
    /// The links' refused dials counted so far.
    dial_refusals_seen: u64,
}

impl Upkeep {
    /// The thread's body, until `stop` is signalled or dropped; then this
    /// node leaves the registry (its users' placements and its lease).
    /// `live` is the live-node table read at start.
    pub(crate) fn run(mut self, live: HashMap<u16, u64>, stop: Receiver<()>) {
        let now = Instant::now();
        let mut st = State {
            pending: HashSet::new(),
            settling: VecDeque::new(),
            live,
            next_renew: now + self.lease / 3,
            next_nodes: now + NODES_EVERY,
            next_republish: now + self.user_ttl / 3,
            again_at: None,
            retry_at: None,
            backoff: BACKOFF_MIN,
            commands_seen: 0,
            dial_refusals_seen: 0,
        };
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(TICK) {
            self.turn(&mut st);
        }
        self.leave(&mut st);
    }

    fn turn(&mut self, st: &mut State) {
        let now = Instant::now();
        self.count_dial_refusals(st);
        self.whole.retry_owed();
        self.directory.take_presence_changes(|u| {
            st.pending.insert(u);
        });
        while st.settling.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, users)) = st.settling.pop_front() {
                catch_up_users(&self.directory, &self.mailboxes, &users);
            }
        }
        if st.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let result = self.work(st, now);
        self.count_commands(st);
        match result {
            Ok(()) => {
                if st.retry_at.take().is_some() {
                    self.recovered(st);
                }
            }
            Err(e) => self.failed(st, &e),
        }
    }

    fn work(&mut self, st: &mut State, now: Instant) -> Result<(), RegistryError> {
        if !st.pending.is_empty() {
            let changes: Vec<(u64, Presence)> = st
                .pending
                .iter()
                .map(|u| (*u, if self.directory.is_online(*u) { Presence::Online } else { Presence::Offline }))
                .collect();
            self.registry.apply(&changes)?;
            self.metrics.presence_published.inc_by(changes.len() as u64);
            st.pending.clear();
            let online: Vec<u64> =
                changes.iter().filter(|(_, p)| matches!(p, Presence::Online)).map(|(u, _)| *u).collect();
            if !online.is_empty() {
                // From when the placement is written, however long that took.
                st.settling.push_back((Instant::now() + SETTLE, online));
            }
        }
        let groups: Vec<u64> = self.groups.try_iter().collect();
        if !groups.is_empty() {
            self.registry.publish_groups(&groups)?;
        }
        if now >= st.next_renew {
            match self.registry.renew()? {
                Renewal::Held => {}
                Renewal::Regained => {
                    tracing::warn!(
                        node = self.registry.node(),
                        "this node's registry lease had lapsed (frozen, or the registry lost its data): republishing its users; every device catches up"
                    );
                    self.republish_all()?;
                    self.catch_up_everyone();
                    st.again_at = Some(now + AGAIN_AFTER);
                }
            }
            st.next_renew = now + self.lease / 3;
        }
        if now >= st.next_nodes {
            self.read_nodes(st)?;
            st.next_nodes = now + NODES_EVERY;
        }
        if st.again_at.is_some_and(|t| now >= t) {
            st.again_at = None;
            self.republish_all()?;
            self.catch_up_everyone();
        }
        if now >= st.next_republish {
            self.republish_all()?;
            st.next_republish = now + self.user_ttl / 3;
        }
        Ok(())
    }

    fn read_nodes(&mut self, st: &mut State) -> Result<(), RegistryError> {
        let nodes = self.registry.live_nodes()?;
        let me = self.registry.node();
        let live: HashMap<u16, u64> = nodes.iter().map(|n| (n.node, n.epoch)).collect();
        let lost: Vec<u16> = st
            .live
            .iter()
            .filter(|(node, epoch)| **node != me && live.get(node) != Some(epoch))
            .map(|(node, _)| *node)
            .collect();
        let peers: Vec<PeerAddr> = nodes
            .iter()
            .filter(|n| n.node != me)
            .map(|n| PeerAddr { node: n.node, epoch: n.epoch, addr: n.link })
            .collect();
        // Nodes that were not live before (new, or back under the same
        // epoch after their lease lapsed): events for their users were
        // not routed while they looked dead, so they catch up.
        let appeared: Vec<u16> = live
            .iter()
            .filter(|(node, epoch)| **node != me && st.live.get(node) != Some(epoch))
            .map(|(node, _)| *node)
            .collect();
        self.links.set_peers(&peers);
        for node in appeared {
            let _ = self.links.catch_up(node, None);
        }
        let _ = self.route.send(Control::Live(live.iter().map(|(n, e)| (*n, *e)).collect()));
        self.metrics.live_nodes.set(live.len() as i64);
        if !lost.is_empty() {
            tracing::info!(?lost, "peers left the fleet (lease lapsed or restarted): every device catches up");
            self.catch_up_everyone();
        }
        st.live = live;
        Ok(())
    }

    fn republish_all(&mut self) -> Result<(), RegistryError> {
        let mut users = Vec::new();
        self.directory.for_each_user(|u| users.push(u));
        self.registry.republish(&users)?;
        self.metrics.presence_published.inc_by(users.len() as u64);
        Ok(())
    }

    fn catch_up_everyone(&self) {
        self.metrics.catch_up_all.inc();
        self.whole.catch_up();
    }

    fn failed(&mut self, st: &mut State, e: &RegistryError) {
        if let RegistryError::LeaseTaken { node, epoch } = e {
            // This run was frozen past its lease and a new run of the same
            // node id took it: peers route this id's users to the new run,
            // so this one's devices would get no live events from other
            // nodes, and its registry writes would clobber the new run's.
            // It stops at once; its devices reconnect (to another node) and
            // sync.
            tracing::error!(
                node,
                epoch,
                mine = self.registry.epoch(),
                "another run holds this node's lease: this process is superseded and exits"
            );
            std::process::exit(3);
        }
        self.metrics.registry_errors.inc();
        if st.retry_at.is_none() {
            tracing::warn!(error = %e, "the connection registry failed: this node serves its own users; cross-node events reach devices when it is back");
            self.metrics.registry_failing(e.to_string());
        }
        st.retry_at = Some(Instant::now() + st.backoff);
        st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
    }

    /// The registry answers again: what it lost or missed is put back, and
    /// every device catches up on what was not routed meanwhile.
    fn recovered(&mut self, st: &mut State) {
        st.backoff = BACKOFF_MIN;
        tracing::info!("the connection registry answers again: republishing users; every device catches up");
        self.metrics.registry_recovered();
        let _ = self.route.send(Control::RegistryBack);
        if let Err(e) = self.republish_all() {
            self.failed(st, &e);
            return;
        }
        self.catch_up_everyone();
        st.again_at = Some(Instant::now() + AGAIN_AFTER);
    }

    fn leave(&mut self, st: &mut State) {
        self.directory.take_presence_changes(|u| {
            st.pending.insert(u);
        });
        let mut users: Vec<u64> = st.pending.drain().collect();
        self.directory.for_each_user(|u| users.push(u));
        if let Err(e) = self.registry.leave(&users) {
            tracing::warn!(error = %e, "leaving the registry failed; this node's placements lapse with its lease");
        }
    }

    fn count_dial_refusals(&self, st: &mut State) {
        let now = self.links.stats().auth_failures;
        self.metrics.link_dial_refusals.inc_by(now.saturating_sub(st.dial_refusals_seen));
        st.dial_refusals_seen = now;
    }

    fn count_commands(&self, st: &mut State) {
        let now = self.registry.commands_sent();
        self.metrics.registry_commands.inc_by(now.saturating_sub(st.commands_seen));
        st.commands_seen = now;
    }
}

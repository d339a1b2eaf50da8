//! The routing thread: live events committed here, to the other nodes
//! where their users have devices.
//!
//! The writer hands it one job per event after the commit (the event's
//! encoded frame and its inbox targets, `(user, position)`), through a
//! bounded queue, and never waits for it. This thread finds each user's
//! other nodes in its cache ([`RemoteRoutes`]), asks the registry for the
//! users it does not know (one pipelined lookup for everything it drained),
//! and hands each destination node ONE delivery per event listing every
//! target user there: a group message to 256 members over three nodes is
//! two link frames, not 256.
//!
//! One thread does the lookups and the invalidations in turn, so a stale
//! lookup result can never outlive the notice that follows it (see
//! `chatgw_router::RemoteRoutes`). Nothing here is needed for correctness:
//! every event is durable before its job exists, and a device that a job
//! failed to reach catches up from the store (a full queue or an
//! unreachable registry makes this node tell its peers to catch up once it
//! can).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chatgw_cluster::{
    link::{Delivery, Links, Sent},
    registry::{Notice, Placement, Registry},
};
use chatgw_router::{NodeRef, Placements, RemoteRoutes};
use crossbeam_channel::{select, Receiver};

use super::metrics::FleetMetrics;

/// One committed event for the other nodes: its encoded frame and its
/// targets, `(user, position in that user's inbox)`.
#[derive(Debug)]
pub(crate) struct RouteJob {
    pub(crate) event: u64,
    pub(crate) payload: Arc<[u8]>,
    pub(crate) targets: Vec<(u64, u64)>,
}

/// What else the routing thread hears.
#[derive(Debug)]
pub(crate) enum Control {
    /// A registry notice (placements changed, or the cache may be stale).
    Notice(Notice),
    /// The live nodes: (node, epoch).
    Live(Vec<(u16, u64)>),
    /// The registry is back after an outage: forget the cache.
    RegistryBack,
    /// Finish the queued jobs and exit.
    Stop,
}

/// Most jobs routed in one turn (one registry lookup for all their misses).
const TURN_JOBS: usize = 1024;
/// Users the route cache holds before it starts over.
const CACHE_USERS: usize = 1 << 20;
/// Wait after a failed lookup before the next one, doubling up to the max.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub(crate) struct Router {
    pub(crate) me: u16,
    pub(crate) registry: Registry,
    pub(crate) links: Arc<Links>,
    pub(crate) metrics: Arc<FleetMetrics>,
    /// Set by the writer when the job queue refused a job.
    pub(crate) overflowed: Arc<AtomicBool>,
}

struct State {
    routes: RemoteRoutes,
    /// Peers (node ids) owed a catch-up of everyone because an event may
    /// not have reached them; all live peers when `owe_everyone`.
    owe_everyone: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    commands_seen: u64,
    /// The notice subscription has been made once (later ones follow a
    /// lost subscription).
    subscribed: bool,
    /// The registry answered the last lookup (or is back, says the
    /// registry thread).
    registry_ok: bool,
}

impl Router {
    /// The thread's body: route until `Control::Stop` (the jobs queued
    /// before it are routed) or until both queues are gone.
    pub(crate) fn run(mut self, jobs: Receiver<RouteJob>, control: Receiver<Control>) {
        let mut st = State {
            routes: RemoteRoutes::new(self.me, CACHE_USERS),
            owe_everyone: false,
            retry_at: None,
            backoff: BACKOFF_MIN,
            commands_seen: 0,
            subscribed: false,
            registry_ok: true,
        };
        let mut batch = Vec::with_capacity(TURN_JOBS);
        loop {
            select! {
                recv(control) -> msg => match msg {
                    Ok(Control::Stop) | Err(_) => return self.drain_and_stop(&mut st, &jobs, &mut batch),
                    Ok(other) => self.control(&mut st, other),
                },
                recv(jobs) -> job => match job {
                    Ok(job) => {
                        batch.push(job);
                        while batch.len() < TURN_JOBS {
                            match jobs.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                        // Notices that arrived meanwhile go first: they may
                        // void what the cache would answer.
                        let mut stopping = false;
                        while let Ok(msg) = control.try_recv() {
                            match msg {
                                Control::Stop => stopping = true,
                                other => self.control(&mut st, other),
                            }
                        }
                        self.route(&mut st, &mut batch);
                        if stopping {
                            return self.drain_and_stop(&mut st, &jobs, &mut batch);
                        }
                    }
                    Err(_) => return self.drain_and_stop(&mut st, &jobs, &mut batch),
                },
            }
            self.settle_debts(&mut st, false);
        }
    }

    fn drain_and_stop(&mut self, st: &mut State, jobs: &Receiver<RouteJob>, batch: &mut Vec<RouteJob>) {
        while let Ok(job) = jobs.try_recv() {
            batch.push(job);
            if batch.len() == TURN_JOBS {
                self.route(st, batch);
            }
        }
        self.route(st, batch);
        // Nothing owed may be left behind a goodbye: peers take a clean
        // end as "nothing lost".
        if self.overflowed.swap(false, Ordering::AcqRel) {
            st.owe_everyone = true;
        }
        self.settle_debts(st, true);
    }

    fn control(&mut self, st: &mut State, msg: Control) {
        match msg {
            Control::Notice(Notice::Users(users)) => users.iter().for_each(|u| st.routes.invalidate(*u)),
            // Notices may have been missed (after the first subscription):
            // what was routed with the cache meanwhile may have gone
            // nowhere, so every peer catches up once the cache is fresh.
            Control::Notice(Notice::Resubscribed) => {
                st.routes.clear();
                if st.subscribed {
                    st.owe_everyone = true;
                }
                st.subscribed = true;
            }
            Control::RegistryBack => {
                st.routes.clear();
                st.owe_everyone = true;
                st.registry_ok = true;
            }
            Control::Notice(Notice::Groups(_)) => {}
            Control::Live(nodes) => st.routes.set_live(nodes),
            Control::Stop => {}
        }
        self.metrics.route_cache_users.set(st.routes.len() as i64);
    }

    /// Route `batch` (emptied): look up the users not cached, then one
    /// delivery per event per destination node.
    fn route(&mut self, st: &mut State, batch: &mut Vec<RouteJob>) {
        if batch.is_empty() {
            return;
        }
        if self.overflowed.swap(false, Ordering::AcqRel) {
            // The writer dropped jobs: their users may be anywhere.
            st.owe_everyone = true;
        }
        let mut misses: Vec<u64> = Vec::new();
        for job in batch.iter() {
            for (user, _) in &job.targets {
                if !st.routes.nodes_of(*user, |_| {}) {
                    misses.push(*user);
                }
            }
        }
        misses.sort_unstable();
        misses.dedup();
        if !misses.is_empty() {
            self.look_up(st, &misses);
        }
        let mut per_node: HashMap<u16, Vec<(u64, u64)>> = HashMap::new();
        for job in batch.drain(..) {
            for (user, pos) in &job.targets {
                let known = st.routes.nodes_of(*user, |node| per_node.entry(node).or_default().push((*user, *pos)));
                if !known {
                    // Not looked up (the registry failed) or forgotten
                    // meanwhile (the cache started over): its devices
                    // elsewhere may be missing it.
                    self.metrics.unrouted_events.inc();
                    st.owe_everyone = true;
                }
            }
            for (node, targets) in per_node.drain() {
                self.metrics.link_targets_sent.inc_by(targets.len() as u64);
                let delivery = Delivery { event: job.event, payload: job.payload.clone(), targets };
                let counter = match self.links.send(node, delivery) {
                    Sent::Queued => &self.metrics.link_events_sent,
                    // The link tells that peer to catch up once it has room.
                    Sent::Dropped => &self.metrics.link_events_dropped,
                };
                counter.inc();
            }
        }
        self.count_commands(st);
    }

    /// Ask the registry where `users` are (not while backing off after a
    /// failure); the users it could not place stay unknown.
    fn look_up(&mut self, st: &mut State, users: &[u64]) {
        if st.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.metrics.route_lookups.inc_by(users.len() as u64);
        match self.registry.lookup(users) {
            Ok(found) => {
                st.retry_at = None;
                st.backoff = BACKOFF_MIN;
                st.registry_ok = true;
                let mut ghosts = Vec::new();
                for (user, placements) in users.iter().zip(found) {
                    let placements: Placements =
                        placements.iter().map(|p| NodeRef { node: p.node, epoch: p.epoch }).collect();
                    for p in placements.iter().filter(|p| st.routes.is_ghost(**p) && p.node != self.me) {
                        ghosts.push((*user, Placement { node: p.node, epoch: p.epoch }));
                    }
                    st.routes.insert(*user, placements);
                }
                if !ghosts.is_empty() {
                    self.remove_ghosts(ghosts);
                }
                self.metrics.route_cache_users.set(st.routes.len() as i64);
            }
            Err(e) => {
                self.metrics.registry_errors.inc();
                tracing::warn!(error = %e, retry_in = ?st.backoff, "registry lookup failed; events for users not cached reach them by catch-up");
                st.retry_at = Some(Instant::now() + st.backoff);
                st.backoff = (st.backoff * 2).min(BACKOFF_MAX);
                st.registry_ok = false;
            }
        }
    }

    /// Remove placements that looked like ghosts, after reading the live
    /// nodes again: a node that joined since the table was last read holds
    /// a lease already (a node takes its lease before it serves anyone), so
    /// its fresh placements are never mistaken for a dead run's. Best
    /// effort: a ghost is never routed to either way.
    fn remove_ghosts(&mut self, ghosts: Vec<(u64, Placement)>) {
        let nodes = match self.registry.live_nodes() {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::debug!(error = %e, "reading the live nodes failed; ghosts stay until the next lookup");
                return;
            }
        };
        // Only to judge these placements: the routing table itself follows
        // the registry thread's reads, which also decide who catches up
        // when a node comes and goes.
        let ghosts: Vec<(u64, Placement)> =
            ghosts.into_iter().filter(|(_, p)| !nodes.iter().any(|n| n.node == p.node && n.epoch == p.epoch)).collect();
        if ghosts.is_empty() {
            return;
        }
        if let Err(e) = self.registry.remove_ghosts(&ghosts) {
            tracing::debug!(error = %e, "removing ghost placements failed");
        }
    }

    /// Tell every live peer to catch up if an event may have missed one of
    /// them, once the registry answers again (a catch-up before that would
    /// be repeated at every failed lookup); `force` when stopping.
    fn settle_debts(&mut self, st: &mut State, force: bool) {
        if !st.owe_everyone || !(st.registry_ok || force) {
            return;
        }
        st.owe_everyone = false;
        let mut peers = Vec::new();
        st.routes.live_nodes(|node| {
            if node != self.me {
                peers.push(node);
            }
        });
        for node in peers {
            let _ = self.links.catch_up(node, None);
        }
    }

    fn count_commands(&self, st: &mut State) {
        let now = self.registry.commands_sent();
        self.metrics.registry_commands.inc_by(now.saturating_sub(st.commands_seen));
        st.commands_seen = now;
    }
}

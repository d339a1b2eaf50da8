//! What the fleet layer counts, and whether it is degraded.
//!
//! Registered with every other metric (`chatgw_fleet_*`), so a one-node
//! gateway shows them at zero. The registry's health sits here for the
//! same reason the store's sits in [`Metrics`](crate::metrics::Metrics):
//! `/healthz` and the gauges must tell the same story.

use std::sync::{Mutex, PoisonError};

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// Counters and gauges of the fleet layer.
#[derive(Debug, Default)]
pub struct FleetMetrics {
    /// Nodes with a live lease, this one included (0 on one node alone).
    pub live_nodes: Gauge,
    /// 1 while the registry answers, 0 while it does not (1 on one node).
    pub registry_up: Gauge,
    /// Registry operations that failed.
    pub registry_errors: Counter,
    /// Commands sent to the registry (Redis) by this node.
    pub registry_commands: Counter,
    /// Registry lookups of users not in the route cache.
    pub route_lookups: Counter,
    /// Users in the route cache.
    pub route_cache_users: Gauge,
    /// Events handed to node links (one per destination node).
    pub link_events_sent: Counter,
    /// Inbox targets of those events (users on the destination node).
    pub link_targets_sent: Counter,
    /// Events a link queue refused (the peer is told to catch up).
    pub link_events_dropped: Counter,
    /// Events that could not be routed (registry unreachable, route queue
    /// full): their devices catch up later.
    pub unrouted_events: Counter,
    /// Events received from other nodes.
    pub link_events_received: Counter,
    /// Link connections refused at the handshake (a wrong or missing
    /// link MAC, another link protocol version).
    pub link_auth_failures: Counter,
    /// Links this node dialled that the peer refused at the handshake (a
    /// wrong Welcome MAC, or closed after this node's Hello: another key).
    pub link_dial_refusals: Counter,
    /// Link connections closed on accept: too many were still in their
    /// handshake (from their address, or in all).
    pub link_handshakes_shed: Counter,
    /// Catch-ups this node asked its cores for, whole-node ones.
    pub catch_up_all: Counter,
    /// Users published to the registry (online or offline).
    pub presence_published: Counter,
    /// Why the registry is unreachable, while it is.
    degraded: Mutex<Option<String>>,
}

impl FleetMetrics {
    /// Create and register under `r` (prefix `chatgw`).
    pub(crate) fn new(r: &mut Registry) -> Self {
        let m = FleetMetrics::default();
        macro_rules! add {
            ($field:ident, $help:literal) => {
                r.register(concat!("fleet_", stringify!($field)), $help, m.$field.clone())
            };
        }
        add!(live_nodes, "Nodes of the fleet with a live registry lease, this one included");
        add!(registry_up, "1 while the connection registry answers");
        add!(registry_errors, "Registry operations that failed");
        add!(registry_commands, "Commands sent to the registry");
        add!(route_lookups, "Registry lookups of users not in the route cache");
        add!(route_cache_users, "Users in the route cache");
        add!(link_events_sent, "Events handed to node links, one per destination node");
        add!(link_targets_sent, "Users those events were for");
        add!(link_events_dropped, "Events a full link queue refused");
        add!(unrouted_events, "Events that could not be routed to other nodes");
        add!(link_events_received, "Events received from other nodes");
        add!(
            link_auth_failures,
            "Node-link connections refused at the handshake: a wrong or missing link MAC, another link version"
        );
        add!(
            link_dial_refusals,
            "Node links this node dialled that the peer refused at the handshake (another link key or version)"
        );
        add!(
            link_handshakes_shed,
            "Node-link connections closed on accept because too many were still in their handshake"
        );
        add!(catch_up_all, "Whole-node catch-ups started (a peer died, a link broke, the registry came back)");
        add!(presence_published, "Users published to the registry");
        m.registry_up.set(1);
        m
    }

    /// The registry fails because of `cause` (the first line of it is kept).
    pub(crate) fn registry_failing(&self, cause: String) {
        self.registry_up.set(0);
        *self.degraded.lock().unwrap_or_else(PoisonError::into_inner) = Some(cause);
    }

    /// The registry answers again.
    pub(crate) fn registry_recovered(&self) {
        self.registry_up.set(1);
        *self.degraded.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Why this node is degraded, if it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

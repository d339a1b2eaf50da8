//! Handing due windows off: one liveness question and one target lookup
//! for all users due together, then one notification per device that has a
//! target and is not live.
//!
//! Every due window ends in exactly one of: resolved (notifications handed
//! off, or none needed), queued for a retry (some hand-offs failed, or the
//! store of targets did not answer), or given up after its last attempt.
//! Only the first and the last release its events for commit.

use std::collections::{HashMap, HashSet};

use chatgw_protocol::{DeviceName, UserId};

use crate::{
    handoff::{Liveness, Notification, NotificationSender, Outcome, PushTargets},
    metrics::PushMetrics,
    planner::{Due, Planner, Retry},
};

/// The collaborators a hand-off asks.
pub(crate) struct Handoff<'a, L, T: PushTargets, N> {
    /// Who is live.
    pub liveness: &'a L,
    /// Where devices take pushes.
    pub targets: &'a T,
    /// Who sends.
    pub sender: &'a N,
    /// What is counted.
    pub metrics: &'a PushMetrics,
}

impl<L, T, N> Handoff<'_, L, T, N>
where
    L: Liveness,
    T: PushTargets,
    N: NotificationSender<T::Target>,
{
    /// Hand off every window due at `now_ms`.
    pub(crate) fn run(&self, planner: &mut Planner, now_ms: u64) {
        let due = planner.due(now_ms);
        if due.is_empty() {
            return;
        }
        let mut users: Vec<UserId> = due.iter().map(|d| d.user).collect();
        users.sort_unstable();
        users.dedup();
        let targets = match self.targets.push_targets(&users) {
            Ok(t) => t,
            Err(e) => {
                self.metrics.target_lookup_errors.inc();
                tracing::warn!(error = %e, windows = due.len(), "push targets unavailable; retrying later");
                for d in due {
                    planner.retry(d.ticket, d.only, false, now_ms);
                }
                return;
            }
        };
        let mut by_user: HashMap<UserId, Vec<(DeviceName, T::Target)>> = HashMap::new();
        for (user, device, target) in targets {
            by_user.entry(user).or_default().push((device, target));
        }
        let live = self.liveness.live_devices(&users);
        for d in due {
            let live: HashSet<DeviceName> = live.get(&d.user).into_iter().flatten().copied().collect();
            let devices = by_user.get(&d.user).map(Vec::as_slice).unwrap_or_default();
            self.one(planner, d, devices, &live, now_ms);
        }
    }

    fn one(
        &self,
        planner: &mut Planner,
        d: Due,
        devices: &[(DeviceName, T::Target)],
        live: &HashSet<DeviceName>,
        now_ms: u64,
    ) {
        if devices.is_empty() {
            self.metrics.without_target.inc();
        }
        let mut failed = Vec::new();
        for (device, target) in devices {
            if d.only.as_ref().is_some_and(|only| !only.contains(device)) {
                continue;
            }
            if live.contains(device) {
                self.metrics.suppressed_live.inc();
                continue;
            }
            let n = Notification {
                user: d.user,
                device: *device,
                target: target.clone(),
                conversation: d.conversation.clone(),
                count: d.count,
                latest_event: d.latest_event.clone(),
            };
            match self.sender.send(&n) {
                Outcome::Delivered => {
                    self.metrics.notifications_sent.inc();
                    let latency_ms = now_ms.saturating_sub(d.first_at_ms);
                    self.metrics.handoff_latency_seconds.observe(latency_ms as f64 / 1000.0);
                }
                Outcome::Unregistered => {
                    self.metrics.unregistered.inc();
                    if let Err(e) = self.targets.remove_push_target_if(d.user, *device, target) {
                        // The next notification to it is refused again and
                        // the removal tried again then.
                        tracing::warn!(user = %d.user, device = %device, error = %e, "removing a stale push target");
                    }
                }
                Outcome::Failed => {
                    self.metrics.send_failures.inc();
                    failed.push(*device);
                }
                Outcome::Rejected => {
                    self.metrics.notifications_dropped.inc();
                    tracing::error!(user = %d.user, device = %device, conversation = %d.conversation,
                        "push refused by the provider for good; notification dropped");
                }
            }
        }
        if failed.is_empty() {
            planner.resolve(d.ticket);
            return;
        }
        if planner.retry(d.ticket, Some(failed), true, now_ms) == Retry::GaveUp {
            self.metrics.notifications_dropped.inc();
            tracing::error!(user = %d.user, conversation = %d.conversation, attempts = d.attempt + 1,
                "push hand-off failed on every attempt; notification dropped");
        }
    }
}

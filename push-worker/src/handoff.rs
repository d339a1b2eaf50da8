//! The seams to the rest of the product: who is live, where a user's
//! devices take pushes, and who sends them. The worker knows nothing else
//! about providers, stores or gateways.

use std::{collections::HashMap, fmt};

use chatgw_protocol::{DeviceName, UserId};

/// Which named devices of some users are connected to a gateway now.
pub trait Liveness {
    /// The live devices of each of `users` (a user without an entry has
    /// none). Never fails: a gateway that cannot be asked counts as having
    /// no live device, so a push is sent rather than lost.
    fn live_devices(&self, users: &[UserId]) -> HashMap<UserId, Vec<DeviceName>>;
}

/// One registration: (user, device, target).
pub type TargetRow<T> = (UserId, DeviceName, T);

/// Where users' devices take pushes (the store's push targets).
pub trait PushTargets {
    /// A device's registration with a provider (opaque to the worker).
    type Target: Clone + fmt::Debug;
    /// Why the store could not answer.
    type Error: fmt::Display;

    /// Every (user, device, target) registered for `users`.
    fn push_targets(&self, users: &[UserId]) -> Result<Vec<TargetRow<Self::Target>>, Self::Error>;

    /// Remove the device's target if it is still `target` (a device that
    /// registered a new one since keeps it).
    fn remove_push_target_if(&self, user: UserId, device: DeviceName, target: &Self::Target)
        -> Result<(), Self::Error>;
}

/// One push to one device: no message body, only the conversation and how
/// many messages it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification<T> {
    /// The user notified.
    pub user: UserId,
    /// Their device.
    pub device: DeviceName,
    /// Where the device takes pushes.
    pub target: T,
    /// The conversation with messages the device did not get live.
    pub conversation: String,
    /// How many messages (a collapsed burst counts each).
    pub count: u32,
    /// The id of the newest of them, so the app can fetch from there.
    pub latest_event: String,
}

/// How one hand-off to a provider ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took it.
    Delivered,
    /// The provider says the target is gone (HTTP 410, `UNREGISTERED`):
    /// the target is removed from the store.
    Unregistered,
    /// Not taken (5xx, timeout, refused connection): tried again later.
    Failed,
    /// Refused for good (a request the provider will never take, bad
    /// credentials, a provider not configured): not tried again; counted
    /// as dropped, and its events are decided.
    Rejected,
}

/// Hands notifications to a push provider.
pub trait NotificationSender<T> {
    /// Hand off one notification; blocks until the provider answers.
    fn send(&self, notification: &Notification<T>) -> Outcome;
}

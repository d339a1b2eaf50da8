//! The store's push targets, as the push worker asks for them: one batched
//! lookup for every user due together, and the conditional removal of a
//! target a provider reported gone (a device that registered a new token
//! meanwhile keeps it).

use std::sync::Arc;

use chatgw_protocol::{DeviceName, PushTarget, UserId};
use chatgw_push_worker::{handoff::TargetRow, PushTargets};
use chatgw_storage::{MessageStore, StoreError};

/// [`PushTargets`] over a [`MessageStore`].
#[derive(Clone)]
pub struct StoreTargets(Arc<dyn MessageStore>);

impl StoreTargets {
    /// The targets kept by `store`.
    pub fn new(store: Arc<dyn MessageStore>) -> Self {
        StoreTargets(store)
    }
}

impl std::fmt::Debug for StoreTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreTargets")
    }
}

impl PushTargets for StoreTargets {
    type Target = PushTarget;
    type Error = StoreError;

    fn push_targets(&self, users: &[UserId]) -> Result<Vec<TargetRow<PushTarget>>, StoreError> {
        self.0.push_targets(users)
    }

    fn remove_push_target_if(&self, user: UserId, device: DeviceName, target: &PushTarget) -> Result<(), StoreError> {
        let removed = self.0.remove_push_target_if(user, device, &target.token)?;
        tracing::info!(%user, %device, provider = %target.provider, removed, "push target gone at its provider");
        Ok(())
    }
}

//! Session revocations: durable, shared by every handle on the store, and
//! never moving back. The gateway refuses tokens issued before a user's
//! revocation time, so a revocation lost at a restart, unseen by another
//! gateway, or lowered by a late write would let a revoked token back in.

use chatgw_protocol::UserId;

use super::Backend;
use crate::MessageStore;

fn sorted(s: &dyn MessageStore) -> Vec<(UserId, u64)> {
    let mut all = s.revocations().expect("read revocations");
    all.sort();
    all
}

/// A revocation is read back by this handle, by a second one (another
/// gateway on the store) and after reopening; an earlier time never lowers
/// it; users are kept apart.
pub fn revocations_are_durable_shared_and_never_move_back(backend: &dyn Backend) {
    let place = backend.new_place();
    {
        let s = backend.open(&place);
        assert!(s.revocations().unwrap().is_empty(), "an empty store has no revocations");
        s.revoke_sessions(UserId(7), 1_000).unwrap();
        s.revoke_sessions(UserId(9), 500).unwrap();
        assert_eq!(sorted(&*s), vec![(UserId(7), 1_000), (UserId(9), 500)]);
        s.revoke_sessions(UserId(7), 900).unwrap();
        assert_eq!(sorted(&*s), vec![(UserId(7), 1_000), (UserId(9), 500)], "an earlier time does not lower it");
        let other = backend.second_handle(&place, &s);
        assert_eq!(sorted(&*other), vec![(UserId(7), 1_000), (UserId(9), 500)], "a second handle sees it");
        other.revoke_sessions(UserId(7), 2_000).unwrap();
        assert_eq!(sorted(&*s), vec![(UserId(7), 2_000), (UserId(9), 500)], "and the first sees the second's");
    }
    let reopened = backend.open(&place);
    assert_eq!(sorted(&*reopened), vec![(UserId(7), 2_000), (UserId(9), 500)], "after reopen");
}

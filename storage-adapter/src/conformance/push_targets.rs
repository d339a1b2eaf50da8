//! Push targets: one per device, replaced by a new registration, removed
//! by `None` or by a conditional removal that only takes the token it
//! names; read in a batch over users; durable and shared by every handle.

use chatgw_protocol::{DeviceName, PushProvider, PushTarget, UserId};

use super::Backend;
use crate::MessageStore;

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).expect("a valid name")
}

fn target(provider: PushProvider, token: &str) -> PushTarget {
    PushTarget { provider, token: token.to_owned() }
}

fn sorted(s: &dyn MessageStore, users: &[u64]) -> Vec<(UserId, DeviceName, PushTarget)> {
    let users: Vec<UserId> = users.iter().map(|&u| UserId(u)).collect();
    let mut all = s.push_targets(&users).expect("read push targets");
    all.sort_by_key(|t| (t.0, t.1));
    all
}

/// Set, replace, remove, conditional removal, batched reads, a second
/// handle and a reopen.
pub fn push_targets_are_per_device_and_removed_only_by_their_token(backend: &dyn Backend) {
    let place = backend.new_place();
    let apns = target(PushProvider::Apns, "a1b2c3");
    let fcm = target(PushProvider::Fcm, "fcm:token/with~punctuation");
    let hook = target(PushProvider::Webhook, &"w".repeat(4096));
    {
        let s = backend.open(&place);
        assert!(s.push_targets(&[UserId(7)]).unwrap().is_empty(), "an empty store has no targets");
        assert!(s.push_targets(&[]).unwrap().is_empty(), "no users, no targets");
        s.set_push_target(UserId(7), dev("phone"), None).unwrap();
        assert!(s.push_targets(&[UserId(7)]).unwrap().is_empty(), "removing a missing target changes nothing");
        s.set_push_target(UserId(7), dev("phone"), Some(&apns)).unwrap();
        s.set_push_target(UserId(7), dev("laptop"), Some(&hook)).unwrap();
        s.set_push_target(UserId(8), dev("phone"), Some(&fcm)).unwrap();
        // Ids above i64::MAX are users like any other.
        s.set_push_target(UserId(u64::MAX), dev("tablet"), Some(&apns)).unwrap();
        assert_eq!(
            sorted(&*s, &[7, 8, 9, u64::MAX, 7]),
            vec![
                (UserId(7), dev("laptop"), hook.clone()),
                (UserId(7), dev("phone"), apns.clone()),
                (UserId(8), dev("phone"), fcm.clone()),
                (UserId(u64::MAX), dev("tablet"), apns.clone()),
            ],
            "every device of every user asked for, each once"
        );
        assert_eq!(sorted(&*s, &[8]), vec![(UserId(8), dev("phone"), fcm.clone())], "users kept apart");

        s.set_push_target(UserId(7), dev("phone"), Some(&fcm)).unwrap();
        assert_eq!(sorted(&*s, &[7])[1], (UserId(7), dev("phone"), fcm.clone()), "registering again replaces");
        assert!(
            !s.remove_push_target_if(UserId(7), dev("phone"), &apns.token).unwrap(),
            "the old token no longer removes anything"
        );
        assert_eq!(sorted(&*s, &[7])[1], (UserId(7), dev("phone"), fcm.clone()), "the new target stays");
        assert!(!s.remove_push_target_if(UserId(7), dev("tablet"), &apns.token).unwrap(), "no target, nothing removed");
        assert!(!s.remove_push_target_if(UserId(9), dev("phone"), &fcm.token).unwrap(), "another user's is not his");
        assert!(s.remove_push_target_if(UserId(7), dev("phone"), &fcm.token).unwrap(), "its own token removes it");
        assert_eq!(sorted(&*s, &[7]), vec![(UserId(7), dev("laptop"), hook.clone())]);
        assert_eq!(sorted(&*s, &[8]), vec![(UserId(8), dev("phone"), fcm.clone())], "the same token elsewhere stays");

        let other = backend.second_handle(&place, &s);
        assert_eq!(sorted(&*other, &[7]), vec![(UserId(7), dev("laptop"), hook.clone())], "a second handle sees it");
        other.set_push_target(UserId(7), dev("laptop"), None).unwrap();
        other.set_push_target(UserId(7), dev("phone"), Some(&apns)).unwrap();
        assert_eq!(sorted(&*s, &[7]), vec![(UserId(7), dev("phone"), apns.clone())], "and the first sees its writes");
    }
    let reopened = backend.open(&place);
    assert_eq!(
        sorted(&*reopened, &[7, 8, u64::MAX]),
        vec![
            (UserId(7), dev("phone"), apns.clone()),
            (UserId(8), dev("phone"), fcm),
            (UserId(u64::MAX), dev("tablet"), apns),
        ],
        "after reopen"
    );
}

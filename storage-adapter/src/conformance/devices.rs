//! Named devices: notes merge (first seen never later, last active and the
//! token issue time never back, even out of order or twice in one batch),
//! device revocations never move back, and both are durable and shared by
//! every handle on the store.

use chatgw_protocol::{DeviceName, UserId};

use super::Backend;
use crate::{DeviceNote, DeviceRecord, MessageStore};

fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).expect("a valid name")
}

fn note(user: u64, device: &str, at: u64, token_iat: u64) -> DeviceNote {
    DeviceNote { user: UserId(user), device: dev(device), at, token_iat }
}

fn record(device: &str, first_seen: u64, last_active: u64, token_iat: u64, revoked_at: Option<u64>) -> DeviceRecord {
    DeviceRecord { device: dev(device), first_seen, last_active, token_iat, revoked_at }
}

fn revocations(s: &dyn MessageStore) -> Vec<(UserId, DeviceName, u64)> {
    let mut all = s.device_revocations().expect("read device revocations");
    all.sort();
    all
}

/// Notes and device revocations, read back by this handle, a second one
/// and after reopening; users and devices kept apart.
pub fn devices_are_noted_and_revoked(backend: &dyn Backend) {
    let place = backend.new_place();
    {
        let s = backend.open(&place);
        assert!(s.devices(UserId(7)).unwrap().is_empty(), "an empty store has no devices");
        assert!(s.device_revocations().unwrap().is_empty(), "nor device revocations");
        s.note_devices(&[]).unwrap();
        s.note_devices(&[note(7, "phone", 100, 90), note(7, "laptop", 110, 0), note(8, "phone", 120, 120)]).unwrap();
        // Out of order and twice in one batch: first seen never later,
        // last active and token issue time never back.
        s.note_devices(&[note(7, "phone", 300, 250), note(7, "phone", 50, 40), note(7, "phone", 200, 260)]).unwrap();
        assert_eq!(
            s.devices(UserId(7)).unwrap(),
            vec![record("laptop", 110, 110, 0, None), record("phone", 50, 300, 260, None)],
            "in name order, merged"
        );
        s.revoke_device(UserId(7), dev("phone"), 400).unwrap();
        s.revoke_device(UserId(7), dev("phone"), 350).unwrap();
        s.revoke_device(UserId(7), dev("tablet"), 10).unwrap();
        let want = vec![(UserId(7), dev("phone"), 400), (UserId(7), dev("tablet"), 10)];
        assert_eq!(revocations(&*s), want, "an earlier time does not lower it");
        assert_eq!(s.devices(UserId(7)).unwrap()[1], record("phone", 50, 300, 260, Some(400)));
        assert_eq!(s.devices(UserId(8)).unwrap(), vec![record("phone", 120, 120, 120, None)], "users kept apart");
        let other = backend.second_handle(&place, &s);
        assert_eq!(revocations(&*other), want, "a second handle sees it");
        other.revoke_device(UserId(7), dev("phone"), 500).unwrap();
        other.note_devices(&[note(7, "phone", 510, 505)]).unwrap();
        assert_eq!(s.devices(UserId(7)).unwrap()[1], record("phone", 50, 510, 505, Some(500)), "and the first sees it");
    }
    let reopened = backend.open(&place);
    assert_eq!(
        revocations(&*reopened),
        vec![(UserId(7), dev("phone"), 500), (UserId(7), dev("tablet"), 10)],
        "after reopen"
    );
    assert_eq!(
        reopened.devices(UserId(7)).unwrap(),
        vec![record("laptop", 110, 110, 0, None), record("phone", 50, 510, 505, Some(500))]
    );
}

//! `register_push` and `unregister_push`, served by the reader threads
//! (both write the store, which an event loop must not wait on).
//!
//! A target belongs to the named device of the connection that registers
//! it (the engine refuses unnamed connections before asking), one per
//! device: registering again replaces it. A user has at most
//! [`MAX_PUSH_TARGETS_PER_USER`] devices with a target, so tokens minted
//! with ever new device names cannot grow the store without bound; the
//! count is read before the write, so two gateways registering a user's
//! last free slot at the same moment may both succeed (one over, never
//! more than the number of gateways).
//!
//! A device being logged out while it registers: the logout removes the
//! target, records the logout, notes it in this gateway's revocation cache
//! and removes the target again (`Revoker::record_device_revocation`); a
//! registration checks the cache after its write and removes its own
//! target if the device is logged out. So on one gateway a logged-out
//! device keeps no target; through another gateway the registration is
//! refused once that gateway has re-read the revocations (within 2 s).

use chatgw_protocol::{server, ErrorCode, PushTarget};
use chatgw_storage::{MessageStore, StoreError};

use crate::{auth::Claims, revoke::Revocations};

/// Devices of one user that may have a push target at once.
pub(crate) const MAX_PUSH_TARGETS_PER_USER: usize = 32;

/// Set (`Some`) or remove the push target of the device of `asking` (the
/// claims of the connection that asks, which name a device); the answer
/// frame (`push_registered`, `push_unregistered` or an `error`).
pub(crate) fn answer(
    store: &dyn MessageStore,
    revocations: &Revocations,
    asking: &Claims,
    target: Option<PushTarget>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(96);
    let Some(device) = asking.device else {
        server::error(&mut p, ErrorCode::NotAllowed, "push targets belong to named devices", None);
        return p;
    };
    match set(store, revocations, asking, target.as_ref()) {
        Ok(Set::Registered) => {
            if let Some(t) = &target {
                server::push_registered(&mut p, device.as_str(), t.provider);
            }
        }
        Ok(Set::Removed) => server::push_unregistered(&mut p, device.as_str()),
        Ok(Set::LoggedOut) => {
            server::error(&mut p, ErrorCode::NotAllowed, "this device was logged out; get a new token", None)
        }
        Ok(Set::TooMany) => server::error(
            &mut p,
            ErrorCode::NotAllowed,
            &format!(
                "at most {MAX_PUSH_TARGETS_PER_USER} devices of a user have push targets; \
                 unregister one (or log it out) first"
            ),
            None,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not write a push target");
            server::error(&mut p, ErrorCode::Unavailable, "the push target could not be written; retry", None);
        }
    }
    p
}

enum Set {
    Registered,
    Removed,
    TooMany,
    LoggedOut,
}

fn set(
    store: &dyn MessageStore,
    revocations: &Revocations,
    asking: &Claims,
    target: Option<&PushTarget>,
) -> Result<Set, StoreError> {
    let (user, Some(device)) = (asking.user, asking.device) else { return Ok(Set::LoggedOut) };
    let logged_out = || revocations.refusal(asking).is_some();
    if target.is_some() && logged_out() {
        return Ok(Set::LoggedOut);
    }
    let Some(target) = target else {
        store.set_push_target(user, device, None)?;
        return Ok(Set::Removed);
    };
    let existing = store.push_targets(&[user])?;
    let has_one = existing.iter().any(|(_, d, _)| *d == device);
    if !has_one && existing.len() >= MAX_PUSH_TARGETS_PER_USER {
        return Ok(Set::TooMany);
    }
    store.set_push_target(user, device, Some(target))?;
    if logged_out() {
        store.set_push_target(user, device, None)?;
        return Ok(Set::LoggedOut);
    }
    Ok(Set::Registered)
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{DeviceName, PushProvider, ServerFrame, UserId};
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

    use super::*;

    #[test]
    fn a_user_has_at_most_the_cap_of_devices_with_targets_and_may_replace_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let target = |token: &str| Some(PushTarget { provider: PushProvider::Fcm, token: token.into() });
        let frame = |p: Vec<u8>| ServerFrame::parse(std::str::from_utf8(&p).unwrap()).unwrap();
        let none = Revocations::default();
        let answer = |store: &EmbeddedStore, user: UserId, device: DeviceName, target: Option<PushTarget>| {
            let asking = Claims { user, exp: 0, iat: Some(1), device: Some(device) };
            answer(store, &none, &asking, target)
        };
        for i in 0..MAX_PUSH_TARGETS_PER_USER {
            let device = DeviceName::new(&format!("d{i}")).unwrap();
            assert!(matches!(
                frame(answer(&store, UserId(1), device, target("t"))),
                ServerFrame::PushRegistered { .. }
            ));
        }
        let one_more = DeviceName::new("extra").unwrap();
        match frame(answer(&store, UserId(1), one_more, target("t"))) {
            ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::NotAllowed),
            other => panic!("{other:?}"),
        }
        let d0 = DeviceName::new("d0").unwrap();
        assert!(matches!(frame(answer(&store, UserId(1), d0, target("new"))), ServerFrame::PushRegistered { .. }));
        assert!(matches!(frame(answer(&store, UserId(2), one_more, target("t"))), ServerFrame::PushRegistered { .. }));
        assert!(matches!(frame(answer(&store, UserId(1), d0, None)), ServerFrame::PushUnregistered { .. }));
        assert!(matches!(frame(answer(&store, UserId(1), one_more, target("t"))), ServerFrame::PushRegistered { .. }));
        assert_eq!(store.push_targets(&[UserId(1)]).unwrap().len(), MAX_PUSH_TARGETS_PER_USER);
    }

    #[test]
    fn a_logged_out_device_registers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let phone = DeviceName::new("phone").unwrap();
        let revocations = Revocations::default();
        revocations.note_device(UserId(1), phone, 100);
        let target = || Some(PushTarget { provider: PushProvider::Apns, token: "t".into() });
        let old = Claims { user: UserId(1), exp: 0, iat: Some(99), device: Some(phone) };
        let text = String::from_utf8(answer(&store, &revocations, &old, target())).unwrap();
        assert!(text.contains("this device was logged out"), "{text}");
        assert!(store.push_targets(&[UserId(1)]).unwrap().is_empty());
        let signed_in_again = Claims { iat: Some(100), ..old };
        let text = String::from_utf8(answer(&store, &revocations, &signed_in_again, target())).unwrap();
        assert!(text.contains("push_registered"), "{text}");
        assert_eq!(store.push_targets(&[UserId(1)]).unwrap().len(), 1);
    }
}

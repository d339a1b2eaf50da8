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

use chatgw_protocol::{server, DeviceName, ErrorCode, PushTarget, UserId};
use chatgw_storage::{MessageStore, StoreError};

/// Devices of one user that may have a push target at once.
pub(crate) const MAX_PUSH_TARGETS_PER_USER: usize = 32;

/// Set (`Some`) or remove `user`'s `device`'s push target; the answer
/// frame (`push_registered`, `push_unregistered` or an `error`).
pub(crate) fn answer(
    store: &dyn MessageStore,
    user: UserId,
    device: DeviceName,
    target: Option<PushTarget>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(96);
    match set(store, user, device, target.as_ref()) {
        Ok(Set::Registered) => {
            if let Some(t) = &target {
                server::push_registered(&mut p, device.as_str(), t.provider);
            }
        }
        Ok(Set::Removed) => server::push_unregistered(&mut p, device.as_str()),
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
}

fn set(
    store: &dyn MessageStore,
    user: UserId,
    device: DeviceName,
    target: Option<&PushTarget>,
) -> Result<Set, StoreError> {
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
    Ok(Set::Registered)
}

#[cfg(test)]
mod tests {
    use chatgw_protocol::{PushProvider, ServerFrame};
    use chatgw_storage::{EmbeddedOptions, EmbeddedStore};

    use super::*;

    #[test]
    fn a_user_has_at_most_the_cap_of_devices_with_targets_and_may_replace_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), &EmbeddedOptions::default()).unwrap();
        let target = |token: &str| Some(PushTarget { provider: PushProvider::Fcm, token: token.into() });
        let frame = |p: Vec<u8>| ServerFrame::parse(std::str::from_utf8(&p).unwrap()).unwrap();
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
}

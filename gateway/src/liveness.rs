//! The store's liveness probe: one small thread that asks the store a cheap
//! question every second and reports the answer to `/healthz` and
//! `/metrics`.
//!
//! Why: the committer learns of an outage only from a failed commit, so an
//! idle gateway on a database that went away kept answering `/healthz` 200
//! and a load balancer kept sending it devices. The probe closes that gap
//! without touching the committer: it runs on its own thread, never on the
//! commit path, and only reports. The committer still decides what is
//! acknowledged and answers `unavailable` when a commit fails; when its
//! probe write proves the store writable again, that clears the probe's
//! failure too (see [`Metrics::store_recovered`]).
//!
//! The question is [`MessageStore::high_water`]: one indexed read of a few
//! rows on PostgreSQL, a point read on the embedded store. It fails when the
//! database is unreachable, the connection was lost (the store's pool then
//! reconnects, with backoff, see `storage-adapter/src/postgres/pool.rs`), or
//! the schema is gone. It cannot see a full disk or a read-only database,
//! which only a write shows: the committer reports those. While the probe
//! fails it asks four times a second, so health comes back soon after the
//! store does; a probe that hangs turns health to `timeout` after
//! [`PROBE_DEADLINE`](crate::metrics::PROBE_DEADLINE).

use std::{io, sync::Arc, thread::JoinHandle, time::Duration};

use chatgw_storage::MessageStore;
use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::metrics::Metrics;

/// Pause between probes while the store answers.
const INTERVAL: Duration = Duration::from_secs(1);
/// Pause between probes while it does not.
const RETRY: Duration = Duration::from_millis(250);

/// The running probe thread.
pub(crate) struct Liveness {
    /// Dropped to stop the thread.
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Liveness {
    /// Probe `store` on a new thread until [`Liveness::stop`].
    pub(crate) fn start(store: Arc<dyn MessageStore>, metrics: Arc<Metrics>) -> io::Result<Liveness> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new().name("chatgw-probe".into()).spawn(move || {
            let mut failing = false;
            loop {
                failing = probe(store.as_ref(), &metrics, failing);
                match stopped.recv_timeout(if failing { RETRY } else { INTERVAL }) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })?;
        Ok(Liveness { stop, thread })
    }

    /// Stop probing and wait for the thread (at most one probe in flight).
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// One probe; logs when the answer changes. Returns whether it failed.
fn probe(store: &dyn MessageStore, metrics: &Metrics, was_failing: bool) -> bool {
    let ticket = metrics.probe_started();
    // Any generator's row will do: the probe is a read that must reach the store.
    let result = store.high_water(0);
    let failure = metrics.probe_finished(ticket, result.as_ref().map(|_| ()));
    match (&failure, was_failing) {
        (Some(f), false) => {
            tracing::error!(cause = f.cause.as_str(), error = %f.detail, "the store does not answer; /healthz 503")
        }
        (None, true) => tracing::info!("the store answers again"),
        _ => {}
    }
    failure.is_some()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use chatgw_protocol::{ConversationId, DeviceName, Group, GroupId, Message, MessageId, UserId};
    use chatgw_storage::{
        Committed, DeviceNote, DeviceRecord, GroupVersion, InboxEntry, InboxPos, MessageHeader, MessageReceipts,
        StoreError, Write,
    };

    use super::*;

    /// A store whose reads fail while `down` is set; nothing else is asked.
    #[derive(Default)]
    struct Flaky {
        down: AtomicBool,
    }

    impl MessageStore for Flaky {
        fn commit(&self, _: &[Write<'_>], _: MessageId) -> Result<Committed, StoreError> {
            unreachable!("the probe never writes")
        }
        fn recover(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn revoke_sessions(&self, _: UserId, _: u64) -> Result<(), StoreError> {
            Err(StoreError::Closed)
        }
        fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
            Ok(Vec::new())
        }
        fn revoke_device(&self, _: UserId, _: DeviceName, _: u64) -> Result<(), StoreError> {
            Err(StoreError::Closed)
        }
        fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
            Ok(Vec::new())
        }
        fn note_devices(&self, _: &[DeviceNote]) -> Result<(), StoreError> {
            Err(StoreError::Closed)
        }
        fn devices(&self, _: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
            Ok(Vec::new())
        }
        fn set_push_target(
            &self,
            _: UserId,
            _: DeviceName,
            _: Option<&chatgw_storage::PushTarget>,
        ) -> Result<(), StoreError> {
            unreachable!("the probe never writes")
        }
        fn push_targets(
            &self,
            _: &[UserId],
        ) -> Result<Vec<(UserId, DeviceName, chatgw_storage::PushTarget)>, StoreError> {
            unreachable!()
        }
        fn put_device_keys(
            &self,
            _: UserId,
            _: DeviceName,
            _: &chatgw_storage::DeviceKeys,
        ) -> Result<bool, StoreError> {
            unreachable!("the probe never writes")
        }
        fn add_one_time_keys(
            &self,
            _: UserId,
            _: DeviceName,
            _: &[chatgw_storage::SignedKey],
        ) -> Result<u64, StoreError> {
            unreachable!("the probe never writes")
        }
        fn one_time_key_count(&self, _: UserId, _: DeviceName) -> Result<u64, StoreError> {
            unreachable!()
        }
        fn claim_one_time_key(
            &self,
            _: UserId,
            _: DeviceName,
        ) -> Result<Option<chatgw_storage::SignedKey>, StoreError> {
            unreachable!("the probe never writes")
        }
        fn device_keys(&self, _: UserId) -> Result<Vec<(DeviceName, chatgw_storage::DeviceKeys)>, StoreError> {
            unreachable!()
        }
        fn remove_device_keys(&self, _: UserId, _: DeviceName) -> Result<bool, StoreError> {
            unreachable!("the probe never writes")
        }
        fn remove_push_target_if(&self, _: UserId, _: DeviceName, _: &str) -> Result<bool, StoreError> {
            unreachable!("the probe never writes")
        }
        fn high_water(&self, _: u16) -> Result<MessageId, StoreError> {
            match self.down.load(Ordering::Relaxed) {
                true => Err(StoreError::Closed),
                false => Ok(MessageId(7)),
            }
        }
        fn message(&self, _: ConversationId, _: MessageId) -> Result<Option<Message>, StoreError> {
            unreachable!()
        }
        fn set_block(&self, _: UserId, _: UserId, _: bool) -> Result<(), StoreError> {
            unreachable!()
        }
        fn blocked_by(&self, _: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError> {
            unreachable!()
        }
        fn set_contacts_only(&self, _: UserId, _: bool) -> Result<(), StoreError> {
            unreachable!()
        }
        fn contacts_only(&self, _: &[UserId]) -> Result<Vec<bool>, StoreError> {
            unreachable!()
        }
        fn conversations(
            &self,
            _: UserId,
            _: Option<MessageId>,
            _: usize,
        ) -> Result<Vec<chatgw_storage::ConversationSummary>, StoreError> {
            unreachable!()
        }
        fn messages_by_client_ids(
            &self,
            _: &[(UserId, &str)],
        ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
            unreachable!()
        }
        fn messages(&self, _: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError> {
            unreachable!()
        }
        fn message_headers(&self, _: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError> {
            unreachable!()
        }
        fn delivery_marks(&self, _: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
            unreachable!()
        }
        fn read_marks(&self, _: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
            unreachable!()
        }
        fn hidden_marks(
            &self,
            _: UserId,
            _: &[(ConversationId, MessageId)],
        ) -> Result<Vec<Option<MessageId>>, StoreError> {
            unreachable!()
        }
        fn message_headers_between(
            &self,
            _: ConversationId,
            _: MessageId,
            _: MessageId,
            _: usize,
        ) -> Result<Vec<MessageHeader>, StoreError> {
            unreachable!()
        }
        fn receipts_of(&self, _: ConversationId, _: MessageId) -> Result<MessageReceipts, StoreError> {
            unreachable!()
        }
        fn versioned_group(&self, _: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
            unreachable!()
        }
        fn inbox_position(&self, _: UserId, _: MessageId) -> Result<InboxPos, StoreError> {
            unreachable!()
        }
        fn inbox_after(&self, _: UserId, _: InboxPos, _: usize) -> Result<Vec<InboxEntry>, StoreError> {
            unreachable!()
        }
        fn history(&self, _: ConversationId, _: Option<MessageId>, _: usize) -> Result<Vec<Message>, StoreError> {
            unreachable!()
        }
    }

    #[test]
    fn a_failing_probe_makes_the_store_unhealthy_until_one_succeeds() {
        let (store, metrics) = (Flaky::default(), Metrics::new());
        assert!(!probe(&store, &metrics, false));
        assert_eq!(metrics.store_failure(), None);
        store.down.store(true, Ordering::Relaxed);
        assert!(probe(&store, &metrics, false));
        let failure = metrics.store_failure().expect("unhealthy");
        assert_eq!(failure.to_string(), "engine: the store is closed while it is being reopened");
        assert!(metrics.render().contains("chatgw_store_writable 0\n"));
        assert!(metrics.render().contains("chatgw_store_errors_total{cause=\"engine\"} 1\n"));
        store.down.store(false, Ordering::Relaxed);
        assert!(!probe(&store, &metrics, true));
        assert_eq!(metrics.store_failure(), None);
        assert!(metrics.render().contains("chatgw_store_writable 1\n"));
    }

    #[test]
    fn a_probe_failure_from_before_a_recovery_is_void() {
        let metrics = Metrics::new();
        let ticket = metrics.probe_started();
        metrics.store_recovered();
        assert_eq!(metrics.probe_finished(ticket, Err(&StoreError::Closed)), None);
        assert_eq!(metrics.store_failure(), None);
    }

    #[test]
    fn a_probe_that_hangs_is_a_timeout() {
        let metrics = Metrics::new();
        let _ticket = metrics.probe_started();
        assert_eq!(metrics.store_failure(), None, "not yet");
        std::thread::sleep(crate::metrics::PROBE_DEADLINE);
        let failure = metrics.store_failure().expect("a timeout");
        assert_eq!(failure.cause.as_str(), "timeout");
    }
}

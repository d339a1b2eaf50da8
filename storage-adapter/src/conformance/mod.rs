//! The `MessageStore` contract as executable checks, written once and run
//! against every backend (the object_store `integration.rs` pattern).
//!
//! Why a shared suite: a backend is done when it passes the same checks as
//! the others, not when it compiles. Each check is a public function taking
//! a [`Backend`], so backends in this crate (`tests/conformance_*.rs`) and
//! the gateway's tests can run it. [`run_all`] runs every check in turn.
//!
//! Only behind the `conformance` feature: nothing here is for production.
//! The checks panic on the first broken promise, naming it.

mod amendments;
mod blocks;
mod cases;
mod concurrent;
mod contacts_only;
mod conversation_list;
mod devices;
mod fleet;
mod hidden;
mod inbox_retention;
mod key_directory;
mod keys_changed;
mod outbox;
mod outcomes;
mod postgres_server;
mod push_targets;
mod retention;
mod revocations;

use std::sync::Arc;

pub use amendments::amendments_replace_the_message_everywhere;
pub use blocks::block_lists;
pub use cases::{
    commit_is_atomic_to_readers, commit_survives_reopen, delivery_marks, high_water_never_goes_back,
    history_pages_newest_first, idempotency_lookups, inbox_pages_in_position_order, message_headers,
    message_headers_between, messages_by_key, outage_then_recover, read_marks_never_move_backwards,
    receipts_of_a_message,
};
use chatgw_protocol::{ConversationId, Message, MessageId, MessageKind, Snowflake, UserId};
pub use concurrent::two_writers_one_pager;
pub use contacts_only::direct_message_settings;
pub use conversation_list::conversation_list_and_unread_counts;
pub use devices::devices_are_noted_and_revoked;
pub use fleet::{
    dense_positions_under_concurrent_writers, group_settings_are_versioned_with_the_record,
    stale_membership_refuses_group_messages,
};
pub use hidden::hidden_marks_are_per_user;
pub use inbox_retention::inbox_sweep_removes_a_prefix_and_keeps_positions;
pub use key_directory::{
    claims_for_several_devices_in_one_call, concurrent_claims_never_share_a_key, key_directory_claims_each_key_once,
};
pub use keys_changed::keys_changed_reaches_each_listed_inbox;
pub use outbox::{outbox_pager_never_skips_concurrent_commits, outbox_records_applied_writes};
pub use outcomes::{
    cursors_resolve_to_positions, duplicate_keys_write_nothing, group_records, group_writes_compare_and_set,
};
pub use postgres_server::TestPostgres;
pub use push_targets::push_targets_are_per_device_and_removed_only_by_their_token;
pub use retention::sweep_removes_expired_idempotency_keys;
pub use revocations::revocations_are_durable_shared_and_never_move_back;

use crate::{InboxEvent, InboxPos, MessageStore};

/// What the suite needs from a backend: empty places to put a store, and
/// handles to them.
pub trait Backend: Sync {
    /// A new, empty place for one store (a directory, a database), by name.
    fn new_place(&self) -> String;

    /// Open the store at `place`. Opening it again after every handle is
    /// dropped sees everything committed before.
    fn open(&self, place: &str) -> Arc<dyn MessageStore>;

    /// A second handle to the store at `place`, as a second gateway process
    /// would hold it. A backend that allows one open handle per place (the
    /// embedded store locks its directory) returns `first`.
    fn second_handle(&self, place: &str, first: &Arc<dyn MessageStore>) -> Arc<dyn MessageStore>;

    /// Cut `store` off from its data the way an outage does (for example by
    /// killing its connections), so that its next commit fails. `false` if
    /// the backend cannot simulate one.
    fn interrupt(&self, place: &str, store: &Arc<dyn MessageStore>) -> bool;

    /// Whether several handles, each with its own id generator and no lock
    /// between them, may commit to one place at once (several gateways on
    /// one database). Such a backend promises dense inbox positions too
    /// (1, 2, 3, ... per inbox), which the checks then assert.
    fn several_writers(&self) -> bool {
        false
    }

    /// Whether idempotency keys expire on their own (a TTL set at write,
    /// Cassandra), so that the retention sweep has nothing to do.
    fn keys_expire_by_ttl(&self) -> bool {
        false
    }

    /// Whether the backend removes old inbox entries
    /// ([`MessageStore::sweep_inboxes`]); one that keeps inboxes forever is
    /// not checked by the inbox retention case.
    fn sweeps_inboxes(&self) -> bool {
        true
    }

    /// Whether an amendment committed after a delete of the same message
    /// leaves the tombstone (the backend reads before it writes); false
    /// where writes are blind (Cassandra), see docs/STORAGE.md.
    fn deletes_are_final(&self) -> bool {
        true
    }
}

/// Calls the macro `$callback` with the name of every check, so a
/// backend's test file names no check itself and a new check reaches every
/// backend: `for_each_conformance_case!(my_tests)` expands to
/// `my_tests!(commit_survives_reopen, ...)`.
#[macro_export]
macro_rules! for_each_conformance_case {
    ($callback:ident) => {
        $callback!(
            commit_survives_reopen,
            commit_is_atomic_to_readers,
            high_water_never_goes_back,
            idempotency_lookups,
            message_headers,
            messages_by_key,
            delivery_marks,
            read_marks_never_move_backwards,
            message_headers_between,
            inbox_pages_in_position_order,
            cursors_resolve_to_positions,
            duplicate_keys_write_nothing,
            history_pages_newest_first,
            group_records,
            group_writes_compare_and_set,
            receipts_of_a_message,
            outage_then_recover,
            two_writers_one_pager,
            dense_positions_under_concurrent_writers,
            stale_membership_refuses_group_messages,
            group_settings_are_versioned_with_the_record,
            sweep_removes_expired_idempotency_keys,
            revocations_are_durable_shared_and_never_move_back,
            block_lists,
            direct_message_settings,
            devices_are_noted_and_revoked,
            push_targets_are_per_device_and_removed_only_by_their_token,
            key_directory_claims_each_key_once,
            concurrent_claims_never_share_a_key,
            claims_for_several_devices_in_one_call,
            conversation_list_and_unread_counts,
            inbox_sweep_removes_a_prefix_and_keeps_positions,
            amendments_replace_the_message_everywhere,
            hidden_marks_are_per_user,
            keys_changed_reaches_each_listed_inbox,
            outbox_records_applied_writes,
            outbox_pager_never_skips_concurrent_commits,
        );
    };
}

/// Every check, one after the other, each on a fresh place.
pub fn run_all(backend: &dyn Backend) {
    macro_rules! run_each {
        ($($case:ident),* $(,)?) => {$( $case(backend); )*};
    }
    crate::for_each_conformance_case!(run_each);
}

/// A text message from `from` to `to` with the next id of `ids`.
pub fn text(ids: &mut Snowflake, from: u64, to: u64, client_id: &str) -> Message {
    let id = ids.next_id();
    Message {
        id,
        conversation: ConversationId::direct(UserId(from), UserId(to)),
        from: UserId(from),
        kind: MessageKind::Text,
        client_id: client_id.into(),
        ts: Snowflake::unix_ms(id),
        body: format!("\"body of {client_id}\""),
        amended: None,
    }
}

/// Ids of inbox events or messages, for readable assertions.
pub(crate) fn ids<T>(items: &[T], id: impl Fn(&T) -> MessageId) -> Vec<MessageId> {
    items.iter().map(id).collect()
}

/// The first `limit` events of `user`'s inbox, without their positions.
pub(crate) fn inbox(s: &dyn MessageStore, user: u64, limit: usize) -> Vec<InboxEvent> {
    s.inbox_after(UserId(user), InboxPos(0), limit).expect("read the inbox").into_iter().map(|e| e.event).collect()
}

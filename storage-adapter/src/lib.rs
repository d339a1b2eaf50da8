//! Everything chatgw persists, behind one trait.
//!
//! [`MessageStore`] is the seam between the gateway and a storage engine. It
//! speaks only in protocol types (messages, receipts, users, conversations),
//! never in engine terms, so the embedded default ([`EmbeddedStore`], on the
//! fjall LSM tree) and remote backends can be swapped without touching the
//! gateway. [`PostgresStore`] keeps the same tables in a PostgreSQL
//! database that several gateways can share (docs/STORAGE.md).
//!
//! The data model follows the partition/clustering shape of a wide-column
//! store:
//! - messages, partitioned by conversation, clustered by message id;
//! - a per-user inbox (the delivery index that `sync` scans), ordered by
//!   inbox position (assigned at commit, see [`InboxPos`]), holding small
//!   references to messages and the receipts meant for that user;
//! - idempotency keys `(sender, client id) -> message id`;
//! - delivery marks per `(message, recipient)`, read marks per
//!   `(conversation, reader)`, and for groups read marks per
//!   `(message, reader)` (for "message info");
//! - group membership records;
//! - block lists, `(blocker, blocked)` pairs;
//! - a conversation list per user: per `(user, conversation)` the last
//!   message's key and the unread count, kept by the commit
//!   ([`ConversationSummary`]).
//!
//! Durability contract: [`MessageStore::commit`] applies a whole batch
//! atomically and returns only once it is on stable storage. The gateway
//! batches many requests into one commit (group commit); the store never
//! decides on its own to buffer.
//!
//! Several writers: what two gateways may race on is decided by the store,
//! per write, inside the commit, and reported back ([`Committed`]): the
//! inbox position of every event (so readers page in commit order, whoever
//! chose the ids), whether a message's idempotency key was already taken
//! ([`WriteOutcome::Duplicate`]), and whether a group record changed since
//! the change was computed ([`WriteOutcome::Conflict`]).
//!
//! Failure contract: a failed commit leaves the store refusing writes until
//! [`MessageStore::recover`] succeeds (a full disk or a read-only file system
//! is not fixed by retrying the same write); reads keep working where the
//! engine can serve them. Recovery is the store's own business: the caller
//! only asks, with backoff, and learns why from [`StoreError::failure`].

#![warn(missing_docs)]

mod cassandra;
#[cfg(test)]
mod check_history;
mod codec;
#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod conformance;
mod conversation_list;
mod devices;
mod embedded;
mod error;
mod model;
mod outbox;
mod postgres;
mod retention;

pub use cassandra::{
    CassandraOptions, CassandraStore, Replication, UrlError as CassandraUrlError,
    SCHEMA_VERSION as CASSANDRA_SCHEMA_VERSION,
};
pub use chatgw_protocol::{DeviceKeys, PushProvider, PushTarget, SignedKey};
pub use conversation_list::{counts_as_unread, ConversationSummary, MAX_RECOUNT as MAX_UNREAD_RECOUNT};
pub use devices::{DeviceNote, DeviceRecord};
pub use embedded::{EmbeddedOptions, EmbeddedStore, IntegrityCounts, IntegrityReport, Violation};
pub use error::{ErrorCause, StoreError, WriteFailure};
pub use model::{
    CommitStats, Committed, GroupVersion, InboxEntry, InboxEvent, InboxPos, InboxSweep, KeySweep, MessageHeader,
    MessageReceipts, Write, WriteOutcome,
};
pub use outbox::{OutboxDetail, OutboxOptions, OutboxPos, OutboxRecord};
pub use postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION};
pub use retention::retention_cutoff;

use chatgw_protocol::{ConversationId, DeviceName, Group, GroupId, Message, MessageId, UserId};

/// Persistent state of the gateway. Implementations are shared by every
/// thread of the process; reads may run concurrently with a commit.
pub trait MessageStore: Send + Sync + 'static {
    /// Apply `writes` atomically and durably, and record `high_water` as the
    /// largest id handed out so far by its generator. Returns once the batch
    /// survives a crash or power loss, with one outcome per write in input
    /// order: applied (with the inbox position of each event), a duplicate
    /// idempotency key, or a group conflict; a write that is not applied
    /// writes nothing at all. The whole call either succeeds or fails: a
    /// backend that retries internally (a deadlock between writers) retries
    /// the whole batch.
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError>;

    /// After a failed [`MessageStore::commit`], try to make the store
    /// writable again without a restart. Returns `Ok` once the store has
    /// proven that it takes a durable write (and at once if nothing failed);
    /// until then commits may keep failing with
    /// [`StoreError::Unwritable`]. Call it again, with a pause, after an
    /// error. Nothing committed before the failure is lost; the failed
    /// batch itself may or may not be present afterwards (the same as for a
    /// commit interrupted by a crash), so requests in it are retried by
    /// their idempotency keys. Reads may run while it works.
    fn recover(&self) -> Result<(), StoreError>;

    /// The largest id of Snowflake generator `node` ever recorded by
    /// [`MessageStore::commit`], or zero: where that node's ids resume after
    /// a restart. Per generator because each node only needs its own ids
    /// never to repeat, and resuming above another node's ids would carry
    /// that node's clock over. A backend with a single writer may answer
    /// the largest id of all (the embedded store does).
    fn high_water(&self, node: u16) -> Result<MessageId, StoreError>;

    /// One message of a conversation.
    fn message(&self, conversation: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError>;

    /// Batched lookups: each takes every key a group commit needs at once
    /// and answers in input order, one answer per key (duplicates
    /// included), so a backend with a network round trip is asked once per
    /// kind per batch rather than once per request. An empty input is
    /// answered with an empty output without touching the engine.
    ///
    /// The message each `(sender, client id)` idempotency key names, if any.
    fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError>;

    /// Each `(conversation, id)` message in full, `None` where the
    /// conversation holds no such message (batched like
    /// [`MessageStore::messages_by_client_ids`]): what the committer compares
    /// a reused client id's new message with.
    fn messages(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError>;

    /// Sender and kind of each `(conversation, id)` message, `None` where
    /// the conversation holds no such message. Never reads message bodies
    /// into memory (batched like [`MessageStore::messages_by_client_ids`]).
    fn message_headers(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError>;

    /// Whether each `(conversation, message, user)` delivery mark exists:
    /// `user` acknowledged delivery of the message (batched like
    /// [`MessageStore::messages_by_client_ids`]).
    fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError>;

    /// How far each `(conversation, reader)` has read, `None` where the
    /// reader never read it (batched like
    /// [`MessageStore::messages_by_client_ids`]).
    fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError>;

    /// For each `(conversation, message)`, the event with which `user`
    /// hid it from themselves ([`Write::Hide`]), `None` where they did not
    /// (batched like [`MessageStore::messages_by_client_ids`]).
    fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError>;

    /// Headers (id, sender, kind) of the messages of a conversation with
    /// ids in `after < id <= up_to`, oldest first, at most `limit` of them.
    /// The work is proportional to what is returned, never to the size of
    /// the conversation or of the bodies: this is what a group `read`
    /// walks to find whom to send read receipts.
    fn message_headers_between(
        &self,
        conversation: ConversationId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageHeader>, StoreError>;

    /// Who acknowledged delivery of this message and who read it (read
    /// marks per message are kept for groups; for direct conversations see
    /// [`MessageStore::read_marks`]).
    fn receipts_of(&self, conversation: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError>;

    /// A group's membership and the version of its record, if the group
    /// exists. A change computed from it is written with that version as
    /// [`Write::Group::based_on`](Write::Group).
    fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError>;

    /// Record that `user`'s sessions were revoked at `at` (Unix seconds):
    /// tokens of `user` issued before `at` are refused from now on
    /// (docs/PROTOCOL.md, "Session revocation"). Durable once it returns,
    /// and shared by every gateway on the store. A user's revocation time
    /// never moves back: recording an earlier `at` than the one stored
    /// changes nothing. Apart from [`MessageStore::commit`] because it is
    /// an operator's action, rare and independent of any message.
    fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError>;

    /// Every user whose sessions were ever revoked, with the latest
    /// revocation time (Unix seconds), in no particular order: what a
    /// gateway loads at start and re-reads to learn of revocations made
    /// through another gateway. One row per revoked user, so it stays
    /// small (revocation is an operator's action).
    fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError>;

    // Named devices (docs/PROTOCOL.md, "Devices"; docs/STORAGE.md,
    // "Devices"). Outside `commit`, like the revocations above: rare,
    // independent of any message, durable once they return.

    /// Record that `user`'s `device` was logged out at `at` (Unix
    /// seconds): its tokens issued before `at` are refused from now on.
    /// Never moves back, like [`MessageStore::revoke_sessions`].
    fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError>;

    /// Every device revocation, with its latest time, in no particular
    /// order: what a gateway loads at start and re-reads with
    /// [`MessageStore::revocations`].
    fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError>;

    /// Record that these named devices connected: per `(user, device)` the
    /// first time seen never moves later, the last active time and the
    /// token issue time never move back (notes may arrive out of order).
    fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError>;

    /// `user`'s devices ever noted, in name order, each with its latest
    /// revocation time if it has one.
    fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError>;

    // Push targets (docs/PROTOCOL.md, "Push notifications"; docs/STORAGE.md,
    // "Push targets"): at most one per named device, outside `commit` like
    // the devices above.

    /// Set `user`'s `device`'s push target, replacing the one it had, or
    /// remove it (`None`; removing a missing one changes nothing). Durable
    /// once it returns.
    fn set_push_target(&self, user: UserId, device: DeviceName, target: Option<&PushTarget>) -> Result<(), StoreError>;

    /// The push targets of every device of `users`, as `(user, device,
    /// target)` in no particular order; users without one have no entry.
    /// Batched: the push worker asks for the recipients of many messages at
    /// once.
    fn push_targets(&self, users: &[UserId]) -> Result<Vec<(UserId, DeviceName, PushTarget)>, StoreError>;

    /// Remove `user`'s `device`'s push target only if its token is still
    /// `token`; true if one was removed. For a token a provider reported
    /// dead: the device may have registered a new one meanwhile, which
    /// stays. Atomic with respect to [`MessageStore::set_push_target`].
    fn remove_push_target_if(&self, user: UserId, device: DeviceName, token: &str) -> Result<bool, StoreError>;

    // The key directory (docs/E2EE.md): each named device's published keys
    // and one-time keys, outside `commit` like the push targets. Signatures
    // are checked before anything reaches the store.

    /// Publish `user`'s `device`'s keys, replacing what it had. When its
    /// signing or identity key differs from the stored one (or none was
    /// stored) its one-time keys are dropped, since they belonged to
    /// another account, and the answer is true: the user's devices or
    /// identities changed. Durable once it returns.
    fn put_device_keys(&self, user: UserId, device: DeviceName, keys: &DeviceKeys) -> Result<bool, StoreError>;

    /// Add one-time keys to `user`'s `device` (an id already stored is
    /// replaced); the number it holds afterwards.
    fn add_one_time_keys(&self, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64, StoreError>;

    /// How many one-time keys `user`'s `device` holds.
    fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError>;

    /// Remove and return one of `user`'s `device`'s one-time keys, or
    /// `None` when it has none left. Atomic: two claims, from any handles
    /// of the store, never return the same key.
    fn claim_one_time_key(&self, user: UserId, device: DeviceName) -> Result<Option<SignedKey>, StoreError>;

    /// [`claim_one_time_key`](Self::claim_one_time_key) for each of
    /// `devices` of `user`, in order: one bundle fetch. Each claim is as
    /// atomic as a single one; a backend may make them durable together.
    fn claim_one_time_keys(&self, user: UserId, devices: &[DeviceName]) -> Result<Vec<Option<SignedKey>>, StoreError> {
        devices.iter().map(|d| self.claim_one_time_key(user, *d)).collect()
    }

    /// Every device of `user` that published keys, with them, in name
    /// order.
    fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError>;

    /// Remove `user`'s `device`'s keys and one-time keys (at logout); true
    /// if it had published keys.
    fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError>;

    /// Whether every inbox's positions are 1, 2, 3, ... in commit order,
    /// with no position skipped, whatever number of writers share the
    /// store. Then a live event whose position is more than one above the
    /// last one a device got means the device missed something, and the
    /// gateway reads the missing events from the store (docs/ARCHITECTURE.md,
    /// "Catch-up"). False (the default) where positions only increase.
    fn dense_positions(&self) -> bool {
        false
    }

    /// Record durably that `blocker` blocks `target` (`on`) or no longer
    /// does; returns once it is on stable storage. Idempotent: blocking a
    /// blocked user or unblocking one not blocked changes nothing. Kept
    /// out of [`MessageStore::commit`] because it is rare and touches no
    /// inbox, so no batch waits for it; a store refusing writes refuses
    /// it too ([`StoreError::Unwritable`]).
    fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError>;

    /// The users each of `users` blocks, each once, in ascending order (on
    /// backends that store ids as signed integers, ids above `i64::MAX`
    /// come first); one list per user, in input order (batched like
    /// [`MessageStore::messages_by_client_ids`]: the committer asks for
    /// every recipient of a batch at once).
    fn blocked_by(&self, users: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError>;

    /// Record durably whether `user` takes direct messages only from users
    /// they share a conversation with (`on`) or from everyone (the default,
    /// and what a user never set reads as); returns once it is on stable
    /// storage. Idempotent, and outside [`MessageStore::commit`] like
    /// [`MessageStore::set_block`].
    fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError>;

    /// Whether each of `users` takes direct messages from contacts only, in
    /// input order (batched like [`MessageStore::messages_by_client_ids`]:
    /// the committer asks for every direct recipient of a batch at once,
    /// with their block lists).
    fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError>;

    /// A group's membership, if the group exists.
    fn group(&self, id: GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self.versioned_group(id)?.map(|(g, _)| g))
    }

    /// Up to `limit` events of `user`'s inbox at positions greater than
    /// `after`, in position order (commit order), each with its position,
    /// messages resolved to their full content.
    fn inbox_after(&self, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>, StoreError>;

    /// Where a device's cursor (the id of the last inbox event it received)
    /// stands in `user`'s inbox: the position of that event; for a cursor
    /// that is no event of the inbox, the highest position whose event id is
    /// at or below it (on one writer, exactly what an id cursor meant); zero
    /// for the cursor zero or when nothing is at or below it.
    fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError>;

    /// One bounded step of the idempotency-key retention sweep: look at up
    /// to `limit` keys in the backend's key order, starting after `after`
    /// (from the first key if `None`), and remove those whose message id is
    /// below `older_than` (a Snowflake id: the message ids carry their
    /// creation time, so the age of a key needs no column of its own). Never
    /// touches messages, inbox entries or keys of newer messages; a key
    /// bound by a commit running at the same time is kept. Runs beside
    /// commits, never inside one: a small `limit` bounds how long each step
    /// holds anything. The caller passes [`KeySweep::next`] back as `after`
    /// until it is `None` (docs/STORAGE.md, "Retention").
    ///
    /// The default does nothing: for a backend whose keys expire on their
    /// own (Cassandra writes them with a TTL).
    fn sweep_idempotency_keys(
        &self,
        after: Option<(UserId, &str)>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<KeySweep, StoreError> {
        let _ = (after, older_than, limit);
        Ok(KeySweep::default())
    }

    /// One bounded step of the inbox retention sweep: look at up to `limit`
    /// inboxes in the backend's user order, starting at `from` (the first
    /// if `None`), and remove from each the leading entries (in position
    /// order) whose event id is below `older_than`, at most `limit` entries
    /// in the whole step (an inbox with more is where the next step starts). Only a prefix is ever removed: the kept entries keep
    /// their positions and stay gap-free, and the inbox simply starts above
    /// position 1 (readers paging from below its first entry get its first
    /// entry). Never touches messages, marks or any other table. Runs
    /// beside commits, never inside one; the caller passes
    /// [`InboxSweep::next`] back as `from` until it is `None`
    /// (docs/STORAGE.md, "Inbox retention").
    ///
    /// The default does nothing: for a backend that keeps inboxes forever.
    fn sweep_inboxes(
        &self,
        from: Option<UserId>,
        older_than: MessageId,
        limit: usize,
    ) -> Result<InboxSweep, StoreError> {
        let _ = (from, older_than, limit);
        Ok(InboxSweep::default())
    }

    /// The highest position the inbox retention removed from `user`'s
    /// inbox, zero if it removed none: a device whose position is below it
    /// missed events that are gone (the `truncated` flag of `synced`,
    /// docs/PROTOCOL.md). The default (nothing is ever removed) is zero.
    fn inbox_floor(&self, user: UserId) -> Result<InboxPos, StoreError> {
        let _ = user;
        Ok(InboxPos(0))
    }

    /// Up to `limit` messages of a conversation older than `before` (all if
    /// `None`), newest first.
    fn history(
        &self,
        conversation: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;

    /// One page of `user`'s conversation list: the conversations whose
    /// last message (the newest that reached `user`'s inbox) is older than
    /// `before` (all if `None`), newest first, at most `limit`, each with
    /// `user`'s unread count. Answered from the rows the commits keep
    /// (docs/STORAGE.md, "Conversation list"), never from message history:
    /// the work is proportional to the user's conversations at most.
    fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError>;

    // The outbox (docs/EVENTS.md; `outbox` in this crate): one record per
    // applied write that put an event in an inbox, committed with it.

    /// From now on, let every [`MessageStore::commit`] append one outbox
    /// record per applied write to the same atomic, durable batch. Call it
    /// once, before the first commit. Fails with
    /// [`StoreError::Unsupported`] on a backend without an outbox (the
    /// default).
    fn enable_outbox(&self, options: OutboxOptions) -> Result<(), StoreError> {
        let _ = options;
        Err(StoreError::Unsupported { backend: "this", what: "an event outbox" })
    }

    /// Up to `limit` outbox records at positions above `after`, in position
    /// (commit) order. A record that commits later always gets a higher
    /// position than every record already visible, so paging from the last
    /// position seen never skips one.
    fn outbox_after(&self, after: OutboxPos, limit: usize) -> Result<Vec<OutboxRecord>, StoreError> {
        let _ = (after, limit);
        Ok(Vec::new())
    }

    /// The highest outbox position ever assigned, zero if none: how far
    /// a consumer could be.
    fn outbox_head(&self) -> Result<OutboxPos, StoreError> {
        Ok(OutboxPos(0))
    }

    /// Where `consumer` stands: the last position it has durably finished
    /// with, zero if it never set one.
    fn outbox_cursor(&self, consumer: &str) -> Result<OutboxPos, StoreError> {
        let _ = consumer;
        Ok(OutboxPos(0))
    }

    /// Record durably that `consumer` is done with every record up to
    /// `pos` (a cursor never moves back: a lower `pos` changes nothing),
    /// and remove the records at or below the lowest cursor of all
    /// consumers, so the outbox holds only what someone still needs. Only
    /// cursors ever set count: a new consumer holds records from the first
    /// time it sets its cursor (setting it to [`MessageStore::outbox_cursor`]'s
    /// answer registers it where it stands).
    fn set_outbox_cursor(&self, consumer: &str, pos: OutboxPos) -> Result<(), StoreError> {
        let _ = (consumer, pos);
        Err(StoreError::Unsupported { backend: "this", what: "an event outbox" })
    }
}

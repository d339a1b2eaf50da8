//! A store wrapper for tests that counts what the committer asks of the
//! store, call by call, so tests can pin how much store work a batch or a
//! request costs.

use std::sync::atomic::{AtomicU64, Ordering};

use chatgw_protocol::{ConversationId, DeviceKeys, DeviceName, Group, GroupId, Message, MessageId, SignedKey, UserId};
use chatgw_storage::{
    Committed, DeviceNote, DeviceRecord, EmbeddedStore, GroupVersion, InboxEntry, InboxPos, MessageHeader,
    MessageReceipts, MessageStore, StoreError, Write,
};

/// Calls of each read the committer makes, and header rows scanned.
#[derive(Default, Debug)]
pub(super) struct Counts {
    pub(super) client_ids: AtomicU64,
    pub(super) headers: AtomicU64,
    pub(super) messages: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) reads: AtomicU64,
    pub(super) header_scans: AtomicU64,
    pub(super) rows_scanned: AtomicU64,
    pub(super) groups: AtomicU64,
    pub(super) blocks: AtomicU64,
    pub(super) settings: AtomicU64,
    pub(super) other_reads: AtomicU64,
}

impl Counts {
    /// Every read call so far (scans included), summed.
    pub(super) fn calls(&self) -> u64 {
        [
            &self.client_ids,
            &self.headers,
            &self.messages,
            &self.delivered,
            &self.reads,
            &self.header_scans,
            &self.groups,
            &self.blocks,
            &self.settings,
            &self.other_reads,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    pub(super) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// An embedded store that counts its reads.
pub(super) struct CountingStore {
    pub(super) inner: EmbeddedStore,
    pub(super) counts: Counts,
}

impl CountingStore {
    pub(super) fn open(dir: &std::path::Path) -> Self {
        let inner = EmbeddedStore::open(dir, &chatgw_storage::EmbeddedOptions::default()).expect("open store");
        CountingStore { inner, counts: Counts::default() }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl MessageStore for CountingStore {
    fn commit(&self, writes: &[Write<'_>], high_water: MessageId) -> Result<Committed, StoreError> {
        self.inner.commit(writes, high_water)
    }
    fn recover(&self) -> Result<(), StoreError> {
        self.inner.recover()
    }
    fn high_water(&self, node: u16) -> Result<MessageId, StoreError> {
        self.inner.high_water(node)
    }
    fn revoke_sessions(&self, user: UserId, at: u64) -> Result<(), StoreError> {
        self.inner.revoke_sessions(user, at)
    }
    fn revocations(&self) -> Result<Vec<(UserId, u64)>, StoreError> {
        self.inner.revocations()
    }
    fn revoke_device(&self, user: UserId, device: DeviceName, at: u64) -> Result<(), StoreError> {
        self.inner.revoke_device(user, device, at)
    }
    fn device_revocations(&self) -> Result<Vec<(UserId, DeviceName, u64)>, StoreError> {
        self.inner.device_revocations()
    }
    fn note_devices(&self, notes: &[DeviceNote]) -> Result<(), StoreError> {
        self.inner.note_devices(notes)
    }
    fn devices(&self, user: UserId) -> Result<Vec<DeviceRecord>, StoreError> {
        self.inner.devices(user)
    }
    fn set_push_target(
        &self,
        user: UserId,
        device: DeviceName,
        target: Option<&chatgw_storage::PushTarget>,
    ) -> Result<(), StoreError> {
        self.inner.set_push_target(user, device, target)
    }
    fn push_targets(
        &self,
        users: &[UserId],
    ) -> Result<Vec<(UserId, DeviceName, chatgw_storage::PushTarget)>, StoreError> {
        self.inner.push_targets(users)
    }
    fn remove_push_target_if(&self, user: UserId, device: DeviceName, token: &str) -> Result<bool, StoreError> {
        self.inner.remove_push_target_if(user, device, token)
    }
    fn put_device_keys(&self, user: UserId, device: DeviceName, keys: &DeviceKeys) -> Result<bool, StoreError> {
        self.inner.put_device_keys(user, device, keys)
    }
    fn add_one_time_keys(&self, user: UserId, device: DeviceName, keys: &[SignedKey]) -> Result<u64, StoreError> {
        self.inner.add_one_time_keys(user, device, keys)
    }
    fn one_time_key_count(&self, user: UserId, device: DeviceName) -> Result<u64, StoreError> {
        self.inner.one_time_key_count(user, device)
    }
    fn claim_one_time_key(&self, user: UserId, device: DeviceName) -> Result<Option<SignedKey>, StoreError> {
        self.inner.claim_one_time_key(user, device)
    }
    fn claim_one_time_keys(&self, user: UserId, devices: &[DeviceName]) -> Result<Vec<Option<SignedKey>>, StoreError> {
        self.inner.claim_one_time_keys(user, devices)
    }
    fn device_keys(&self, user: UserId) -> Result<Vec<(DeviceName, DeviceKeys)>, StoreError> {
        self.inner.device_keys(user)
    }
    fn remove_device_keys(&self, user: UserId, device: DeviceName) -> Result<bool, StoreError> {
        self.inner.remove_device_keys(user, device)
    }
    fn set_block(&self, blocker: UserId, target: UserId, on: bool) -> Result<(), StoreError> {
        self.inner.set_block(blocker, target, on)
    }
    fn blocked_by(&self, users: &[UserId]) -> Result<Vec<Vec<UserId>>, StoreError> {
        bump(&self.counts.blocks);
        self.inner.blocked_by(users)
    }
    fn set_contacts_only(&self, user: UserId, on: bool) -> Result<(), StoreError> {
        self.inner.set_contacts_only(user, on)
    }
    fn contacts_only(&self, users: &[UserId]) -> Result<Vec<bool>, StoreError> {
        bump(&self.counts.settings);
        self.inner.contacts_only(users)
    }
    fn message(&self, c: ConversationId, id: MessageId) -> Result<Option<Message>, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.message(c, id)
    }
    fn messages_by_client_ids(
        &self,
        keys: &[(UserId, &str)],
    ) -> Result<Vec<Option<(ConversationId, MessageId)>>, StoreError> {
        bump(&self.counts.client_ids);
        self.inner.messages_by_client_ids(keys)
    }
    fn conversations(
        &self,
        user: UserId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<chatgw_storage::ConversationSummary>, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.conversations(user, before, limit)
    }
    fn messages(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<Message>>, StoreError> {
        bump(&self.counts.messages);
        self.inner.messages(keys)
    }
    fn message_headers(&self, keys: &[(ConversationId, MessageId)]) -> Result<Vec<Option<MessageHeader>>, StoreError> {
        bump(&self.counts.headers);
        self.inner.message_headers(keys)
    }
    fn delivery_marks(&self, keys: &[(ConversationId, MessageId, UserId)]) -> Result<Vec<bool>, StoreError> {
        bump(&self.counts.delivered);
        self.inner.delivery_marks(keys)
    }
    fn read_marks(&self, keys: &[(ConversationId, UserId)]) -> Result<Vec<Option<MessageId>>, StoreError> {
        bump(&self.counts.reads);
        self.inner.read_marks(keys)
    }
    fn hidden_marks(
        &self,
        user: UserId,
        keys: &[(ConversationId, MessageId)],
    ) -> Result<Vec<Option<MessageId>>, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.hidden_marks(user, keys)
    }
    fn message_headers_between(
        &self,
        c: ConversationId,
        after: MessageId,
        up_to: MessageId,
        limit: usize,
    ) -> Result<Vec<MessageHeader>, StoreError> {
        bump(&self.counts.header_scans);
        let rows = self.inner.message_headers_between(c, after, up_to, limit)?;
        self.counts.rows_scanned.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(rows)
    }
    fn receipts_of(&self, c: ConversationId, id: MessageId) -> Result<MessageReceipts, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.receipts_of(c, id)
    }
    fn versioned_group(&self, id: GroupId) -> Result<Option<(Group, GroupVersion)>, StoreError> {
        bump(&self.counts.groups);
        self.inner.versioned_group(id)
    }
    fn inbox_after(&self, user: UserId, after: InboxPos, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.inbox_after(user, after, limit)
    }
    fn inbox_position(&self, user: UserId, cursor: MessageId) -> Result<InboxPos, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.inbox_position(user, cursor)
    }
    fn inbox_floor(&self, user: UserId) -> Result<InboxPos, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.inbox_floor(user)
    }
    fn history(&self, c: ConversationId, before: Option<MessageId>, limit: usize) -> Result<Vec<Message>, StoreError> {
        bump(&self.counts.other_reads);
        self.inner.history(c, before, limit)
    }
}

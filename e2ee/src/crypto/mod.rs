//! [`DeviceCrypto`]: everything one device knows and does, without I/O.
//!
//! It takes what the server sent (key bundles, `message` events, group
//! membership) and returns what to send (envelopes) or what a message said,
//! so the rules are tested without a gateway and any transport can drive
//! it; [`crate::SecureClient`] drives it over a [`chatgw_client::Client`].

use std::collections::BTreeSet;

use chatgw_client::MessageEvent;
use chatgw_protocol::{ConversationRef, DeviceName, GroupId, KeyBundle, MessageId, MessageKind, UserId};
use serde::{Deserialize, Serialize};

mod open;

use crate::{
    account::{AccountState, DeviceAccount},
    bundle::{curve, verify_bundle},
    envelope::{split_entries, Envelope, GroupCiphertext, OlmEntry, ENVELOPE_VERSION, MAX_BODY_LITERAL},
    error::{EncryptError, KeysError},
    group::{GroupSessions, GroupState, RotationPolicy},
    olm::{OlmSessions, OlmState},
    payload::{inner_kind, Conversation, Payload, Sender},
    safety::safety_number,
    seen::Seen,
    trust::{Contacts, TrustEvent},
};

/// The version of [`DeviceCrypto::to_bytes`]'s format.
const STATE_VERSION: u32 = 1;

/// A message opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// Server id.
    pub id: MessageId,
    /// Sender.
    pub from: UserId,
    /// The sending device.
    pub device: String,
    /// The conversation: the other user of a direct message (as this
    /// device's user sees it), or the group.
    pub conversation: ConversationRef,
    /// The real kind.
    pub kind: MessageKind,
    /// The real body.
    pub body: String,
    /// Commit time, Unix milliseconds.
    pub ts: u64,
}

/// What an `encrypted` message turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A message for the user.
    Message(Decrypted),
    /// A group session key, now installed.
    RoomKey {
        /// The group.
        group: GroupId,
        /// Whose session.
        from: UserId,
        /// Their device.
        device: String,
        /// Megolm session id.
        session_id: String,
    },
}

/// What a group send consists of: key shares first (when a session is new
/// or devices joined), then the message.
#[derive(Clone, Debug)]
pub struct GroupSend {
    /// `room_key` envelopes (`k` only), each within the body limit.
    pub key_shares: Vec<Envelope>,
    /// The message (`g` only).
    pub message: Envelope,
}

/// One device's end-to-end encryption state.
pub struct DeviceCrypto {
    account: DeviceAccount,
    olm: OlmSessions,
    groups: GroupSessions,
    contacts: Contacts,
    seen: Seen,
    policy: RotationPolicy,
    /// The last inbox event this device processed (its sync cursor).
    cursor: u64,
}

/// The state as written: borrows what needs no conversion.
#[derive(Serialize)]
struct CryptoStateOut<'a> {
    version: u32,
    account: AccountState,
    olm: OlmState,
    groups: GroupState,
    contacts: &'a Contacts,
    seen: &'a Seen,
    cursor: u64,
}

#[derive(Deserialize)]
struct CryptoState {
    version: u32,
    account: AccountState,
    olm: OlmState,
    groups: GroupState,
    contacts: Contacts,
    seen: Seen,
    #[serde(default)]
    cursor: u64,
}

impl DeviceCrypto {
    /// A new device with a fresh account.
    pub fn new(user: UserId, device: DeviceName) -> DeviceCrypto {
        DeviceCrypto {
            account: DeviceAccount::new(user, device),
            olm: OlmSessions::default(),
            groups: GroupSessions::default(),
            contacts: Contacts::default(),
            seen: Seen::default(),
            policy: RotationPolicy::default(),
            cursor: 0,
        }
    }

    /// The last inbox event processed: what `sync` continues from after a
    /// restart.
    pub fn cursor(&self) -> MessageId {
        MessageId(self.cursor)
    }

    /// Record the last inbox event processed.
    pub fn set_cursor(&mut self, cursor: MessageId) {
        self.cursor = cursor.0;
    }

    /// Change when group sessions rotate.
    pub fn set_rotation_policy(&mut self, policy: RotationPolicy) {
        self.policy = policy;
    }

    /// The account (keys to publish).
    pub fn account(&self) -> &DeviceAccount {
        &self.account
    }

    /// The account, to build an upload.
    pub fn account_mut(&mut self) -> &mut DeviceAccount {
        &mut self.account
    }

    /// The contacts' devices as first seen.
    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }

    fn me(&self) -> (u64, String) {
        (self.account.user().0, self.account.device().as_str().to_owned())
    }

    /// Take `user`'s whole device list, fetched at `now` (Unix seconds):
    /// every bundle is verified first (one bad bundle refuses them all);
    /// sessions are opened with devices that have none if `open_sessions`.
    /// Returns what changed, for the application to show.
    pub fn learn_devices(
        &mut self,
        user: UserId,
        bundles: &[KeyBundle],
        now: u64,
        open_sessions: bool,
    ) -> Result<Vec<TrustEvent>, KeysError> {
        let verified = bundles.iter().map(|b| verify_bundle(user, b)).collect::<Result<Vec<_>, _>>()?;
        let (my_user, my_device) = self.me();
        let verified: Vec<_> =
            verified.into_iter().filter(|b| !(user.0 == my_user && b.device.as_str() == my_device)).collect();
        let events = self.contacts.learn(user, &verified, now);
        for event in &events {
            match event {
                TrustEvent::KeysChanged { device, .. } | TrustEvent::DeviceGone { device, .. } => {
                    self.olm.forget(user.0, device);
                    self.groups.rotate_shared_with(user.0, Some(device));
                }
                TrustEvent::NewDevice { .. } => {}
            }
        }
        if open_sessions {
            for b in &verified {
                if !self.olm.has(user.0, b.device.as_str()) {
                    self.olm
                        .open(
                            self.account.olm(),
                            user.0,
                            b.device.as_str(),
                            curve(&b.identity_key),
                            curve(&b.session_key),
                        )
                        .map_err(|e| KeysError::Session {
                            user,
                            device: b.device.as_str().to_owned(),
                            reason: e.to_string(),
                        })?;
                }
            }
        }
        Ok(events)
    }

    /// Open sessions from bundles fetched for single devices of `user`
    /// (the device list is not replaced).
    pub fn open_sessions(&mut self, user: UserId, bundles: &[KeyBundle]) -> Result<(), KeysError> {
        for bundle in bundles {
            let b = verify_bundle(user, bundle)?;
            let known = self.contacts.device(user, b.device.as_str());
            if known.is_none_or(|k| k.identity_key != b.identity_key.to_base64()) {
                // Not the device as first seen: only a full fetch changes that.
                continue;
            }
            self.olm
                .open(self.account.olm(), user.0, b.device.as_str(), curve(&b.identity_key), curve(&b.session_key))
                .map_err(|e| KeysError::Session {
                    user,
                    device: b.device.as_str().to_owned(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Whether `user`'s device list was fetched within `max_age` seconds.
    pub fn devices_fresh(&self, user: UserId, now: u64, max_age: u64) -> bool {
        self.contacts.fresh(user, now, max_age)
    }

    /// Forget when `user`'s devices were fetched, so the next send fetches
    /// them again (what a `keys_changed` event will call).
    pub fn devices_changed(&mut self, user: UserId) {
        self.contacts.mark_stale(user);
    }

    /// Known devices of `user` this device has no Olm session with.
    pub fn devices_without_session(&self, user: UserId) -> Vec<String> {
        let (my_user, my_device) = self.me();
        self.contacts
            .devices(user)
            .into_iter()
            .filter(|d| {
                let this_device = user.0 == my_user && *d == my_device;
                !this_device && !self.olm.has(user.0, d)
            })
            .collect()
    }

    /// Every device a message of `users` goes to: their known devices and
    /// this user's other devices.
    fn recipients(&self, users: impl IntoIterator<Item = u64>) -> Vec<(u64, String)> {
        let (my_user, my_device) = self.me();
        let mut all: BTreeSet<u64> = users.into_iter().collect();
        all.insert(my_user);
        all.into_iter()
            .flat_map(|u| self.contacts.devices(UserId(u)).into_iter().map(move |d| (u, d)))
            .filter(|(u, d)| !(*u == my_user && *d == my_device))
            .collect()
    }

    fn olm_encrypt(&mut self, targets: &[(u64, String)], plaintext: &[u8]) -> Result<Vec<OlmEntry>, EncryptError> {
        let missing: Vec<_> =
            targets.iter().filter(|(u, d)| !self.olm.has(*u, d)).map(|(u, d)| (UserId(*u), d.clone())).collect();
        if !missing.is_empty() {
            return Err(EncryptError::MissingSessions(missing));
        }
        targets
            .iter()
            .map(|(u, d)| match self.olm.encrypt(*u, d, plaintext) {
                Some(Ok(entry)) => Ok(entry),
                Some(Err(e)) => Err(EncryptError::Olm(e)),
                None => Err(EncryptError::MissingSessions(vec![(UserId(*u), d.clone())])),
            })
            .collect()
    }

    fn sender(&self) -> Sender {
        let (u, d) = self.me();
        Sender { u: u.to_string(), d }
    }

    /// Encrypt a direct message to `peer`: one Olm ciphertext per device of
    /// `peer` and per other device of this user.
    pub fn encrypt_direct(&mut self, peer: UserId, kind: MessageKind, body: &str) -> Result<Envelope, EncryptError> {
        let kind = checked_kind(kind)?;
        if self.contacts.devices(peer).is_empty() {
            return Err(EncryptError::NoDevices(peer));
        }
        let payload = Payload::message(self.sender(), Conversation::direct(peer.0), kind, body).to_json();
        let targets = self.recipients([peer.0]);
        let k = self.olm_encrypt(&targets, payload.as_bytes())?;
        let envelope = Envelope { v: ENVELOPE_VERSION, d: self.me().1, k, g: None };
        fits(envelope)
    }

    /// Encrypt a group message; shares the group session first with member
    /// devices that do not hold it yet. `now` is Unix seconds.
    pub fn encrypt_group(
        &mut self,
        group: GroupId,
        kind: MessageKind,
        body: &str,
        now: u64,
    ) -> Result<GroupSend, EncryptError> {
        let kind = checked_kind(kind)?;
        let members = self.groups.members(group.0).ok_or(EncryptError::MembersUnknown(group.0))?.clone();
        let targets = self.recipients(members);
        let (my_user, my_device) = self.me();
        let outbound = self.groups.outbound(group.0, my_user, &my_device, self.policy, now);
        let new_targets: Vec<_> = targets.into_iter().filter(|t| !outbound.shared_with.contains(t)).collect();
        let key_shares = if new_targets.is_empty() {
            Vec::new()
        } else {
            // Exporting the key signs it: only when someone needs it.
            let room_key = Payload::RoomKey {
                from: Sender { u: my_user.to_string(), d: my_device.clone() },
                to: Conversation::group(group.0),
                session_id: outbound.session.session_id(),
                session_key: outbound.session.session_key().to_base64(),
            }
            .to_json();
            let entries = self.olm_encrypt(&new_targets, room_key.as_bytes())?;
            split_entries(&my_device, entries)
        };
        let payload = Payload::message(self.sender(), Conversation::group(group.0), kind, body).to_json();
        let outbound = self.groups.outbound.get_mut(&group.0).expect("created above");
        outbound.shared_with.extend(new_targets);
        let sealed = outbound.session.encrypt(payload.as_bytes());
        let g = GroupCiphertext { s: outbound.session.session_id(), c: sealed.to_base64() };
        self.groups.count_sent(group.0);
        let message = fits(Envelope { v: ENVELOPE_VERSION, d: my_device, k: Vec::new(), g: Some(g) })?;
        Ok(GroupSend { key_shares, message })
    }

    /// Set `group`'s members (from a `group` answer).
    pub fn set_group_members(&mut self, group: GroupId, members: &[UserId]) {
        self.groups.set_members(group.0, members.iter().map(|u| u.0).collect());
    }

    /// Forget `group`'s members until they are set again (a change is
    /// known to be on its way).
    pub fn forget_group_members(&mut self, group: GroupId) {
        self.groups.forget_members(group.0);
    }

    /// Whether `group`'s members are known.
    pub fn group_members_known(&self, group: GroupId) -> bool {
        self.groups.members(group.0).is_some()
    }

    /// `group`'s members, if known.
    pub fn group_members(&self, group: GroupId) -> Vec<UserId> {
        self.groups.members(group.0).map(|m| m.iter().map(|u| UserId(*u)).collect()).unwrap_or_default()
    }

    /// Take a group's system message (docs/PROTOCOL.md 2.3): departures
    /// rotate the group's session, arrivals are shared with at the next
    /// message. Returns whether the members are still known (if not, ask
    /// for `group_info` before sending).
    pub fn group_system_message(&mut self, message: &MessageEvent) -> bool {
        let Some(group) = message.group else { return true };
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&message.body) else { return true };
        // `members` is a list of user ids, `by` one user id.
        let users = |field: &str| -> Vec<u64> {
            match body.get(field) {
                Some(serde_json::Value::Array(a)) => a.iter().filter_map(|u| u.as_str()?.parse().ok()).collect(),
                Some(serde_json::Value::String(u)) => u.parse().into_iter().collect(),
                _ => Vec::new(),
            }
        };
        let me = self.account.user().0;
        match body.get("event").and_then(|e| e.as_str()) {
            Some("created") => self.groups.set_members(group.0, users("members").into_iter().collect()),
            Some("added") => self.groups.added(group.0, &users("members")),
            Some("removed") => self.groups.removed(group.0, &users("members"), me),
            Some("left") => self.groups.removed(group.0, &users("by"), me),
            _ => {}
        }
        self.group_members_known(group)
    }

    /// The safety number of this user and `peer`, from the devices known
    /// for both (this device included).
    pub fn safety_number(&self, peer: UserId) -> String {
        let me = self.account.user();
        let mut mine = self.contacts.signing_keys(me);
        mine.push(self.account.signing_key());
        safety_number(me, &mine, peer, &self.contacts.signing_keys(peer))
    }

    /// The whole state, serialized (secret: encrypt it before storing).
    pub fn to_bytes(&self) -> Vec<u8> {
        let state = CryptoStateOut {
            version: STATE_VERSION,
            account: self.account.to_state(),
            olm: self.olm.to_state(),
            groups: self.groups.to_state(),
            contacts: &self.contacts,
            seen: &self.seen,
            cursor: self.cursor,
        };
        serde_json::to_vec(&state).expect("the state serializes")
    }

    /// The state [`DeviceCrypto::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Option<DeviceCrypto> {
        let state: CryptoState = serde_json::from_slice(bytes).ok()?;
        if state.version != STATE_VERSION {
            return None;
        }
        Some(DeviceCrypto {
            account: DeviceAccount::from_state(state.account)?,
            olm: OlmSessions::from_state(state.olm),
            groups: GroupSessions::from_state(state.groups),
            contacts: state.contacts,
            seen: state.seen,
            policy: RotationPolicy::default(),
            cursor: state.cursor,
        })
    }
}

fn checked_kind(kind: MessageKind) -> Result<MessageKind, EncryptError> {
    inner_kind(kind.as_str()).ok_or(EncryptError::Kind(kind.as_str()))
}

fn fits(envelope: Envelope) -> Result<Envelope, EncryptError> {
    let len = envelope.body_literal_len();
    if len > MAX_BODY_LITERAL {
        return Err(EncryptError::TooLarge(len));
    }
    Ok(envelope)
}

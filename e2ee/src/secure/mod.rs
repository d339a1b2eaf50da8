//! [`SecureClient`]: one device connection that sends and receives
//! end-to-end encrypted messages.
//!
//! It drives a [`DeviceCrypto`] over a [`Client`]: publishes and
//! replenishes the device's keys, fetches (and verifies) the keys of the
//! devices it sends to, keeps group membership from `group` answers and
//! system messages, and turns `encrypted` message events (live or from
//! `sync`: they are the same events) into [`SecureEvent::Message`]s or
//! per-message [`SecureEvent::Undecryptable`] errors. Two kinds are
//! consumed silently: key shares addressed to the group's other devices,
//! and this device's own direct messages coming back from `sync` (it
//! cannot encrypt to itself; the application keeps what it sent). Every
//! other event is passed through as [`SecureEvent::Other`], `history`
//! pages included: their messages can be opened one by one with
//! [`DeviceCrypto::decrypt`], which opens group messages again but not
//! direct ones, whose Olm message keys are used once. Events that arrive
//! while it waits for an answer are queued, not lost.
//!
//! A device list is fetched again before sending to a user whose list is
//! older than [`SecureConfig::device_list_max_age`], and whenever
//! [`SecureClient::devices_changed`] was called for that user: that one
//! method is what a server `keys_changed` event will drive. With a
//! [`StateFile`], the state is saved after every change, so a restart
//! continues every session.

use std::{
    collections::VecDeque,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chatgw_client::{Client, ClientError, Event, MessageEvent};
use chatgw_protocol::{DeviceName, GroupId, KeyBundle, MessageId, MessageKind, UserId};

mod receive;

use crate::{
    crypto::{Decrypted, DeviceCrypto},
    envelope::Envelope,
    error::{DecryptError, EncryptError, KeysError, StateError},
    group::RotationPolicy,
    state_file::{KdfParams, StateFile},
    trust::TrustEvent,
};

/// How a [`SecureClient`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct SecureConfig {
    /// Fetch a user's device list again before sending when it is older
    /// than this (default 10 minutes).
    pub device_list_max_age: Duration,
    /// How long to wait for the gateway's answer to a request (default 10 s).
    pub reply_timeout: Duration,
    /// When group sessions rotate.
    pub rotation: RotationPolicy,
}

impl Default for SecureConfig {
    fn default() -> Self {
        SecureConfig {
            device_list_max_age: Duration::from_secs(600),
            reply_timeout: Duration::from_secs(10),
            rotation: RotationPolicy::default(),
        }
    }
}

/// What a [`SecureClient`] received.
#[derive(Debug)]
pub enum SecureEvent {
    /// An encrypted message, opened.
    Message(Decrypted),
    /// An encrypted message that could not be opened, and why; the
    /// sessions are unaffected.
    Undecryptable {
        /// The message as the server delivered it.
        message: MessageEvent,
        /// Why.
        error: DecryptError,
    },
    /// A group session key was received and installed.
    RoomKey {
        /// The group.
        group: GroupId,
        /// Whose session.
        from: UserId,
        /// Their device.
        device: String,
    },
    /// A contact's devices changed (a changed key is a warning to show).
    Trust(TrustEvent),
    /// Any other event, as the client parsed it.
    Other(Event),
}

/// Why a [`SecureClient`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    /// The connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The gateway refused a request.
    #[error("refused: {code}: {message}")]
    Refused {
        /// Error code.
        code: String,
        /// Reason.
        message: String,
    },
    /// Fetched keys were refused.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The message could not be encrypted.
    #[error(transparent)]
    Encrypt(#[from] EncryptError),
    /// The state could not be saved or loaded.
    #[error(transparent)]
    State(#[from] StateError),
}

/// One device connection with end-to-end encryption.
pub struct SecureClient {
    client: Client,
    crypto: DeviceCrypto,
    state: Option<StateFile>,
    config: SecureConfig,
    /// Raw events read while waiting for an answer.
    pending: VecDeque<Event>,
    /// Events produced ahead of the caller asking (trust changes).
    ready: VecDeque<SecureEvent>,
}

impl std::fmt::Debug for SecureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecureClient").field("client", &self.client).finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn client_id() -> String {
    let mut b = [0u8; 8];
    // Without randomness a fixed id would collide with earlier sends.
    getrandom::fill(&mut b).expect("the system's random source");
    format!("e2ee-{:016x}", u64::from_le_bytes(b))
}

impl SecureClient {
    /// Wrap a connected `client` of `crypto`'s device; with `state`, every
    /// change is saved to it. Publishes the device's keys.
    pub fn new(
        client: Client,
        mut crypto: DeviceCrypto,
        state: Option<StateFile>,
        config: SecureConfig,
    ) -> Result<SecureClient, SecureError> {
        crypto.set_rotation_policy(config.rotation);
        let mut client = client;
        if crypto.cursor().0 != 0 {
            client.set_cursor(crypto.cursor());
        }
        let mut me = SecureClient { client, crypto, state, config, pending: VecDeque::new(), ready: VecDeque::new() };
        me.publish_keys()?;
        Ok(me)
    }

    /// Open (or create, if `path` does not exist) the device state at
    /// `path` under `passphrase`, and wrap `client` with it. A wrong
    /// passphrase is [`StateError::WrongPassphrase`].
    pub fn open(
        client: Client,
        user: UserId,
        device: DeviceName,
        path: impl Into<PathBuf>,
        passphrase: &str,
        config: SecureConfig,
    ) -> Result<SecureClient, SecureError> {
        let path = path.into();
        let (crypto, file) = if path.exists() {
            let (file, bytes) = StateFile::open(&path, passphrase)?;
            let crypto = DeviceCrypto::from_bytes(&bytes).ok_or(StateError::Corrupted("unreadable state"))?;
            (crypto, file)
        } else {
            (DeviceCrypto::new(user, device), StateFile::create(&path, passphrase, KdfParams::default())?)
        };
        if crypto.account().user() != user || crypto.account().device() != device {
            return Err(StateError::Corrupted("the state belongs to another device").into());
        }
        SecureClient::new(client, crypto, Some(file), config)
    }

    /// The connection, for requests this type does not wrap.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The device's state.
    pub fn crypto(&self) -> &DeviceCrypto {
        &self.crypto
    }

    /// The device's state, to encrypt or open by hand (a message from
    /// `history`, say). Call [`SecureClient::save`] after changing it.
    pub fn crypto_mut(&mut self) -> &mut DeviceCrypto {
        &mut self.crypto
    }

    /// Take the connection and the state apart (after a final save).
    pub fn into_parts(self) -> (Client, DeviceCrypto) {
        (self.client, self.crypto)
    }

    /// Save the state now (done after every change when a state file is
    /// attached).
    pub fn save(&self) -> Result<(), SecureError> {
        if let Some(file) = &self.state {
            file.write(&self.crypto.to_bytes())?;
        }
        Ok(())
    }

    /// The safety number of this user and `peer` (fetch `peer`'s devices
    /// first for an up-to-date number).
    pub fn safety_number(&self, peer: UserId) -> String {
        self.crypto.safety_number(peer)
    }

    /// Read events until `pick` takes one; others are queued. An `error`
    /// with `reference` (or, when `reference` is `None`, any `error`
    /// without one) is the request's refusal.
    fn wait<T>(
        &mut self,
        what: &'static str,
        reference: Option<&str>,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, SecureError> {
        loop {
            let Some(event) = self.client.next_event(self.config.reply_timeout)? else {
                return Err(ClientError::Timeout(what).into());
            };
            if let Some(t) = pick(&event) {
                return Ok(t);
            }
            match &event {
                Event::Error { code, message, reference: r } if r.as_deref() == reference => {
                    return Err(SecureError::Refused { code: code.clone(), message: message.clone() });
                }
                Event::Closed { code, reason } => {
                    return Err(SecureError::Refused { code: format!("closed {code}"), message: reason.clone() });
                }
                _ => {
                    if let Event::Message(m) = &event {
                        if let (MessageKind::System, Some(group)) = (m.kind, m.group) {
                            // Read before a send it may concern: the next
                            // group send asks for the members first.
                            self.crypto.forget_group_members(group);
                        }
                    }
                    self.pending.push_back(event)
                }
            }
        }
    }

    /// Publish the device's keys, topping its one-time keys up; returns how
    /// many it has published.
    pub fn publish_keys(&mut self) -> Result<u64, SecureError> {
        self.client.key_count()?;
        let published = self.wait_key_count()?;
        self.upload(published)
    }

    /// Ask how many one-time keys are left; when the answer (read by
    /// [`SecureClient::next_event`]) says fewer than
    /// [`ONE_TIME_KEY_LOW`](crate::ONE_TIME_KEY_LOW), more are uploaded.
    /// [`SecureClient::sync`] asks after every sync.
    pub fn check_keys(&mut self) -> Result<(), SecureError> {
        Ok(self.client.key_count()?)
    }

    fn wait_key_count(&mut self) -> Result<u64, SecureError> {
        self.wait("key_count", None, |e| match e {
            Event::KeyCount { one_time_keys, .. } => Some(*one_time_keys),
            _ => None,
        })
    }

    fn upload(&mut self, published: u64) -> Result<u64, SecureError> {
        let upload = self.crypto.account_mut().upload(published);
        // Saved before sending: keys published but not saved would be
        // keys whose private parts a restart loses.
        self.save()?;
        self.client.upload_keys(&upload.keys, &upload.one_time_keys)?;
        self.wait_key_count()
    }

    /// `user`'s devices changed (a `keys_changed` event, or the application
    /// knows): the next send fetches their keys again.
    pub fn devices_changed(&mut self, user: UserId) {
        self.crypto.devices_changed(user);
    }

    fn fetch(&mut self, user: UserId, device: Option<&str>) -> Result<Vec<KeyBundle>, SecureError> {
        let device = device.and_then(DeviceName::new);
        self.client.fetch_keys(user, device)?;
        self.wait("keys", None, |e| match e {
            Event::Keys { user: u, devices } if *u == user => Some(devices.clone()),
            _ => None,
        })
    }

    /// Fetch `user`'s device list now, verify it and take it; opens sessions
    /// with new devices if `open_sessions`. Changes are also queued as
    /// [`SecureEvent::Trust`].
    pub fn refresh_devices(&mut self, user: UserId, open_sessions: bool) -> Result<Vec<TrustEvent>, SecureError> {
        let bundles = self.fetch(user, None)?;
        let events = self.crypto.learn_devices(user, &bundles, now(), open_sessions)?;
        self.save()?;
        self.ready.extend(events.iter().cloned().map(SecureEvent::Trust));
        Ok(events)
    }

    /// Make sure `user`'s device list is fresh and every device has a
    /// session.
    fn ensure_sessions(&mut self, user: UserId) -> Result<(), SecureError> {
        if !self.crypto.devices_fresh(user, now(), self.config.device_list_max_age.as_secs()) {
            self.refresh_devices(user, true)?;
        }
        for device in self.crypto.devices_without_session(user) {
            let bundles = self.fetch(user, Some(&device))?;
            self.crypto.open_sessions(user, &bundles)?;
        }
        self.save()
    }

    fn send_envelope(&mut self, to: Target, envelope: &Envelope) -> Result<MessageId, SecureError> {
        let cid = client_id();
        let body = envelope.to_body();
        match to {
            Target::Peer(peer) => self.client.send_message(peer, &cid, MessageKind::Encrypted, &body)?,
            Target::Group(group) => self.client.send_group(group, &cid, MessageKind::Encrypted, &body)?,
        }
        self.wait("sent", Some(&cid), |e| match e {
            Event::Sent { client_id, id, .. } if *client_id == cid => Some(*id),
            _ => None,
        })
    }

    /// Send `body` of `kind` to `peer`, encrypted for each of `peer`'s
    /// devices and this user's other devices. Returns the message's id.
    pub fn send_direct(&mut self, peer: UserId, kind: MessageKind, body: &str) -> Result<MessageId, SecureError> {
        self.ensure_sessions(peer)?;
        self.ensure_sessions(self.crypto.account().user())?;
        let envelope = self.crypto.encrypt_direct(peer, kind, body)?;
        self.save()?;
        self.send_envelope(Target::Peer(peer), &envelope)
    }

    /// Ask the gateway for `group`'s members and take them.
    pub fn refresh_group(&mut self, group: GroupId) -> Result<Vec<UserId>, SecureError> {
        self.client.group_info(group)?;
        self.take_group_answer(group)
    }

    /// Add, remove, promote or demote members (`op` as in
    /// [`Client::change_members`]) and wait for the answer: a removal
    /// takes effect on this device's next group message at once (a new
    /// group session, not shared with the removed members).
    pub fn change_members(&mut self, op: &str, group: GroupId, users: &[UserId]) -> Result<Vec<UserId>, SecureError> {
        self.client.change_members(op, group, users)?;
        self.take_group_answer(group)
    }

    /// Wait for the `group` answer about `group` and take its members.
    fn take_group_answer(&mut self, group: GroupId) -> Result<Vec<UserId>, SecureError> {
        let members = self.wait("group", None, |e| match e {
            Event::Group { id, members, .. } if *id == group => {
                Some(members.iter().map(|(u, _)| *u).collect::<Vec<_>>())
            }
            _ => None,
        })?;
        self.crypto.set_group_members(group, &members);
        self.save()?;
        Ok(members)
    }

    /// Send `body` of `kind` to `group` with the group's Megolm session,
    /// sharing the session first with member devices that lack it.
    pub fn send_group(&mut self, group: GroupId, kind: MessageKind, body: &str) -> Result<MessageId, SecureError> {
        if !self.crypto.group_members_known(group) {
            self.refresh_group(group)?;
        }
        let me = self.crypto.account().user();
        for member in self.crypto.group_members(group).into_iter().chain([me]) {
            self.ensure_sessions(member)?;
        }
        let send = self.crypto.encrypt_group(group, kind, body, now())?;
        self.save()?;
        for share in &send.key_shares {
            self.send_envelope(Target::Group(group), share)?;
        }
        self.send_envelope(Target::Group(group), &send.message)
    }
}

#[derive(Clone, Copy)]
enum Target {
    Peer(UserId),
    Group(GroupId),
}

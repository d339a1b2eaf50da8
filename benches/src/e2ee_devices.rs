//! Devices of the end-to-end encryption library wired to each other
//! without a gateway, for the e2ee bench and `e2ee-sizes`: each device's
//! bundle is made from its own published keys (one one-time key per
//! bundle, as a fetch claims it), and messages travel as the
//! `MessageEvent`s a gateway would deliver.

use chatgw_client::{DeviceName, GroupId, MessageEvent, MessageId, MessageKind, UserId};
use chatgw_e2ee::{DeviceCrypto, Envelope};
use chatgw_protocol::KeyBundle;

/// A device and the one-time keys it published and nobody claimed yet.
pub struct Device {
    /// Its state.
    pub crypto: DeviceCrypto,
    user: UserId,
    name: DeviceName,
    unclaimed: Vec<chatgw_protocol::SignedKey>,
    keys: chatgw_protocol::DeviceKeys,
}

impl Device {
    /// A new device `name` of `user`, its keys published.
    pub fn new(user: u64, name: &str) -> Device {
        let name = DeviceName::new(name).expect("a valid device name");
        let mut crypto = DeviceCrypto::new(UserId(user), name);
        let upload = crypto.account_mut().upload(0);
        Device { crypto, user: UserId(user), name, unclaimed: upload.one_time_keys, keys: upload.keys }
    }

    /// A bundle claiming one of its one-time keys (the fallback key once
    /// none is left), as `fetch_keys` answers.
    pub fn bundle(&mut self) -> KeyBundle {
        KeyBundle { device: self.name, keys: self.keys.clone(), one_time_key: self.unclaimed.pop() }
    }

    /// Its user.
    pub fn user(&self) -> UserId {
        self.user
    }
}

/// `who` learns `user`'s devices `of` (fetching a bundle of each), opening
/// sessions with them if `open`.
pub fn learn(who: &mut DeviceCrypto, of: &mut [&mut Device], open: bool) {
    let Some(user) = of.first().map(|d| d.user()) else { return };
    let bundles: Vec<KeyBundle> = of.iter_mut().map(|d| d.bundle()).collect();
    who.learn_devices(user, &bundles, 0, open).expect("bundles verify");
}

/// The message event a gateway would deliver for `envelope` sent by `from`
/// to `to` (a user) or into `group`.
pub fn delivered(
    id: u64,
    from: UserId,
    to: Option<UserId>,
    group: Option<GroupId>,
    envelope: &Envelope,
) -> MessageEvent {
    MessageEvent {
        id: MessageId(id),
        from,
        to,
        group,
        kind: MessageKind::Encrypted,
        client_id: format!("c-{id}"),
        ts: 0,
        body: envelope.to_body(),
        edited_at: None,
        deleted_at: None,
        hidden_at: None,
    }
}

/// A body of `len` bytes of text.
pub fn body(len: usize) -> String {
    "lorem ipsum dolor sit amet ".chars().cycle().take(len).collect()
}
